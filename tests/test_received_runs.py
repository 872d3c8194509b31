"""A received run is data: its config and metrics.json are read as plain, checked values; its model
is sized before its weights load and loads in safe mode whatever any global flag says; what is
written for it stays inside it (docs/guarantees.md: What a received run can and cannot do)."""

import json
import os
import resource
import zipfile
from pathlib import Path

import keras
import pytest
import yaml
from test_trust import received_run

from mnist_hydra.errors import CheckpointError, ExportError
from mnist_hydra.inference import loading
from mnist_hydra.inference.loading import open_run, open_runs
from mnist_hydra.trained_runs import locate_run


def saved_config(folder: Path) -> dict:
    return yaml.safe_load((folder / ".hydra" / "config.yaml").read_text())


def save_config(folder: Path, config: dict) -> None:
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))


def payload(tmp_path: Path) -> dict:
    """What an author would have Hydra build: a file copied to where they chose."""
    (tmp_path / "secret").write_text("the user's")
    return {"_target_": "shutil.copyfile", "src": str(tmp_path / "secret"), "dst": str(tmp_path / "copied")}


@pytest.mark.parametrize(
    "route",
    ["dataset.notes", "trainer.batch_size", "model._target_", "a key's name", "a list's item"],
)
def test_an_interpolation_anywhere_in_a_received_config_is_refused_and_nothing_runs(tmp_path, route):
    folder = received_run(tmp_path / "run")
    config = saved_config(folder)
    config["notes"] = payload(tmp_path)
    if route == "a key's name":
        config["trainer"]["${notes}"] = 1
    elif route == "a list's item":
        config["dataset"]["class_names"][3] = "${notes}"
    else:
        section, key = route.split(".")
        config[section][key] = "${notes}"
    save_config(folder, config)
    with pytest.raises(CheckpointError, match=r"is an interpolation .*trust_run_code=true") as refused:
        open_run(folder)
    assert "\n" not in str(refused.value)
    assert not (tmp_path / "copied").exists()


def test_a_sweep_member_cannot_turn_safe_mode_off_for_the_next(tmp_path):
    """Member 0 would call keras.config.enable_unsafe_deserialization through an interpolation;
    member 1's model holds a Lambda layer. Neither gets through: member 0's config is refused, and
    even with Keras' global flag off, a Lambda is refused at load (safe mode is set for each load)."""
    sweep = tmp_path / "sweep"
    for job in "01":
        received_run(sweep / job)
        (sweep / job / ".hydra" / "overrides.yaml").write_text("[]\n")
    config = saved_config(sweep / "0")
    config["unsafe"] = {"_target_": "keras.config.enable_unsafe_deserialization"}
    config["dataset"]["notes"] = "${unsafe}"
    save_config(sweep / "0", config)
    inputs = keras.Input((28, 28, 1))
    outputs = keras.layers.Dense(10, activation="softmax")(
        keras.layers.Flatten()(keras.layers.Lambda(lambda x: x * 1.0)(inputs))
    )
    keras.Model(inputs, outputs).save(sweep / "1" / "model.keras")
    with pytest.raises(CheckpointError, match=r"0/.hydra/config.yaml is an interpolation|dataset.notes in"):
        open_runs(sweep)

    from keras.src.saving.serialization_lib import in_safe_mode

    with pytest.raises(CheckpointError, match=r"its layer class Lambda is not one a received model may have"):
        open_run(sweep / "1")  # refused from its config, before Keras reads it
    before = in_safe_mode()
    keras.config.enable_unsafe_deserialization()  # as member 0 would have had it
    try:  # and were it read, the load itself would refuse it
        with pytest.raises(CheckpointError, match=r"refused or unreadable as a Keras model: .*Lambda"):
            loading.load_model(locate_run(sweep / "1"))
        assert in_safe_mode() is False  # the scope set safe mode for its load only
    finally:
        from keras.src.backend.common import global_state

        global_state.set_global_attribute("safe_mode_saving", before)


def big_model_file(path: Path, units: int) -> None:
    """A .keras file whose config describes Dense(units) on 784 inputs, with no weights in it: a
    few KB that a loader would turn into units x 785 float32s before reading any weight."""
    from keras.src.backend.common import global_state
    from keras.src.backend.common.stateless_scope import StatelessScope
    from keras.src.saving.serialization_lib import serialize_keras_object

    pending = global_state.get_global_attribute("uninitialized_variables", [], set_to_default=True)
    before = len(pending)
    with StatelessScope(initialize_variables=False):  # its variables are never given values
        inputs = keras.Input((28, 28, 1))
        hidden = keras.layers.Dense(units)(keras.layers.Flatten()(inputs))
        config = serialize_keras_object(keras.Model(inputs, keras.layers.Dense(10)(hidden)))
    del pending[before:]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": keras.__version__}))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", b"")


def test_a_small_file_describing_a_huge_model_is_refused_before_its_weights(tmp_path):
    folder = received_run(tmp_path / "run")
    big_model_file(folder / "model.keras", units=1_000_000)  # 795 million parameters: 3 GB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    with pytest.raises(CheckpointError, match=r"795,000,010 parameters, more than max_parameters=50,000,000"):
        open_run(folder)
    # Counted without allocating: the process's peak memory grew by far less than the model's 3 GB.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - peak < 500 * 2**20
    with pytest.raises(CheckpointError, match=r"more than max_parameters=1,000"):
        open_run(received_run(tmp_path / "small"), max_parameters=1_000)  # the cap is the user's


def test_a_sweep_too_large_for_the_machine_together_is_refused_before_any_loads(tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    for job in "012":
        received_run(sweep / job)
        (sweep / job / ".hydra" / "overrides.yaml").write_text("[]\n")
    monkeypatch.setattr(loading, "machine_memory", lambda: 7850 * 3 * loading.BYTES_PER_PARAMETER)
    with pytest.raises(
        CheckpointError, match=r"its 3 models have 23,550 parameters together, .* more than half"
    ):
        open_runs(sweep)


@pytest.mark.parametrize(
    "record,key",
    [
        ([], "not a run's record"),
        ({"class_names": None, "image_shape": [28, 28, 1]}, "class_names"),
        ({"class_names": [str(d) for d in range(10)], "image_shape": "abc"}, "image_shape"),
        ({"class_names": [str(d) for d in range(10)], "image_shape": [28, 28, -1]}, "image_shape"),
        (
            {"class_names": [str(d) for d in range(10)], "image_shape": [28, 28, 1], "test_batch_size": "x"},
            "test_batch_size",
        ),
        (
            {"class_names": [str(d) for d in range(10)], "image_shape": [28, 28, 1], "test_set_sha256": 7},
            "test_set_sha256",
        ),
        ("not json", "not JSON"),
    ],
)
def test_a_malformed_metrics_json_is_one_line_naming_the_key(tmp_path, record, key):
    folder = received_run(tmp_path / "run")
    (folder / "metrics.json").write_text(record if isinstance(record, str) else json.dumps(record))
    with pytest.raises(CheckpointError, match=key) as refused:
        open_run(folder)
    assert "\n" not in str(refused.value) and "metrics.json" in str(refused.value)


@pytest.mark.parametrize(
    "change,key",
    [
        (lambda c: c["dataset"].update(image_size="abc"), "dataset.image_size"),
        (lambda c: c["dataset"].update(unknown_argument=1), "dataset.unknown_argument"),
        (lambda c: c["dataset"].pop("name"), "dataset.name"),
        (lambda c: c["trainer"].update(batch_size=-5), "trainer.batch_size"),
        (lambda c: c["trainer"].update(tta_shift=1.5), "trainer.tta_shift"),
        (lambda c: c.update(dataset=[1, 2]), "dataset"),
    ],
)
def test_a_received_config_of_the_wrong_types_is_one_line_naming_the_key(tmp_path, change, key):
    folder = received_run(tmp_path / "run")
    config = saved_config(folder)
    change(config)
    save_config(folder, config)
    with pytest.raises(CheckpointError, match=rf"^{key}\b.* in .*config.yaml") as refused:
        open_run(folder)
    assert "\n" not in str(refused.value)


def test_a_config_of_yaml_aliases_is_refused_before_it_is_walked(tmp_path):
    folder = received_run(tmp_path / "run")
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]  # 10^9 leaves
    text = (folder / ".hydra" / "config.yaml").read_text()
    (folder / ".hydra" / "config.yaml").write_text("\n".join(lines) + "\n" + text)
    with pytest.raises(CheckpointError, match=r"not YAML: it uses an (anchor|alias)"):
        open_run(folder)


def test_export_writes_inside_the_run_only(tmp_path):
    """A received run whose export/ is a link to another folder: export refuses it, and replaces,
    deletes and creates nothing there."""
    from mnist_hydra.inference.exporting import export

    folder = received_run(tmp_path / "run")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "saved_model").mkdir(parents=True)
    (elsewhere / "saved_model" / "keep.txt").write_text("theirs")
    (elsewhere / ".notes.0123abcd.partial.txt").write_text("looks like our temporary")
    before = sorted(p.relative_to(elsewhere) for p in elsewhere.rglob("*"))
    os.symlink(elsewhere, folder / "export")
    with pytest.raises(ExportError, match=r"symbolic link .*output_dir=") as refused:
        export(folder, "saved_model")
    assert "\n" not in str(refused.value)
    assert sorted(p.relative_to(elsewhere) for p in elsewhere.rglob("*")) == before
    assert (elsewhere / "saved_model" / "keep.txt").read_text() == "theirs"


# --- every key, every hostile form ------------------------------------------------------------

HOSTILE = [
    "${payload}",  # an interpolation to a _target_ that would copy a file
    "${oc.env:HOME}",  # a resolver
    {"_target_": "shutil.copyfile", "src": "/etc/hostname", "dst": "copied"},
    10**30,  # a huge number
    -1,
    None,
    True,
    "",
    "../../outside",  # a path out of the run
    [1, "x", None],
    {"nested": {"deeper": [1]}},
]


def dotted_leaves(tree, prefix=""):
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        dotted = f"{prefix}{key}"
        yield dotted
        if isinstance(value, (dict, list)):
            yield from dotted_leaves(value, f"{dotted}.")


def replaced(tree, dotted: str, value):
    *parents, last = dotted.split(".")
    node = tree
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return tree


def test_every_key_of_a_run_replaced_by_each_hostile_form_is_refused_in_one_line_or_harmless(
    tmp_path, monkeypatch
):
    """For each key of a real run's saved config and metrics.json and each hostile form: opening
    the run (what evaluate, predict and serve do, and export with them) either refuses in one line
    or reads it as data; no payload runs, nothing is written outside the run."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    folder = received_run(tmp_path / "run")
    config, record = saved_config(folder), json.loads((folder / "metrics.json").read_text())
    config_keys = list(dotted_leaves(config))
    record_keys = list(dotted_leaves(record))
    assert "dataset.files.train_images.bytes" in config_keys and "image_shape.2" in record_keys
    outside = tmp_path / "outside-the-run"
    outside.mkdir()
    (tmp_path / "secret").write_text("the user's")
    monkeypatch.chdir(outside)  # where a relative `dst` would land
    keys = st.sampled_from([("config", k) for k in config_keys] + [("metrics", k) for k in record_keys])

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(keys, st.sampled_from(HOSTILE))
    def opened_or_refused(where, form):
        (which, key) = where
        hostile_config, hostile_record = json.loads(json.dumps(config)), json.loads(json.dumps(record))
        hostile_config["payload"] = {
            "_target_": "shutil.copyfile",
            "src": str(tmp_path / "secret"),
            "dst": "copied",
        }
        replaced(hostile_config if which == "config" else hostile_record, key, form)
        save_config(folder, hostile_config)
        (folder / "metrics.json").write_text(json.dumps(hostile_record))
        try:
            run = open_run(folder)
        except CheckpointError as refused:
            assert "\n" not in str(refused) and str(refused), (where, form)
        else:  # read as data: what the run says is of the types the commands use
            assert isinstance(run.config.batch_size, int) and isinstance(run.config.tta_shift, int)
            assert all(isinstance(name, str) for name in run.class_names)
            assert len(run.image_shape) == 3 and all(isinstance(side, int) for side in run.image_shape)
        assert list(outside.iterdir()) == [], (where, form)  # no payload ran, nothing written here
        assert sorted(p.name for p in tmp_path.iterdir()) == ["outside-the-run", "run", "secret"]

    opened_or_refused()


# --- what a review tried against this design (the note lists each) ----------------------


def sweep_of(tmp_path: Path, jobs: str = "01") -> Path:
    sweep = tmp_path / "sweep"
    for job in jobs:
        received_run(sweep / job)
        (sweep / job / ".hydra" / "overrides.yaml").write_text("[]\n")
    return sweep


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_a_members_record_that_is_a_device_or_a_pipe_is_not_read(tmp_path, kind):
    sweep = sweep_of(tmp_path)
    (sweep / "1" / "metrics.json").unlink()
    if kind == "device":
        os.symlink("/dev/zero", sweep / "1" / "metrics.json")  # endless: it was read whole
    else:
        os.mkfifo(sweep / "1" / "metrics.json")  # no writer: reading it waited forever
    members, skipped = loading.locate_runs(sweep)
    assert [m.folder.name for m in members] == ["0"] and skipped == ["1 (never started training)"]


def keras_file_with(path: Path, change) -> None:
    """The model of received_run, its config.json changed by `change`."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    config = json.loads(members["config.json"])
    change(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_a_layer_that_sizes_its_own_memory_or_a_function_as_activation_is_refused(tmp_path):
    folder = received_run(tmp_path / "up")
    upsampling = {
        "module": "keras.layers",
        "class_name": "UpSampling2D",
        "config": {"name": "up", "size": [150, 150]},
    }
    keras_file_with(folder / "model.keras", lambda c: c["config"]["layers"].insert(1, upsampling))
    with pytest.raises(
        CheckpointError, match=r"its layer class UpSampling2D is not one a received model may have"
    ):
        open_run(folder)
    folder = received_run(tmp_path / "plot")
    function = {
        "module": "keras.utils",
        "class_name": "function",
        "config": "plot_model",
        "registered_name": "function",
    }
    keras_file_with(
        folder / "model.keras", lambda c: c["config"]["layers"][-1]["config"].update(activation=function)
    )
    with pytest.raises(CheckpointError, match=r"has an activation that is not a name"):
        open_run(folder)


def test_a_keras_file_whose_members_would_extract_to_more_than_its_model_is_refused_unextracted(tmp_path):
    import tempfile

    folder = received_run(tmp_path / "run")
    with zipfile.ZipFile(folder / "model.keras", "a", compression=zipfile.ZIP_BZIP2) as archive:
        archive.writestr("assets/padding.bin", b"\0" * (2 << 20))  # 2 MB of zeros: a few bytes here
    leftovers = set(Path(tempfile.gettempdir()).glob("tmp*"))
    with pytest.raises(CheckpointError, match=r"assets/padding.bin is 2,097,152 bytes once extracted"):
        open_run(folder)
    assert set(Path(tempfile.gettempdir()).glob("tmp*")) <= leftovers  # Keras extracted nothing


def test_a_received_models_compile_config_is_not_built(tmp_path):
    folder = received_run(tmp_path / "run")
    model = keras.models.load_model(folder / "model.keras")
    model.compile(loss="categorical_crossentropy", metrics=[keras.metrics.MeanIoU(num_classes=500)])
    model.save(folder / "model.keras")  # its metric, rebuilt at load, would hold 500 x 500
    assert open_run(folder).model.compiled is False


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda d: d.update(name="../../../../etc"), "dataset.name in .* is not a plain name"),
        (
            lambda d: d["files"]["train_images"].update(bytes=10**12),
            r"dataset.files.train_images.bytes in .* is not an integer",
        ),
    ],
)
def test_a_dataset_name_that_is_a_path_and_an_idx_size_beyond_any_are_refused(tmp_path, change, message):
    folder = received_run(tmp_path / "run")
    config = saved_config(folder)
    change(config["dataset"])
    save_config(folder, config)
    with pytest.raises(CheckpointError, match=message):
        open_run(folder)
