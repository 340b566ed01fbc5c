"""Conv1DTransposeQ: the integer datapath against a naive loop over docs/contract.md's definition."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from refmath import ref_quantize_fraction

from tconv.model import Conv1DTransposeQ, FixedFormat, LayerConfig, accumulator_format
from tconv.model import quantized as quantized_module
from tconv.model.fixed_activations import LEAKY_SLOPE_FRAC
from tconv.model.geometry import output_length

ACTS = ("linear", "relu", "relu6", "leaky_relu", "hard_tanh", "hard_shrink", "soft_shrink", "sparse_sigmoid")


def naive_accumulator(q: Conv1DTransposeQ, x: np.ndarray) -> np.ndarray:
    """Exact sums (bias included) by loops over Python ints, channels_last."""
    c = q.config
    n, length, cin = x.shape
    out_len = output_length(length, c.kernel_size, c.strides, c.padding, c.output_padding, c.dilation_rate)
    acc = np.zeros((n, out_len, c.filters), dtype=object)
    for b, o, f in itertools.product(range(n), range(out_len), range(c.filters)):
        total = int(q.bias_codes[f]) * 2 ** q.bias_shift
        for i, k in itertools.product(range(length), range(c.kernel_size)):
            if i * c.strides + k * c.dilation_rate - c.crop_left == o:
                total += sum(int(x[b, i, ch]) * int(q.kernel_codes[k, f, ch]) for ch in range(cin))
        acc[b, o, f] = total
    return acc


def naive_forward_int(q: Conv1DTransposeQ, x: np.ndarray) -> np.ndarray:
    """docs/contract.md's datapath on exact rationals: activation, then the output format's rounding."""
    c = q.config
    fa = q.input_format.frac + q.weight_format.frac
    acc = naive_accumulator(q, x)
    y = np.zeros(acc.shape, dtype=np.int64)
    for idx, a in np.ndenumerate(acc):
        assert q.accumulator_format.min_code <= a <= q.accumulator_format.max_code
        v = Fraction(a) / Fraction(2) ** fa
        if c.activation == "relu":
            v = max(v, 0)
        elif c.activation == "relu6":
            v = min(max(v, 0), 6)
        elif c.activation == "leaky_relu" and v < 0:
            # Keras' slope 0.2, rounded to LEAKY_SLOPE_FRAC fractional bits (the contract's rule).
            v = v * Fraction(round(Fraction(1, 5) * 2 ** LEAKY_SLOPE_FRAC), 2 ** LEAKY_SLOPE_FRAC)
        elif c.activation == "hard_tanh":
            v = min(max(v, -1), 1)
        elif c.activation == "hard_shrink":
            v = v if abs(v) > Fraction(1, 2) else 0
        elif c.activation == "soft_shrink":
            v = v - Fraction(1, 2) if v > Fraction(1, 2) else v + Fraction(1, 2) if v < -Fraction(1, 2) else 0
        elif c.activation == "sparse_sigmoid":
            v = min(max(v + 1, 0), 2) / 2
        y[idx] = ref_quantize_fraction(v, q.output_format)
    return y


def _layer(rng, *, filters, kernel_size, strides=1, padding="valid", output_padding=None, dilation_rate=1,
           activation="linear", use_bias=True, in_channels=3, data_format="channels_last",
           input_format="fixed<6,2,RND,SAT>", weight_format="fixed<5,1,RND_CONV,SAT>",
           bias_format="fixed<8,3>", output_format="fixed<7,3,RND,SAT>"):
    cfg = LayerConfig(filters=filters, kernel_size=kernel_size, strides=strides, padding=padding,
                      output_padding=output_padding, dilation_rate=dilation_rate, data_format=data_format,
                      activation=activation, use_bias=use_bias, in_channels=in_channels)
    kernel = rng.uniform(-1, 1, (kernel_size, filters, in_channels))
    bias = rng.uniform(-2, 2, filters) if use_bias else None
    return Conv1DTransposeQ(cfg, kernel, bias, input_format=input_format, weight_format=weight_format,
                            bias_format=bias_format if use_bias else None, output_format=output_format)


def _configs():
    rng = np.random.default_rng(1234)
    out = []
    for strides, dilation in [(1, 1), (2, 1), (3, 1), (4, 1), (1, 2), (1, 3)]:
        for kernel_size in (1, 2, 3, 5, 7):
            for padding in ("valid", "same"):
                ops = [None] + list(range(strides))
                op = ops[rng.integers(len(ops))]
                act = ACTS[rng.integers(len(ACTS))]
                out.append(dict(strides=strides, dilation_rate=dilation, kernel_size=kernel_size,
                                padding=padding, output_padding=op, activation=act,
                                filters=int(rng.integers(1, 4)), in_channels=int(rng.integers(1, 4)),
                                use_bias=bool(rng.integers(2))))
    return out


@pytest.mark.parametrize("cfg", _configs(), ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_forward_int_matches_naive_loops(cfg):
    rng = np.random.default_rng(abs(hash(str(cfg))) % 2 ** 32)
    q = _layer(rng, **cfg)
    for length in (1, 2, 5):
        x = rng.integers(q.input_format.min_code, q.input_format.max_code + 1, (2, length, cfg["in_channels"]))
        np.testing.assert_array_equal(q.forward_int(x), naive_forward_int(q, x), err_msg=f"{cfg} L={length}")


@pytest.mark.parametrize("out_fmt", ["fixed<4,1,TRN,WRAP>", "fixed<5,2,RND_CONV,SAT_SYM>", "ufixed<4,2,RND_INF,SAT_ZERO>",
                                     "fixed<12,-1,TRN_ZERO,SAT>", "fixed<6,9,RND_MIN_INF,WRAP>"])
def test_output_modes_and_saturation(out_fmt):
    rng = np.random.default_rng(5)
    q = _layer(rng, filters=3, kernel_size=3, strides=2, in_channels=4, output_format=out_fmt,
               activation="leaky_relu")
    x = rng.integers(q.input_format.min_code, q.input_format.max_code + 1, (2, 6, 4))
    x[0, :2] = q.input_format.max_code  # drive outputs into overflow
    st = q.stages(x)
    np.testing.assert_array_equal(st.output, naive_forward_int(q, x))
    assert st.output.min() >= q.output_format.min_code and st.output.max() <= q.output_format.max_code


def test_channels_first_and_unbatched():
    rng = np.random.default_rng(2)
    q_last = _layer(rng, filters=2, kernel_size=3, strides=2, padding="same", in_channels=3)
    q_first = Conv1DTransposeQ(LayerConfig(**{**q_last.config.to_dict(), "data_format": "channels_first"}),
                               q_last.kernel, q_last.bias, input_format=q_last.input_format,
                               weight_format=q_last.weight_format, bias_format=q_last.bias_format,
                               output_format=q_last.output_format)
    x = rng.integers(-32, 32, (2, 7, 3))
    y = q_last.forward_int(x)
    np.testing.assert_array_equal(q_first.forward_int(x.transpose(0, 2, 1)), y.transpose(0, 2, 1))
    np.testing.assert_array_equal(q_last.forward_int(x[1]), y[1])
    np.testing.assert_array_equal(q_first.forward_int(x[1].T), y[1].T)


def test_float32_float64_and_int64_paths_agree(monkeypatch):
    rng = np.random.default_rng(3)
    q = _layer(rng, filters=4, kernel_size=5, strides=3, in_channels=6, activation="relu")
    x = rng.integers(q.input_format.min_code, q.input_format.max_code + 1, (3, 9, 6))
    assert q.sum_bound <= 1 << 24
    fast = q.forward_int(x)
    monkeypatch.setattr(quantized_module, "_EXACT_LIMITS", ((np.float64, 1 << 53),))
    np.testing.assert_array_equal(q.forward_int(x), fast)
    monkeypatch.setattr(quantized_module, "_EXACT_LIMITS", ())
    np.testing.assert_array_equal(q.forward_int(x), fast)


@pytest.mark.parametrize("kernel_size", [5, 7])
def test_float_paths_at_the_float32_limit(kernel_size):
    """Sums up to 2**24 run in float32; one more term and float32 could round, so
    float64 takes over. Large odd codes make any rounding visible."""
    rng = np.random.default_rng(8)
    q = _layer(rng, filters=3, kernel_size=kernel_size, in_channels=3, input_format="fixed<11,4>",
               weight_format="fixed<11,1>", use_bias=False)
    assert (q.sum_bound <= 1 << 24) == (kernel_size == 5)
    # Odd products, an odd count of them: sums past 2**24 are odd, which float32 cannot hold.
    x = rng.integers(-1024, -1000, (2, 9, 3)) | 1
    q.kernel_codes = rng.integers(-1024, -1000, (kernel_size, 3, 3)) | 1
    np.testing.assert_array_equal(q.stages(x).accumulator, naive_accumulator(q, x))


def test_wide_accumulator_uses_exact_integers():
    """Past 53 accumulator bits float64 would round; the int64 path keeps it exact."""
    rng = np.random.default_rng(4)
    q = _layer(rng, filters=2, kernel_size=2, in_channels=2, input_format="fixed<28,4>",
               weight_format="fixed<28,2>", bias_format="fixed<8,3>", output_format="fixed<40,10>")
    assert q.accumulator_format.width > 53
    x = rng.integers(q.input_format.min_code, q.input_format.max_code + 1, (1, 4, 2))
    np.testing.assert_array_equal(q.forward_int(x), naive_forward_int(q, x))


@pytest.mark.parametrize("strides,kernel_size,dilation", [(1, 3, 1), (2, 3, 1), (3, 5, 1), (1, 2, 3), (4, 3, 1)])
@pytest.mark.parametrize("fmts", [("fixed<4,2>", "fixed<3,1>"), ("ufixed<4,2>", "fixed<5,0>"), ("fixed<8,3>", "ufixed<3,3>")])
def test_accumulator_width_is_reached_and_sufficient(strides, kernel_size, dilation, fmts):
    """Worst-case inputs and weights reach the accumulator's range but never leave it,
    and one bit fewer would not hold them: the width is derived, not padded."""
    in_fmt, w_fmt = (FixedFormat.parse(f) for f in fmts)
    cfg = LayerConfig(filters=1, kernel_size=kernel_size, strides=strides, dilation_rate=dilation,
                      in_channels=3, use_bias=True)
    extremes = []
    for w_code, x_code, b_code in itertools.product((w_fmt.min_code, w_fmt.max_code),
                                                    (in_fmt.min_code, in_fmt.max_code), (-128, 127)):
        kernel = w_fmt.dequantize(np.full((kernel_size, 1, 3), w_code))
        q = Conv1DTransposeQ(cfg, kernel, [b_code / 8], input_format=in_fmt, weight_format=w_fmt,
                             bias_format="fixed<8,5>", output_format="fixed<8,3>")
        acc = q.stages(np.full((1, 8, 3), x_code)).accumulator
        extremes += [acc.min(), acc.max()]
    acc_fmt = q.accumulator_format
    lo, hi = min(extremes), max(extremes)
    assert acc_fmt.min_code <= lo and hi <= acc_fmt.max_code
    narrower = FixedFormat(acc_fmt.width - 1, acc_fmt.integer - 1)
    assert lo < narrower.min_code or hi > narrower.max_code
    assert acc_fmt == accumulator_format(in_fmt, w_fmt, FixedFormat.parse("fixed<8,5>"), q.terms)


def test_call_quantizes_runs_and_dequantizes():
    rng = np.random.default_rng(6)
    q = _layer(rng, filters=2, kernel_size=3, strides=2, in_channels=3, activation="relu6")
    x = rng.uniform(-2, 2, (2, 5, 3))
    np.testing.assert_array_equal(q(x), q.output_format.dequantize(q.forward_int(q.input_format.quantize(x))))


# ------------------------------------------------------------------ bad input

def _args(**over):
    base = dict(config=LayerConfig(filters=2, kernel_size=3, in_channels=4), kernel=np.zeros((3, 2, 4)),
                bias=np.zeros(2), input_format="fixed<8,3>", weight_format="fixed<8,1>",
                bias_format="fixed<16,6>", output_format="fixed<16,6>")
    base.update(over)
    cfg, kernel, bias = base.pop("config"), base.pop("kernel"), base.pop("bias")
    return Conv1DTransposeQ(cfg, kernel, bias, **base)


@pytest.mark.parametrize("over,message", [
    (dict(kernel=np.zeros((3, 2, 5))), r"kernel has shape \(3, 2, 5\), but the layer needs .* = \(3, 2, 4\)"),
    (dict(kernel=np.zeros((3, 2))), r"kernel must have shape \(kernel_size, filters, in_channels\)"),
    (dict(bias=np.zeros(3)), r"bias has shape \(3,\), but the layer needs \(filters,\) = \(2,\)"),
    (dict(kernel=np.full((3, 2, 4), np.nan)), "kernel holds NaN"),
    (dict(bias=[0.0, np.inf]), "bias holds NaN"),
    (dict(kernel=[["a"]]), "kernel must be a numeric array"),
    (dict(input_format="fixed<8>"), "input format: cannot parse fixed-point format 'fixed<8>'"),
    (dict(bias_format="fixed<16,2>"), "bias format fixed<16,2> has 14 fractional bits, more than the accumulator's 12"),
    (dict(bias_format=None), "bias_format is required"),
    (dict(config=LayerConfig(filters=2, kernel_size=3, in_channels=4, activation="softmax")),
     "activation 'softmax' is not elementwise .* supports: linear, relu, relu6, leaky_relu, .*sigmoid, tanh"),
    (dict(config=LayerConfig(filters=2, kernel_size=3, in_channels=4, use_bias=False)),
     "a bias was given but the layer has use_bias=False"),
    (dict(input_format="fixed<40,3>", weight_format="fixed<40,1>"), "accumulator needs .* bits"),
])
def test_construction_errors(over, message):
    with pytest.raises(ValueError, match=message):
        _args(**over)


def test_input_errors():
    q = _args()
    with pytest.raises(ValueError, match=r"input has 3 channels but the layer has in_channels=4"):
        q.forward_int(np.zeros((1, 5, 3), dtype=np.int64))
    with pytest.raises(ValueError, match=r"codes must lie in \[-128, 127\], got \[128, 128\]"):
        q.forward_int(np.full((1, 5, 4), 128))
    with pytest.raises(ValueError, match="integer codes"):
        q.forward_int(np.zeros((1, 5, 4)))
    with pytest.raises(ValueError, match=r"input must have shape \(batch, length, in_channels\)"):
        q.forward_int(np.zeros((5,), dtype=np.int64))
    with pytest.raises(ValueError, match="input holds 1 NaN"):
        q(np.array([[[np.nan, 0, 0, 0]]]))


def test_in_channels_taken_from_kernel_and_dict_config():
    q = Conv1DTransposeQ({"filters": 2, "kernel_size": [3], "strides": [2], "activation": "relu",
                          "name": "up1", "trainable": True},
                         np.zeros((3, 2, 5)), np.zeros(2), input_format="fixed<8,3>",
                         weight_format="fixed<8,1>", bias_format="fixed<16,6>", output_format="fixed<16,6>")
    assert q.config.in_channels == 5 and q.config.strides == 2


@pytest.mark.parametrize("name", ["keras-doc", "dilated", "odd-stride"])
def test_forward_int_matches_apytypes(name):
    """A third, independent implementation: the same layer in apytypes' exact fixed point."""
    pytest.importorskip("apytypes", reason="pip install -e '.[test]'")
    from tconv.flow import bench

    q = bench.bench_layer(name)
    cfg = q.config
    codes = np.random.default_rng(1).integers(-128, 128, (2, 6, cfg.in_channels))
    of = q.output_format
    bits = np.asarray(bench.apytypes_forward(q, codes).to_bits(), dtype=np.int64)
    np.testing.assert_array_equal(np.where(bits >= 1 << (of.width - 1), bits - (1 << of.width), bits),
                                  q.forward_int(codes))
