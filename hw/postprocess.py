"""Activation and requantization of exact accumulator values, as `tconv.model` computes them.

All are fixed-latency pipelines without handshake: the caller carries its own
valid bits alongside. Their numpy models are the golden model's own functions
(`Conv1DTransposeQ.activate`, `FixedFormat.requantize`,
`ActivationTable.lookup`); the tests compare against those.

`PostProcess` is the whole step from the merged accumulator to the output code
for every activation the fixed-point model computes, in 3 register stages:
exact ones as `Activation` (1) + `Requantize` (2), table ones as narrow/index
(1), table ROM (2), tail or table (3); ``linear`` in 2 (its `Activation` is the
identity, without a register: `tconv.hw.schedule.postprocess_stages`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tconv.model.fixed_activations import (
    ACTIVATIONS,
    EXACT_ACTIVATIONS,
    LEAKY_SLOPE_CODE,
    LEAKY_SLOPE_FRAC,
    NOT_ELEMENTWISE,
    TABLE_ACTIVATIONS,
    activation_extra_bits,
    activation_frac,
    check_fixed_activation,
)

from .lookup import lookup
from .ram import BlockRam
from .schedule import postprocess_stages

__all__ = ["LUT_TABLE_ENTRIES", "table_codes", "Activation", "PostProcess", "Requantize", "activation_width", "check_activation", "Narrowing",
           "narrowing", "narrow"]


def check_activation(name: str) -> None:
    """Refuse an activation the generated layer cannot build (`ACTIVATIONS`: every elementwise one)."""
    if name in ACTIVATIONS:
        return
    why = ("is not elementwise (it mixes the outputs of a step), so it has no fixed-point form"
           if name in NOT_ELEMENTWISE else "is not supported in hardware")
    raise ValueError(f"layer.activation {name!r} {why}; supported in hardware: {', '.join(ACTIVATIONS)}")


#: Tables up to this many entries are LUT ROMs (a mux tree); larger ones are block RAM.
LUT_TABLE_ENTRIES = 256


def table_codes(values, fmt) -> np.ndarray:
    """Output codes (unsigned bits, two's complement) of output integers ``values`` by ``fmt``'s overflow mode."""
    ints = fmt.requantize(np.asarray(values, dtype=np.int64), fmt.frac)
    return ints & np.int64((1 << fmt.width) - 1)


def activation_width(name: str, acc_width: int, acc_frac: int) -> int:
    """Signed width that holds every activation result of a ``acc_width``-bit accumulator."""
    return acc_width + activation_extra_bits(name, acc_frac, acc_width)


@dataclass(frozen=True)
class Narrowing:
    """Which bits of the accumulator and of the activation result the output can depend on.

    A truncating (TRN) output never reads the fractional bits it drops, and a
    wrapping (WRAP) output never reads bits above its width; registers that kept
    them would hold bits nobody reads. The accumulator register keeps bits
    ``[acc_lo, acc_hi)`` (``acc_hi`` None: up to the top) plus the sign when
    ``acc_sign``; the activation register drops ``act_drop`` more low bits and
    keeps ``act_keep`` bits (None: all) plus the sign when ``act_sign``. Every
    choice is exact: the activations commute with these floor and modulo
    operations on the bits kept (relu6 only for a floor by at most ``Fa`` bits).
    """

    acc_lo: int
    acc_hi: int | None
    acc_sign: bool
    act_drop: int
    act_keep: int | None
    act_sign: bool


def narrowing(name: str, acc_frac: int, fmt, table=None) -> Narrowing:
    """The `Narrowing` for activation ``name`` on an accumulator with ``acc_frac``
    fractional bits, requantized to ``fmt`` (a table activation: by ``table``, its
    `ActivationTable`; without it the whole accumulator is kept)."""
    if name in TABLE_ACTIVATIONS:
        # The table reads the bits above its drop; a linear tail rounds on the lower
        # ones too, except by truncation (TRN), which never reads the bits the output drops.
        lo = 0
        if table is not None:
            lo = table.drop
            if any(t and t.kind == "linear" for t in (table.lower, table.upper)):
                lo = min(lo, max(acc_frac - fmt.frac, 0)) if fmt.rounding == "TRN" else 0
        return Narrowing(lo, None, True, 0, None, False)
    act_frac = activation_frac(name, acc_frac)
    r = act_frac - fmt.frac  # bits the requantizer drops (negative: shifts left)
    low = r if (fmt.rounding == "TRN" and r > 0) else 0
    wrap = fmt.overflow == "WRAP"
    top = max(fmt.width + r, low + 1) if wrap else None
    # These modes round by the sign, but only where the requantizer drops bits.
    sign_mode = r > 0 and fmt.rounding in ("TRN_ZERO", "RND_ZERO", "RND_INF")
    if name in ("linear", "relu"):
        lo, hi, sign = low, top, sign_mode or name == "relu"
    elif name == "relu6":
        lo, hi, sign = (min(low, acc_frac) if acc_frac >= 0 else 0), None, True
    elif name == "leaky_relu":  # the negative branch multiplies, so every low bit matters
        lo, hi, sign = 0, top, True
    else:  # clipping and shrinking: every bit may decide a comparison
        lo, hi, sign = 0, None, True
    drop = low - (act_frac - activation_frac(name, acc_frac - lo))
    keep = top - low if wrap else None
    return Narrowing(lo, hi, sign, drop, keep, sign_mode)


def _signed_width(lo: int, hi: int) -> int:
    """Fewest two's-complement bits holding every integer in [lo, hi]."""
    return max((lo if lo >= 0 else ~lo).bit_length(), (hi if hi >= 0 else ~hi).bit_length()) + 1


def narrow(value, lo: int, hi: int | None, sign: bool):
    """Bits ``[lo, hi)`` of ``value`` (and its sign bit on top when ``sign``), as a signed value."""
    if hi is None or hi >= len(value) - int(sign):
        return value[lo:].as_signed()
    bits = value[lo:hi]
    return (Cat(bits, value[-1]) if sign else bits).as_signed()


class Activation(wiring.Component):
    """One-cycle activation on exact accumulator codes.

    Parameters
    ----------
    name : str
        One of ``EXACT_ACTIVATIONS`` (linear, relu, relu6, leaky_relu, hard_tanh,
        hard_shrink, soft_shrink, sparse_sigmoid).
    acc_width, acc_frac : int
        Signed accumulator width and fractional bits ``Fa``.
    drop_lsbs : int
        Fractional bits to drop (floor) before the output register: what a
        truncating (TRN) requantizer would drop anyway, so no register keeps
        bits nobody reads.
    keep_bits, keep_sign : int or None, bool
        Keep only the low ``keep_bits`` bits (and the sign) of the result: all a
        wrapping (WRAP) requantizer reads (see `Narrowing`).
    registered : bool
        Register ``o`` (default); False: ``o`` is combinational (``PostProcess``
        uses that for ``linear``, whose result is its input's bits).

    Members
    -------
    i : In(signed(acc_width))
    o : Out(signed(out_width))
        Registered (unless ``registered=False``); ``out_frac =
        activation_frac(name, acc_frac) - drop_lsbs`` fractional bits.
    """

    def __init__(self, name: str, *, acc_width: int, acc_frac: int, drop_lsbs: int = 0,
                 keep_bits: int | None = None, keep_sign: bool = True, registered: bool = True):
        if name not in EXACT_ACTIVATIONS:
            raise ValueError(f"activation {name!r} has no exact form; exact: {', '.join(EXACT_ACTIVATIONS)}")
        self._name = name
        self._acc_frac = acc_frac
        self._drop = drop_lsbs
        self.out_frac = activation_frac(name, acc_frac) - drop_lsbs
        full = max(activation_width(name, acc_width, acc_frac) - drop_lsbs, 1)
        if keep_bits is not None and keep_bits + int(keep_sign) >= full:
            keep_bits = None
        self._keep, self._keep_sign = keep_bits, keep_sign
        self._registered = registered
        self.out_width = full if keep_bits is None else keep_bits + int(keep_sign)
        super().__init__({"i": In(signed(acc_width)), "o": Out(signed(self.out_width))})

    def elaborate(self, platform):
        m = Module()
        v = self.i
        if self._name == "linear":
            result = v
        elif self._name == "relu":
            result = Mux(v[-1], 0, v)
        elif self._name == "relu6":
            shifted = v << max(-self._acc_frac, 0)  # 6 must be representable
            six = 6 << max(self._acc_frac, 0)
            result = Mux(shifted[-1], 0, Mux(shifted > six, six, shifted))
        elif self._name == "leaky_relu":
            result = Mux(v[-1], v * LEAKY_SLOPE_CODE, v << LEAKY_SLOPE_FRAC)
        else:
            f = self._acc_frac
            g = max(f, 1 if self._name in ("hard_shrink", "soft_shrink") else 0)
            a = v << (g - f)  # the constants 1 and 0.5 are codes
            one, half = 1 << g, (1 << (g - 1)) if g else 0
            if self._name == "hard_tanh":
                result = Mux(a > one, one, Mux(a < -one, -one, a))
            elif self._name == "hard_shrink":
                result = Mux((a > half) | (a < -half), a, 0)
            elif self._name == "soft_shrink":
                result = Mux(a > half, a - half, Mux(a < -half, a + half, 0))
            else:  # sparse_sigmoid: clip(x + 1, 0, 2), halved by one more fractional bit
                lo_a, hi_a = -(1 << (len(v) - 1)) << (g - f), ((1 << (len(v) - 1)) - 1) << (g - f)
                b = Signal(signed(_signed_width(lo_a + one, hi_a + one)), name="sparse_sigmoid_x1")
                m.d.comb += b.eq(a + one)
                result = Mux(b[-1], 0, Mux(b > 2 * one, 2 * one, b))
        if self._drop:
            result = result.as_signed() >> self._drop
        if self._keep is not None:
            result = narrow(result, 0, self._keep, self._keep_sign)
        if self._registered:
            m.d.sync += self.o.eq(result)
        else:
            m.d.comb += self.o.eq(result)
        return m


class Requantize(wiring.Component):
    """Two-cycle requantization of exact values to an output format (``ap_fixed`` rules).

    Stage 1 drops the fractional bits the output does not keep and rounds by the
    format's quantization mode; stage 2 applies its overflow mode.

    Parameters
    ----------
    in_width, in_frac : int
        Signed input width and fractional bits.
    fmt : FixedFormat
        Output format (width, frac, signed, rounding, overflow).

    Members
    -------
    i : In(signed(in_width))
    o : Out(unsigned(fmt.width))
        The output code's bits (two's complement for signed formats).
    """

    def __init__(self, fmt, *, in_width: int, in_frac: int):
        self._fmt = fmt
        self._in_width = in_width
        self._shift = in_frac - fmt.frac
        super().__init__({"i": In(signed(in_width)), "o": Out(unsigned(fmt.width))})

    def elaborate(self, platform):
        m = Module()
        rounded, over = _round(m, self.i, self._in_width, self._shift, self._fmt, flags=True)
        _overflow(m, rounded, self._fmt, self.o, over)
        return m


def _round(m, v, w: int, shift: int, fmt, name: str = "rounded", tight: bool = False, flags: bool = False):
    """Register ``v`` (signed, ``w`` bits) dropping ``shift`` bits by ``fmt``'s quantization mode
    (shifting left for a negative ``shift``); returns the register, before the overflow mode.

    ``tight``: extend ``v`` only where the shift needs it (a ``v`` driven by logic
    in this module must not get a copy of its own sign bit, which Verilator reads
    as a combinational loop, UNOPTFLAT).

    ``flags``: return ``(register, over)`` instead, ``over`` the pair
    ``(rounded > max_code, rounded < saturation_min)`` for `_overflow` (None for WRAP),
    each a function of flags registered beside the sum and of the sum's bit ``k``
    (`_overflow_flags`), so that the overflow stage starts at flip-flops (the
    compares behind the sum were a speed-6 critical path of the 64-PE layer)."""
    up = Const(0, 1)
    # The register keeps the output's bits only when WRAP drops the others or the
    # overflow flags carry what they would tell (with the bit k of max_code = 2**k - 1,
    # one above an unsigned output's: `_overflow_flags` reads it); else it holds the
    # exact sum.
    keep = fmt.width if fmt.overflow == "WRAP" else fmt.max_code.bit_length() + 1
    narrow = fmt.overflow == "WRAP" or flags
    if shift > 0 and fmt.rounding == "TRN":
        # A floor reads no dropped bit (no register or wire keeps them).
        exact = max(w - shift + 2, fmt.width + 1)
        rounded = Signal(signed(keep if narrow else exact), name=name)
        floor = v.as_signed() >> shift
        m.d.sync += rounded.eq(floor)
    elif shift > 0:
        # Sign-extend so that the dropped bits exist even when shift >= width.
        ext = Signal(signed(max(w, shift + 1) if tight else max(w, shift) + 1), name=f"{name}_ext")
        m.d.comb += ext.eq(v)
        floor = ext >> shift
        rem = ext[:shift]
        half = 1 << (shift - 1)
        # With one dropped bit nothing lies above half; `rem > 1` on one
        # bit would be a constant compare, which Verilator refuses (CMPCONST).
        gt = rem > half if shift > 1 else Const(0, 1)
        eq, nz = rem == half, rem != 0
        neg = v[-1]
        mode = fmt.rounding
        if mode == "TRN_ZERO":
            up = nz & neg
        elif mode == "RND":
            up = gt | eq
        elif mode == "RND_ZERO":
            up = gt | (eq & neg)
        elif mode == "RND_MIN_INF":
            up = gt
        elif mode == "RND_INF":
            up = gt | (eq & ~neg)
        elif mode == "RND_CONV":
            up = gt | (eq & floor[0])
        else:
            raise ValueError(f"output format rounding {mode!r} is not supported")
        exact = max(w - shift + 2, fmt.width + 1)
        rounded = Signal(signed(keep if narrow else exact), name=name)
        m.d.sync += rounded.eq(floor + up)
    else:
        exact = max(w - shift, fmt.width + 1)
        rounded = Signal(signed(keep if narrow else exact), name=name)
        floor = v << -shift
        m.d.sync += rounded.eq(floor)
    if not flags:
        return rounded
    if fmt.overflow == "WRAP":
        return rounded, None
    return rounded, _overflow_flags(m, floor, up, rounded, exact, fmt, name)


def _overflow_flags(m, floor, up, rounded, exact: int, fmt, name: str):
    """``(rounded > max_code, rounded < saturation_min)`` for ``rounded = floor + up`` (``up``
    the round-up bit), from flags registered beside ``rounded`` and its bit ``k``.

    With ``max_code = 2**k - 1``, only the floor's bits from ``k`` up (``upper``, its
    floor divided by ``2**k``) and the carry the round-up bit sends into bit ``k``
    decide: ``rounded > max_code`` iff ``upper > 0``, or ``upper == 0`` and that carry;
    ``rounded < -2**k`` iff ``upper < -2``, or ``upper == -2`` and no carry;
    ``rounded < 0`` iff ``upper < -1``, or ``upper == -1`` and no carry. Where
    ``upper`` is even (0, -2), ``rounded``'s bit ``k`` is the carry; where it is odd
    (-1), its complement. So each flag is a reduction over ``upper``'s few bits,
    registered straight from LUTs, instead of a compare carry chain over the whole
    floor followed by the round-up term (the speed-6 and speed-8 critical path of
    the 64-PE layer). SAT_SYM's ``saturation_min = 1 - 2**k`` also depends on the low
    bits: it keeps the full compare.
    """
    hi, lo = fmt.max_code, fmt.saturation_min
    k = hi.bit_length()
    # The floor, wide enough for upper to hold -2 beside its sign (no compare is constant).
    fl = Signal(signed(max(exact, k + 3)), name=f"{name}_floor")
    m.d.comb += fl.eq(floor)
    upper = fl[k:]
    sign, ones, zero = upper[-1], upper.all(), ~upper.any()
    bit_k = rounded[k]
    pos, at0 = Signal(name=f"{name}_upper_pos"), Signal(name=f"{name}_upper_zero")
    m.d.sync += [pos.eq(~sign & ~zero), at0.eq(zero)]
    over_hi = pos | (at0 & bit_k)
    if lo == -(1 << k):  # signed SAT, SAT_ZERO (and a 1-bit SAT_SYM)
        below, at = Signal(name=f"{name}_upper_below_m2"), Signal(name=f"{name}_upper_m2")
        m.d.sync += [below.eq(sign & ~upper[1:].all()), at.eq(upper[1:].all() & ~upper[0])]
        over_lo = below | (at & ~bit_k)
    elif lo == 0:  # unsigned
        below, at = Signal(name=f"{name}_upper_below_m1"), Signal(name=f"{name}_upper_m1")
        m.d.sync += [below.eq(sign & ~ones), at.eq(ones)]
        over_lo = below | (at & bit_k)
    else:  # SAT_SYM: floor + up < lo, for the round-up bit up in {0, 1}
        over_lo = Signal(name=f"{name}_over_lo")
        m.d.sync += over_lo.eq((fl < lo - 1) | (~up & (fl == lo - 1)))
    return over_hi, over_lo


def _overflow(m, rounded, fmt, o, over=None) -> None:
    """Register into ``o`` the output code of exact output integers ``rounded`` by ``fmt``'s overflow
    mode (``over``: `_round`'s registered ``(rounded > max_code, rounded < saturation_min)``)."""
    hi = fmt.max_code
    lo = fmt.saturation_min  # SAT_SYM: -max_code (ap_fixed's min | 1)
    if fmt.overflow == "WRAP":
        m.d.sync += o.eq(rounded.as_unsigned())
        return
    over_hi, over_lo = over if over is not None else (rounded > hi, rounded < lo)
    if fmt.overflow == "SAT_ZERO":
        result = Mux(over_hi | over_lo, 0, rounded[:fmt.width])
    else:  # SAT, SAT_SYM
        result = Mux(over_hi, hi & ((1 << fmt.width) - 1),
                     Mux(over_lo, lo & ((1 << fmt.width) - 1), rounded[:fmt.width]))
    m.d.sync += o.eq(result)


class PostProcess(wiring.Component):
    """Accumulator to output code for every activation of the fixed-point model, in 3 register
    stages (``linear``: 2).

    Exact activations are `Activation` (1 stage; ``linear`` none: it is the
    identity) then `Requantize` (2). Table activations:

    1. narrow ``t = i >> table.drop``; register which side's tail applies and a
       linear tail's value ``x + c`` rounded to the output (`Requantize`'s
       rounding); the ROM is addressed by the low ``index_width`` bits of ``t``
       (entry ``i`` stored at ``(lo + i) mod 2**index_width``: no logic in front
       of the address);
    2. register the table's output code: the ROM holds the entries with the
       output's overflow mode already applied (a LUT ROM up to
       ``LUT_TABLE_ENTRIES`` entries behind the registered index; above, block
       RAM read at the unregistered index, its read data registered as it is,
       a register the RAM's own output register can hold), and the linear
       tail's code (`Requantize`'s overflow stage);
    3. register the tail's code (a constant, or the linear tail's) or the table's.

    Parameters
    ----------
    name : str
        One of ``FIXED_ACTIVATIONS``.
    fmt : FixedFormat
        The output format.
    acc_width, acc_frac : int
        The accumulator input's signed width and fractional bits.
    table : ActivationTable, optional
        Required for a table activation (``Conv1DTransposeQ.activation_table``),
        built for an accumulator with ``acc_frac`` fractional bits.
    narrowing : Narrowing, optional
        The `narrowing` (for a table activation: ``narrowing(name, acc_frac, fmt,
        table)``) the caller applied to the accumulator; ``acc_frac`` is then the
        narrowed accumulator's, the accumulator's minus ``acc_lo``. An exact
        activation's register then also drops the bits the output never reads.
        Omitted: the full accumulator, nothing dropped.

    Members
    -------
    i : In(signed(acc_width))
    o : Out(unsigned(fmt.width))
        The output code's bits, ``latency`` cycles after ``i``
        (`tconv.hw.schedule.postprocess_stages`: 3, or 2 for ``linear``).
    """

    def __init__(self, name: str, fmt, *, acc_width: int, acc_frac: int, table=None, narrowing=None):
        check_fixed_activation(name)
        self.latency = postprocess_stages(name)
        self._name, self._fmt, self._acc_width, self._acc_frac = name, fmt, acc_width, acc_frac
        self._table, self._narrowing, self._lo = table, narrowing, 0
        if name in TABLE_ACTIVATIONS:
            if table is None or table.name != name:
                raise ValueError(f"PostProcess({name!r}) needs the layer's activation table "
                                 "(Conv1DTransposeQ.activation_table)")
            self._lo = narrowing.acc_lo if narrowing is not None else 0
            if (table.acc_frac - self._lo != acc_frac or table.out_frac != fmt.frac
                    or table.rounding != fmt.rounding or self._lo > table.drop):
                raise ValueError(f"the {name} table was built for an accumulator with {table.acc_frac} "
                                 f"fractional bits and output frac {table.out_frac} ({table.rounding}), "
                                 f"not {acc_frac} + {self._lo} narrowed and {fmt.frac} ({fmt.rounding})")
        super().__init__({"i": In(signed(acc_width)), "o": Out(unsigned(fmt.width))})

    def elaborate(self, platform):
        m = Module()
        if self._name not in TABLE_ACTIVATIONS:
            nr = self._narrowing
            kw = (dict(drop_lsbs=nr.act_drop, keep_bits=nr.act_keep, keep_sign=nr.act_sign) if nr else {})
            act = Activation(self._name, acc_width=self._acc_width, acc_frac=self._acc_frac,
                             registered=self.latency == 3, **kw)
            req = Requantize(self._fmt, in_width=act.out_width, in_frac=act.out_frac)
            m.submodules.activation, m.submodules.requantize = act, req
            m.d.comb += [act.i.eq(self.i), req.i.eq(act.o), self.o.eq(req.o)]
            return m
        tb, fmt, w, v = self._table, self._fmt, self._acc_width, self.i
        d = tb.drop - self._lo  # the caller's narrowing already dropped acc_lo bits
        t = v[d:].as_signed() if d < w else v[-1].as_signed()
        lower, upper = tb.lower, tb.upper
        # Stage 1: which side's tail applies, the table index, a linear tail's rounded value.
        below = Signal(name="table_below")
        above = Signal(name="table_above")
        m.d.sync += [below.eq(t < tb.lo if lower else 0), above.eq(t > tb.hi if upper else 0)]
        # The table input's low bits address the ROM directly: entry i sits at (lo + i) mod
        # 2**index_width, so no subtraction or clip lies in front of the RAM; outside lo..hi
        # the entry read is a tail's to replace (a side without a tail never leaves the table).
        index = Signal(tb.index_width, name="table_address")
        m.d.comb += index.eq(t)
        lin = self._linear_tail(m, v, w) if any(tl and tl.kind == "linear" for tl in (lower, upper)) else None
        # Stage 2: the table's output code (the overflow mode is applied to the constants
        # when they are built, so the ROM holds final codes), a linear tail's code.
        codes = [0] * (1 << tb.index_width)
        for i, c in enumerate(table_codes(tb.entries, fmt)):
            codes[(tb.lo + i) & ((1 << tb.index_width) - 1)] = int(c)
        code = self._rom(m, index, codes)
        below2, above2 = Signal(name="table_below2"), Signal(name="table_above2")
        m.d.sync += [below2.eq(below), above2.eq(above)]
        lin_code = None
        if lin is not None:
            lin_code = Signal(fmt.width, name="table_linear_code")
            _overflow(m, lin, fmt, lin_code)

        def tail_code(tail):
            return lin_code if tail.kind == "linear" else Const(int(table_codes([tail.value], fmt)[0]), fmt.width)

        # Stage 3: a tail's code or the table's.
        value = code
        if upper:
            value = Mux(above2, tail_code(upper), value)
        if lower:
            value = Mux(below2, tail_code(lower), value)
        m.d.sync += self.o.eq(value)
        return m

    def _linear_tail(self, m, v, w: int):
        """Register ``x + c`` of the linear tail(s), rounded to the output (before its overflow mode)."""
        tb, fmt = self._table, self._fmt
        lower, upper = tb.lower, tb.upper
        linear = [tail for tail in (lower, upper) if tail and tail.kind == "linear"]
        d = tb.drop - self._lo
        t = v[d:].as_signed() if d < w else v[-1].as_signed()
        g = max(self._acc_frac, 0)
        k, shift = g - self._acc_frac, g - fmt.frac
        base = v << k
        offsets = [tail.value for tail in linear]

        def plus(c):
            return base + (c << g) if c else base

        x = Mux(t < tb.lo, plus(lower.value), plus(upper.value)) if len(set(offsets)) > 1 else plus(offsets[0])
        lo_x = (-(1 << (w - 1)) << k) + (min(offsets) << g)
        hi_x = (((1 << (w - 1)) - 1) << k) + (max(offsets) << g)
        if fmt.rounding == "TRN" and shift > 0:  # a floor: drop the bits here, no wire keeps them
            x, lo_x, hi_x, shift = x >> shift, lo_x >> shift, hi_x >> shift, 0
        xw = _signed_width(lo_x, hi_x)
        if fmt.overflow == "WRAP" and shift <= 0:  # WRAP after no rounding: only the bits the output keeps
            xw = max(min(xw, fmt.width + shift), 1)
        xs = Signal(signed(xw), name="table_linear_x")
        m.d.comb += xs.eq(x)
        return _round(m, xs, len(xs), shift, fmt, name="table_linear", tight=True)

    def _rom(self, m, index, codes: list[int]):
        """``codes[index]`` two registers after ``index`` (a value of stage 0).

        A table of more than ``LUT_TABLE_ENTRIES`` entries is a `BlockRam` with registered
        read data: its read port registers the address's entry (stage 1) and a register
        takes the read data as it is (stage 2: the RAM's own output register on the
        ECP5, which keeps the RAM's slow clock-to-out off every logic path). A smaller
        one is a LUT ROM (a mux tree) between a registered index (stage 1) and the code
        register (stage 2).
        """
        width = self._fmt.width
        if self._table.size > LUT_TABLE_ENTRIES:
            m.submodules.table_rom = rom = BlockRam(width=width, depth=len(codes), init=codes, registered=True)
            m.d.comb += rom.r_addr[0].eq(index)
            return rom.r_data[0]
        code = Signal(width, name="table_code", reset_less=True)
        held = Signal(len(index), name="table_index", reset_less=True)
        m.d.sync += [held.eq(index), code.eq(lookup(held, [Const(c, width) for c in codes]) if len(codes) > 1
                                              else codes[0])]
        return code
