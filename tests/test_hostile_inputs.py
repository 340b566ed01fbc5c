"""Hostile inputs (issue 13, items 5, 8 and 9): absurd sizes, analysis on nothing, overflowing
weights, foreign files and bad options end in one clear line, fast, with nothing written.

CLI errors must be exit status 2 and one line ``tconv: error: ...`` on stderr that names the
field or option and its limit; the size limits come from ``tconv.model.config``, the widths from
``tconv.model.fixedpoint.MAX_WIDTH``, never from numbers written here.
"""

from __future__ import annotations

import json
import logging
import re
import time
from unittest import mock

import numpy as np
import pytest

from tconv.flow.cli import main
from tconv.model import Conv1DTransposeQ, FixedFormat, LayerConfig, analyze, calibrate, sweep
from tconv.model.config import MAX_CHANNELS, MAX_DILATION_RATE, MAX_KERNEL_SIZE, MAX_STRIDES, MAX_VALUES, MIN_FRAME
from tconv.model.fixedpoint import MAX_WIDTH

LAYER = {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "linear", "use_bias": True,
         "in_channels": 2}
# Keras 3.15's own numpy conversions, not tconv's.
KERAS_WARNINGS = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
FORMATS = {"input": "fixed<8,3,RND,SAT>", "weight": "fixed<8,1,RND,SAT>", "bias": "fixed<12,4>",
           "output": "fixed<16,6,RND,SAT>"}


def write_design(folder, kernel=None, bias=None, **layer_changes):
    """CONFIG.json and W.npz in ``folder`` (random small weights unless given); returns both paths."""
    layer = {**LAYER, **layer_changes}
    (folder / "c.json").write_text(json.dumps({"layer": layer, "formats": FORMATS, "array": {"pe_count": 4}}))
    rng = np.random.default_rng(0)
    if kernel is None:  # the shape the layer needs when it is small, else any: the config fails first
        small = max(layer["kernel_size"], layer["filters"], layer["in_channels"]) <= 64
        shape = (layer["kernel_size"], layer["filters"], layer["in_channels"]) if small else (3, 2, 2)
        kernel = rng.normal(0, 0.2, shape)
    if bias is None:
        bias = rng.normal(0, 0.2, kernel.shape[1])
    np.savez(folder / "w.npz", kernel=kernel, bias=bias)
    return folder / "c.json", folder / "w.npz"


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def assert_one_line_error(rc, err, *names):
    assert rc == 2, err
    assert err.startswith("tconv: error: ") and err.count("\n") == 1, err
    for name in names:
        assert str(name) in err, (name, err)


def quantized(**layer_changes) -> Conv1DTransposeQ:
    layer = {**LAYER, **layer_changes}
    kernel = np.random.default_rng(1).normal(0, 0.2, (layer["kernel_size"], layer["filters"], layer["in_channels"]))
    return Conv1DTransposeQ(layer, kernel, np.zeros(layer["filters"]), input_format=FORMATS["input"],
                            weight_format=FORMATS["weight"], bias_format=FORMATS["bias"],
                            output_format=FORMATS["output"])


# ------------------------------------------------------------------ item 5: sizes
OVERSIZED = [
    (dict(kernel_size=MAX_KERNEL_SIZE + 1), "kernel_size", MAX_KERNEL_SIZE),
    (dict(strides=MAX_STRIDES + 1), "strides", MAX_STRIDES),
    (dict(strides=10**6), "strides", MAX_STRIDES),
    (dict(strides=1, dilation_rate=MAX_DILATION_RATE + 1), "dilation_rate", MAX_DILATION_RATE),
    (dict(strides=1, dilation_rate=10**6), "dilation_rate", MAX_DILATION_RATE),
    (dict(in_channels=MAX_CHANNELS + 1), "in_channels", MAX_CHANNELS),
    (dict(filters=MAX_CHANNELS + 1), "filters", MAX_CHANNELS),
    # Each field within its limit, the weights not: 2x MAX_VALUES of them.
    (dict(kernel_size=MAX_KERNEL_SIZE, filters=MAX_CHANNELS // 8, in_channels=2 * MAX_VALUES // MAX_KERNEL_SIZE
          // (MAX_CHANNELS // 8)), "weights", MAX_VALUES),
    # Weights fine, but a frame of MIN_FRAME steps would have too many outputs.
    (dict(kernel_size=1, strides=MAX_STRIDES, filters=MAX_CHANNELS, in_channels=1), f"a frame of {MIN_FRAME} steps",
     MAX_VALUES),
]


@pytest.mark.parametrize("command", ["analyze", "generate"])
@pytest.mark.parametrize("changes,field,limit", OVERSIZED)
def test_oversized_layers_are_refused_at_once(tmp_path, capsys, command, changes, field, limit):
    cfg, weights = write_design(tmp_path, **changes)
    start = time.monotonic()
    rc, _, err = run(capsys, command, cfg, "--weights", weights, "-o", tmp_path / "out", "-q")
    assert_one_line_error(rc, err, field, limit)
    assert time.monotonic() - start < 5, "refused, but only after real work"
    assert not (tmp_path / "out").exists()


def test_the_limits_themselves_are_accepted():
    assert LayerConfig(filters=MAX_CHANNELS, kernel_size=1, in_channels=1).check_limits()
    assert LayerConfig(filters=1, kernel_size=MAX_KERNEL_SIZE, strides=MAX_STRIDES, in_channels=MAX_CHANNELS
                       // 4).check_limits()
    assert LayerConfig(filters=1, kernel_size=2, dilation_rate=MAX_DILATION_RATE, in_channels=1).check_limits()
    # MelGAN's first upsampler.
    assert LayerConfig(filters=256, kernel_size=16, strides=8, padding="same", in_channels=512).check_limits()


@KERAS_WARNINGS
def test_keras_import_refuses_oversized_layers():
    keras = pytest.importorskip("keras")
    from tconv.model import import_keras

    layer = keras.layers.Conv1DTranspose(1, 2, strides=MAX_STRIDES + 1, kernel_initializer="zeros", name="huge")
    layer.build((None, None, 1))
    with pytest.raises(ValueError, match=rf"'huge': strides={MAX_STRIDES + 1} is more than tconv allows "
                                         rf"\(strides <= {MAX_STRIDES}"):
        import_keras(layer)


@pytest.mark.parametrize("argv,names", [
    (["--length", 10**8], ["--batch", "--length", MAX_VALUES]),
    (["--batch", 10**8], ["--batch", "--length", MAX_VALUES]),
    # batch x length fits, but this layer's partial products (x kernel_size x filters) do not.
    (["--batch", 1, "--length", MAX_VALUES // 2], ["--length", "partial products", MAX_VALUES]),
])
def test_analyze_refuses_absurd_random_input(tmp_path, capsys, argv, names):
    cfg, weights = write_design(tmp_path)
    start = time.monotonic()
    rc, _, err = run(capsys, "analyze", cfg, "--weights", weights, "-q", *argv)
    assert_one_line_error(rc, err, *names)
    assert time.monotonic() - start < 5


def test_analysis_api_refuses_too_much_data_before_allocating():
    q = quantized()
    # A broadcast view: the shape of a huge array without its memory.
    x = np.broadcast_to(np.zeros(()), (1, MAX_VALUES, LAYER["in_channels"]))
    with pytest.raises(ValueError, match=f"more than tconv allows \\({MAX_VALUES}"):
        analyze(q, x)
    with pytest.raises(ValueError, match="random input of 1 x"):
        analyze(q, batch=1, length=MAX_VALUES)


def test_out_of_memory_is_one_line(tmp_path, capsys):
    cfg, weights = write_design(tmp_path)
    with mock.patch("tconv.flow.report.build_report", side_effect=MemoryError):
        rc, _, err = run(capsys, "analyze", cfg, "--weights", weights, "-q")
    assert_one_line_error(rc, err, "out of memory")


@pytest.mark.parametrize("sweep_arg", ["4:100", f"4:{MAX_WIDTH + 1}", "4:1000000000000", f"8,{MAX_WIDTH + 1}", "9:4"])
def test_sweep_widths_beyond_the_model_are_refused_up_front(tmp_path, capsys, sweep_arg):
    cfg, weights = write_design(tmp_path)
    with mock.patch("tconv.flow.report.analyze", side_effect=AssertionError("analysis ran")):
        rc, _, err = run(capsys, "analyze", cfg, "--weights", weights, "--sweep", sweep_arg, "-q")
    assert_one_line_error(rc, err, "--sweep", MAX_WIDTH)


def test_sweep_too_wide_for_the_accumulator_names_the_widest_that_works(tmp_path, capsys):
    cfg, weights = write_design(tmp_path)
    with mock.patch("tconv.flow.report.analyze", side_effect=AssertionError("analysis ran")):
        rc, _, err = run(capsys, "analyze", cfg, "--weights", weights, "--sweep", f"4:{MAX_WIDTH}", "--vary",
                         "input", "-q")
    assert_one_line_error(rc, err, "cannot sweep input to", "accumulator")
    widest = int(re.search(r"input widths from 1 to (\d+)", err).group(1))
    q = quantized()

    def with_input_width(width):
        fmt = q.input_format
        return Conv1DTransposeQ(q.config, q.kernel, q.bias, input_format=FixedFormat(width, fmt.integer, fmt.signed,
                                                                                    fmt.rounding, fmt.overflow),
                                weight_format=q.weight_format, bias_format=q.bias_format,
                                output_format=q.output_format)

    with_input_width(widest)
    with pytest.raises(ValueError, match="accumulator needs"):
        with_input_width(widest + 1)


# ------------------------------------------------------------------ item 8: analysis on nothing
def test_empty_data_is_refused(tmp_path, capsys):
    cfg, weights = write_design(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((0, 5, LAYER["in_channels"])))
    rc, _, err = run(capsys, "analyze", cfg, "--weights", weights, "--data", tmp_path / "x.npy", "-o",
                     tmp_path / "rep")
    assert_one_line_error(rc, err, "x.npy", "no data")
    assert not (tmp_path / "rep").exists()
    q = quantized()
    with pytest.raises(ValueError, match="no data"):
        analyze(q, np.zeros((0, 5, LAYER["in_channels"])))
    with pytest.raises(ValueError, match="no data"):
        calibrate(q.config, q.kernel, q.bias, np.zeros((0, 5, LAYER["in_channels"])))


@pytest.mark.parametrize("scale", [1e300, 1e308])
def test_huge_weights_text_and_json_agree_without_numpy_warnings(tmp_path, capsys, scale):
    """1e300: the float reference is finite but its squares are not; 1e308: the reference overflows."""
    cfg, weights = write_design(tmp_path, kernel=np.full((3, 2, 2), scale), bias=np.full(2, scale))
    rc, out, err_text = run(capsys, "analyze", cfg, "--weights", weights, "-q")
    assert rc == 0, err_text
    text = re.search(r"^  SQNR\s+(\S+) dB$", out, re.M).group(1)
    rc, out, err_json = run(capsys, "analyze", cfg, "--weights", weights, "-q", "--json")
    assert rc == 0, err_json
    value = json.loads(out)["sqnr_db"]
    assert text == (value if isinstance(value, str) else f"{value:.2f}")
    for err in (err_text, err_json):  # only tconv's own warning on stderr
        assert err.startswith("tconv: warning: quantizing") and err.count("\n") == 1, err


def test_error_report_json_spells_nan_as_the_text_does():
    q = quantized()
    report = analyze(q)
    report.sqnr_db = float("nan")
    assert report.to_dict()["sqnr_db"] == "nan" and "SQNR              nan dB" in str(report)


def test_quantization_overflows_counts_the_layers_own_values():
    q = quantized()
    kernel = np.where(np.arange(q.kernel.size).reshape(q.kernel.shape) % 3 == 0, 5.0, 0.1)
    bias = np.array([100.0, 0.5])
    q = Conv1DTransposeQ(q.config, kernel, bias, input_format=q.input_format, weight_format=q.weight_format,
                         bias_format=q.bias_format, output_format=q.output_format)
    counts = q.quantization_overflows()
    assert counts["weight"] == {"overflows": int((kernel == 5.0).sum()), "values": kernel.size,
                                "format": q.weight_format}
    assert counts["bias"] == {"overflows": 1, "values": 2, "format": q.bias_format}


@pytest.mark.parametrize("command", ["generate", "analyze"])
def test_saturating_weights_are_warned_about_even_under_q(tmp_path, capsys, command):
    shape = (LAYER["kernel_size"], LAYER["filters"], LAYER["in_channels"])
    kernel = np.where(np.arange(np.prod(shape)).reshape(shape) % 2 == 0, 5.0, -0.25)  # fixed<8,1>: [-1, 1)
    bias = np.array([100.0, 0.5])  # fixed<12,4> WRAP: [-8, 8)
    cfg, weights = write_design(tmp_path, kernel=kernel, bias=bias)
    rc, _, err = run(capsys, command, cfg, "--weights", weights, "-o", tmp_path / "out", "-q")
    assert rc == 0, err
    assert err == (f"tconv: warning: quantizing saturated {int((kernel == 5.0).sum())} of {kernel.size} weight "
                   f"values ({FORMATS['weight']}) and wrapped 1 of 2 bias values ({FORMATS['bias']})\n")
    cfg, weights = write_design(tmp_path)  # nothing overflows: nothing said
    rc, _, err = run(capsys, command, cfg, "--weights", weights, "-o", tmp_path / "out2", "-q")
    assert rc == 0 and err == "", err


# ------------------------------------------------------------------ item 9: files
@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    keras = pytest.importorskip("keras")
    root = tmp_path_factory.mktemp("hostile_keras")
    inputs = keras.Input((6, 2))
    outputs = keras.layers.Conv1DTranspose(2, 3, strides=2, padding="same", name="up")(inputs)
    keras.Model(inputs, outputs).save(root / "model.keras")
    np.save(root / "x.npy", np.random.default_rng(0).normal(0, 1, (4, 6, 2)))
    return root


@KERAS_WARNINGS
def test_truncated_keras_file_is_not_a_readable_archive(saved_model, tmp_path, capsys):
    data = (saved_model / "model.keras").read_bytes()
    for name, content in (("cut.keras", data[:len(data) // 2]), ("text.keras", b"not a model\n")):
        (tmp_path / name).write_bytes(content)
        rc, _, err = run(capsys, "analyze", "--keras", tmp_path / name, "-o", tmp_path / "rep")
        assert_one_line_error(rc, err, name, "not a readable .keras archive")
        assert "File not found" not in err and not (tmp_path / "rep").exists()


@KERAS_WARNINGS
def test_keras_calibration_data_overflowing_a_given_format_is_warned_about(saved_model, capsys):
    x = np.load(saved_model / "x.npy")
    fmt = FixedFormat.parse("fixed<6,1,RND,SAT>")
    rc, _, err = run(capsys, "generate", "--keras", saved_model / "model.keras", "--data", saved_model / "x.npy",
                     "--format", f"input={fmt}", "-o", saved_model / "out", "-q")
    assert rc == 0, err
    codes = np.floor(x * 2.0 ** fmt.frac + 0.5)  # RND: to nearest, ties up
    over = int(((codes > fmt.max_code) | (codes < fmt.min_code)).sum())
    assert over and f"{over} of {x.size} calibration input values ({fmt})" in err, err
    assert err.startswith("tconv: warning: quantizing saturated") and err.count("\n") == 1, err


@pytest.mark.parametrize("option,kind", [("--weights", "an .npz archive"), ("--data", "an .npy file")])
def test_a_text_file_is_not_an_npz_or_npy(tmp_path, capsys, option, kind):
    cfg, weights = write_design(tmp_path)
    (tmp_path / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    files = {"--weights": tmp_path / "passwd", "--data": tmp_path / "passwd"}
    argv = ["--weights", files["--weights"] if option == "--weights" else weights]
    if option == "--data":
        argv += ["--data", files["--data"]]
    rc, _, err = run(capsys, "analyze", cfg, *argv)
    assert_one_line_error(rc, err, "passwd", f"not {kind}")
    assert "pickled" not in err


@pytest.mark.parametrize("command", ["analyze", "simulate"])
def test_negative_seed_names_the_option(tmp_path, capsys, command):
    cfg, weights = write_design(tmp_path)
    argv = [cfg, "--weights", weights] if command == "analyze" else [tmp_path]
    rc, _, err = run(capsys, command, *argv, "--seed", "-1")
    assert_one_line_error(rc, err, "--seed must be")


@pytest.mark.parametrize("argv,names", [
    (["--vary", "bogus"], ["--vary", "bogus", "input, weight, bias, output"]),
    (["--vary", "bogus", "--sweep", "6:7"], ["--vary", "bogus", "input, weight, bias, output"]),
    (["--vary", "weight"], ["--vary only applies", "--sweep"]),
])
def test_vary_is_checked_with_or_without_sweep(tmp_path, capsys, argv, names):
    cfg, weights = write_design(tmp_path)
    rc, _, err = run(capsys, "analyze", cfg, "--weights", weights, "-q", *argv)
    assert_one_line_error(rc, err, *names)


def test_vary_bias_needs_a_bias(tmp_path, capsys):
    cfg, weights = write_design(tmp_path, use_bias=False)
    np.savez(weights, kernel=np.zeros((3, 2, 2)))
    rc, _, err = run(capsys, "analyze", cfg, "--weights", weights, "-q", "--sweep", "6:7", "--vary", "bias")
    assert_one_line_error(rc, err, "'bias'", "input, weight, output", "use_bias")


# ------------------------------------------------------------------ item 9: the Python API
@pytest.mark.parametrize("d,message", [
    ({"groups": 2}, "groups=2: a grouped convolution"),
    ({"groups": True}, "groups=True"),
    ({"lora_rank": 4}, "lora_rank=4: a LoRA layer"),
])
def test_layer_keys_that_change_the_computation_are_refused(d, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        LayerConfig.from_dict({"filters": 4, "kernel_size": 3, **d})
    assert LayerConfig.from_dict({"filters": 4, "kernel_size": 3, "groups": 1, "lora_rank": None}) \
        == LayerConfig(4, 3)


def test_sweep_takes_one_stage_as_a_string():
    q = quantized()
    rows = sweep(q, widths=[6, 7], vary="weight", progress=False)
    assert [(r["stage"], r["width"]) for r in rows] == [("weight", 6), ("weight", 7)]


def test_sweep_refuses_unknown_stages_and_widths_before_analysing():
    q = quantized()
    with mock.patch("tconv.model.analysis.analyze", side_effect=AssertionError("analysis ran")):
        with pytest.raises(ValueError, match="cannot vary 'weights': the stages a sweep can vary are input, "
                                             "weight, bias, output"):
            sweep(q, widths=[6], vary=["weights"], progress=False)
        with pytest.raises(ValueError, match=f"from 1 to {MAX_WIDTH}"):
            sweep(q, widths=[6, MAX_WIDTH + 1], vary="weight", progress=False)


@pytest.mark.parametrize("layer", ["x", None, {"filters": 2}])
def test_analyze_names_what_it_expects(layer):
    with pytest.raises(TypeError, match="expected the fixed-point layer, a tconv.model.Conv1DTransposeQ"):
        analyze(layer)


@pytest.mark.parametrize("signed", ["no", "yes", 0, 1, None])
def test_fixed_format_signed_must_be_a_bool(signed):
    with pytest.raises(ValueError, match="signed must be True or False"):
        FixedFormat(8, 3, signed=signed)
    # The parser's and numpy's bools still work.
    assert FixedFormat.parse("ufixed<8,3>").signed is False
    assert FixedFormat.parse("ap_fixed<8,3,AP_RND,AP_SAT>").signed is True
    assert FixedFormat(8, 3, signed=np.bool_(False)) == FixedFormat.parse("ufixed<8,3>")


def test_quiet_runner_drops_cocotb_warnings_but_not_errors(caplog):
    from tconv.sim.runner import _quiet

    runner_log = logging.getLogger("Icarus")  # cocotb's runner logs under its class name
    with caplog.at_level(logging.INFO):
        with _quiet(True):
            runner_log.warning("Skipping compilation of sim.vvp")
            runner_log.error("Simulation failed: 1")
        runner_log.warning("after quiet")
    assert [r.getMessage() for r in caplog.records] == ["Simulation failed: 1", "after quiet"]
