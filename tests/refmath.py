"""Exact rational references for ap_fixed rounding and overflow, shared by the tests.

Each mode is spelled from its definition on Python Fractions, sharing no code or
trick with tconv's vectorized implementation.
"""

from __future__ import annotations

import math
from fractions import Fraction

from tconv.model.fixedpoint import FixedFormat


def ref_round(v: Fraction, mode: str) -> int:
    """Round an exact rational to an integer by the ap_fixed quantization mode's definition."""
    half = Fraction(1, 2)
    if mode == "TRN":
        return math.floor(v)
    if mode == "TRN_ZERO":
        return math.trunc(v)
    if mode == "RND":
        return math.floor(v + half)
    if mode == "RND_MIN_INF":
        return math.ceil(v - half)
    if mode == "RND_ZERO":
        return math.ceil(v - half) if v > 0 else math.floor(v + half)
    if mode == "RND_INF":
        return math.floor(v + half) if v > 0 else math.ceil(v - half)
    if mode == "RND_CONV":
        return round(v)  # Python rounds Fractions half to even
    raise ValueError(mode)


def ref_overflow(r: int, fmt: FixedFormat) -> int:
    lo, hi = fmt.min_code, fmt.max_code
    if fmt.overflow == "WRAP":
        return (r - lo) % (1 << fmt.width) + lo
    if fmt.overflow == "SAT_ZERO":
        return r if lo <= r <= hi else 0
    if fmt.overflow == "SAT_SYM" and fmt.signed and fmt.width > 1:
        lo = -hi  # ap_fixed: underflow gives min | 1
    return min(max(r, lo), hi)


def ref_quantize(x: float, fmt: FixedFormat) -> int:
    v = Fraction(x) * Fraction(2) ** fmt.frac
    return ref_overflow(ref_round(v, fmt.rounding), fmt)


def ref_quantize_fraction(v: Fraction, fmt: FixedFormat) -> int:
    """An exact rational value to a code of ``fmt``."""
    return ref_overflow(ref_round(v * Fraction(2) ** fmt.frac, fmt.rounding), fmt)
