"""The fixed-point activations against the float64 reference (Keras' formulas) and exact rationals.

- exact (piecewise-linear) activations: every accumulator code of small formats,
  against the float function (exact on these dyadic values) and Fractions;
- tables: every entry and every accumulator value of its interval, and every
  accumulator code of the format (the tails beyond the table's range included),
  within the output's rounding error plus half an LSB of the float function;
  wide accumulators on random codes and on every table boundary;
- refusals: non-elementwise activations and absurd tables, with their messages.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from tconv.model import Conv1DTransposeQ, FixedFormat, LayerConfig, analysis
from tconv.model import activations as float_activations
from tconv.model.activation_tables import MAX_TABLE_ENTRIES, build_table, critical_points
from tconv.model.fixed_activations import (
    EXACT_ACTIVATIONS,
    FIXED_ACTIVATIONS,
    LEAKY_SLOPE_CODE,
    LEAKY_SLOPE_FRAC,
    NOT_ELEMENTWISE,
    TABLE_ACTIVATIONS,
    activate_codes,
    activation_extra_bits,
    activation_frac,
)

ACCS = ["fixed<12,4>", "fixed<10,12>", "fixed<14,2>", "fixed<6,-2>", "fixed<16,9>"]
OUTS = ["fixed<8,3,RND,SAT>", "fixed<8,1,RND_CONV,SAT_SYM>", "ufixed<8,2,RND,SAT>", "fixed<10,4,TRN,WRAP>",
        "fixed<6,6,RND_ZERO,SAT_ZERO>"]


def _all_codes(fmt: FixedFormat) -> np.ndarray:
    return np.arange(fmt.min_code, fmt.max_code + 1, dtype=np.int64)


def _f(name, x):
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(float_activations.get(name)(np.asarray(x, dtype=np.float64)), dtype=np.float64)


# ------------------------------------------------------------------ exact
def _fraction_reference(name: str, v: Fraction) -> Fraction:
    half = Fraction(1, 2)
    if name == "linear":
        return v
    if name == "relu":
        return max(v, 0)
    if name == "relu6":
        return min(max(v, 0), 6)
    if name == "leaky_relu":
        return v if v >= 0 else v * Fraction(LEAKY_SLOPE_CODE, 2 ** LEAKY_SLOPE_FRAC)
    if name == "hard_tanh":
        return min(max(v, -1), 1)
    if name == "hard_shrink":
        return v if abs(v) > half else Fraction(0)
    if name == "soft_shrink":
        return v - half if v > half else v + half if v < -half else Fraction(0)
    assert name == "sparse_sigmoid"
    return min(max(v + 1, 0), 2) / 2


@pytest.mark.parametrize("acc", ACCS)
@pytest.mark.parametrize("name", EXACT_ACTIVATIONS)
def test_exact_activations_on_every_code(name, acc):
    fmt = FixedFormat.parse(acc)
    codes = _all_codes(fmt)
    out = activate_codes(name, codes, fmt.frac)
    frac = activation_frac(name, fmt.frac)
    want = [_fraction_reference(name, Fraction(int(a)) / Fraction(2) ** fmt.frac) for a in codes]
    got = [Fraction(int(r)) / Fraction(2) ** frac for r in out]
    assert got == want
    if name != "leaky_relu":  # the float function is exact on these dyadic values
        assert np.array_equal(np.ldexp(out.astype(np.float64), -frac), _f(name, fmt.dequantize(codes)))
    # The result fits the accumulator's width plus the extra bits (signed).
    width = fmt.width + activation_extra_bits(name, fmt.frac, fmt.width)
    assert out.min() >= -(1 << (width - 1)) and out.max() < (1 << (width - 1))


# ------------------------------------------------------------------ tables
def _check_every_code(table, acc: FixedFormat, out: FixedFormat, codes: np.ndarray):
    """|table - f| <= output rounding + 1/2 LSB on ``codes``, outputs past the output's range left out."""
    r = table.lookup(codes).astype(np.float64)
    with np.errstate(over="ignore"):
        y = np.ldexp(_f(table.name, acc.dequantize(codes)), out.frac)
    over = ((r > out.max_code) & (y >= out.max_code + 1)) | ((r < out.saturation_min) & (y <= out.saturation_min - 1))
    err = np.abs(r - y)[~over]
    bound = out.max_rounding_error / out.lsb + 0.5
    assert table.bound_lsb == bound
    assert err.size == 0 or err.max() <= bound, (table.name, float(err.max()), bound)
    # Overflowing outputs overflow in the same direction as the function.
    assert np.all(np.sign(r[over] - out.max_code) == np.sign(y[over] - out.max_code))
    return float(err.max()) if err.size else 0.0


@pytest.mark.parametrize("out", OUTS)
@pytest.mark.parametrize("acc", ACCS)
@pytest.mark.parametrize("name", TABLE_ACTIVATIONS)
def test_table_on_every_accumulator_code(name, acc, out):
    acc, out = FixedFormat.parse(acc), FixedFormat.parse(out)
    table = build_table(name, acc, out)
    worst = _check_every_code(table, acc, out, _all_codes(acc))
    assert worst <= table.max_error_lsb + 1e-9  # the proof's worst case is the worst case
    assert table.size == table.hi - table.lo + 1 == len(table.entries) <= MAX_TABLE_ENTRIES
    assert (table.size - 1).bit_length() <= table.index_width
    assert table.in_frac == acc.frac - table.drop and table.drop >= 0


@pytest.mark.parametrize("out", OUTS[:3])
@pytest.mark.parametrize("name", TABLE_ACTIVATIONS)
def test_every_table_entry_over_its_interval(name, out):
    """Each entry against the float function at every accumulator value narrowing to it."""
    acc, out = FixedFormat.parse("fixed<18,8>"), FixedFormat.parse(out)
    table = build_table(name, acc, out)
    codes = _all_codes(acc)
    t = codes >> table.drop
    inside = (t >= table.lo) & (t <= table.hi)
    _check_every_code(table, acc, out, codes[inside])
    # Every entry is some accumulator value's (no unreachable entry) and read for its interval.
    assert set(np.unique(t[inside] - table.lo)) == set(range(table.size))
    assert np.array_equal(table.lookup(codes[inside]), np.asarray(table.entries)[t[inside] - table.lo])


@pytest.mark.parametrize("out", ["fixed<16,6,RND,SAT>", "fixed<8,3,RND,SAT>", "fixed<12,2,TRN,SAT>"])
@pytest.mark.parametrize("name", TABLE_ACTIVATIONS)
def test_wide_accumulators_on_random_codes_and_every_boundary(name, out):
    acc, out = FixedFormat.parse("fixed<40,14>"), FixedFormat.parse(out)
    try:
        table = build_table(name, acc, out)
    except ValueError as err:
        assert "MAX_TABLE_ENTRIES" in str(err)
        return
    rng = np.random.default_rng(0)
    edges = np.array([table.lo, table.hi + 1], dtype=np.int64) << table.drop
    near = (np.arange(table.lo, table.hi + 2, dtype=np.int64) << table.drop)
    codes = np.concatenate([
        rng.integers(acc.min_code, acc.max_code, 20000, endpoint=True),
        rng.integers(-(20 << acc.frac), 20 << acc.frac, 20000),       # the table's range and its tails
        near, near - 1, edges - 2, edges + 1, [acc.min_code, acc.max_code, 0, -1]])
    codes = np.clip(codes, acc.min_code, acc.max_code)
    _check_every_code(table, acc, out, codes)


def test_critical_points_are_minima():
    for name in TABLE_ACTIVATIONS:
        for c in critical_points(name):
            fc = _f(name, [c])[0]
            assert fc <= _f(name, [c - 1e-3])[0] and fc <= _f(name, [c + 1e-3])[0]
    assert critical_points("hard_silu") == pytest.approx((-1.5,), abs=1e-6)


def test_absurd_tables_are_refused():
    acc, out = FixedFormat.parse("fixed<24,12>"), FixedFormat.parse("fixed<16,6,RND,SAT>")
    with pytest.raises(ValueError, match=r"activation 'softsign' needs a table of more than 65536 entries "
                                         r"\(MAX_TABLE_ENTRIES\)"):
        build_table("softsign", acc, out)
    with pytest.raises(ValueError, match="needs a table of more than 100 entries"):
        build_table("tanh", acc, out, max_entries=100)


def _layer(activation, out="fixed<8,3,RND,SAT>"):
    cfg = LayerConfig(filters=2, kernel_size=3, strides=2, in_channels=3, activation=activation)
    rng = np.random.default_rng(1)
    return Conv1DTransposeQ(cfg, rng.uniform(-1, 1, (3, 2, 3)), rng.uniform(-1, 1, 2), input_format="fixed<8,3>",
                            weight_format="fixed<8,1>", bias_format="fixed<12,4>", output_format=out)


@pytest.mark.parametrize("name", NOT_ELEMENTWISE)
def test_not_elementwise_refused_with_the_supported_list(name):
    with pytest.raises(ValueError, match=f"activation '{name}' is not elementwise .* supports: "
                                         + ", ".join(FIXED_ACTIVATIONS)):
        _layer(name)


@pytest.mark.parametrize("name", TABLE_ACTIVATIONS)
def test_layer_uses_the_table(name):
    q = _layer(name)
    assert q.activation_table is not None and q.activation_frac == q.output_format.frac
    x = np.random.default_rng(2).integers(-128, 128, (2, 9, 3))
    st = q.stages(x)
    assert np.array_equal(st.activated, q.activation_table.lookup(st.accumulator))
    assert np.array_equal(st.output, q.output_format.requantize(st.activated, q.output_format.frac))
    assert np.array_equal(q.forward_int(x), st.output)
    rep = analysis.analyze(q, seed=3)
    assert rep.within_bound


def test_lipschitz_constants_bound_the_slopes():
    x = np.linspace(-40, 40, 800001)
    for name in FIXED_ACTIVATIONS:
        if name in ("exponential", "hard_shrink"):
            continue  # local (exp), and a jump handled on its own
        y = _f(name, x)
        slope = np.abs(np.diff(y) / np.diff(x))
        assert slope.max() <= analysis.LIPSCHITZ[name] * (1 + 1e-9), name  # float noise of the differences


def test_readme_table_sizes_are_the_codes():
    """The README's table sizes, regenerated: the keras-doc layer with an 8-bit and a 16-bit output."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    rows = re.findall(r"^\| ([a-z_]+) \| ([^|]+) \| ([^|]+) \|$", text, re.M)
    rows = {name: cells for name, *cells in rows if name in TABLE_ACTIVATIONS}
    assert set(rows) == set(TABLE_ACTIVATIONS)
    header = re.search(r"^\| activation \| `([^`]+)` \| `([^`]+)` \|$", text, re.M).groups()
    from tconv.flow.bench import BENCH_LAYERS

    shape = {k: v for k, v in BENCH_LAYERS["keras-doc"].items() if k != "L"}
    cfg = LayerConfig(**shape)
    q = Conv1DTransposeQ(cfg, np.zeros((cfg.kernel_size, cfg.filters, cfg.in_channels)), np.zeros(cfg.filters),
                         input_format="fixed<8,3,RND,SAT>",
                         weight_format="fixed<8,1,RND,SAT>", bias_format="fixed<16,6>", output_format=header[0])
    assert f"accumulator `{q.accumulator_format}`" in " ".join(text.split())
    assert f"over the {MAX_TABLE_ENTRIES}-entry limit" in " ".join(text.split())
    for name, cells in rows.items():
        for out, cell in zip(header, cells):
            try:
                t = build_table(name, q.accumulator_format, FixedFormat.parse(out))
                want = f"{t.size} x {t.entry_width} bits"
            except ValueError:
                want = "refused"
            assert cell.strip() == want, (name, out)
