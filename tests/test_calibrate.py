"""Format calibration: minimal integer bits, headroom, signedness, the bias limit, no saturation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tconv.model import CalibrationPolicy, Conv1DTransposeQ, FixedFormat, LayerConfig, analyze, calibrate
from tconv.model.calibrate import choose_format, default_input


@pytest.mark.parametrize("scale", [1e-3, 0.3, 1.0, 7.9, 1e3])
@pytest.mark.parametrize("signed", [True, False])
def test_choose_format_is_the_smallest_that_holds_everything(scale, signed):
    rng = np.random.default_rng(int(scale * 1000) + signed)
    for _ in range(20):
        v = rng.uniform(0 if not signed else -scale, scale, 50)
        fmt = choose_format(v, 8, signed=signed)
        assert fmt.width == 8 and fmt.signed == signed and (fmt.rounding, fmt.overflow) == ("RND", "SAT")
        assert not fmt.quantize_with_flags(v)[1].any()
        tighter = FixedFormat(8, fmt.integer - 1, signed, "RND", "SAT")
        assert tighter.quantize_with_flags(v)[1].any()


def test_choose_format_edges():
    # 0.99 rounds to 127/128: fits I=1; 0.997 rounds to 128/128: needs I=2.
    assert choose_format([0.99], 8).integer == 1
    assert choose_format([0.997], 8).integer == 2
    # The most negative code is exact: -1 fits I=1, +1 does not.
    assert choose_format([-1.0], 8).integer == 1
    assert choose_format([1.0], 8).integer == 2
    assert choose_format([0.0, 0.0], 8) == FixedFormat(8, 1, True, "RND", "SAT")
    assert choose_format([0.7], 8, headroom=2).integer == choose_format([0.7], 8).integer + 1
    with pytest.raises(ValueError, match="unsigned format cannot hold negative"):
        choose_format([-1.0], 8, signed=False)
    with pytest.raises(ValueError, match="NaN/inf"):
        choose_format([np.nan], 8)


CASES = {
    "relu-same": dict(filters=3, kernel_size=4, strides=2, padding="same", activation="relu"),
    "linear-valid-op": dict(filters=2, kernel_size=3, strides=3, output_padding=1),
    "leaky-dilated-cf": dict(filters=2, kernel_size=3, dilation_rate=2, padding="same", activation="leaky_relu",
                             data_format="channels_first"),
    "relu6-nobias": dict(filters=4, kernel_size=2, strides=2, activation="relu6", use_bias=False),
}


@pytest.mark.parametrize("scale", [1e-3, 1.0, 300.0])
@pytest.mark.parametrize("name", CASES)
def test_calibrated_formats_never_saturate_the_calibration_data(name, scale):
    cfg = LayerConfig(**CASES[name], in_channels=3)
    rng = np.random.default_rng(len(name))
    kernel = rng.normal(0, 0.3, (cfg.kernel_size, cfg.filters, 3))
    bias = rng.normal(0, 0.2, cfg.filters) if cfg.use_bias else None
    x = scale * rng.standard_normal((3, 11, 3) if cfg.data_format == "channels_last" else (3, 3, 11))
    cal = calibrate(cfg, kernel, bias, x, width=8)
    q = Conv1DTransposeQ(cfg, kernel, bias, **cal.layer_kwargs())
    rep = analyze(q, x)
    assert rep.overflow == {"input": 0, "weight": 0, "bias": 0, "accumulator": 0, "output": 0}
    assert rep.within_bound and rep.bound_applies
    f = cal.formats
    assert f["input"].width == f["weight"].width == 8 and f["output"].width == 16
    assert all(s.overflows == 0 and s.source == "calibrated" for s in cal.stages.values())
    if cfg.use_bias:
        assert f["bias"].frac <= f["input"].frac + f["weight"].frac
        assert f["bias"].width <= 16
    else:
        assert "bias" not in f
    # Inputs are signed normal data; relu/relu6 outputs are unsigned.
    assert f["input"].signed
    assert f["output"].signed == (cfg.activation not in ("relu", "relu6"))
    json.dumps(cal.to_dict())


def test_non_negative_inputs_get_an_unsigned_format():
    cfg = LayerConfig(filters=2, kernel_size=3, in_channels=2)
    kernel = np.full((3, 2, 2), 0.25)
    x = np.abs(np.random.default_rng(0).standard_normal((2, 6, 2)))
    cal = calibrate(cfg, kernel, np.zeros(2), x)
    assert not cal.formats["input"].signed and "unsigned" in cal.stages["input"].note
    assert calibrate(cfg, kernel, np.zeros(2), x, policy=CalibrationPolicy(unsigned=False)).formats["input"].signed


def test_bias_below_the_accumulator_lsb_and_capped_fraction():
    cfg = LayerConfig(filters=2, kernel_size=1, in_channels=1)
    x = np.full((1, 4, 1), 100.0)  # ufixed<8,7>: F=1
    kernel = np.full((1, 2, 1), -100.0)  # fixed<8,8>: F=0, so Fa = 1
    cal = calibrate(cfg, kernel, np.array([1e-3, -1e-3]), x)
    assert (str(cal.formats["input"]), str(cal.formats["weight"])) == ("ufixed<8,7,RND,SAT>", "fixed<8,8,RND,SAT>")
    assert cal.formats["bias"].frac == 1 and cal.formats["bias"].width == 2
    assert "below the accumulator" in str(cal) and "rounds to zero" in str(cal)
    cal = calibrate(cfg, np.full((1, 2, 1), 0.5), np.array([0.3, -0.2]), np.full((1, 4, 1), 10.0))
    fa = cal.formats["input"].frac + cal.formats["weight"].frac
    assert cal.formats["bias"].frac == fa and "capped at Fa" in cal.stages["bias"].note


def test_given_formats_are_kept_and_the_rest_calibrated():
    cfg = LayerConfig(filters=2, kernel_size=3, strides=2, in_channels=2)
    rng = np.random.default_rng(1)
    kernel, bias, x = rng.normal(0, 0.5, (3, 2, 2)), rng.normal(0, 1, 2), 4 * rng.standard_normal((2, 8, 2))
    cal = calibrate(cfg, kernel, bias, x, formats={"input": "fixed<6,2,TRN,WRAP>", "output": None})
    assert str(cal.formats["input"]) == "fixed<6,2>" and cal.stages["input"].source == "given"
    assert cal.stages["input"].overflows > 0  # 4-sigma data in [-2, 2): the report says so
    assert cal.stages["output"].source == "calibrated"
    assert cal.formats["weight"].width == 8
    with pytest.raises(ValueError, match=r"formats: unknown key\(s\) \['inputs'\]; allowed: input"):
        calibrate(cfg, kernel, bias, x, formats={"inputs": "fixed<8,3>"})
    with pytest.raises(ValueError, match="formats.weight: cannot parse"):
        calibrate(cfg, kernel, bias, x, formats={"weight": "fixed<8>"})


def test_default_data_is_a_standard_normal_batch_and_says_so():
    cfg = LayerConfig(filters=2, kernel_size=3, in_channels=3, data_format="channels_first")
    x = default_input(cfg, batch=2, length=7, seed=3)
    assert x.shape == (2, 3, 7)
    cal = calibrate(cfg, np.ones((3, 2, 3)) * 0.1, np.zeros(2), batch=2, length=7, seed=3)
    assert cal.default_data and "standard-normal" in cal.data and "standard-normal" in str(cal)
    assert cal.to_dict()["default_data"] is True
    assert cal.stages["input"].count == x.size


def test_policy_widths_headroom_and_errors():
    cfg = LayerConfig(filters=1, kernel_size=2, in_channels=1)
    x = np.linspace(-1.5, 1.5, 20).reshape(1, 20, 1)
    policy = CalibrationPolicy(width=6, output_width=10, bias_width=9, input_headroom=2, rounding="RND_CONV",
                               overflow="SAT_SYM")
    cal = calibrate(cfg, np.array([[[0.5]], [[-0.25]]]), np.array([0.1]), x, policy=policy)
    f = cal.formats
    assert (f["input"].width, f["weight"].width, f["output"].width) == (6, 6, 10)
    assert f["bias"].width <= 9 and f["input"].integer == 3  # 1.5 * 2 needs I=3
    assert all(fmt.rounding == "RND_CONV" and fmt.overflow == "SAT_SYM" for fmt in f.values())
    for kwargs, message in [(dict(width=1), "width must be an integer from 2"),
                            (dict(output_width=80), "output_width must be an integer from 2"),
                            (dict(input_headroom=0.5), "input_headroom must be a finite number >= 1"),
                            (dict(rounding="ROUND"), "unknown quantization mode 'ROUND'")]:
        with pytest.raises(ValueError, match=message):
            CalibrationPolicy(**kwargs)
    with pytest.raises(ValueError, match=r"calibration input has shape \(1, 20, 2\), expected \(batch, length"):
        calibrate(cfg, np.ones((2, 1, 1)), np.zeros(1), np.zeros((1, 20, 2)))
    with pytest.raises(ValueError, match="NaN/inf"):
        calibrate(cfg, np.ones((2, 1, 1)), np.zeros(1), np.full((1, 3, 1), np.inf))


def test_table_activation_output_narrowed_until_its_table_fits():
    """A 16-bit tanh output would need a table of ~85,000 entries: calibration keeps the
    output's integer bits, drops fractional bits until the table has at most
    CALIBRATED_TABLE_ENTRIES entries, and says so; a given output width is kept."""
    from tconv.model.calibrate import CALIBRATED_TABLE_ENTRIES

    rng = np.random.default_rng(0)
    cfg = LayerConfig(filters=3, kernel_size=4, strides=2, padding="same", activation="tanh", in_channels=8)
    kernel, bias, x = rng.normal(0, 0.3, (4, 3, 8)), rng.normal(0, 0.1, 3), rng.uniform(0, 1.5, (4, 32, 8))
    cal = calibrate(cfg, kernel, bias, x, width=8)
    out = cal.formats["output"]
    wide = FixedFormat(16, out.integer, out.signed, out.rounding, out.overflow)
    q = Conv1DTransposeQ(cfg, kernel, bias, **cal.layer_kwargs())
    assert out.width < 16 and q.activation_table.size <= CALIBRATED_TABLE_ENTRIES
    # One more fractional bit would need a larger table: the narrowest narrowing, not more.
    one_more = FixedFormat(out.width + 1, out.integer, out.signed, out.rounding, out.overflow)
    assert Conv1DTransposeQ(cfg, kernel, bias, **{**cal.layer_kwargs(), "output_format": one_more}) \
        .activation_table.size > CALIBRATED_TABLE_ENTRIES
    assert any(f"would need more than {CALIBRATED_TABLE_ENTRIES} entries" in n for n in cal.notes)
    assert str(wide) in str(cal)
    kept = calibrate(cfg, kernel, bias, x, width=8, policy=CalibrationPolicy(output_width=12))
    assert kept.formats["output"].width == 12


@pytest.mark.parametrize("x_scale", [10.0, 0.01])
def test_all_zero_bias_gets_the_same_narrow_format_whatever_the_accumulator(x_scale):
    """An all-zero bias is 2 bits on the accumulator's grid, with a note, whether or not
    the policy's bias width would fit that grid (it used to be 16 bits in one case and
    2 in the other); the header states the bias width as an upper bound."""
    cfg = LayerConfig(filters=2, kernel_size=1, in_channels=1)
    cal = calibrate(cfg, np.full((1, 2, 1), 0.5), np.zeros(2), np.full((1, 4, 1), x_scale))
    fa = cal.formats["input"].frac + cal.formats["weight"].frac
    assert (cal.formats["bias"].width, cal.formats["bias"].frac) == (2, fa)
    assert cal.stages["bias"].note.startswith("all zero")
    assert "bias at most 16 bits" in str(cal).splitlines()[0]
