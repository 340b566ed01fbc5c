"""FixedFormat against two independent references: apytypes and exact rational arithmetic.

The rational reference below spells out each ap_fixed mode from its definition
(nearest with a tie rule, or a direction), on Python Fractions, so it shares no
code or trick with the vectorized implementation.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from refmath import ref_overflow, ref_quantize, ref_round

from tconv.model.fixedpoint import MAX_WIDTH, OVERFLOW_MODES, QUANTIZATION_MODES, FixedFormat

apy = pytest.importorskip("apytypes", reason="apytypes is the independent check: pip install -e '.[test]'")


ALL_MODES = [(q, o) for q in QUANTIZATION_MODES for o in OVERFLOW_MODES]
APY_ROUNDING = {
    "TRN": "TO_NEG", "TRN_ZERO": "TO_ZERO", "RND": "TIES_POS", "RND_ZERO": "TIES_ZERO",
    "RND_MIN_INF": "TIES_NEG", "RND_INF": "TIES_AWAY", "RND_CONV": "TIES_EVEN",
}


def _test_values(rng, fmt: FixedFormat, n: int = 400) -> np.ndarray:
    """Random values plus exact ties, range edges and far-out values for ``fmt``."""
    lsb = fmt.lsb
    span = 2.0 ** fmt.integer
    ties = (rng.integers(-2 ** (fmt.width + 1), 2 ** (fmt.width + 1), size=n // 4) + 0.5) * lsb
    fine = rng.integers(-2 ** (fmt.width + 3), 2 ** (fmt.width + 3), size=n // 4) * (lsb / 16)
    wide = rng.uniform(-3 * span, 3 * span, size=n // 4)
    edges = np.array([fmt.min_value, fmt.max_value, fmt.min_value - lsb / 2, fmt.max_value + lsb / 2,
                      fmt.max_value + lsb, fmt.min_value - lsb, 0.0, -0.0, lsb / 2, -lsb / 2,
                      1e30, -1e30, 1e-30, -1e-30, 3 * span, -3 * span])
    return np.concatenate([ties, fine, wide, edges])


FORMATS = [(w, i, s) for (w, i) in [(8, 3), (4, 2), (6, 0), (5, -2), (5, 8), (1, 1), (16, 6), (12, 12)]
           for s in (True, False)]


@pytest.mark.parametrize("rounding,overflow", ALL_MODES)
@pytest.mark.parametrize("width,integer,signed", FORMATS)
def test_quantize_matches_rational_reference(width, integer, signed, rounding, overflow):
    fmt = FixedFormat(width, integer, signed, rounding, overflow)
    rng = np.random.default_rng(width * 1000 + integer)
    x = _test_values(rng, fmt)
    got = fmt.quantize(x)
    want = np.array([ref_quantize(float(v), fmt) for v in x])
    np.testing.assert_array_equal(got, want, err_msg=f"{fmt} on {x}")
    assert got.dtype == np.int64
    assert got.min() >= fmt.min_code and got.max() <= fmt.max_code


@pytest.mark.parametrize("rounding", QUANTIZATION_MODES)
@pytest.mark.parametrize("overflow", ["WRAP", "SAT"])
@pytest.mark.parametrize("width,integer", [(8, 3), (4, 2), (6, 0), (5, -2), (5, 8), (16, 6), (2, 1)])
def test_quantize_matches_apytypes(width, integer, rounding, overflow):
    """apytypes (signed two's complement) agrees on every mode it shares with ap_fixed."""
    fmt = FixedFormat(width, integer, True, rounding, overflow)
    rng = np.random.default_rng(7 + width)
    # Values exact in apytypes' 64 fractional bits, well inside its 24 integer bits.
    x = np.round(_test_values(rng, fmt)[:-6] * 2.0 ** 30) / 2.0 ** 30
    x = x[np.abs(x) < 2.0 ** 20]
    src = apy.APyFixedArray.from_float(x, int_bits=24, frac_bits=64)
    dst = src.cast(int_bits=integer, frac_bits=width - integer,
                   quantization=getattr(apy.QuantizationMode, APY_ROUNDING[rounding]),
                   overflow=getattr(apy.OverflowMode, overflow))
    bits = np.asarray(dst.to_bits(), dtype=np.int64)
    want = np.where(bits >= 1 << (width - 1), bits - (1 << width), bits)
    np.testing.assert_array_equal(fmt.quantize(x), want)


@pytest.mark.parametrize("rounding,overflow", ALL_MODES)
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("src_frac,dst", [(7, (6, 2)), (3, (8, 4)), (0, (4, 6)), (12, (5, -1)), (64, (8, 0)),
                                          (2, (3, 3)), (-2, (6, 4)), (70, (4, 2))])
def test_requantize_integer_path_matches_reference(src_frac, dst, signed, rounding, overflow):
    """The hardware's integer requantizer equals the exact rational conversion."""
    fmt = FixedFormat(dst[0], dst[1], signed, rounding, overflow)
    rng = np.random.default_rng(src_frac + 100)
    a = np.concatenate([rng.integers(-2 ** 20, 2 ** 20, 300), rng.integers(-300, 300, 200),
                        [0, 1, -1, 2 ** 61 - 1, -2 ** 61, 2 ** 40, -(2 ** 40)]]).astype(np.int64)
    got = fmt.requantize(a, src_frac)
    want = [ref_overflow(ref_round(Fraction(int(v)) / Fraction(2) ** src_frac * Fraction(2) ** fmt.frac,
                                   rounding), fmt) for v in a]
    np.testing.assert_array_equal(got, np.array(want))
    # The in-place variant the model's forward pass uses gives the same codes.
    np.testing.assert_array_equal(fmt.requantize_owned(a.copy(), src_frac), np.array(want))


@settings(max_examples=300, deadline=None)
@given(x=st.floats(allow_nan=False, allow_infinity=False, width=64),
       width=st.integers(1, 40), integer=st.integers(-60, 80), signed=st.booleans(),
       rounding=st.sampled_from(QUANTIZATION_MODES), overflow=st.sampled_from(OVERFLOW_MODES))
def test_quantize_any_double(x, width, integer, signed, rounding, overflow):
    fmt = FixedFormat(width, integer, signed, rounding, overflow)
    assert fmt.quantize(np.array([x]))[0] == ref_quantize(x, fmt)


def test_large_formats_stay_exact():
    fmt = FixedFormat(MAX_WIDTH, 40, True, "RND_CONV", "SAT")
    x = np.array([2.0 ** 38 + 2.0 ** -21 * 3, -(2.0 ** 39), 2.0 ** 39, 1e20, -1e20])
    want = [ref_quantize(float(v), fmt) for v in x]
    np.testing.assert_array_equal(fmt.quantize(x), want)


@pytest.mark.parametrize("rounding,overflow", ALL_MODES)
def test_extreme_doubles(rounding, overflow):
    """Subnormals, the largest doubles and values far outside the range."""
    x = [5e-324, -5e-324, 2.2e-308, -2.2e-308, 1.7976931348623157e308, -1.7976931348623157e308,
         2.0 ** 60 + 2.0 ** 8, -(2.0 ** 60) - 2.0 ** 7 * 3]
    for fmt in (FixedFormat(8, 0, True, rounding, overflow), FixedFormat(8, -20, False, rounding, overflow),
                FixedFormat(20, 40, True, rounding, overflow)):
        np.testing.assert_array_equal(fmt.quantize(x), [ref_quantize(v, fmt) for v in x], err_msg=str(fmt))


def test_dequantize_inverts_quantize_on_codes():
    fmt = FixedFormat.parse("fixed<10,3,RND,SAT>")
    codes = np.arange(fmt.min_code, fmt.max_code + 1)
    np.testing.assert_array_equal(fmt.quantize(fmt.dequantize(codes)), codes)


def test_overflow_flags():
    fmt = FixedFormat.parse("fixed<4,2,TRN,SAT_SYM>")
    codes, over = fmt.quantize_with_flags([-2.0, -1.75, 1.75, 1.8, 2.0, 0.0])
    assert codes.tolist() == [-7, -7, 7, 7, 7, 0]
    assert over.tolist() == [True, False, False, False, True, False]


@pytest.mark.parametrize("text,expected", [
    ("fixed<16,6>", FixedFormat(16, 6)),
    ("fixed<16,6,RND_CONV,SAT>", FixedFormat(16, 6, True, "RND_CONV", "SAT")),
    ("ufixed<8,0,RND>", FixedFormat(8, 0, False, "RND")),
    ("ap_fixed<16,6,AP_RND_CONV,AP_SAT>", FixedFormat(16, 6, True, "RND_CONV", "SAT")),
    ("ap_ufixed<8, -2, AP_TRN_ZERO, AP_SAT_SYM>", FixedFormat(8, -2, False, "TRN_ZERO", "SAT_SYM")),
    (" fixed < 4 , 10 , rnd_inf , sat_zero > ", FixedFormat(4, 10, True, "RND_INF", "SAT_ZERO")),
])
def test_parse(text, expected):
    fmt = FixedFormat.parse(text)
    assert fmt == expected
    assert FixedFormat.parse(str(fmt)) == fmt
    assert FixedFormat.parse(fmt.ap_type()) == fmt


def test_str_is_canonical():
    assert str(FixedFormat.parse("ap_fixed<8,3>")) == "fixed<8,3>"
    assert str(FixedFormat.parse("fixed<8,3,RND>")) == "fixed<8,3,RND>"
    assert str(FixedFormat.parse("fixed<8,3,TRN,SAT>")) == "fixed<8,3,TRN,SAT>"
    assert FixedFormat.parse("fixed<8,3>").frac == 5


@pytest.mark.parametrize("text,fragment", [
    ("fixed<16>", "expected fixed<W,I"),
    ("fixed<16,6,RND,SAT,0,1>", "expected fixed<W,I"),
    ("float<16,6>", "expected fixed<W,I"),
    ("fixed<a,6>", "W and I must be integers"),
    ("fixed<0,6>", "between 1 and 62"),
    ("fixed<99,6>", "between 1 and 62"),
    ("fixed<8,3,ROUND>", "unknown quantization mode 'ROUND'"),
    ("fixed<8,3,RND,CLAMP>", "unknown overflow mode 'CLAMP'"),
    ("", "expected fixed<W,I"),
])
def test_parse_errors_name_the_problem_and_grammar(text, fragment):
    with pytest.raises(ValueError, match="fixed") as info:
        FixedFormat.parse(text)
    assert fragment in str(info.value)


def test_nan_and_inf_are_refused_with_location():
    fmt = FixedFormat.parse("fixed<8,3>")
    with pytest.raises(ValueError, match=r"input holds 2 NaN/inf value\(s\) \(first at index \(1,\)\)"):
        fmt.quantize([0.0, np.nan, np.inf], name="input")


def test_check_codes():
    fmt = FixedFormat.parse("ufixed<4,4>")
    assert fmt.check_codes([0, 15]).tolist() == [0, 15]
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 15\], got \[0, 16\]"):
        fmt.check_codes([0, 16])
    with pytest.raises(ValueError, match="integer codes"):
        fmt.check_codes([0.5])
