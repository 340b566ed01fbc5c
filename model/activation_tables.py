"""Tables for the elementwise activations without an exact fixed-point form, and their proof of accuracy.

A table activation maps the exact accumulator ``a`` (``acc_frac = F`` fractional
bits) to an output integer ``r`` with the output format's fractional bits ``fo``,
before the output's overflow mode (which the requantizer then applies as for
every activation):

1. narrow: ``t = a >> drop`` (floor), the table input with ``in_frac = F - drop``
   fractional bits;
2. ``t < lo``: the lower tail, ``t > hi``: the upper tail; each tail is the
   function's asymptote as one constant (``const``), its exact linear form
   ``x + c`` rounded by the output's quantization mode (``linear``), or a value
   just past the output's range (``overflow``, where the function leaves it for
   good);
3. else ``r = entries[t - lo]``: the output's quantization mode applied to the
   float64 function (`tconv.model.activations`) at the middle of the
   accumulator values that narrow to ``t``.

Accuracy, proved when the table is built: for every accumulator value of the
format, ``|r - f(a) * 2**fo|`` is at most the output's own rounding error plus
half an LSB (1 LSB for rounding output modes, 1.5 for truncating ones, which
lose up to 1 LSB to truncation alone). Each table interval is checked at its
two ends and at the function's interior extrema inside it (every table
function is monotone between its listed extrema), each tail at its ends (past
``TAIL_FROM`` every tail's error is monotone). ``in_frac`` is the coarsest that
passes, searched upwards from ``fo - 4``; at ``drop = 0`` every entry is one
accumulator value, so the search always ends, unless the table would exceed
``MAX_TABLE_ENTRIES`` (refused with ``ValueError``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from . import activations as float_activations
from .fixedpoint import _ROUND_FLOAT, _ROUND_SHIFT, MAX_WIDTH, FixedFormat

__all__ = ["TableTooLarge", "MAX_TABLE_ENTRIES", "TAIL_FROM", "ActivationTable", "Tail", "build_table", "critical_points"]

#: The largest table accepted (entries per filter group's ROM).
MAX_TABLE_ENTRIES = 1 << 16
#: Tails start at |x| >= TAIL_FROM: the table always covers (-TAIL_FROM, TAIL_FROM).
TAIL_FROM = 2.0
# Kept below the bound when building, so that float64 evaluation never decides a proof.
_MARGIN = 1e-6

_CONST, _OVER = ("const",), ("overflow",)
_LIN = (("linear", 0), "overflow")
#: Tail forms tried on the lower and upper side of each table activation.
_TAILS = {
    "sigmoid": (_CONST, _CONST), "tanh": (_CONST, _CONST), "hard_sigmoid": (_CONST, _CONST),
    "softsign": (_CONST, _CONST),
    "gelu": (_CONST, _LIN), "silu": (_CONST, _LIN), "mish": (_CONST, _LIN), "hard_silu": (_CONST, _LIN),
    "softplus": (_CONST, _LIN), "sparse_plus": (_CONST, _LIN), "squareplus": (_CONST, _LIN),
    "elu": (_CONST, _LIN), "celu": (_CONST, _LIN), "selu": (_CONST, _OVER),
    "log_sigmoid": (_LIN, _CONST), "exponential": (_CONST, _OVER),
    "tanh_shrink": ((("linear", 1), "overflow"), (("linear", -1), "overflow")),
}
# Activations with an interior extremum (a minimum on the negative side).
_NOT_MONOTONE = ("gelu", "silu", "mish", "hard_silu")


class TableTooLarge(ValueError):
    """The table within the accuracy bound would need more entries than allowed."""


@cache
def critical_points(name: str) -> tuple[float, ...]:
    """The interior extrema of table activation ``name`` (golden-section search on the float function)."""
    if name not in _NOT_MONOTONE:
        return ()
    f = float_activations.get(name)
    lo, hi = -3.0, -0.1  # each of these has one minimum there, and none elsewhere
    g = (math.sqrt(5) - 1) / 2
    for _ in range(200):
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        if f(np.array([a]))[0] < f(np.array([b]))[0]:
            hi = b
        else:
            lo = a
    return ((lo + hi) / 2,)


@dataclass(frozen=True)
class Tail:
    """What a table activation gives past its table: ``kind`` is ``const`` (output integer
    ``value``), ``linear`` (``x + value`` rounded by the output's mode) or ``overflow``
    (output integer ``value``, just past the output's range)."""

    kind: str
    value: int

    def to_dict(self) -> dict:
        return {"kind": self.kind, "value": self.value}


@dataclass(frozen=True)
class ActivationTable:
    """One layer's table for a table activation (see the module docstring).

    Attributes
    ----------
    name : str
    acc_frac, acc_min, acc_max : int
        The accumulator's fractional bits and code range the table was proved on.
    drop, in_frac : int
        Bits the narrowing drops (floor) and the table input's fractional bits ``acc_frac - drop``.
    lo, hi : int
        Narrowed values the table holds (``entries[t - lo]``).
    entries : tuple of int
        Output integers (``out_frac`` fractional bits) before the overflow mode.
    out_frac : int
    rounding : str
        The output's quantization mode (entries and linear tails use it).
    lower, upper : Tail or None
        None: the table reaches the accumulator's end on that side.
    max_error_lsb : float
        Proved worst ``|r - f(acc)|`` over every accumulator value, in output LSB
        (at most ``bound_lsb``; outputs past the output's range are left out).
    bound_lsb : float
        The contract: the output's rounding error plus half an LSB.
    """

    name: str
    acc_frac: int
    acc_min: int
    acc_max: int
    drop: int
    in_frac: int
    lo: int
    hi: int
    entries: tuple[int, ...]
    out_frac: int
    rounding: str
    lower: Tail | None
    upper: Tail | None
    max_error_lsb: float
    bound_lsb: float

    @property
    def size(self) -> int:
        """Number of entries."""
        return len(self.entries)

    @property
    def index_width(self) -> int:
        """Bits of the table index."""
        return max((self.size - 1).bit_length(), 1)

    @property
    def entry_width(self) -> int:
        """Signed bits of the widest entry or tail constant."""
        values = list(self.entries) + [t.value for t in (self.lower, self.upper) if t and t.kind != "linear"]
        return max(_signed_width(v) for v in values)

    def linear_value(self, acc: np.ndarray, offset: int) -> np.ndarray:
        """``x + offset`` rounded to ``out_frac`` by the output's mode (int64; what a linear tail gives)."""
        g = max(self.acc_frac, 0)
        v = (acc << np.int64(g - self.acc_frac)) + np.int64(offset << g)
        shift = g - self.out_frac
        if shift > 0:
            return _ROUND_SHIFT[self.rounding](v, min(shift, 63))
        return v << np.int64(-shift)

    def lookup(self, acc) -> np.ndarray:
        """Output integers (``out_frac`` fractional bits, before the overflow mode) for accumulator codes."""
        acc = np.asarray(acc, dtype=np.int64)
        t = acc >> np.int64(self.drop)
        entries = np.asarray(self.entries, dtype=np.int64)
        r = entries[np.clip(t, self.lo, self.hi) - self.lo]
        for tail, where in ((self.lower, t < self.lo), (self.upper, t > self.hi)):
            if tail is None:
                continue
            value = self.linear_value(acc, tail.value) if tail.kind == "linear" else np.int64(tail.value)
            r = np.where(where, value, r)
        return r

    def describe(self) -> dict:
        """The table's parameters (not its entries) as JSON-ready values."""
        return {"activation": self.name, "input": {"drop_lsbs": self.drop, "frac": self.in_frac,
                                                   "rounding": "TRN", "lo": self.lo, "hi": self.hi},
                "entries": self.size, "entry_width": self.entry_width, "out_frac": self.out_frac,
                "lower_tail": self.lower.to_dict() if self.lower else None,
                "upper_tail": self.upper.to_dict() if self.upper else None,
                "max_error_lsb": self.max_error_lsb, "bound_lsb": self.bound_lsb}

    def to_json(self) -> dict:
        """The whole table as JSON-ready data (`describe` plus the accumulator it was proved
        on and every entry): what a design folder stores, for the model and for other tools."""
        return {**self.describe(), "accumulator": {"frac": self.acc_frac, "min_code": self.acc_min,
                                                   "max_code": self.acc_max},
                "rounding": self.rounding, "values": list(self.entries)}


def _signed_width(v: int) -> int:
    return (v.bit_length() if v >= 0 else (~v).bit_length()) + 1


class _Proof:
    """The float function scaled to output LSBs, and the bound it must meet."""

    def __init__(self, name: str, acc: FixedFormat, out: FixedFormat):
        self.f = float_activations.get(name)
        self.fo = out.frac
        self.out = out
        self.bound = out.max_rounding_error / out.lsb + 0.5
        self.target = self.bound - _MARGIN
        self.round = _ROUND_FLOAT[out.rounding]

    def fx(self, x) -> np.ndarray:
        """The float64 function on ``x`` (any shape, scalars included)."""
        a = np.asarray(x, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            return np.asarray(self.f(a.reshape(-1)), dtype=np.float64).reshape(a.shape)

    def y(self, x) -> np.ndarray:
        """``f(x) * 2**fo`` in float64."""
        return np.ldexp(self.fx(x), self.fo)

    def q(self, x) -> np.ndarray:
        """The output's rounding of ``y(x)`` (output integers before overflow)."""
        return self.round(self.y(x))


def _tail_start(p: _Proof, kind, side: int, far: float) -> tuple[float, int] | None:
    """The innermost ``R`` (``|R| >= TAIL_FROM``) from which tail ``kind`` meets the bound up to ``far``,
    and the tail's value; None if it does not at ``far``."""
    out = p.out
    if kind == "const":
        y_far = float(p.y(far))
        if not math.isfinite(y_far):
            return None
        value = int(p.round(y_far))

        def ok(x):
            return max(abs(value - y_far), abs(value - float(p.y(x)))) <= p.target
    elif kind == "overflow":
        value = out.max_code + 1 if side > 0 else out.saturation_min - 1

        def ok(x):
            y = float(p.y(x))
            return y >= value if side > 0 else y <= value
    else:
        value = kind[1]

        def ok(x):
            gap = math.ldexp(abs(x + value - float(p.fx(x))), p.fo)
            return gap <= 0.5 - _MARGIN
    inner = side * TAIL_FROM
    if not ok(far):
        return None
    if ok(inner):
        return inner, value
    for _ in range(200):  # bisection: ok(far), not ok(inner)
        mid = (inner + far) / 2
        if mid in (inner, far):
            break
        if ok(mid):
            far = mid
        else:
            inner = mid
    return far, value


def build_table(name: str, acc: FixedFormat, out: FixedFormat, *,
                max_entries: int = MAX_TABLE_ENTRIES) -> ActivationTable:
    """The coarsest table for activation ``name`` on accumulator ``acc`` meeting the bound for output ``out``.

    Raises
    ------
    ValueError
        If the table would need more than ``max_entries`` entries, or the
        linear tail more than ``MAX_WIDTH`` bits.
    """
    if name not in _TAILS:
        raise ValueError(f"activation {name!r} has no table form; tables exist for: {', '.join(_TAILS)}")
    p = _Proof(name, acc, out)
    F, amin, amax = acc.frac, acc.min_code, acc.max_code
    xmin, xmax = math.ldexp(amin, -F), math.ldexp(amax, -F)
    tails = []
    for side, far, kinds in ((-1, xmin, _TAILS[name][0]), (1, xmax, _TAILS[name][1])):
        best = None
        if side * far > TAIL_FROM:
            for kind in kinds:
                found = _tail_start(p, kind, side, far)
                if found and (best is None or side * found[0] < side * best[0]):
                    best = (found[0], Tail(kind if isinstance(kind, str) else "linear", found[1]))
        tails.append(best)
    if any(t and t[1].kind == "linear" for t in tails):
        extra = max(out.frac - max(F, 0), 0) + 2  # the tail shifts onto the output's binary point
        if acc.width + extra > MAX_WIDTH:
            raise ValueError(f"the accumulator needs {acc.width} bits (+{extra} for the {name} table's linear "
                             f"tail), more than the {MAX_WIDTH} the fixed-point model supports; narrow the "
                             "input or weight formats, or use an output format with fewer fractional bits")
    # From fo - 4, but never dropping every accumulator bit (drop <= width - 1 keeps int64 shifts exact).
    s = max(min(F, out.frac - 4), F - acc.width + 1)
    while s <= F:  # at s == F every entry is one accumulator value: within the output's rounding
        table = _try(p, name, acc, s, tails, max_entries)
        if table is not None:
            return table
        s += 1
    raise AssertionError(f"no {name} table met the bound, not even one entry per accumulator value")


def _try(p: _Proof, name: str, acc: FixedFormat, s: int, tails, max_entries: int) -> ActivationTable | None:
    """The table with ``s`` input fractional bits if it meets the bound, else None."""
    F, amin, amax = acc.frac, acc.min_code, acc.max_code
    d = F - s
    tmin, tmax = amin >> d, amax >> d
    (low, upp) = tails
    lo = max(tmin, math.floor(math.ldexp(low[0], s))) if low else tmin
    hi = min(tmax, math.ceil(math.ldexp(upp[0], s)) - 1) if upp else tmax
    lower = low[1] if low and lo > tmin else None
    upper = upp[1] if upp and hi < tmax else None
    size = hi - lo + 1
    if size > max_entries:
        raise TableTooLarge(
            f"activation {name!r} needs a table of more than {max_entries} entries (MAX_TABLE_ENTRIES) "
            f"to stay within {p.bound:g} LSB of the output {p.out} on accumulator {acc} "
            f"({size} at {s} input fractional bits); use an output format with fewer fractional "
            "bits or a narrower accumulator range")
    t = np.arange(lo, hi + 1, dtype=np.int64)
    clo = np.maximum(t << np.int64(d), amin)
    chi = np.minimum((t << np.int64(d)) + np.int64((1 << d) - 1), amax)
    x_lo, x_hi = np.ldexp(clo.astype(np.float64), -F), np.ldexp(chi.astype(np.float64), -F)
    x_mid = np.ldexp(clo.astype(np.float64) + chi.astype(np.float64), -F - 1)
    entries = p.q(x_mid)
    y_lo, y_hi = p.y(x_lo), p.y(x_hi)
    y_min, y_max = np.minimum(y_lo, y_hi), np.maximum(y_lo, y_hi)
    for c in critical_points(name):
        k = np.searchsorted(x_hi, c)
        if k < size and x_lo[k] <= c:
            yc = float(p.y(c))
            y_min[k], y_max[k] = min(y_min[k], yc), max(y_max[k], yc)
    # Outputs past the output's range are the overflow mode's, not the table's: leave them out.
    top, bottom = p.out.max_code + 1, p.out.saturation_min - 1
    err = np.maximum(np.abs(entries - y_min), np.abs(entries - y_max))
    counted = ~((entries >= top) & (y_min >= top)) & ~((entries <= bottom) & (y_max <= bottom))
    worst = float(err[counted].max()) if counted.any() else 0.0
    if not (worst <= p.target) or not np.isfinite(entries).all():
        return None
    # Each tail from its first accumulator value (inner) to the accumulator's end (far).
    for tail, inner, far in ((lower, (lo << d) - 1, amin), (upper, (hi + 1) << d, amax)):
        if tail is None:
            continue
        xi, xf = math.ldexp(inner, -F), math.ldexp(far, -F)
        if tail.kind == "const":
            e = max(abs(tail.value - float(p.y(xi))), abs(tail.value - float(p.y(xf))))
        elif tail.kind == "linear":
            e = p.out.max_rounding_error / p.out.lsb + math.ldexp(abs(xi + tail.value - float(p.fx(xi))), p.fo)
        else:
            e = 0.0  # past the output's range
        if not e <= p.target:
            return None
        worst = max(worst, e)
    return ActivationTable(name, F, amin, amax, d, s, lo, hi, tuple(int(v) for v in entries), p.fo,
                           p.out.rounding, lower, upper, worst, p.bound)
