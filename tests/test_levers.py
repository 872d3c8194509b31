"""Speed and accuracy levers: precision, the tf.data pipeline, augmentation, schedules, XLA."""

import logging
import os
import sys

import numpy as np
import pytest
from conftest import SMOKE, compose_train

from mnist_hydra.config.validate import validate
from mnist_hydra.errors import ConfigError


@pytest.fixture
def keras_policy():
    """Leave Keras' global dtype policy as it was found."""
    import keras

    yield
    keras.mixed_precision.set_global_policy("float32")


def test_bf16_gives_a_bfloat16_compute_policy_with_a_float32_softmax(keras_policy):
    from mnist_hydra.models import build_model
    from mnist_hydra.training.cpu import use_precision

    use_precision("bf16")
    model = build_model(compose_train().model, (28, 28, 1), 10)
    assert model.get_layer("conv1").compute_dtype == "bfloat16"
    assert model.get_layer("conv1").variable_dtype == "float32"  # weights stay float32
    assert model.get_layer("classifier").compute_dtype == "float32"
    use_precision("fp32")
    assert build_model(compose_train().model, (28, 28, 1), 10).get_layer("conv1").compute_dtype == "float32"


@pytest.mark.parametrize("native", [False, True])
def test_bf16_warns_when_the_cpu_has_no_native_bfloat16(native, monkeypatch, caplog, keras_policy):
    from mnist_hydra.training import cpu

    monkeypatch.setattr(cpu, "native_bf16", lambda: native)
    with caplog.at_level(logging.WARNING, logger="mnist_hydra.training.cpu"):
        cpu.use_precision("bf16")
    assert ("no native bfloat16" in caplog.text) is not native


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.precision=fp16", "trainer.precision=fp16 is not allowed: one of fp32, bf16"),
        ("trainer.steps_per_execution=0", "trainer.steps_per_execution=0 is not allowed"),
        ("loss.label_smoothing=1.0", "loss.label_smoothing=1.0 is not allowed"),
        ("trainer.augment.shift=0.6", "trainer.augment.shift=0.6 is not allowed"),
        ("trainer.augment.rotation=-5", "trainer.augment.rotation=-5.0 is not allowed"),
        ("trainer.augment.scale=0.9", "trainer.augment.scale=0.9 is not allowed: a number in [0, 0.5]"),
        ("trainer.augment.elastic=-1", "trainer.augment.elastic=-1.0 is not allowed: a number in [0, 100.0]"),
        ("trainer.augment.thickness=1.5", "trainer.augment.thickness=1.5 is not allowed"),
        ("trainer.augment.low_resolution=-0.1", "trainer.augment.low_resolution=-0.1 is not allowed"),
        (
            "trainer.jit_compile=true",
            "trainer.jit_compile=True is not allowed: true only with trainer.deterministic=false",
        ),
        ("schedule.warmup_epochs=20", "schedule.warmup_epochs=20.0 is not allowed: a value in [0.0, 12]"),
    ],
)
def test_levers_reject_values_out_of_range(override, message):
    overrides = ["schedule=cosine", override] if override.startswith("schedule.") else [override]
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate(compose_train(overrides))


def test_cosine_schedule_warms_up_then_decays_as_configured():
    from mnist_hydra.building import build

    def schedule_of(cfg, peak):  # 10 steps per epoch, 3 epochs
        return build("schedule", cfg.schedule, learning_rate=peak, steps_per_epoch=10, epochs=3)

    cfg = compose_train(
        [
            "schedule=cosine",
            "schedule.warmup_epochs=1",
            "schedule.start_ratio=0.1",
            "schedule.final_ratio=0.01",
        ]
    )
    schedule = schedule_of(cfg, 0.005)
    rate = lambda step: float(schedule(step))  # noqa: E731
    assert rate(0) == pytest.approx(0.0005)
    assert rate(5) == pytest.approx(0.00275)  # half-way up
    assert rate(10) == pytest.approx(0.005)  # the peak after one epoch
    assert rate(20) == pytest.approx(0.005 * (0.01 + 0.99 * 0.5))  # half-way down the cosine
    assert rate(30) == pytest.approx(0.00005)  # final_ratio x peak
    constant = schedule_of(compose_train(), 1.0)
    assert constant == 1.0


def test_training_batches_show_each_image_once_per_epoch_in_a_new_order():
    from omegaconf import OmegaConf

    from mnist_hydra.data.pipeline import training_batches

    x = np.arange(10, dtype="uint8").reshape(10, 1, 1, 1) * np.ones((1, 4, 4, 1), "uint8")
    y = np.eye(10, dtype="float32")
    no_augment = OmegaConf.create({"shift": 0.0, "rotation": 0.0})
    batches, steps = training_batches(x, y, 4, seed=1, augment=no_augment)
    assert steps == 3
    stream = iter(batches)
    epochs = [
        [int(label) for _ in range(steps) for label in np.argmax(next(stream)[1], axis=1)] for _ in range(2)
    ]
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(10))
    assert epochs[0] != epochs[1]
    again, _ = training_batches(x, y, 4, seed=1, augment=no_augment)
    assert [int(v) for v in np.argmax(next(iter(again))[1], axis=1)] == epochs[0][:4]  # seeded


def test_training_batches_scale_pixels_exactly_as_the_model_inputs_are():
    """The pipeline keeps uint8 pixels and scales each batch; the floats must be the very
    ones data.to_model_inputs gives to evaluate, predict and serve."""
    from omegaconf import OmegaConf

    from mnist_hydra.data import Split, to_model_inputs
    from mnist_hydra.data.pipeline import training_batches

    pixels = np.arange(256, dtype="uint8").reshape(256, 1, 1, 1)
    expected, labels = to_model_inputs(Split(pixels, np.arange(256) % 10), 10)
    no_augment = OmegaConf.create({"shift": 0.0, "rotation": 0.0})
    batches, _ = training_batches(pixels, labels, 256, seed=1, augment=no_augment)
    images, one_hot = next(iter(batches))
    order = np.argsort(images.numpy().ravel())
    assert images.dtype == "float32"
    assert np.array_equal(images.numpy()[order], expected)  # bit for bit
    assert np.array_equal(one_hot.numpy()[order], labels)


def test_transform_moves_and_turns_pixels_as_asked():
    import tensorflow as tf

    from mnist_hydra.data.pipeline import transformed

    image = np.zeros((1, 7, 7, 1), "float32")
    image[0, 3, 5, 0] = 1.0  # row 3 (the middle), column 5: right of the centre
    moved = transformed(image, tf.constant([0.0]), tf.constant([-2.0]), tf.constant([1.0])).numpy()
    assert moved[0, 4, 3, 0] == pytest.approx(1.0) and moved.sum() == pytest.approx(1.0)
    turned = transformed(image, tf.constant([np.pi / 2]), tf.constant([0.0]), tf.constant([0.0])).numpy()
    assert turned[0, 5, 3, 0] == pytest.approx(1.0, abs=1e-5)  # a quarter turn: right goes down
    zero = tf.constant([0.0])
    doubled = transformed(image, zero, zero, zero, tf.constant([2.0])).numpy()
    assert doubled[0, 3, 3, 0] == 0.0 and doubled[0, 3, 6, 0] > 0.0  # twice as far from the centre


def augment(**levers):
    from omegaconf import OmegaConf

    return OmegaConf.create({"shift": 0.0, "rotation": 0.0, **levers})


def test_augmentation_changes_images_the_same_way_for_the_same_seed():
    import tensorflow as tf

    from mnist_hydra.data.pipeline import augmented

    images = np.random.default_rng(0).random((8, 28, 28, 1), dtype="float32")
    seed = tf.constant([3, 4], tf.int64)
    every = augment(shift=0.1, rotation=10.0, scale=0.15, elastic=34.0, thickness=0.5, low_resolution=0.5)
    first = augmented(images, seed, every).numpy()
    assert first.shape == images.shape and first.min() >= 0.0 and first.max() <= 1.0
    assert not np.allclose(first, images)
    assert np.array_equal(first, augmented(images, seed, every).numpy())
    assert np.allclose(augmented(images, seed, augment()).numpy(), images, atol=1e-6)  # off: unchanged


def test_thickness_and_low_resolution_change_the_strokes_as_asked():
    import tensorflow as tf

    from mnist_hydra.data.pipeline import augmented

    stroke = np.zeros((64, 28, 28, 1), "float32")
    stroke[:, 6:22, 13:15, 0] = 1.0  # a vertical bar two pixels wide
    seed = tf.constant([1, 2], tf.int64)
    widths = np.rint((augmented(stroke, seed, augment(thickness=1.0)).numpy() > 0.5).sum(axis=(1, 2, 3)) / 16)
    assert set(widths.tolist()) == {1, 3}  # a pixel thinner or thicker: never left as it was
    low = augmented(stroke, seed, augment(low_resolution=1.0)).numpy()
    blurred = ((low > 0.05) & (low < 0.95)).any(axis=(1, 2, 3))
    assert blurred.all() and np.allclose(low.sum(axis=(1, 2, 3)), stroke.sum(axis=(1, 2, 3)), rtol=0.1)


def test_bilinear_sampling_reads_whole_pixels_exactly_and_outside_as_black():
    import tensorflow as tf

    from mnist_hydra.data.pipeline import sampled

    image = np.arange(12, dtype="float32").reshape(1, 3, 4, 1)
    rows, columns = np.meshgrid(np.arange(3.0), np.arange(4.0), indexing="ij")
    x, y = tf.constant(columns[None] + 1.0, tf.float32), tf.constant(rows[None], tf.float32)
    moved = sampled(tf.constant(image), x, y).numpy()[0, :, :, 0]
    assert moved[:, :3].tolist() == image[0, :, 1:, 0].tolist() and moved[:, 3].tolist() == [0, 0, 0]
    half = sampled(tf.constant(image), x - 0.5, y).numpy()[0, 0, :3, 0]
    assert half.tolist() == [0.5, 1.5, 2.5]  # halfway between two pixels: their mean


def test_elastic_distortion_warps_a_stroke_smoothly_and_the_same_way_for_the_same_seed():
    import tensorflow as tf

    from mnist_hydra.data.pipeline import augmented

    stroke = np.zeros((32, 28, 28, 1), "float32")
    stroke[:, 6:22, 13:15, 0] = 1.0
    seed = tf.constant([5, 6], tf.int64)
    warped = augmented(stroke, seed, augment(elastic=34.0)).numpy()
    assert np.array_equal(warped, augmented(stroke, seed, augment(elastic=34.0)).numpy())
    moved = np.abs(warped - stroke).sum(axis=(1, 2, 3))
    assert (moved > 1.0).all()  # every image changed
    # A smooth warp bends the bar, stretching or squeezing parts of it, but does not scatter it:
    # the ink stays near the bar, as much of it on average, and no image loses most of it.
    ink = warped.sum(axis=(1, 2, 3)) / stroke.sum(axis=(1, 2, 3))
    assert 0.85 < ink.mean() < 1.15 and ink.min() > 0.4
    assert (warped[:, :, :8].sum() + warped[:, :, 20:].sum()) < 0.01 * warped.sum()
    stronger = np.abs(augmented(stroke, seed, augment(elastic=100.0)).numpy() - stroke).sum(axis=(1, 2, 3))
    assert stronger.mean() > moved.mean()


def test_every_lever_trains_for_an_epoch_and_the_model_records_them(train_run, tmp_path):
    run = tmp_path / "run"
    metrics = train_run(
        run,
        *SMOKE,
        "trainer.precision=bf16",
        "trainer.jit_compile=true",
        "trainer.deterministic=false",
        "trainer.steps_per_execution=2",
        "loss.label_smoothing=0.1",
        "trainer.augment.shift=0.1",
        "trainer.augment.rotation=10",
        "trainer.augment.elastic=34",
        "trainer.validation_split=0.2",
        "schedule=cosine",
        "schedule.final_ratio=0.1",
        "optimizer=adam",
        "trainer.threads=1",
        "model.filters=[8,16]",
        "model.dense_units=32",  # small: bf16 is emulated here, XLA compiles
    )

    import keras

    assert metrics["status"] == "completed" and metrics["train_images"] == 240 and "val_accuracy" in metrics
    model = keras.models.load_model(run / "model.keras")
    assert model.get_layer("conv1").dtype_policy.name == "mixed_bfloat16"
    assert model.loss.get_config()["label_smoothing"] == pytest.approx(0.1)
    optimizer = model.optimizer
    assert int(optimizer.iterations) == 3  # 240 images in batches of 100
    assert float(optimizer.learning_rate) == pytest.approx(0.001 * 0.1)  # decayed to final_ratio
    log = (run / "train.log").read_text()
    assert "TensorFlow threads: 1 per op" in log
    assert "steps_per_execution=2 does not divide the 3 steps of an epoch; using 1" in log


def test_steps_per_execution_is_the_largest_that_divides_an_epoch():
    from mnist_hydra.training.task import whole_executions

    assert whole_executions(120, 8) == 8
    assert whole_executions(235, 8) == 5
    assert whole_executions(3, 2) == 1
    assert whole_executions(4, 16) == 4


@pytest.mark.parametrize(
    "flags,setting,user,expected",
    [
        ({"avx2", "fma"}, "auto", None, "1"),  # AVX2 only: TensorFlow would leave it off; auto turns it on
        ({"sse4_2"}, "auto", None, None),  # no AVX2: TensorFlow's own choice
        ({"avx2"}, "off", None, "0"),
        ({"sse4_2"}, "on", None, "1"),
        ({"avx2"}, "on", "0", "0"),  # the user's environment variable wins
    ],
)
def test_onednn_setting_goes_into_the_environment_before_tensorflow(
    flags, setting, user, expected, monkeypatch
):
    from mnist_hydra import machine as cpu

    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(cpu, "_ONEDNN_SET_HERE", [])
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)  # as in a job's fresh process
    environment = {key: value for key, value in os.environ.items() if key != cpu.ONEDNN_VARIABLE}
    if user is not None:
        environment[cpu.ONEDNN_VARIABLE] = user
    monkeypatch.setattr(os, "environ", environment)  # what the function sets goes no further
    decided = cpu.use_onednn(setting)
    assert os.environ.get(cpu.ONEDNN_VARIABLE) == expected
    assert ("from the environment" in decided) == (user is not None)


def test_a_run_records_whether_onednn_was_on_and_the_cpu_flags(train_run, tmp_path):
    from mnist_hydra.machine import REPORTED_FLAGS

    assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ, "the environment's value would decide"
    for setting in ("off", "on"):
        # fresh: TensorFlow fixes oneDNN as it loads, and the warm Python loaded it with its own
        record = train_run(tmp_path / setting, *SMOKE, f"trainer.onednn={setting}", fresh=True)
        assert record["onednn"] is (setting == "on")
        assert set(record["cpu_flags"]) <= set(REPORTED_FLAGS)
