"""Quantization-error analysis: the measured error never exceeds the analytic bound."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tconv.model import Conv1DTransposeQ, FixedFormat, LayerConfig, analyze, error_bound, sweep
from tconv.model.fixed_activations import FIXED_ACTIVATIONS
from tconv.model.fixedpoint import QUANTIZATION_MODES


@st.composite
def layers(draw):
    strides = draw(st.integers(1, 4))
    dilation = 1 if strides > 1 else draw(st.integers(1, 3))
    padding = draw(st.sampled_from(["valid", "same"]))
    output_padding = draw(st.one_of(st.none(), st.integers(0, strides - 1)))
    cfg = LayerConfig(filters=draw(st.integers(1, 4)), kernel_size=draw(st.integers(1, 6)), strides=strides,
                      padding=padding, output_padding=output_padding, dilation_rate=dilation,
                      activation=draw(st.sampled_from(FIXED_ACTIVATIONS)),
                      use_bias=draw(st.booleans()), in_channels=draw(st.integers(1, 5)),
                      data_format=draw(st.sampled_from(["channels_last", "channels_first"])))
    rnd = st.sampled_from(QUANTIZATION_MODES)
    wx, ix = draw(st.integers(3, 12)), draw(st.integers(1, 4))
    ww = draw(st.integers(3, 12))
    wo = draw(st.integers(6, 20))
    formats = dict(input_format=f"fixed<{wx},{ix},{draw(rnd)},SAT>",
                   weight_format=f"fixed<{ww},1,{draw(rnd)},SAT>",
                   # Wide enough integer part that a random layer rarely saturates.
                   output_format=f"fixed<{wo},{8},{draw(rnd)},SAT>")
    if cfg.use_bias:
        # At most Fa = Fx + Fw fractional bits, as the datapath requires.
        fb = draw(st.integers(0, (wx - ix) + (ww - 1)))
        formats["bias_format"] = f"fixed<{fb + 3},{3},{draw(rnd)},SAT>"
    seed = draw(st.integers(0, 2 ** 31))
    return cfg, formats, seed


def _build(cfg, formats, seed):
    """A layer whose float weights and bias lie inside their formats' ranges."""
    rng = np.random.default_rng(seed)
    wf = FixedFormat.parse(formats["weight_format"])
    kernel = rng.uniform(wf.min_value, wf.max_value, (cfg.kernel_size, cfg.filters, cfg.in_channels))
    bias = None
    if cfg.use_bias:
        bf = FixedFormat.parse(formats["bias_format"])
        bias = rng.uniform(bf.min_value, bf.max_value, cfg.filters)
    return Conv1DTransposeQ(cfg, kernel, bias, **formats)


@settings(max_examples=150, deadline=None)
@given(layers(), st.integers(1, 12))
def test_error_never_exceeds_bound(layer_args, length):
    try:
        q = _build(*layer_args)
    except ValueError as err:  # a table too large for a wide output is refused, and says so
        assert "MAX_TABLE_ENTRIES" in str(err)
        assume(False)
    report = analyze(q, batch=2, length=length, seed=layer_args[2])
    assert report.bound_applies
    assert report.within_bound, str(report)
    assert report.max_abs_error <= report.bound or report.overflow["output"] > 0


def test_bound_is_per_output_and_tight_enough():
    """The bound is not vacuous: on a plain 8-bit layer it is within ~10 LSB of the measured error."""
    cfg = LayerConfig(filters=4, kernel_size=3, strides=2, in_channels=8, activation="relu")
    q = _build(cfg, dict(input_format="fixed<8,2,RND,SAT>", weight_format="fixed<8,1,RND,SAT>",
                         bias_format="fixed<12,4,RND>", output_format="fixed<12,6,RND,SAT>"), 1)
    x = np.random.default_rng(0).uniform(-1.5, 1.5, (3, 10, 8))
    bound = error_bound(q, x)
    assert bound.shape == (3, cfg.output_length(10), 4)
    report = analyze(q, x)
    assert report.within_bound and report.max_abs_error > 0
    assert report.bound < 40 * q.output_format.lsb


def test_report_fields_and_json():
    cfg = LayerConfig(filters=32, kernel_size=3, strides=2, in_channels=16, activation="relu")
    q = _build(cfg, dict(input_format="fixed<8,3,RND,SAT>", weight_format="fixed<8,1,RND,SAT>",
                         bias_format="fixed<16,6>", output_format="fixed<16,6,RND,SAT>"), 2)
    report = analyze(q)
    d = json.loads(report.to_json())
    for key in ("sqnr_db", "max_abs_error", "bound", "rmse", "max_error_lsb", "overflow",
                "per_filter_max_abs_error", "within_bound"):
        assert key in d
    assert len(d["per_filter_max_abs_error"]) == 32
    assert d["max_abs_error"] == max(d["per_filter_max_abs_error"])
    assert 20 < d["sqnr_db"] < 80
    assert "SQNR" in str(report) and "analytic bound" in str(report)


def test_saturation_is_counted_and_excused():
    cfg = LayerConfig(filters=2, kernel_size=3, in_channels=4)
    q = _build(cfg, dict(input_format="fixed<8,3,RND,SAT>", weight_format="fixed<8,1,RND,SAT>",
                         bias_format="fixed<8,3>", output_format="fixed<6,1,RND,SAT>"), 3)
    report = analyze(q, np.full((1, 6, 4), 3.5))
    assert report.overflow["output"] > 0
    assert report.max_abs_error > report.bound  # saturation error is not quantization error
    assert report.within_bound  # ...and is excused where the output overflowed


def test_sweep_rows_and_trend():
    cfg = LayerConfig(filters=4, kernel_size=5, strides=3, in_channels=4, activation="linear")
    q = _build(cfg, dict(input_format="fixed<8,2,RND,SAT>", weight_format="fixed<8,1,RND,SAT>",
                         bias_format="fixed<12,4>", output_format="fixed<16,6,RND,SAT>"), 4)
    rows = sweep(q, widths=[4, 8, 12], vary=("weight", "input"), progress=False, batch=2, length=16)
    assert [(r["stage"], r["width"]) for r in rows] == [("weight", 4), ("weight", 8), ("weight", 12),
                                                        ("input", 4), ("input", 8), ("input", 12)]
    weight = [r["sqnr_db"] for r in rows if r["stage"] == "weight"]
    assert weight[0] < weight[1] < weight[2]
    assert rows[0]["format"] == "fixed<4,1,RND,SAT>"
    with pytest.raises(ValueError, match="cannot vary"):
        sweep(q, vary=("kernel",), progress=False)


def test_sweep_reports_widths_whose_table_is_too_large_as_skipped():
    """A table activation's output widths past the table limit are rows marked skipped (NaN),
    not a failed sweep; the others are measured."""
    from tconv.model.activation_tables import TableTooLarge

    cfg = LayerConfig(filters=2, kernel_size=3, strides=2, activation="softsign", in_channels=3)
    rng = np.random.default_rng(1)
    q = Conv1DTransposeQ(cfg, rng.uniform(-1, 1, (3, 2, 3)), np.zeros(2), input_format="fixed<8,3,RND,SAT>",
                         weight_format="fixed<8,1,RND,SAT>", bias_format="fixed<12,4>",
                         output_format="fixed<8,2,RND,SAT>")
    rows = sweep(q, widths=[6, 8, 20], vary="output", progress=False)
    assert [r["width"] for r in rows] == [6, 8, 20]
    with pytest.raises(TableTooLarge):
        Conv1DTransposeQ(cfg, q.kernel, q.bias, input_format=q.input_format, weight_format=q.weight_format,
                         bias_format=q.bias_format, output_format="fixed<20,2,RND,SAT>")
    assert "skipped" in rows[2] and "65536" in rows[2]["skipped"] and np.isnan(rows[2]["sqnr_db"])
    assert all("skipped" not in r and np.isfinite(r["sqnr_db"]) for r in rows[:2])


@pytest.mark.parametrize("activation,data_format", [("leaky_relu", "channels_first"), ("tanh", "channels_last"),
                                                    ("relu", "channels_last")])
def test_sweep_rows_equal_analyze_of_each_trial_layer(activation, data_format):
    """The sweep shares the float reference, the bound's convolutions and the accumulators
    between its trials; every row must still be exactly what analyze() gives for that trial
    layer on its own (same SQNR, error and bound to the last bit)."""
    from tconv.model import random_input
    from tconv.model.analysis import _trial_formats

    cfg = LayerConfig(filters=3, kernel_size=5, strides=2, padding="same", in_channels=4, activation=activation,
                      data_format=data_format)
    q = _build(cfg, dict(input_format="fixed<8,2,RND,SAT>", weight_format="fixed<8,1,TRN,SAT>",
                         bias_format="fixed<12,4>", output_format="fixed<10,3,RND_CONV,SAT>"), 5)
    x = random_input(q, batch=2, length=9, seed=3)
    rows = sweep(q, x, widths=[3, 6, 9], progress=False)
    assert len(rows) == 9
    for r in rows:
        trial = Conv1DTransposeQ(q.config, q.kernel, q.bias, **_trial_formats(q, r["stage"], r["width"]))
        rep = analyze(trial, x)
        assert (r["sqnr_db"], r["max_abs_error"], r["bound"]) == (rep.sqnr_db, rep.max_abs_error, rep.bound), r
