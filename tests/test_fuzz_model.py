"""Property-based fuzzing (hypothesis) of the models.

- the float model against real Keras on sampled layer configurations (one jax
  compile per example, so the example count is kept small);
- the fixed-point layer: exact integer sums against a brute-force Python
  reference, outputs inside the output format, batch and layout invariance, and
  the measured error against float within the analytic bound;
- formats: parse/print round trips, code -> value -> code identity, rounding
  error bounds and directions, overflow modes, requantize == quantize of the
  exact value.

Examples are derandomized (same cases every run) in ``make test``;
``pytest --long`` runs 20x more examples, random each time.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import long_run
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tconv.model import Conv1DTransposeQ, FixedFormat, LayerConfig, analyze, conv1d_transpose
from tconv.model import activations as act_module
from tconv.model.fixed_activations import FIXED_ACTIVATIONS
from tconv.model.fixedpoint import OVERFLOW_MODES, QUANTIZATION_MODES

LONG = long_run()


def fuzz(examples: int):
    return settings(max_examples=examples * (20 if LONG else 1), deadline=None, derandomize=not LONG,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# ------------------------------------------------------------------ strategies
@st.composite
def geometries(draw, max_kernel: int = 6):
    strides = draw(st.integers(1, 4))
    dilation = draw(st.integers(1, 3)) if strides == 1 else 1
    kernel = draw(st.integers(1, max_kernel))
    padding = draw(st.sampled_from(["valid", "same", "VALID", "Same"]))
    output_padding = draw(st.none() | st.integers(0, strides - 1))
    return dict(kernel_size=kernel, strides=strides, dilation_rate=dilation, padding=padding,
                output_padding=output_padding)


@st.composite
def formats(draw, min_width=1, max_width=16, integer=(-4, 8), signed=None):
    w = draw(st.integers(min_width, max_width))
    i = draw(st.integers(*integer))
    s = draw(st.booleans()) if signed is None else signed
    return FixedFormat(w, i, s, draw(st.sampled_from(QUANTIZATION_MODES)), draw(st.sampled_from(OVERFLOW_MODES)))


def _values(draw, fmt: FixedFormat, shape, beyond: bool):
    """Floats over the format's range (and beyond it when ``beyond``), some exactly on codes."""
    lo, hi = fmt.min_value, fmt.max_value
    if beyond:
        span = max(hi - lo, fmt.lsb)
        lo, hi = lo - span, hi + span
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.uniform(lo, hi, shape)
    on_code = rng.random(shape) < 0.2
    codes = rng.integers(fmt.min_code, fmt.max_code + 1, shape)
    return np.where(on_code, fmt.dequantize(codes), x)


@st.composite
def quantized_layers(draw, wide: bool = False):
    geo = draw(geometries(max_kernel=5))
    filters, channels = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    activation = draw(st.sampled_from(FIXED_ACTIVATIONS))
    use_bias = draw(st.booleans())
    data_format = draw(st.sampled_from(["channels_last", "channels_first"]))
    cfg = LayerConfig(filters=filters, in_channels=channels, activation=activation, use_bias=use_bias,
                      data_format=data_format, **geo)
    top = 40 if wide else 12
    fin = draw(formats(min_width=2, max_width=top, integer=(-2, 8)))
    fw = draw(formats(min_width=2, max_width=top, integer=(-2, 4)))
    fout = draw(formats(min_width=2, max_width=16, integer=(-4, 12)))
    fb = None
    if use_bias:
        acc_frac = fin.frac + fw.frac
        bfrac = draw(st.integers(acc_frac - 12, acc_frac))      # at most the accumulator's fraction
        bwidth = draw(st.integers(2, 20))
        fb = FixedFormat(bwidth, bwidth - bfrac, True, draw(st.sampled_from(QUANTIZATION_MODES)),
                         draw(st.sampled_from(OVERFLOW_MODES)))
    beyond = draw(st.booleans())
    kernel = _values(draw, fw, (cfg.kernel_size, filters, channels), beyond and draw(st.booleans()))
    bias = _values(draw, fb, (filters,), False) if fb else None
    try:
        layer = Conv1DTransposeQ(cfg, kernel, bias, input_format=fin, weight_format=fw, bias_format=fb,
                                 output_format=fout)
    except ValueError as err:
        if not wide:
            raise
        return err, None   # too wide for the model: refused, and the test checks how
    length = draw(st.integers(1, 9))
    batch = draw(st.integers(1, 3))
    shape = (batch, length, channels) if data_format == "channels_last" else (batch, channels, length)
    x = _values(draw, fin, shape, beyond)
    return layer, x


# ------------------------------------------------------------------ references
def brute_force_accumulator(layer: Conv1DTransposeQ, codes: np.ndarray) -> np.ndarray:
    """Exact sums with Python integers, one (step, tap) at a time: channels_last codes (batch, L, C)."""
    cfg = layer.config
    batch, length, _ = codes.shape
    out_len = cfg.output_length(length)
    w = layer.kernel_codes.astype(object)
    acc = np.zeros((batch, out_len, cfg.filters), dtype=object)
    acc += np.array([int(b) << layer.bias_shift for b in layer.bias_codes], dtype=object)
    x = codes.astype(object)
    for i in range(length):
        for k in range(cfg.kernel_size):
            o = i * cfg.strides + k * cfg.dilation_rate - cfg.crop_left
            if 0 <= o < out_len:
                acc[:, o, :] += x[:, i, :] @ w[k].T
    return acc


# ------------------------------------------------------------------ fixed point
@fuzz(80)
@given(quantized_layers())
def test_fixed_point_layer_properties(case):
    layer, x = case
    cfg = layer.config
    codes = layer.input_format.quantize(x)
    st_ = layer.stages(codes)
    cl = codes if cfg.data_format == "channels_last" else codes.transpose(0, 2, 1)
    acc = st_.accumulator if cfg.data_format == "channels_last" else st_.accumulator.transpose(0, 2, 1)
    # 1. the accumulator is exact
    assert np.array_equal(acc.astype(object), brute_force_accumulator(layer, cl))
    # 2. outputs are codes of the output format
    fo = layer.output_format
    assert st_.output.dtype.kind == "i"
    assert st_.output.min(initial=fo.min_code) >= fo.min_code and st_.output.max(initial=fo.max_code) <= fo.max_code
    # 3. a batch is its samples, stacked
    for n in range(codes.shape[0]):
        assert np.array_equal(layer.forward_int(codes[n]), st_.output[n])
    # 4. measured error within the analytic bound whenever it applies (no input/weight/bias overflow;
    #    checked here from the values too)
    report = analyze(layer, x)
    in_range = all(np.all((v >= f.dequantize(f.saturation_min)) & (v <= f.max_value)) for v, f in (
        (x, layer.input_format), (layer.kernel, layer.weight_format),
        (layer.bias if layer.bias_format else 0.0, layer.bias_format or layer.input_format)))
    if in_range:  # values inside every format's range cannot overflow it
        assert report.bound_applies, report
    if report.bound_applies:
        assert report.within_bound, report


@fuzz(40)
@given(quantized_layers(wide=True))
def test_wide_formats_sum_exactly_or_are_refused(case):
    """Inputs and weights up to 40 bits: products beyond 53 bits take the int64 path; sums stay exact."""
    layer, x = case
    if isinstance(layer, ValueError):  # refused when built: the message must say why
        assert "accumulator needs" in str(layer) and "narrow the input or weight formats" in str(layer), layer
        return
    codes = layer.input_format.quantize(x)
    cl = codes if layer.config.data_format == "channels_last" else codes.transpose(0, 2, 1)
    acc = layer.stages(codes).accumulator
    acc = acc if layer.config.data_format == "channels_last" else acc.transpose(0, 2, 1)
    assert np.array_equal(acc.astype(object), brute_force_accumulator(layer, cl))


# ------------------------------------------------------------------ formats
@fuzz(200)
@given(formats(max_width=53, integer=(-60, 60)), st.data())
def test_format_round_trips(fmt, data):
    assert FixedFormat.parse(str(fmt)) == fmt
    assert FixedFormat.parse(fmt.ap_type()) == fmt
    codes = np.array(data.draw(st.lists(st.integers(fmt.min_code, fmt.max_code), min_size=1, max_size=20)))
    values = fmt.dequantize(codes)
    # code -> value -> code, in every mode (values on the grid are exact), except that ap_fixed's
    # SAT_SYM takes the most negative code for an overflow and maps it to -max_code
    expected = np.where(codes < fmt.saturation_min, fmt.saturation_min, codes)
    assert np.array_equal(fmt.quantize(values), expected)
    # requantize from a finer grid is quantize of the exact value
    extra = data.draw(st.integers(0, 8))
    finer = codes << extra
    assert np.array_equal(fmt.requantize(finer, fmt.frac + extra), expected)


@fuzz(200)
@given(formats(max_width=40, integer=(-20, 30)), st.data())
def test_quantization_error_and_direction(fmt, data):
    lo, hi = fmt.min_value, fmt.max_value
    x = np.array(data.draw(st.lists(st.floats(lo, hi, allow_nan=False), min_size=1, max_size=20)))
    q, over = fmt.quantize_with_flags(x)
    v = fmt.dequantize(q)
    ok = ~over   # rounding up past the largest code is an overflow, handled by the overflow mode
    assert np.all(np.abs(v - x)[ok] <= fmt.max_rounding_error)
    if fmt.rounding == "TRN":
        assert np.all((v <= x)[ok])
    if fmt.rounding == "TRN_ZERO":
        assert np.all((np.abs(v) <= np.abs(x))[ok])
    # quantize agrees with requantize of the exact value when x is a dyadic rational of the finer grid
    finer = fmt.frac + data.draw(st.integers(1, 6))
    exact = np.floor(np.ldexp(x, finer)).astype(np.int64)
    assume(np.all(np.abs(exact) < 2**52))
    assert np.array_equal(fmt.quantize(np.ldexp(exact.astype(np.float64), -finer)), fmt.requantize(exact, finer))


@fuzz(200)
@given(formats(max_width=30, integer=(-10, 20)), st.floats(1.0, 1e6))
def test_overflow_modes(fmt, factor):
    big, small = fmt.max_value * (1 + factor) + fmt.lsb, fmt.min_value - (abs(fmt.min_value) + fmt.lsb) * factor
    q = fmt.quantize(np.array([big, small]))
    assert fmt.min_code <= q.min() and q.max() <= fmt.max_code
    if fmt.overflow == "SAT":
        assert q[0] == fmt.max_code and q[1] == fmt.min_code
    elif fmt.overflow == "SAT_ZERO":
        assert q[0] == 0 and q[1] == 0
    elif fmt.overflow == "SAT_SYM":
        assert q[0] == fmt.max_code and q[1] == (-fmt.max_code if fmt.signed and fmt.width > 1 else fmt.min_code)


@fuzz(60)
@given(st.text(max_size=40))
def test_format_parser_never_crashes(text):
    try:
        fmt = FixedFormat.parse(text)
    except ValueError as err:
        assert str(err) and "\n" not in str(err)
    else:
        assert FixedFormat.parse(str(fmt)) == fmt


# ------------------------------------------------------------------ float vs Keras
@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras", reason="compares with real Keras; pip install -e '.[keras]'")


@pytest.mark.keras
@fuzz(25)
@given(geometries(max_kernel=6), st.integers(1, 4), st.integers(1, 4), st.integers(1, 7),
       st.sampled_from([n for n in act_module.NAMES if n != "glu"]), st.booleans(), st.sampled_from(["channels_last", "channels_first"]),
       st.integers(0, 2**32 - 1))
def test_float_model_equals_keras(keras, geo, filters, channels, length, activation, use_bias, data_format, seed):
    """(glu halves the last axis, which Keras requires to be even: tests/test_float_model.py covers it.)"""
    from test_float_model import assert_matches_keras, keras_layer

    rng = np.random.default_rng(seed)
    kernel = rng.uniform(-1, 1, (geo["kernel_size"], filters, channels)).astype(np.float32)
    bias = rng.standard_normal(filters).astype(np.float32) if use_bias else None
    shape = (2, length, channels) if data_format == "channels_last" else (2, channels, length)
    x = rng.standard_normal(shape).astype(np.float32)
    kwargs = {k: v for k, v in geo.items() if k != "kernel_size"}
    kwargs.update(activation=activation, data_format=data_format)
    cfg = LayerConfig(filters=filters, kernel_size=geo["kernel_size"], **kwargs)
    assume(cfg.output_length(length) > 0)   # Keras cannot build an empty output
    layer = keras_layer(keras, kernel, bias, **kwargs)
    assert_matches_keras(layer, x, kernel, bias, **kwargs)
    # and the float model is what the fixed-point layer's float reference uses
    assert conv1d_transpose(x, kernel, bias, **kwargs).shape == np.asarray(layer(x)).shape


def test_wrap_overflow_is_flagged():
    """Was: under WRAP, x was reduced modulo 2**integer before the overflow flags were computed, so
    quantize_with_flags missed most wrapped values and analyze() applied its bound to data that wrapped."""
    codes, over = FixedFormat(3, 0).quantize_with_flags(np.array([1.095171, -1.2, 0.25]))
    assert codes.tolist() == [0, -2, 2]          # the wrapped codes themselves are right
    assert over.tolist() == [True, True, False]  # but both out-of-range values overflowed
