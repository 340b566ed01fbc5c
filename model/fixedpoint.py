"""Fixed-point formats with the exact semantics of Vitis HLS ``ap_fixed``.

A value is carried as an integer *code* ``c`` (an int64 numpy array); its real
value is ``c * 2**-frac``. The format object holds the scale, never the data.

Conversions follow ``ap_fixed``: the exact value is first rounded to a multiple
of the LSB by the quantization mode, then the overflow mode maps results outside
the representable range. Quantization modes (what happens to the dropped bits):

========== ===============================================================
TRN        toward minus infinity (floor), the default
TRN_ZERO   toward zero
RND        to nearest, ties toward plus infinity
RND_ZERO   to nearest, ties toward zero
RND_MIN_INF to nearest, ties toward minus infinity
RND_INF    to nearest, ties away from zero
RND_CONV   to nearest, ties to even (convergent rounding)
========== ===============================================================

Overflow modes: WRAP (two's-complement wrap-around, the default), SAT (clamp to
the range), SAT_ZERO (overflowing values become 0), SAT_SYM (clamp to the
symmetric range ``[-max, max]`` for signed formats wider than one bit:
``ap_fixed`` maps the most negative code to ``-max`` as well).

``tests/test_ap_fixed.py`` compiles Vitis' own ``ap_fixed`` headers and checks
every mode against them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

__all__ = ["FixedFormat", "QUANTIZATION_MODES", "OVERFLOW_MODES", "MAX_WIDTH"]

QUANTIZATION_MODES = ("TRN", "TRN_ZERO", "RND", "RND_ZERO", "RND_MIN_INF", "RND_INF", "RND_CONV")
OVERFLOW_MODES = ("WRAP", "SAT", "SAT_ZERO", "SAT_SYM")
# Codes live in int64; 62 bits leave room for the sign and for exact shifts.
MAX_WIDTH = 62
MAX_INTEGER = 900

_GRAMMAR = ("fixed<W,I[,Q[,O]]> or ufixed<W,I[,Q[,O]]> (also ap_fixed<W,I,AP_Q,AP_O>), "
            f"with 1 <= W <= {MAX_WIDTH}, |I| <= {MAX_INTEGER}, Q in {{{', '.join(QUANTIZATION_MODES)}}}, "
            f"O in {{{', '.join(OVERFLOW_MODES)}}}")
_PATTERN = re.compile(r"^\s*(ap_)?(u?)fixed\s*<\s*([^<>]*)>\s*$", re.IGNORECASE)


def _round_decision(mode: str, gt_half, eq_half, nonzero, negative, floor_odd):
    """Whether to add one LSB to the floor, from the dropped bits.

    ``gt_half``/``eq_half``/``nonzero`` compare the dropped remainder with half an
    LSB and with zero; ``negative`` is the sign of the exact value. This is the
    single rule table for both float and integer inputs (ap_fixed's
    ``quantization_adjust``).
    """
    if mode == "TRN":
        return np.zeros_like(gt_half)
    if mode == "TRN_ZERO":
        return nonzero & negative
    if mode == "RND":
        return gt_half | eq_half
    if mode == "RND_ZERO":
        return gt_half | (eq_half & negative)
    if mode == "RND_MIN_INF":
        return gt_half
    if mode == "RND_INF":
        return gt_half | (eq_half & ~negative)
    if mode == "RND_CONV":
        return gt_half | (eq_half & floor_odd)
    raise AssertionError(mode)  # modes are validated at construction


# Widths whose scaled values stay below 2**51, where float rounding formulas are exact.
_FAST_FLOAT_WIDTH = 49


def _ties_to_zero(v):
    return np.copysign(np.ceil(np.abs(v) - 0.5), v)


def _ties_away(v):
    return np.copysign(np.floor(np.abs(v) + 0.5), v)


#: Float rounding to an integer by quantization mode (exact for |v| < 2**51).
_ROUND_FLOAT = {
    "TRN": np.floor,
    "TRN_ZERO": np.trunc,
    "RND": lambda v: np.floor(v + 0.5),
    "RND_ZERO": _ties_to_zero,
    "RND_MIN_INF": lambda v: np.ceil(v - 0.5),
    "RND_INF": _ties_away,
    "RND_CONV": np.rint,
}

#: Integer rounding by ``s`` bits, as hardware does it: add a constant to the
#: dropped bits, then shift right (floor). Safe from int64 overflow for |a| <= 2**61.
_ROUND_SHIFT = {
    "TRN": lambda a, s: a >> s,
    "TRN_ZERO": lambda a, s: (a + (a < 0) * np.int64((1 << s) - 1)) >> s,
    "RND": lambda a, s: (a + np.int64(1 << (s - 1))) >> s,
    "RND_ZERO": lambda a, s: (a + np.int64((1 << (s - 1)) - 1) + (a < 0)) >> s,
    "RND_MIN_INF": lambda a, s: (a + np.int64((1 << (s - 1)) - 1)) >> s,
    "RND_INF": lambda a, s: (a + np.int64(1 << (s - 1)) - (a < 0)) >> s,
    "RND_CONV": lambda a, s: (a + np.int64((1 << (s - 1)) - 1) + ((a >> s) & 1)) >> s,
}

#: Modes whose rounding by ``s`` bits adds only a constant before the shift
#: (``_ROUND_SHIFT``), so that it can be done in place.
_ROUND_CONSTANT = {
    "TRN": lambda s: 0,
    "RND": lambda s: 1 << (s - 1),
    "RND_MIN_INF": lambda s: (1 << (s - 1)) - 1,
}


@dataclass(frozen=True)
class FixedFormat:
    """An ``ap_fixed``-style fixed-point format.

    Parameters
    ----------
    width : int
        Total bits W, sign included (1 to ``MAX_WIDTH``).
    integer : int
        Integer bits I, sign included; may be negative or larger than W.
    signed : bool
        ``fixed`` (two's complement) or ``ufixed``; a real bool (numpy's too),
        anything else (``"no"``, 0) is refused.
    rounding : str
        Quantization mode, one of ``QUANTIZATION_MODES``.
    overflow : str
        Overflow mode, one of ``OVERFLOW_MODES``.

    Attributes
    ----------
    frac : int
        Fractional bits F = W - I (may be negative or larger than W).
    lsb : float
        Value of one code step, ``2**-frac``.
    min_code, max_code : int
        Range of the codes.
    """

    width: int
    integer: int
    signed: bool = True
    rounding: str = "TRN"
    overflow: str = "WRAP"

    def __post_init__(self):
        for name in ("width", "integer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"fixed-point {name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if not 1 <= self.width <= MAX_WIDTH:
            raise ValueError(f"fixed-point width must be between 1 and {MAX_WIDTH} bits, got {self.width}")
        if not -MAX_INTEGER <= self.integer <= MAX_INTEGER:
            # Keeps every scale a normal float64 power of two.
            raise ValueError(f"fixed-point integer bits must be between {-MAX_INTEGER} and {MAX_INTEGER}, "
                             f"got {self.integer}")
        if not isinstance(self.signed, (bool, np.bool_)):
            # bool("no") is True: only a real bool says which is meant.
            raise ValueError(f"fixed-point signed must be True or False, got {self.signed!r}")
        object.__setattr__(self, "signed", bool(self.signed))
        rounding = str(self.rounding).upper().removeprefix("AP_")
        overflow = str(self.overflow).upper().removeprefix("AP_")
        if rounding not in QUANTIZATION_MODES:
            raise ValueError(f"unknown quantization mode {self.rounding!r}; "
                             f"allowed: {', '.join(QUANTIZATION_MODES)}")
        if overflow not in OVERFLOW_MODES:
            raise ValueError(f"unknown overflow mode {self.overflow!r}; "
                             f"allowed: {', '.join(OVERFLOW_MODES)}")
        object.__setattr__(self, "rounding", rounding)
        object.__setattr__(self, "overflow", overflow)

    # ------------------------------------------------------------------ text
    @classmethod
    def parse(cls, text: str | FixedFormat) -> FixedFormat:
        """Parse ``fixed<16,6,RND_CONV,SAT>``, ``ufixed<8,0>`` or ``ap_fixed<16,6,AP_RND,AP_SAT>``.

        A ``FixedFormat`` is returned unchanged. Errors show the accepted grammar.
        """
        if isinstance(text, FixedFormat):
            return text
        if not isinstance(text, str):
            raise ValueError(f"a fixed-point format must be a string like 'fixed<8,3,RND,SAT>', "
                             f"got {type(text).__name__} {text!r}")
        match = _PATTERN.match(text)
        if not match:
            raise ValueError(f"cannot parse fixed-point format {text!r}; expected {_GRAMMAR}")
        args = [a.strip() for a in match.group(3).split(",")]
        if not 2 <= len(args) <= 4 or not all(args):
            raise ValueError(f"cannot parse fixed-point format {text!r}; expected {_GRAMMAR}")
        try:
            width, integer = int(args[0]), int(args[1])
        except ValueError:
            raise ValueError(f"cannot parse fixed-point format {text!r}: W and I must be integers; "
                             f"expected {_GRAMMAR}") from None
        rounding = args[2] if len(args) > 2 else "TRN"
        overflow = args[3] if len(args) > 3 else "WRAP"
        try:
            return cls(width, integer, signed=not match.group(2), rounding=rounding, overflow=overflow)
        except ValueError as err:
            raise ValueError(f"invalid fixed-point format {text!r}: {err}") from None

    def __str__(self) -> str:
        args = [str(self.width), str(self.integer)]
        if self.rounding != "TRN" or self.overflow != "WRAP":
            args.append(self.rounding)
        if self.overflow != "WRAP":
            args.append(self.overflow)
        return f"{'' if self.signed else 'u'}fixed<{','.join(args)}>"

    def ap_type(self) -> str:
        """The Vitis HLS spelling, e.g. ``ap_fixed<16,6,AP_RND_CONV,AP_SAT>``."""
        return (f"ap_{'' if self.signed else 'u'}fixed<{self.width},{self.integer},"
                f"AP_{self.rounding},AP_{self.overflow}>")

    # ------------------------------------------------------------ properties
    @property
    def frac(self) -> int:
        return self.width - self.integer

    @property
    def lsb(self) -> float:
        return float(np.ldexp(1.0, -self.frac))

    @property
    def min_code(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_code(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def min_value(self) -> float:
        return float(np.ldexp(float(self.min_code), -self.frac))

    @property
    def max_value(self) -> float:
        return float(np.ldexp(float(self.max_code), -self.frac))

    @property
    def max_rounding_error(self) -> float:
        """Largest |quantized - exact| of the quantization mode, in value units (no overflow)."""
        return self.lsb if self.rounding.startswith("TRN") else self.lsb / 2

    def with_modes(self, rounding: str | None = None, overflow: str | None = None) -> FixedFormat:
        """This format with other quantization/overflow modes."""
        return FixedFormat(self.width, self.integer, self.signed,
                           rounding or self.rounding, overflow or self.overflow)

    # ------------------------------------------------------------ conversion
    def quantize(self, x, *, name: str = "value") -> np.ndarray:
        """Float values to int64 codes, exactly as ``ap_fixed`` converts a double.

        NaN or infinity raises ``ValueError`` (``name`` says which data it was).
        """
        return self._quantize(x, name, flags=False)[0]

    def quantize_with_flags(self, x, *, name: str = "value") -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`quantize`, also returning a bool mask of values that overflowed."""
        return self._quantize(x, name, flags=True)

    def _quantize(self, x, name: str, flags: bool):
        try:
            v = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be numeric to be quantized to {self}") from None
        if not np.isfinite(v).all():
            bad = ~np.isfinite(v)
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{name} holds {int(bad.sum())} NaN/inf value(s) (first at index {where}); "
                             f"only finite values can be quantized to {self}")
        if flags and self.overflow == "WRAP":
            # _scale_exactly keeps only x mod 2**integer under WRAP, which hides most overflows:
            # the flags are those of the same format saturating (same range, same rounding).
            over = self.with_modes(overflow="SAT")._quantize(v, name, flags=True)[1]
            return self._quantize(v, name, flags=False)[0], over
        v = self._scale_exactly(v)  # |v| <= 2**(width + 1)
        if self.width <= _FAST_FLOAT_WIDTH:
            # |v| < 2**52: adding or subtracting one half is exact, so each mode is a
            # one-line float formula, and the range ends are exact floats.
            rounded = _ROUND_FLOAT[self.rounding](v)
            over = (rounded > self.max_code) | (rounded < self.saturation_min) if flags else None
            if self.overflow == "WRAP":
                return self._wrap(rounded.astype(np.int64)), over
            return self._saturate(rounded, self.max_code, self.saturation_min).astype(np.int64), over
        floor = np.floor(v)
        rem = v - floor  # exact, in [0, 1]
        up = _round_decision(self.rounding, rem > 0.5, rem == 0.5, rem != 0, v < 0, np.fmod(floor, 2) != 0)
        rounded = floor + up
        # Compare with powers of two, exact in float64 at any width (max_code
        # itself may not be representable).
        top = np.ldexp(1.0, self.width - 1 if self.signed else self.width)
        over_hi = rounded >= top
        if not self.signed:
            over_lo = rounded < 0
        elif self.saturation_min == self.min_code:
            over_lo = rounded < -top
        else:
            over_lo = rounded <= -top  # SAT_SYM: the most negative code is out of range
        over = over_hi | over_lo
        if self.overflow == "WRAP":
            rounded = np.fmod(rounded, np.ldexp(1.0, self.width))  # exact, |.| < 2**W
            return self._wrap(rounded.astype(np.int64)), over
        return self._saturate_flagged(np.where(over, 0.0, rounded).astype(np.int64), over_hi, over_lo)

    def _scale_exactly(self, x: np.ndarray) -> np.ndarray:
        """``x * 2**frac`` with the same floor, remainder and sign as the exact product.

        Scaling by a power of two is exact in float64 except past its range, so
        values far outside the format are first reduced without changing the
        result: WRAP keeps only ``x mod 2**integer`` (``fmod`` is exact), the
        saturating modes clamp to just outside the range. A product too small
        for float64 keeps its sign, which is all the rounding needs of it.
        """
        if self.overflow == "WRAP":
            x = np.fmod(x, np.ldexp(1.0, self.integer))
        else:
            edge = np.ldexp(1.0, self.integer + 1)
            x = np.clip(x, -edge, edge)
        v = np.ldexp(x, self.frac)
        if self.frac < 0:  # only scaling down can underflow
            v = np.where((v == 0) & (x != 0), np.copysign(np.nextafter(0.0, 1.0), x), v)
        return v

    def dequantize(self, codes) -> np.ndarray:
        """int codes to float64 values (exact for widths up to 53 bits)."""
        return np.ldexp(np.asarray(codes, dtype=np.int64).astype(np.float64), -self.frac)

    def requantize(self, codes, frac: int) -> np.ndarray:
        """Exact integers with ``frac`` fractional bits to codes of this format.

        This is the hardware's requantizer: add a mode-dependent constant to the
        dropped bits, shift right, then apply the overflow mode. ``codes`` must
        be below 2**61 in magnitude.
        """
        return self._requantize(codes, frac, flags=False)[0]

    def requantize_with_flags(self, codes, frac: int) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`requantize`, also returning a bool mask of values that overflowed."""
        return self._requantize(codes, frac, flags=True)

    def requantize_owned(self, codes: np.ndarray, frac: int) -> np.ndarray:
        """:meth:`requantize` that may overwrite ``codes`` (an int64 array the caller owns).

        The modes whose rounding adds a constant (TRN, RND, RND_MIN_INF) with
        SAT, SAT_SYM or WRAP are computed in place, without temporaries (the
        model's forward pass spends most of its post-processing time there);
        every other case is :meth:`requantize`.
        """
        shift = frac - self.frac
        if not (isinstance(codes, np.ndarray) and codes.dtype == np.int64 and 0 < shift <= 62
                and self.rounding in _ROUND_CONSTANT and self.overflow in ("SAT", "SAT_SYM", "WRAP")):
            return self.requantize(codes, frac)
        a = codes
        offset = _ROUND_CONSTANT[self.rounding](shift)
        if offset:
            a += np.int64(offset)
        a >>= np.int64(shift)
        if self.overflow == "WRAP":
            if self.signed:
                half = np.int64(1 << (self.width - 1))
                a += half
                a &= np.int64((1 << self.width) - 1)
                a -= half
            else:
                a &= np.int64((1 << self.width) - 1)
            return a
        return np.clip(a, self.saturation_min, self.max_code, out=a)

    def _requantize(self, codes, frac: int, flags: bool):
        a = np.asarray(codes, dtype=np.int64)
        shift = frac - self.frac
        if shift > 0:
            # |a| <= 2**61, so a shift by 63 already drops every bit but the sign.
            v = _ROUND_SHIFT[self.rounding](a, min(shift, 63))
            over = (v > self.max_code) | (v < self.saturation_min) if flags else None
            if self.overflow == "WRAP":
                return self._wrap(v), over
            return self._saturate(v, self.max_code, self.saturation_min), over
        # No bits are dropped: a left shift, whose overflow is decided before
        # shifting so int64 never overflows.
        k = -shift
        over_hi = a > (self.max_code >> k)
        over_lo = a < -((-self.saturation_min) >> k)  # a * 2**k < low  <=>  a < ceil(low / 2**k)
        if self.overflow == "WRAP":
            if k >= self.width:
                return np.zeros_like(a), over_hi | over_lo
            mask = np.int64((1 << (self.width - k)) - 1)
            return self._wrap((a & mask) << np.int64(k)), over_hi | over_lo
        return self._saturate_flagged(a << np.int64(min(k, 62)), over_hi, over_lo)

    # -------------------------------------------------------------- overflow
    def _wrap(self, v: np.ndarray) -> np.ndarray:
        """Two's-complement wrap-around to ``width`` bits (|v| < 2**62)."""
        if self.signed:
            half = np.int64(1 << (self.width - 1))
            return ((v + half) & np.int64((1 << self.width) - 1)) - half
        return v & np.int64((1 << self.width) - 1)

    def _saturate(self, v: np.ndarray, hi, lo) -> np.ndarray:
        """The saturating overflow modes on exact values ``v`` (ints or integral floats)."""
        if self.overflow == "SAT_ZERO":
            return np.where((v > hi) | (v < lo), 0, v)
        return np.clip(v, lo, hi)  # SAT, and SAT_SYM through ``_low``

    def _saturate_flagged(self, v: np.ndarray, over_hi: np.ndarray, over_lo: np.ndarray):
        """The saturating modes where overflow was decided beforehand; ``v`` is
        only meaningful where neither flag is set."""
        over = over_hi | over_lo
        if self.overflow == "SAT_ZERO":
            return np.where(over, 0, v).astype(np.int64), over
        return np.where(over_hi, self.max_code, np.where(over_lo, self.saturation_min, v)).astype(np.int64), over

    @property
    def saturation_min(self) -> int:
        """Smallest code the overflow mode keeps: ap_fixed's SAT_SYM treats the
        most negative code as an underflow and maps it to ``-max_code`` (its
        ``min | 1``, which for a 1-bit format is the most negative code itself)."""
        if self.overflow == "SAT_SYM" and self.signed and self.width > 1:
            return -self.max_code
        return self.min_code

    def check_codes(self, codes, *, name: str = "codes") -> np.ndarray:
        """Validate integer codes against this format's range; returns them as int64."""
        a = np.asarray(codes)
        if a.dtype.kind not in "iub":
            raise ValueError(f"{name} must be integer codes of {self}, got dtype {a.dtype}")
        a = a.astype(np.int64)
        if a.size and (a.min() < self.min_code or a.max() > self.max_code):
            raise ValueError(f"{name} out of range for {self}: codes must lie in "
                             f"[{self.min_code}, {self.max_code}], got [{a.min()}, {a.max()}]")
        return a
