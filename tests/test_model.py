"""The model factory: the documented graph, and what each model key changes."""

from conftest import compose_train

from mnist_hydra.models import build_model


def build(*overrides):
    cfg = compose_train(overrides)
    return build_model(cfg.model, (28, 28, 1), len(cfg.dataset.class_names))


def layers_of(model, kind):
    return [layer for layer in model.layers if type(layer).__name__ == kind]


def test_default_is_the_documented_architecture():
    model = build()
    summary = [(type(layer).__name__, layer.output.shape[1:]) for layer in model.layers]
    assert summary == [
        ("InputLayer", (28, 28, 1)),
        ("Conv2D", (26, 26, 32)),
        ("Conv2D", (24, 24, 64)),
        ("MaxPooling2D", (8, 8, 64)),
        ("Dropout", (8, 8, 64)),
        ("Flatten", (4096,)),
        ("Dense", (250,)),
        ("Dense", (10,)),
    ]
    conv1, conv2 = layers_of(model, "Conv2D")
    assert conv1.kernel_size == (3, 3) and conv1.activation.__name__ == "relu"
    assert layers_of(model, "MaxPooling2D")[0].pool_size == (3, 3)
    assert layers_of(model, "Dropout")[0].rate == 0.5
    hidden, classifier = layers_of(model, "Dense")
    assert hidden.activation.__name__ == "sigmoid" and classifier.activation.__name__ == "softmax"
    assert model.count_params() == 1_045_576


def test_filters_make_one_conv_each():
    convs = layers_of(build("model.filters=[8,16,24]"), "Conv2D")
    assert [conv.filters for conv in convs] == [8, 16, 24]


def test_kernel_size_and_conv_activation():
    convs = layers_of(build("model.kernel_size=5", "model.conv_activation=elu"), "Conv2D")
    assert all(c.kernel_size == (5, 5) and c.activation.__name__ == "elu" for c in convs)


def test_padding_same_keeps_the_image_size():
    convs = layers_of(build("model.padding=same"), "Conv2D")
    assert [c.output.shape[1] for c in convs] == [28, 28]


def test_pool_size_and_pool_every():
    model = build("model.pool_size=2", "model.pool_every=1")
    names = [type(layer).__name__ for layer in model.layers[1:5]]
    assert names == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D"]  # Conv-Pool-Conv-Pool
    assert all(p.pool_size == (2, 2) for p in layers_of(model, "MaxPooling2D"))
    assert layers_of(build("model.pool_size=null"), "MaxPooling2D") == []


def test_dropout_rate_and_zero_leaves_it_out():
    assert layers_of(build("model.dropout=0.3"), "Dropout")[0].rate == 0.3
    assert layers_of(build("model.dropout=0"), "Dropout") == []


def test_dense_units_list_none_and_activation():
    model = build("model.dense_units=[128,64]", "model.dense_activation=relu")
    hidden = layers_of(model, "Dense")[:-1]
    assert [d.units for d in hidden] == [128, 64]
    assert all(d.activation.__name__ == "relu" for d in hidden)
    for none in ("null", "[]"):
        assert [d.units for d in layers_of(build(f"model.dense_units={none}"), "Dense")] == [10]


def test_dense_dropout_follows_each_hidden_layer():
    model = build("model.dense_units=[128,64]", "model.dense_dropout=0.25")
    names = [layer.name for layer in model.layers]
    assert names[-5:] == ["dense1", "dense1_dropout", "dense2", "dense2_dropout", "classifier"]


def test_batch_norm_sits_before_each_activation():
    model = build("model.batch_norm=true")
    assert len(layers_of(model, "BatchNormalization")) == 3  # two convs, one hidden dense
    names = [layer.name for layer in model.layers]
    assert names[1:4] == ["conv1", "conv1_bn", "conv1_relu"]
    assert all(
        conv.activation.__name__ == "linear" and not conv.use_bias for conv in layers_of(model, "Conv2D")
    )


def test_classifier_has_one_unit_per_class():
    cfg = compose_train(["dataset=fashion_mnist"])
    model = build_model(cfg.model, (28, 28, 1), len(cfg.dataset.class_names))
    assert model.output.shape[-1] == 10


def test_each_conv_can_have_its_own_kernel_size():
    model = build_model(
        compose_train(["model.kernel_size=[5,3]", "model.pool_every=1", "model.pool_size=2"]).model,
        (28, 28, 1),
        10,
    )
    assert [model.get_layer(f"conv{i}").kernel_size for i in (1, 2)] == [(5, 5), (3, 3)]
    # 28 -5+1-> 24 -pool-> 12 -3+1-> 10 -pool-> 5: 5x5x64 into the dense layer
    assert model.get_layer("dense1").input.shape[-1] == 5 * 5 * 64
