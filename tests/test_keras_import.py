"""Importing real keras.layers.Conv1DTranspose layers: config and weights exactly, models of every
kind, the layer's own inputs, clear errors, and the ``--keras`` command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tconv.flow.cli import main
from tconv.model import CalibrationPolicy, analyze, conv1d_transpose, error_bound, import_keras
from tconv.model.fixed_activations import FIXED_ACTIVATIONS, TABLE_ACTIVATIONS

pytestmark = [pytest.mark.keras,
              # Keras 3.15's own numpy conversions, not tconv's.
              pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")]
KERAS_REASON = "imports real Keras layers; install it with pip install -e '.[keras]'"
C_IN = 3
LENGTH = 5


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras", reason=KERAS_REASON)


def make_layer(keras, rng, in_channels=C_IN, **kwargs):
    """A Keras layer with random float32 weights (a nonzero bias), not yet in any model."""
    # Zeros: Keras' default random initializer compiles per shape, slowly; the weights are set below.
    layer = keras.layers.Conv1DTranspose(**kwargs, kernel_initializer="zeros")
    cf = kwargs.get("data_format") == "channels_first"
    layer.build((None, in_channels, None) if cf else (None, None, in_channels))
    weights = [rng.uniform(-1, 1, layer.kernel.shape).astype("float32")]
    if layer.use_bias:
        weights.append(rng.uniform(-1, 1, layer.bias.shape).astype("float32"))
    layer.set_weights(weights)
    return layer


def wrap(keras, layer, container: str):
    """The layer standalone, in a Sequential, or in a functional model behind an input."""
    if container == "standalone":
        return layer
    shape = (C_IN, LENGTH) if layer.data_format == "channels_first" else (LENGTH, C_IN)
    if container == "sequential":
        return keras.Sequential([keras.Input(shape), layer])
    inputs = keras.Input(shape)
    return keras.Model(inputs, layer(inputs))


# The cases step through the cycle 2 and 3 at a time, so the 16 of them reach most activations.
ACT_CYCLE = [*FIXED_ACTIVATIONS, None]
CONFIGS = [
    dict(filters=2, kernel_size=3),
    dict(filters=3, kernel_size=4, strides=2, padding="same"),
    dict(filters=2, kernel_size=5, strides=3, padding="same", output_padding=1),
    dict(filters=2, kernel_size=3, strides=2, padding="valid", output_padding=0),
    dict(filters=4, kernel_size=3, dilation_rate=2, padding="same"),
    dict(filters=1, kernel_size=2, strides=2, use_bias=False),
    dict(filters=2, kernel_size=4, strides=3, output_padding=2, padding="valid"),
    dict(filters=3, kernel_size=1, padding="same", use_bias=False),
]
CASES = [(cfg, df, ACT_CYCLE[(3 * i + 2 * j) % len(ACT_CYCLE)], ("standalone", "sequential", "functional")[(i + j) % 3])
         for i, cfg in enumerate(CONFIGS) for j, df in enumerate(("channels_last", "channels_first"))]


@pytest.mark.parametrize("cfg,data_format,activation,container", CASES,
                         ids=[f"{i}-{c[1][9:]}-{c[2]}-{c[3]}" for i, c in enumerate(CASES)])
def test_config_and_weights_round_trip_exactly(keras, cfg, data_format, activation, container):
    rng = np.random.default_rng(len(CASES))
    layer = make_layer(keras, rng, **cfg, data_format=data_format, activation=activation)
    obj = wrap(keras, layer, container)
    # A table activation's 16-bit default output would need more than MAX_TABLE_ENTRIES for some.
    policy = CalibrationPolicy(output_width=12) if activation in TABLE_ACTIVATIONS else None
    imported = import_keras(obj, name=None if container == "standalone" else layer.name, policy=policy)
    q = imported.layer
    kc = layer.get_config()
    expected = {k: (v[0] if isinstance(v, (tuple, list)) else v) for k, v in kc.items()
                if k in ("filters", "kernel_size", "strides", "padding", "output_padding", "dilation_rate",
                         "data_format", "activation", "use_bias")}
    assert q.config.to_dict() == {**expected, "in_channels": C_IN}
    weights = layer.get_weights()
    assert q.kernel.dtype == np.float64 and np.array_equal(q.kernel, weights[0])
    if layer.use_bias:
        assert np.array_equal(q.bias, weights[1])
    else:
        assert q.bias_format is None and not q.bias.any()
    # The imported config means what the Keras layer computes.
    x = rng.standard_normal((2, C_IN, LENGTH) if data_format == "channels_first" else (2, LENGTH, C_IN))
    x = x.astype("float32")
    c = q.config
    y = conv1d_transpose(x, q.kernel, q.bias if c.use_bias else None, strides=c.strides, padding=c.padding,
                         output_padding=c.output_padding, dilation_rate=c.dilation_rate,
                         data_format=c.data_format, activation=c.activation)
    np.testing.assert_allclose(y, np.asarray(layer(x)), rtol=1e-5, atol=1e-5)
    assert imported.calibration.default_data and imported.calibration.formats["input"].width == 8


@pytest.fixture(scope="module")
def nested(keras):
    """enc (Conv1D) -> decoder [up (Conv1DTranspose) -> up2 (Conv1DTranspose)], functional outside."""
    rng = np.random.default_rng(7)
    inputs = keras.Input((6, 2))
    h = keras.layers.Conv1D(C_IN, 3, padding="same", activation="relu", name="enc")(inputs)
    decoder = keras.Sequential([keras.Input((6, C_IN)),
                                make_layer(keras, rng, filters=2, kernel_size=4, strides=2, padding="same",
                                           activation="relu", name="up"),
                                make_layer(keras, rng, 2, filters=1, kernel_size=3, name="up2")], name="decoder")
    model = keras.Model(inputs, decoder(h))
    x = rng.standard_normal((5, 6, 2)).astype("float32")
    enc_out = np.asarray(keras.Model(inputs, h)(x))
    return model, x, enc_out


def test_layer_inside_nested_model_gets_its_own_inputs(keras, nested):
    model, x, enc_out = nested
    result = import_keras(model, name="decoder/up", data=x, data_name="x.npy")
    assert result.name == "decoder/up"
    np.testing.assert_allclose(result.inputs, enc_out, rtol=1e-6, atol=1e-6)
    assert "run through the model up to 'decoder/up'" in result.calibration.data
    # ReLU'd inputs: unsigned, and no stage saturates on them.
    assert not result.layer.input_format.signed
    from tconv.model import analyze
    assert set(analyze(result.layer, result.inputs).overflow.values()) == {0}
    # The bare name works when unambiguous; Python and the given name agree.
    assert import_keras(model, name="up", data=x).calibration.formats == result.calibration.formats


def test_channels_first_model_inputs(keras):
    rng = np.random.default_rng(3)
    layer = make_layer(keras, rng, filters=2, kernel_size=3, strides=2, data_format="channels_first", name="cf")
    model = wrap(keras, layer, "sequential")
    x = rng.standard_normal((4, C_IN, LENGTH)).astype("float32")
    result = import_keras(model, data=x)
    assert result.name == "cf" and np.array_equal(result.inputs, x)
    assert result.calibration.stages["input"].min == x.min()


@pytest.mark.parametrize("name,message", [
    ("nope", "the model has no layer named 'nope'; its Conv1DTranspose layers: decoder/up, decoder/up2"),
    ("enc", "layer 'enc' of the model is a Conv1D, not a Conv1DTranspose; its Conv1DTranspose layers: "
            "decoder/up, decoder/up2"),
    ("decoder", "layer 'decoder' of the model is a Sequential, not a Conv1DTranspose"),
    (None, "the model has 2 Conv1DTranspose layers; name one: decoder/up, decoder/up2"),
])
def test_bad_names_list_the_layers_present(nested, name, message):
    with pytest.raises(ValueError) as info:
        import_keras(nested[0], name=name)
    assert str(info.value) == message or str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def _double(t):
    return 2 * t


def test_decoder_ending_in_tanh_imports_with_its_table(keras):
    """A model whose Conv1DTranspose ends in tanh: import -> calibrate -> analyze within the bound."""
    rng = np.random.default_rng(5)
    layer = make_layer(keras, rng, filters=2, kernel_size=4, strides=2, padding="same", activation="tanh")
    obj = wrap(keras, layer, "functional")
    data = rng.standard_normal((4, LENGTH, C_IN)).astype("float32")
    imported = import_keras(obj, name=layer.name, data=data)
    q = imported.layer
    assert q.config.activation == "tanh" and q.activation_table is not None
    report = analyze(q, data.astype(np.float64))
    assert report.within_bound
    # Within the output's rounding plus half an LSB of Keras' own tanh layer, plus the input error bound.
    y_keras = np.asarray(layer(data), dtype=np.float64)
    y_fixed = q(data.astype(np.float64))
    assert np.all(np.abs(y_fixed - y_keras) <= error_bound(q, data.astype(np.float64)) + 1e-6)


def test_bad_layers(keras):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="activation 'softmax' is not elementwise .*; the fixed-point model "
                                         "supports: linear, relu, relu6, leaky_relu, hard_tanh"):
        import_keras(make_layer(keras, rng, filters=1, kernel_size=2, activation="softmax"))
    with pytest.raises(ValueError, match="custom activation function; the fixed-point model "
                                         "supports: linear"):
        import_keras(make_layer(keras, rng, filters=1, kernel_size=2, activation=_double))
    with pytest.raises(ValueError, match="'fresh' is not built, so it has no weights yet"):
        import_keras(keras.layers.Conv1DTranspose(1, 2, name="fresh"))
    with pytest.raises(ValueError, match="expected a keras.layers.Conv1DTranspose or a Keras model holding one, "
                                         "got Dense"):
        import_keras(keras.layers.Dense(2))
    only_dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")])
    with pytest.raises(ValueError, match=r"the model has no Conv1DTranspose layer \(layers: d\)"):
        import_keras(only_dense)
    with pytest.raises(ValueError, match="running the model on the data failed"):
        model = wrap(keras, make_layer(keras, rng, filters=1, kernel_size=2, name="u"), "functional")
        import_keras(model, data=np.zeros((2, LENGTH, C_IN + 1), "float32"))


# ------------------------------------------------------------------ command line
@pytest.fixture(scope="module")
def saved(keras, nested, tmp_path_factory):
    root = tmp_path_factory.mktemp("keras_cli")
    model, x, _ = nested
    model.save(root / "model.keras")
    np.save(root / "x.npy", x)
    np.save(root / "x_test.npy", x[:2])
    return root


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_analyze_keras_writes_the_report(saved, tmp_path, capsys):
    rc, out, err = _run(capsys, "analyze", "--keras", saved / "model.keras", "--layer", "up", "--data",
                        saved / "x.npy", "--test-data", saved / "x_test.npy", "--sweep", "6:9", "-o",
                        tmp_path / "rep", "-q")
    assert rc == 0, err
    assert "calibration: 8-bit inputs and weights" in out and "per filter" in out and "SQNR" in out
    # The screen says which data the error is measured on, not only report.json.
    assert f"error measured on the test data {saved / 'x_test.npy'} (calibrated on {saved / 'x.npy'})" in out
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["source"]["layer"] == "decoder/up" and rep["calibration"]["default_data"] is False
    assert len(rep["sweep"]) == 12 and rep["within_bound"] is True
    # Calibrated on x.npy (5 examples), measured on x_test.npy (2): 12 steps of 2 filters each.
    assert rep["n_outputs"] == 2 * 12 * 2 and rep["source"]["data"].endswith("x_test.npy")
    assert rep["calibration"]["stages"]["input"]["count"] == 5 * 6 * C_IN
    assert {p.name for p in (tmp_path / "rep").iterdir()} == {"report.json", "sqnr_vs_bits.png",
                                                              "error_histogram.png", "trace.png"}
    # Same formats as the Python import on the same data.
    import keras
    imported = import_keras(keras.saving.load_model(saved / "model.keras"), name="up", data=np.load(saved / "x.npy"))
    assert rep["calibration"]["formats"] == {k: str(v) for k, v in imported.calibration.formats.items()}


def test_analyze_keras_without_data_says_so(saved, capsys):
    rc, out, err = _run(capsys, "analyze", "--keras", saved / "model.keras", "--layer", "up2", "--no-sweep",
                        "--width", "6", "--format", "output=fixed<12,4,RND,SAT>", "--json")
    assert rc == 0 and "no --data given: formats calibrated on a standard-normal batch" in err
    rep = json.loads(out)
    assert rep["calibration"]["default_data"] is True and "standard-normal" in rep["calibration"]["data"]
    assert rep["formats"]["output"] == "fixed<12,4,RND,SAT>" and rep["formats"]["weight"].startswith("fixed<6,")
    assert "sweep" not in rep


KERAS_ERRORS = [
    (["--layer", "nope"], "model.keras has no layer named 'nope'; its Conv1DTranspose layers: decoder/up, "
                          "decoder/up2"),
    (["--layer", "enc"], "layer 'enc' of model.keras is a Conv1D, not a Conv1DTranspose"),
    ([], "model.keras has 2 Conv1DTranspose layers; name one: decoder/up, decoder/up2 (choose with --layer NAME)"),
    (["--layer", "up", "--format", "input=fixed<8>"], "formats.input: cannot parse"),
    (["--layer", "up", "--format", "inputs=fixed<8,3>"], "expected STAGE=FORMAT"),
]


@pytest.mark.parametrize("command,argv,message", [
    *[("analyze", a, m) for a, m in KERAS_ERRORS],
    *[("generate", a, m) for a, m in KERAS_ERRORS],
    ("generate", ["--layer", "up", "--width", "20"], "formats.input fixed<20,"),
    ("generate", ["--layer", "up", "--pe-count", "3"], "array.pe_count must be a power of two"),
])
def test_keras_errors_are_one_line_and_write_nothing(saved, tmp_path, capsys, command, argv, message):
    rc, _, err = _run(capsys, command, "--keras", saved / "model.keras", *argv, "-o", tmp_path / "out")
    assert rc == 2 and err.startswith("tconv: error: ") and err.count("\n") == 1, err
    assert message in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv,message", [
    (["--keras", "{saved}/model.keras", "{saved}/config.json"], "not both"),
    ([], "give CONFIG.json --weights W.npz, or --keras MODEL.keras"),
    (["{saved}/config.json", "--weights", "w.npz", "--layer", "up"], "--layer only apply with --keras"),
    (["--keras", "{saved}/missing.keras"], "missing.keras: no such file"),
    (["--keras", "{saved}/x.npy"], "expected a Keras 3 model file ending in .keras"),
    (["--keras", "{saved}/model.keras", "--layer", "up", "--data", "{saved}/nothing.npy"], "nothing.npy: no such"),
])
def test_form_errors(saved, tmp_path, capsys, argv, message):
    rc, _, err = _run(capsys, "analyze", *[a.format(saved=saved) for a in argv], "-o", tmp_path / "rep")
    assert rc == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "rep").exists()


def test_generate_keras_equals_the_config_form(saved, tmp_path, capsys):
    rc, out, err = _run(capsys, "generate", "--keras", saved / "model.keras", "--layer", "decoder/up", "--data",
                        saved / "x.npy", "--pe-count", "4", "-o", tmp_path / "k")
    assert rc == 0, err
    assert "calibration:" in out and "4 PEs" in out
    manifest = json.loads((tmp_path / "k" / "manifest.json").read_text())
    formats = {k: v for k, v in manifest["formats"].items() if k != "accumulator"}
    (tmp_path / "config.json").write_text(json.dumps({"layer": manifest["layer"], "formats": formats,
                                                      "array": {"pe_count": 4}}))
    with np.load(tmp_path / "k" / "weights.npz") as w:
        np.savez(tmp_path / "w.npz", kernel=w["kernel"], bias=w["bias"])
    assert _run(capsys, "generate", tmp_path / "config.json", "--weights", tmp_path / "w.npz", "-o",
                tmp_path / "c", "-q")[0] == 0
    def files(root):
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    names = files(tmp_path / "k")
    assert names == files(tmp_path / "c") and "ecp5/tconv_conv1d_transpose_mul.v" in names
    for name in names:
        if name.endswith(".npz"):
            with np.load(tmp_path / "k" / name) as a, np.load(tmp_path / "c" / name) as b:
                assert all(np.array_equal(a[key], b[key]) for key in a.files)
        else:
            assert (tmp_path / "k" / name).read_bytes() == (tmp_path / "c" / name).read_bytes(), name
