"""The float64 model against the real keras.layers.Conv1DTranspose (jax and numpy backends).

jax compiles once per (layer, input shape), about 70 ms each, so the geometry
grid is complete in (strides, dilation, kernel, padding, output_padding) but
samples the input length, layout, bias and argument spelling of each layer
deterministically.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tconv.model import activations
from tconv.model.config import LayerConfig
from tconv.model.float_model import conv1d_transpose

KERAS_REASON = "compares with real Keras; install it with pip install -e '.[keras]'"
IN_CHANNELS = 3
FILTERS = 4
BATCH = 2
RTOL = 1e-5


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras", reason=KERAS_REASON)


def random_weights(rng: np.random.Generator, kernel_size: int, filters: int = FILTERS,
                   in_channels: int = IN_CHANNELS) -> tuple[np.ndarray, np.ndarray]:
    kernel = rng.uniform(-1, 1, (kernel_size, filters, in_channels)).astype(np.float32)
    bias = rng.standard_normal(filters).astype(np.float32)
    return kernel, bias


def random_input(rng: np.random.Generator, length: int, data_format: str,
                 in_channels: int = IN_CHANNELS) -> np.ndarray:
    shape = (BATCH, length, in_channels) if data_format == "channels_last" else (
        BATCH, in_channels, length)
    return rng.standard_normal(shape).astype(np.float32)


def keras_layer(keras, kernel: np.ndarray, bias: np.ndarray | None, **kwargs):
    """A built Keras layer holding ``kernel`` and ``bias``, for any input length."""
    kernel_size, filters, in_channels = kernel.shape
    layer = keras.layers.Conv1DTranspose(filters, kernel_size, use_bias=bias is not None,
                                         **kwargs)
    channels_last = layer.data_format == "channels_last"
    layer.build((None, None, in_channels) if channels_last else (None, in_channels, None))
    layer.set_weights([kernel] if bias is None else [kernel, bias])
    return layer


def assert_matches_keras(layer, x, kernel, bias, **kwargs) -> np.ndarray:
    """Run both; compare at float32 accuracy relative to the sum of |terms|."""
    expected = np.asarray(layer(x))
    ours = conv1d_transpose(x, kernel, bias, **kwargs)
    assert ours.dtype == np.float64
    assert ours.shape == expected.shape
    magnitude = conv1d_transpose(np.abs(x), np.abs(kernel),
                                 None if bias is None else np.abs(bias),
                                 **{**kwargs, "activation": None})
    scale = max(1.0, float(np.max(magnitude, initial=0.0)))
    np.testing.assert_allclose(ours, expected, rtol=RTOL, atol=RTOL * scale)
    return ours


def geometry_grid() -> list[dict]:
    """Every (strides, dilation_rate, kernel_size, padding, output_padding) Keras allows."""
    grid = []
    for strides in range(1, 5):
        for dilation_rate in (1, 2, 3) if strides == 1 else (1,):
            for kernel_size in range(1, 8):
                for padding in ("valid", "same"):
                    for output_padding in (None, *range(strides)):
                        grid.append({"kernel_size": kernel_size, "strides": strides,
                                     "padding": padding, "output_padding": output_padding,
                                     "dilation_rate": dilation_rate})
    return grid


GRID = geometry_grid()


def config_id(case: dict) -> str:
    op = case["output_padding"]
    return (f"k{case['kernel_size']}-s{case['strides']}-d{case['dilation_rate']}-"
            f"{case['padding']}-op{'N' if op is None else op}")


def spelled(case: dict, chooser: random.Random) -> dict:
    """Keras-valid spellings of ``case``: 1-lists/tuples, padding in any case."""
    kwargs = {"padding": chooser.choice([case["padding"], case["padding"].upper(),
                                         case["padding"].capitalize()])}
    for key in ("strides", "output_padding", "dilation_rate"):
        value = case[key]
        if value is not None:
            value = chooser.choice([value, [value], (value,)])
        kwargs[key] = value
    return kwargs


@pytest.mark.keras
@pytest.mark.parametrize("case", GRID, ids=config_id)
def test_geometry_grid_matches_keras(keras, case):
    # random.Random seeds strings through sha512: the same sample on every run.
    chooser = random.Random(config_id(case))
    rng = np.random.default_rng(chooser.randrange(2**32))
    data_format = chooser.choice(["channels_last", "channels_first"])
    kernel, bias = random_weights(rng, case["kernel_size"])
    bias = chooser.choice([bias, bias, None])
    kwargs = {**spelled(case, chooser), "data_format": data_format}
    layer = keras_layer(keras, kernel, bias, **kwargs)
    # L = 1 holds every empty-output corner; one longer length per layer.
    for length in (1, chooser.randrange(2, 13)):
        x = random_input(rng, length, data_format)
        assert_matches_keras(layer, x, kernel, bias, **kwargs)


@pytest.mark.keras
def test_output_length_matches_keras_for_every_length(keras):
    # compute_output_shape is Keras' static formula; no compilation needed.
    for case in GRID:
        cfg = LayerConfig(FILTERS, **case)
        layer = keras.layers.Conv1DTranspose(FILTERS, **case)
        for length in range(1, 13):
            expected = tuple(layer.compute_output_shape((BATCH, length, IN_CHANNELS)))
            assert expected == (BATCH, cfg.output_length(length), FILTERS), (case, length)


SWEPT = [
    {"kernel_size": 4, "strides": 1, "padding": "same", "output_padding": 0, "dilation_rate": 1},
    {"kernel_size": 2, "strides": 3, "padding": "same", "output_padding": 1, "dilation_rate": 1},
    {"kernel_size": 6, "strides": 4, "padding": "same", "output_padding": 3, "dilation_rate": 1},
    {"kernel_size": 5, "strides": 1, "padding": "same", "output_padding": None, "dilation_rate": 2},
    {"kernel_size": 1, "strides": 4, "padding": "valid", "output_padding": None,
     "dilation_rate": 1},
]


@pytest.mark.keras
@pytest.mark.parametrize("case", SWEPT, ids=config_id)
def test_every_length_from_1_to_12(keras, case):
    rng = np.random.default_rng(7)
    kernel, bias = random_weights(rng, case["kernel_size"])
    kwargs = {k: v for k, v in case.items() if k != "kernel_size"}
    layer = keras_layer(keras, kernel, bias, **kwargs)
    for length in range(1, 13):
        assert_matches_keras(layer, random_input(rng, length, "channels_last"), kernel, bias,
                             **kwargs)


@pytest.mark.keras
def test_keras_documentation_example(keras):
    rng = np.random.default_rng(0)
    x = rng.random((4, 10, 128)).astype(np.float32)
    kernel, bias = random_weights(rng, 3, filters=32, in_channels=128)
    layer = keras_layer(keras, kernel, bias, strides=2, activation="relu")
    y = assert_matches_keras(layer, x, kernel, bias, strides=2, activation="relu")
    assert y.shape == (4, 21, 32)
    assert keras.layers.Conv1DTranspose(32, 3, 2, activation="relu")(x).shape == (4, 21, 32)


@pytest.mark.keras
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("name", activations.NAMES)
def test_every_activation_through_the_layer(keras, name, data_format):
    # L = 3, strides 2, same padding: 6 output steps, so glu can halve either axis.
    rng = np.random.default_rng(sum(map(ord, name)))
    kernel, bias = random_weights(rng, 3)
    kwargs = {"strides": 2, "padding": "same", "data_format": data_format, "activation": name}
    layer = keras_layer(keras, 2 * kernel, bias, **kwargs)
    assert_matches_keras(layer, random_input(rng, 3, data_format), 2 * kernel, bias, **kwargs)


# Kinks and saturation points of the piecewise activations, and their neighbours.
ACTIVATION_POINTS = np.array(
    [-8, -6, -3.5, -3, -2.5, -1.5, -1, -0.75, -0.5, -0.25, 0, 0.25, 0.5, 0.75, 1, 1.5, 2.5, 3,
     3.5, 6, 8, 1e-7, -1e-7, 0.5 + 1e-6, -0.5 - 1e-6], dtype=np.float32)


@pytest.mark.keras
@pytest.mark.parametrize("name", activations.NAMES)
def test_activation_functions_equal_keras(keras, name):
    x = np.concatenate([ACTIVATION_POINTS, np.linspace(-7, 7, 39, dtype=np.float32)])
    x = x.reshape(4, -1)
    expected = np.asarray(keras.activations.get(name)(x))
    ours = activations.get(name)(x.astype(np.float64))
    np.testing.assert_allclose(ours, expected, rtol=RTOL, atol=RTOL)


@pytest.mark.keras
def test_sparsemax_follows_keras_not_the_paper(keras):
    x = np.array([[1.0, 0.9, -3.0]], dtype=np.float32)
    expected = np.asarray(keras.activations.sparsemax(x))
    np.testing.assert_allclose(activations.get("sparsemax")(x.astype(np.float64)), expected,
                               rtol=RTOL, atol=RTOL)
    # Martins & Astudillo would give [0.55, 0.45, 0]; Keras 3.15 gives [0.05, 0, 0].
    np.testing.assert_allclose(expected, [[0.05, 0.0, 0.0]], atol=1e-6)


EMPTY = [  # (kernel_size, strides, dilation_rate): even Keff, output_padding 0, L = 1
    (2, 1, 1), (4, 1, 1), (2, 1, 3), (2, 2, 1), (4, 2, 1), (2, 3, 1), (6, 4, 1),
]


@pytest.mark.keras
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("activation", ["linear", "softmax", "log_softmax", "sparsemax", "glu"])
@pytest.mark.parametrize(("kernel_size", "strides", "dilation_rate"), EMPTY)
def test_empty_outputs_where_keras_has_them(keras, kernel_size, strides, dilation_rate,
                                            activation, data_format):
    rng = np.random.default_rng(3)
    kernel, bias = random_weights(rng, kernel_size)
    kwargs = {"strides": strides, "padding": "same", "output_padding": 0,
              "dilation_rate": dilation_rate, "data_format": data_format,
              "activation": activation}
    layer = keras_layer(keras, kernel, bias, **kwargs)
    y = assert_matches_keras(layer, random_input(rng, 1, data_format), kernel, bias, **kwargs)
    assert 0 in y.shape


@pytest.mark.keras
@pytest.mark.parametrize("name", activations.NAMES)
def test_nan_and_inf_propagate_as_in_keras(keras, name):
    rng = np.random.default_rng(11)
    kernel, bias = random_weights(rng, 3)
    x = random_input(rng, 6, "channels_last")
    x[0, 1, 0], x[0, 4, 2], x[1, 2, 1] = np.nan, np.inf, -np.inf
    kwargs = {"strides": 2, "padding": "same", "activation": name}
    layer = keras_layer(keras, kernel, bias, **kwargs)
    expected = np.asarray(layer(x))
    ours = conv1d_transpose(x, kernel, bias, **kwargs)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(expected))
    np.testing.assert_array_equal(np.isneginf(ours), np.isneginf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(ours[finite], expected[finite], rtol=RTOL, atol=1e-4)


@pytest.mark.keras
def test_batch_of_zero_and_wide_channels(keras):
    rng = np.random.default_rng(5)
    kernel, bias = random_weights(rng, 5, filters=16, in_channels=24)
    kwargs = {"strides": 3, "padding": "same", "activation": "tanh"}
    layer = keras_layer(keras, kernel, bias, **kwargs)
    assert_matches_keras(layer, random_input(rng, 9, "channels_last", 24), kernel, bias, **kwargs)
    empty = np.zeros((0, 9, 24), dtype=np.float32)
    assert_matches_keras(layer, empty, kernel, bias, **kwargs)


NUMPY_BACKEND_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import keras
    assert keras.backend.backend() == "numpy"
    data = dict(np.load(sys.argv[1]))
    out = {}
    for index in range(int(data["count"])):
        kernel, bias, x = data[f"kernel{index}"], data[f"bias{index}"], data[f"x{index}"]
        kwargs = eval(str(data[f"kwargs{index}"]))
        layer = keras.layers.Conv1DTranspose(kernel.shape[1], kernel.shape[0], **kwargs)
        layer(x)
        layer.set_weights([kernel, bias])
        out[f"y{index}"] = np.asarray(layer(x))
    np.savez(sys.argv[2], **out)
""")


@pytest.mark.keras
def test_numpy_backend_agrees(keras, tmp_path):
    # The backend is fixed per process, so the numpy one runs in a child.
    rng = np.random.default_rng(9)
    cases = [{"strides": 3, "padding": "same", "output_padding": 1, "activation": name}
             for name in activations.NAMES]
    cases += [{**case, "activation": "relu"} for case in GRID[::9]]
    arrays: dict[str, np.ndarray] = {"count": np.array(len(cases))}
    for index, kwargs in enumerate(cases):
        kernel, bias = random_weights(rng, kwargs.get("kernel_size", 4))
        kwargs = {k: v for k, v in kwargs.items() if k != "kernel_size"}
        arrays.update({f"kernel{index}": kernel, f"bias{index}": bias,
                       f"x{index}": random_input(rng, 5, "channels_last"),
                       f"kwargs{index}": np.array(repr(kwargs))})
        cases[index] = kwargs
    np.savez(tmp_path / "in.npz", **arrays)
    env = {**os.environ, "KERAS_BACKEND": "numpy"}
    subprocess.run([sys.executable, "-c", NUMPY_BACKEND_SCRIPT, tmp_path / "in.npz",
                    tmp_path / "out.npz"], env=env, check=True, capture_output=True)
    results = np.load(tmp_path / "out.npz")
    for index, kwargs in enumerate(cases):
        ours = conv1d_transpose(arrays[f"x{index}"], arrays[f"kernel{index}"],
                                arrays[f"bias{index}"], **kwargs)
        np.testing.assert_allclose(ours, results[f"y{index}"], rtol=RTOL, atol=1e-4,
                                   err_msg=repr(kwargs))


INVALID_ARGUMENTS = [
    {"strides": 0},
    {"strides": (1, 1)},
    {"strides": 2.0},
    {"dilation_rate": -1},
    {"padding": "causal"},
    {"output_padding": -1},
    {"output_padding": 2, "strides": 2},
    {"data_format": "nhwc"},
    {"strides": 2, "dilation_rate": 2},
    {"padding": "full", "output_padding": -1},
    {"output_padding": 1, "dilation_rate": 2},
]


@pytest.mark.keras
@pytest.mark.parametrize("kwargs", INVALID_ARGUMENTS, ids=repr)
def test_invalid_arguments_raise_keras_messages(keras, kwargs):
    kernel = np.ones((3, FILTERS, IN_CHANNELS), dtype=np.float32)
    with pytest.raises(ValueError) as keras_error:
        keras.layers.Conv1DTranspose(FILTERS, 3, **kwargs)
    with pytest.raises(ValueError) as our_error:
        conv1d_transpose(np.ones((1, 4, IN_CHANNELS)), kernel, **kwargs)
    assert str(our_error.value) == str(keras_error.value)


def test_keras_argument_errors_come_before_array_errors():
    with pytest.raises(ValueError, match="The `strides` argument"):
        conv1d_transpose(np.ones((4, 3)), np.ones((3, FILTERS, IN_CHANNELS)), strides=0)


@pytest.mark.parametrize(("x_shape", "kernel_shape", "bias_shape", "kwargs", "match"), [
    ((1, 4, 3), (3, 4), None, {}, r"`kernel` must be 3-D .* got shape \(3, 4\)"),
    ((1, 4, 3), (0, 4, 3), None, {}, r"`kernel` must be 3-D .* all > 0 .* \(0, 4, 3\)"),
    ((1, 4, 3), (3, 0, 3), None, {}, r"got shape \(3, 0, 3\)"),
    ((4, 3), (3, 4, 3), None, {}, r"`x` must be 3-D \(batch, length, in_channels\) .*x\[None\]"),
    ((1, 1, 4, 3), (3, 4, 3), None, {}, r"`x` must be 3-D .*got shape \(1, 1, 4, 3\)"),
    ((1, 4, 2), (3, 4, 3), None, {}, r"`x` has 2 channels on axis 2 .*in_channels=3"),
    ((1, 4, 3), (3, 4, 3), None, {"data_format": "channels_first"},
     r"`x` has 4 channels on axis 1 \(batch, in_channels, length\) .*in_channels=3"),
    ((1, 0, 3), (3, 4, 3), None, {}, r"at least one time step .*got shape \(1, 0, 3\)"),
    ((1, 4, 3), (3, 4, 3), (3,), {}, r"`bias` must have shape \(filters,\) = \(4,\).*\(3,\)"),
    ((1, 4, 3), (3, 4, 3), (1, 4), {}, r"got shape \(1, 4\)"),
    ((1, 4, 3), (3, 4, 3), (), {}, r"got shape \(\)"),
])
def test_bad_array_shapes(x_shape, kernel_shape, bias_shape, kwargs, match):
    bias = None if bias_shape is None else np.ones(bias_shape)
    with pytest.raises(ValueError, match=match):
        conv1d_transpose(np.ones(x_shape), np.ones(kernel_shape), bias, **kwargs)


@pytest.mark.parametrize("argument", ["x", "kernel", "bias"])
@pytest.mark.parametrize("bad", [np.complex128(1), "a", True, None], ids=repr)
def test_bad_dtypes(argument, bad):
    arrays = {"x": np.ones((1, 4, 3)), "kernel": np.ones((3, 4, 3)), "bias": np.ones(4)}
    arrays[argument] = np.full(arrays[argument].shape, bad)
    with pytest.raises(ValueError, match=f"`{argument}` must hold real numbers .*got dtype"):
        conv1d_transpose(arrays["x"], arrays["kernel"], arrays["bias"])


def test_integer_inputs_and_lists_are_accepted():
    rng = np.random.default_rng(2)
    x = rng.integers(-5, 5, (2, 4, 3))
    kernel = rng.integers(-3, 3, (3, 4, 3)).astype(np.int8)
    expected = conv1d_transpose(x.astype(float), kernel.astype(float), np.arange(4.0))
    ours = conv1d_transpose(x.tolist(), kernel, [0, 1, 2, 3])
    assert ours.dtype == np.float64
    np.testing.assert_array_equal(ours, expected)


def test_glu_needs_an_even_last_axis():
    with pytest.raises(ValueError, match="glu .* must be even, got 3"):
        conv1d_transpose(np.ones((1, 4, 3)), np.ones((3, 3, 3)), activation="glu")
    with pytest.raises(ValueError, match="must be even, got 7"):
        conv1d_transpose(np.ones((1, 3, 5)), np.ones((3, 2, 3)), activation="glu",
                         data_format="channels_first")


def test_formula_by_hand():
    # docs/contract.md: y[o] = b + sum of x[i] * W[k] over i*s + k*d - crop_left == o.
    x = np.array([[[1.0], [10.0]]])
    kernel = np.array([1.0, 2.0, 3.0]).reshape(3, 1, 1)
    y = conv1d_transpose(x, kernel, np.array([0.5]), strides=2)[0, :, 0]
    np.testing.assert_array_equal(y, [1.5, 2.5, 13.5, 20.5, 30.5])
    y = conv1d_transpose(x, kernel, None, strides=2, padding="same")[0, :, 0]
    np.testing.assert_array_equal(y, [1, 2, 13, 20])
    y = conv1d_transpose(x, kernel, None, dilation_rate=2, padding="same")[0, :, 0]
    np.testing.assert_array_equal(y, [2, 20])
