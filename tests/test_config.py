"""LayerConfig and activation names against Keras 3.15's Conv1DTranspose constructor."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tconv.model import activations
from tconv.model.config import LayerConfig

KERAS_REASON = "compares with real Keras; install it with pip install -e '.[keras]'"

BASE = {"filters": 4, "kernel_size": 3}

# Each case is invalid for Keras' constructor; cases with two bad arguments check
# that the first one in Keras' order is reported.
INVALID_KWARGS = [
    {"kernel_size": 0},
    {"kernel_size": -2},
    {"kernel_size": 3.0},
    {"kernel_size": (1, 2)},
    {"kernel_size": [0]},
    {"kernel_size": ("a",)},
    {"kernel_size": "a"},
    {"kernel_size": None},
    {"strides": 0},
    {"strides": -1},
    {"strides": (0,)},
    {"strides": [2, 2]},
    {"strides": 2.5},
    {"strides": None},
    {"dilation_rate": 0},
    {"dilation_rate": (-1,)},
    {"dilation_rate": "xy"},
    {"padding": "causal"},
    {"padding": "full"},
    {"padding": ""},
    {"output_padding": -1},
    {"output_padding": (-2,)},
    {"output_padding": [1, 1]},
    {"output_padding": 1},
    {"output_padding": 2, "strides": 2},
    {"output_padding": [3], "strides": [3]},
    {"data_format": "nchw"},
    {"data_format": "CHANNELS_MIDDLE"},
    {"data_format": 5},
    {"filters": 0},
    {"filters": -3},
    {"strides": 2, "dilation_rate": 2},
    {"strides": (3,), "dilation_rate": [2]},
    # Two bad arguments at once.
    {"kernel_size": 0, "strides": 0},
    {"filters": 0, "kernel_size": 0},
    {"strides": 0, "dilation_rate": 0},
    {"dilation_rate": 0, "padding": "bad"},
    {"padding": "bad", "output_padding": -1},
    {"output_padding": -1, "data_format": "nchw"},
    {"data_format": "nchw", "filters": 0},
    {"data_format": "nchw", "activation": "foo"},
    {"filters": 0, "output_padding": 1},
    {"filters": -1, "strides": 2, "dilation_rate": 2},
    {"output_padding": 2, "strides": 2, "dilation_rate": 2},
    {"output_padding": 5, "strides": 1, "dilation_rate": 3},
]

# Unknown activations: our message is Keras' followed by the accepted names.
INVALID_ACTIVATIONS = [
    {"activation": "foo"},
    {"activation": "ReLU"},
    {"activation": 5},
    {"activation": "foo", "filters": 0},
    {"activation": "tanh_shrink ", "output_padding": 3},
]


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras", reason=KERAS_REASON)


def keras_message(keras, kwargs: dict) -> str:
    with pytest.raises(ValueError) as info:
        keras.layers.Conv1DTranspose(**{**BASE, **kwargs})
    return str(info.value)


def our_message(kwargs: dict) -> str:
    with pytest.raises(ValueError) as info:
        LayerConfig(**{**BASE, **kwargs})
    return str(info.value)


@pytest.mark.keras
@pytest.mark.parametrize("kwargs", INVALID_KWARGS, ids=repr)
def test_invalid_argument_message_equals_keras(keras, kwargs):
    assert our_message(kwargs) == keras_message(keras, kwargs)


@pytest.mark.keras
@pytest.mark.parametrize("kwargs", INVALID_ACTIVATIONS, ids=repr)
def test_unknown_activation_message_extends_keras(keras, kwargs):
    ours = our_message(kwargs)
    assert ours.startswith(keras_message(keras, kwargs))
    assert "Accepted names: " in ours and "relu6" in ours


@pytest.mark.keras
def test_threshold_activation_refused_at_once(keras):
    # Keras accepts the name, then the first call fails: it needs two arguments.
    layer = keras.layers.Conv1DTranspose(4, 3, activation="threshold")
    with pytest.raises(TypeError, match="threshold"):
        layer(keras.ops.ones((1, 2, 3)))
    with pytest.raises(ValueError, match="Could not interpret activation function identifier: "
                                         "threshold. keras.activations.threshold needs"):
        LayerConfig(4, 3, activation="threshold")


VALID_SPELLINGS = [
    {"kernel_size": [5], "strides": (3,), "padding": "SAME"},
    {"kernel_size": (2,), "strides": [2], "padding": "Valid", "output_padding": [1]},
    {"kernel_size": 4, "dilation_rate": (3,), "data_format": "CHANNELS_FIRST"},
    {"kernel_size": 1, "strides": 4, "output_padding": (0,), "activation": None},
    {"kernel_size": 3, "activation": "swish", "use_bias": False},
    {"kernel_size": 3, "activation": "hard_swish", "data_format": "channels_first"},
    {"kernel_size": 7, "strides": 1, "dilation_rate": 1, "activation": "gelu"},
]


def keras_view(config: dict) -> dict:
    """The LayerConfig fields of a Keras get_config(), 1-tuples unwrapped."""
    view = {}
    for key in ("filters", "kernel_size", "strides", "padding", "output_padding",
                "dilation_rate", "data_format", "activation", "use_bias"):
        value = config[key]
        view[key] = value[0] if isinstance(value, (tuple, list)) else value
    return view


@pytest.mark.keras
@pytest.mark.parametrize("kwargs", VALID_SPELLINGS, ids=repr)
def test_normalisation_matches_keras_get_config(keras, kwargs):
    keras_config = keras.layers.Conv1DTranspose(filters=6, **kwargs).get_config()
    ours = LayerConfig(filters=6, **kwargs)
    assert {k: v for k, v in ours.to_dict().items() if k != "in_channels"} == keras_view(keras_config)


@pytest.mark.keras
@pytest.mark.parametrize("kwargs", VALID_SPELLINGS, ids=repr)
def test_from_dict_reads_keras_get_config_and_its_json(keras, kwargs):
    keras_config = keras.layers.Conv1DTranspose(filters=6, **kwargs).get_config()
    expected = LayerConfig(filters=6, in_channels=3, **kwargs)
    assert LayerConfig.from_dict({**keras_config, "in_channels": 3}) == expected
    from_json = json.loads(json.dumps({**keras_config, "in_channels": 3}))
    assert LayerConfig.from_dict(from_json) == expected


@pytest.mark.keras
def test_names_are_keras_activation_names(keras):
    from keras.src.activations import ALL_OBJECTS_DICT

    assert set(activations.NAMES) == set(ALL_OBJECTS_DICT) - {"threshold"}
    for name in activations.NAMES:
        layer = keras.layers.Conv1DTranspose(2, 1, activation=name)
        assert activations.canonical_name(name) == layer.get_config()["activation"]


def test_to_dict_is_the_manifest_layer_dict():
    cfg = LayerConfig.from_dict({
        "filters": 8, "kernel_size": [5], "strides": [3], "padding": "SAME",
        "output_padding": None, "dilation_rate": [1], "data_format": "channels_last",
        "activation": "relu", "use_bias": True, "in_channels": 8,
    })
    assert cfg.to_dict() == {
        "filters": 8, "kernel_size": 5, "strides": 3, "padding": "same",
        "output_padding": None, "dilation_rate": 1, "data_format": "channels_last",
        "activation": "relu", "use_bias": True, "in_channels": 8,
    }
    assert LayerConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_defaults_and_geometry():
    cfg = LayerConfig(32, 3, 2, activation="relu", in_channels=128)
    assert (cfg.padding, cfg.output_padding, cfg.dilation_rate) == ("valid", None, 1)
    assert (cfg.data_format, cfg.use_bias) == ("channels_last", True)
    assert (cfg.keff, cfg.crop_left, cfg.output_length(10)) == (3, 0, 21)
    dilated = LayerConfig(16, 3, 1, "same", dilation_rate=4)
    assert (dilated.keff, dilated.crop_left, dilated.output_length(128)) == (9, 4, 128)
    assert LayerConfig(2, 3, data_format=None).data_format == "channels_last"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"filters": 2.5}, r"`filters`. Expected a strictly positive integer. Received filters=2.5"),
    ({"filters": None}, r"Received filters=None"),
    ({"filters": "8"}, r"Received filters='8'"),
    ({"filters": True}, r"Received filters=True"),
    ({"kernel_size": (3.5,)}, r"Received kernel_size=\(3.5,\)including element 3.5 of type"),
    ({"kernel_size": True}, r"The `kernel_size` argument must be a tuple of 1 integers"),
    ({"strides": ("2",)}, r"Received strides=\('2',\)including element 2 of type <class 'str'>"),
    ({"padding": 3}, r"The `padding` argument must be one of .*Received: padding=3"),
    ({"padding": ("valid",)}, r"Received: padding=\('valid',\)"),
    ({"use_bias": "yes"}, r"The `use_bias` argument must be a bool. Received use_bias='yes'"),
    ({"use_bias": 1}, r"use_bias=1"),
    ({"in_channels": 0}, r"`in_channels` .* strictly positive integer or None. Received in_chann"),
    ({"in_channels": -1}, r"in_channels=-1"),
    ({"in_channels": 2.0}, r"in_channels=2.0"),
    ({"in_channels": False}, r"in_channels=False"),
    ({"activation": lambda x: x}, r"Could not interpret activation function identifier"),
])
def test_values_keras_lets_through_are_refused(kwargs, match):
    # Keras accepts these in its constructor and fails later, or accepts nonsense.
    with pytest.raises(ValueError, match=match):
        LayerConfig(**{**BASE, **kwargs})


def test_numpy_integers_inside_tuples_are_accepted():
    cfg = LayerConfig(np.int64(4), (np.int32(3),), strides=[np.int64(2)], in_channels=np.int8(5))
    assert (cfg.filters, cfg.kernel_size, cfg.strides, cfg.in_channels) == (4, 3, 2, 5)
    assert all(type(v) is int for v in (cfg.filters, cfg.kernel_size, cfg.strides, cfg.in_channels))


def test_config_is_frozen_and_hashable():
    cfg = LayerConfig(4, 3)
    with pytest.raises(AttributeError):
        cfg.filters = 5
    assert hash(cfg) == hash(LayerConfig(4, [3], padding="VALID", activation=None))


@pytest.mark.parametrize(("d", "match"), [
    ([4, 3], r"The layer config must be a dict"),
    ({"filters": 4}, r"lacks required key\(s\): kernel_size"),
    ({"kernel_size": 3}, r"lacks required key\(s\): filters"),
    ({"filters": 4, "kernel_size": 3, "stride": 2}, r"Unknown key\(s\) in the layer config: "
                                                    r"stride \(did you mean strides\?\)\. Accepted keys: filters, kernel_size"),
    ({"filters": 4, "kernel_size": 3, "input_channels": 2}, r"input_channels \(did you mean in_channels\?\)"),
    ({"filters": 4, "kernel_size": 3, "padding": "causal"}, r"The `padding` argument"),
    ({"filters": "4", "kernel_size": 3}, r"Received filters='4'"),
    ({"filters": 4, "kernel_size": "3"}, r"The `kernel_size` argument"),
    ({"filters": 4, "kernel_size": 3, "in_channels": "8"}, r"in_channels='8'"),
    ({"filters": 4, "kernel_size": 3, "use_bias": "true"}, r"use_bias='true'"),
    ({"filters": 4, "kernel_size": 3, "activation": "Relu"}, r"identifier: Relu\. Accepted"),
])
def test_from_dict_names_the_bad_field(d, match):
    with pytest.raises(ValueError, match=match):
        LayerConfig.from_dict(d)


def test_from_dict_ignores_other_keys_as_design_md_says():
    cfg = LayerConfig.from_dict({"filters": 4, "kernel_size": 3, "groups": 1, "lora_rank": None,
                                 "quantization_config": None, "module": "keras.layers"})
    assert cfg == LayerConfig(4, 3)


def test_from_dict_ignores_keras_only_keys():
    d = {"filters": 4, "kernel_size": [3], "name": "up", "trainable": False, "dtype": "float32",
         "kernel_initializer": "zeros", "bias_constraint": None, "autocast": True}
    assert LayerConfig.from_dict(d) == LayerConfig(4, 3)


def test_activation_get_unknown_lists_names():
    with pytest.raises(ValueError) as info:
        activations.get("nope")
    message = str(info.value)
    assert message.startswith("Could not interpret activation function identifier: nope.")
    assert all(name in message for name in activations.NAMES)
    assert activations.get(None) is activations.get("linear")
    assert activations.get("swish") is activations.get("silu")
