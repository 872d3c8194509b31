"""The config contract: every option composes, the schema rejects bad keys and types,
and `validate` rejects bad values with one line naming the key."""

import re
import sys

import pytest
from conftest import compose_train
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from mnist_hydra.config.model_checks import ACTIVATIONS
from mnist_hydra.config.validate import training_batch_size, validate
from mnist_hydra.errors import ConfigError

GROUPS = {
    "dataset": ["mnist", "fashion_mnist"],
    "model": ["tutorial_cnn", "keras_example", "keras_io_convnet"],
    "optimizer": ["adadelta", "adam", "sgd", "rmsprop"],
    "trainer": ["default"],
    "tracker": ["tensorboard", "mlflow", "csv", "none"],
    "loss": ["cross_entropy"],
    "schedule": ["constant", "cosine"],
}


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_option_composes_completely_and_validates(group, option):
    cfg = compose_train([f"{group}={option}"])
    assert OmegaConf.missing_keys(cfg) == set()
    validate(cfg)


def test_default_is_the_documented_recipe():
    cfg = compose_train()
    assert cfg.dataset.name == "mnist"
    assert list(cfg.model.filters) == [32, 64]
    assert (cfg.model.kernel_size, cfg.model.pool_size, cfg.model.dropout) == (3, 3, 0.5)
    assert (cfg.model.dense_units, cfg.model.dense_activation) == (250, "sigmoid")
    assert cfg.optimizer._target_ == "keras.optimizers.Adadelta"
    assert cfg.optimizer.learning_rate == 1.0  # Keras <= 2.3's default, which the tutorial relied on
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.trainer.validation_split) == (12, 500, 0.0)


@pytest.mark.parametrize("app", ["evaluate", "predict", "serve", "export"])
def test_every_command_that_reads_a_run_needs_a_checkpoint(cli, app, tmp_path):
    result = cli(f"mnist_hydra.{app}", cwd=tmp_path)
    assert result.returncode != 0
    assert "ckpt_path is required" in result.stderr and "Traceback" not in result.stderr


def test_issue_overrides_compose():
    cfg = compose_train(
        [
            "model.filters=[16,32]",
            "model.kernel_size=5",
            "model.pool_size=2",
            "model.dropout=0.3",
            "model.dense_units=128",
            "model.dense_activation=relu",
            "model.conv_activation=elu",
            "optimizer=adam",
            "optimizer.learning_rate=1e-3",
            "trainer.epochs=3",
            "trainer.batch_size=128",
            "dataset=fashion_mnist",
            "seed=7",
        ]
    )
    validate(cfg)
    assert cfg.optimizer.learning_rate == 1e-3 and cfg.seed == 7 and cfg.model.kernel_size == 5


@pytest.mark.parametrize(
    "override,message,reason",
    [
        ("model.foo=1", "Could not override 'model.foo'", "Key 'foo' not in 'CNNConfig'"),
        (
            "trainer.epochs=1.5",
            "Error merging override trainer.epochs=1.5",
            "Value '1.5' of type 'float' could not",
        ),
        (  # a key Adam does not have
            "optimizer=adam optimizer.momentum=0.9",
            "Could not override 'optimizer.momentum'",
            "Key 'momentum' not in 'AdamConfig'",
        ),
        (
            "seed=abc",
            "Error merging override seed=abc",
            "Value 'abc' of type 'str' could not be converted to Integer",
        ),
    ],
)
def test_our_schemas_reject_unknown_keys_and_wrong_types(override, message, reason):
    with pytest.raises(ConfigCompositionException, match=f"^{re.escape(message)}") as refused:
        compose_train(override.split())
    assert reason in str(refused.value.__cause__)  # what Hydra prints under it


@pytest.mark.parametrize(
    "override,message",
    [
        (
            "+trainer.epoch=3",  # what Hydra suggests after the typo trainer.epoch=3
            "trainer.epoch is not a key of trainer (TrainerConfig) (did you mean trainer.epochs?); its keys: "
            "augment, batch_size,",
        ),
        ("+foo=1", "foo is not a key of the config (TrainConfig); its keys: callbacks, dataset, init_from,"),
        ("+model.foo=1", "model.foo is not a key of model (CNNConfig); its keys: batch_norm,"),
        ("+trainer.augment.flip=1", "trainer.augment.flip is not a key of trainer.augment (AugmentConfig)"),
        ("dataset.channels=3", "dataset.channels=3 is not allowed: 1: mnist's images are grayscale"),
    ],
)
def test_keys_added_with_plus_and_channels_mnist_lacks_are_refused_before_anything_loads(override, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
        validate(compose_train([override]))


def test_each_optimizer_has_its_own_keys():
    assert compose_train(["optimizer=sgd", "optimizer.momentum=0.9"]).optimizer.momentum == 0.9
    assert compose_train(["optimizer.rho=0.9"]).optimizer.rho == 0.9


@pytest.mark.parametrize(
    "override,key",
    [
        ("model.dropout=1.0", "model.dropout"),
        ("model.dropout=-0.1", "model.dropout"),
        ("model.dense_dropout=1.5", "model.dense_dropout"),
        ("model.filters=[]", "model.filters"),
        ("model.filters=[32,0]", "model.filters"),
        ("model.kernel_size=0", "model.kernel_size"),
        ("model.kernel_size=abc", "model.kernel_size"),
        ("model.kernel_size=[5,3,3]", "model.kernel_size"),  # three sizes for two convs
        ("model.kernel_size=29", "model.kernel_size"),
        ("model.filters=[16,32,64,128] model.kernel_size=9", "model.kernel_size"),  # shrinks below 9x9
        ("model.pool_size=0", "model.pool_size"),
        ("model.pool_size=25", "model.pool_size"),  # the two convs leave 24x24
        ("model.pool_every=1 model.pool_size=5 model.filters=[8,8,8]", "model.pool_size"),
        ("model.padding=full", "model.padding"),
        ("model.conv_activation=relux", "model.conv_activation"),
        ("model.dense_activation=softmax", "model.dense_activation"),
        ("model.dense_units=[128,0]", "model.dense_units"),
        ("model.dense_units=abc", "model.dense_units"),
        ("trainer.epochs=0", "trainer.epochs"),
        ("trainer.batch_size=0", "trainer.batch_size"),
        ("trainer.validation_split=1.0", "trainer.validation_split"),
        ("trainer.verbose=3", "trainer.verbose"),
        ("optimizer.learning_rate=0", "optimizer.learning_rate"),
        ("optimizer=sgd optimizer.momentum=1.2", "optimizer.momentum"),
        ("dataset.train_limit=0", "dataset.train_limit"),
        ("dataset.test_limit=-5", "dataset.test_limit"),
        # Values that once passed here and failed late inside TensorFlow (or ate the memory):
        ("seed=-1", "seed"),
        ("seed=4294967296", "seed"),
        ("model.padding=same model.kernel_size=3000", "model.kernel_size"),
        ("model.padding=same model.pool_size=29", "model.pool_size"),
        ("dataset.image_size=0", "dataset.image_size"),
        ("dataset.image_size=100000", "dataset.image_size"),
        ("dataset.class_names=[only]", "dataset.class_names"),
        ("dataset.class_names=[a,a,b]", "dataset.class_names"),
        ("trainer.threads=100000", "trainer.threads"),
        ("optimizer.learning_rate=inf", "optimizer.learning_rate"),
        ("optimizer.learning_rate=nan", "optimizer.learning_rate"),
        ("optimizer=adam optimizer.epsilon=inf", "optimizer.epsilon"),
        ("trainer.tta_shift=-1", "trainer.tta_shift"),
        ("trainer.tta_shift=14", "trainer.tta_shift"),  # half of 28: nothing of the digit left
    ],
)
def test_validate_rejects_bad_values_naming_the_key(override, key):
    cfg = compose_train(override.split())
    with pytest.raises(ConfigError, match=rf"^{key}=.* is not allowed: "):
        validate(cfg)


@pytest.mark.parametrize(
    "override",
    [
        "model.filters=[100000]",  # 1.6 billion parameters
        "model.dense_units=[100000,100000]",  # 10 billion
        "trainer.batch_size=100000000",  # the activations of a hundred million images
    ],
)
def test_a_model_too_large_for_this_machines_memory_is_refused_naming_its_keys(override):
    with pytest.raises(ConfigError, match=r"model.filters=.* model.dense_units=.* trainer.batch_size=.* GiB"):
        validate(compose_train([override]))


@pytest.mark.parametrize(
    "overrides,images",
    [
        (["trainer.validation_split=0.9999"], 1000),  # none left to train on
        (["trainer.validation_split=1e-17", "trainer.batch_size=100"], 300),  # none held out
    ],
)
def test_split_sizes_are_checked_once_the_images_are_counted(overrides, images):
    with pytest.raises(ConfigError, match=r"^trainer.validation_split=.* is not allowed: "):
        training_batch_size(compose_train(overrides), images)


def test_a_batch_larger_than_the_training_images_takes_them_all():
    assert training_batch_size(compose_train(["trainer.validation_split=0.1"]), 60_000) == 500
    assert training_batch_size(compose_train(["trainer.batch_size=100"]), 300) == 100
    assert training_batch_size(compose_train([]), 48) == 48  # a small image folder: one batch of all
    assert training_batch_size(compose_train(["trainer.validation_split=0.5"]), 600) == 300


def test_a_pool_that_fits_is_accepted():
    # 28 -> 26 -> 24 after two 3x3 convs; a 9x9 pool still fits once.
    validate(compose_train(["model.pool_size=9"]))


def test_every_allowed_activation_is_a_keras_activation():
    import keras

    for name in ACTIVATIONS:
        assert callable(keras.activations.get(name)), name


@pytest.mark.parametrize(
    "name,cls",
    [
        ("adadelta", "Adadelta"),
        ("adam", "Adam"),
        ("sgd", "SGD"),
        ("rmsprop", "RMSprop"),
    ],
)
def test_each_optimizer_file_instantiates_its_keras_optimizer(name, cls):
    from mnist_hydra.building import build

    cfg = compose_train([f"optimizer={name}"])
    optimizer = build("optimizer", cfg.optimizer, learning_rate=cfg.optimizer.learning_rate)
    assert type(optimizer).__name__ == cls
    assert float(optimizer.learning_rate) == pytest.approx(cfg.optimizer.learning_rate)


@pytest.mark.parametrize(
    "override,expected",
    [
        ("model.dropout=1.5", "model.dropout=1.5 is not allowed: a rate in [0, 1)"),
        ("model.conv_activation=relux", "model.conv_activation=relux is not allowed: one of"),
        ("model.foo=1", "Key 'foo' not in 'CNNConfig'"),
        ("dataset=cifar", "Could not find 'dataset/cifar'"),
        ("model.padding=same model.kernel_size=3000", "model.kernel_size=3000 is not allowed: at most 28"),
        ("seed=-1", "seed=-1 is not allowed: an int from 0 to 4294967295"),
        ("dataset=image_folder", "dataset.path is required"),
        (
            "+trainer.epoch=3",
            "trainer.epoch is not a key of trainer (TrainerConfig) (did you mean trainer.epochs?)",
        ),
    ],
)
def test_cli_reports_a_bad_value_in_one_line_without_traceback(cli, override, expected, tmp_path):
    result = cli("mnist_hydra.train", *override.split(), cwd=tmp_path)
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # refused before the run folder exists: nothing written


@pytest.mark.slow
@pytest.mark.parametrize("app", ["train", "evaluate", "predict", "serve", "export"])
@pytest.mark.parametrize("flag", ["--help", "--cfg=job", "--info"])
def test_help_and_cfg_answer_without_importing_tensorflow(app, flag):
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['mnist-hydra-{app}', '{flag}']\n"
        f"try:\n    runpy.run_module('mnist_hydra.{app}', run_name='__main__')\n"
        "except SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    import subprocess

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_a_users_file_naming_the_custom_schema_keeps_its_own_keys(tmp_path):
    """What an earlier README taught: `/schema/optimizer/custom@_here_`, then keys of one's own."""
    (tmp_path / "optimizer").mkdir()
    (tmp_path / "optimizer" / "my_adadelta.yaml").write_text(
        "defaults:\n  - /schema/optimizer/custom@_here_\n  - _self_\n"
        "_target_: keras.optimizers.Adadelta\nlearning_rate: 1.0\nrho: 0.9\n"
    )
    cfg = compose_train([f"hydra.searchpath=[file://{tmp_path}]", "optimizer=my_adadelta"])
    validate(cfg)
    assert cfg.optimizer.rho == 0.9
    with pytest.raises(Exception, match="learning_rate"):  # the key the task reads is still typed
        compose_train(
            [f"hydra.searchpath=[file://{tmp_path}]", "optimizer=my_adadelta", "optimizer.learning_rate=x"]
        )
