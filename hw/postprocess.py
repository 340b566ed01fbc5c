"""Activation and requantization of exact accumulator values, as `tconv.model` computes them.

Both are fixed-latency pipelines without handshake: the caller carries its own
valid bits alongside. Their numpy models are the golden model's own functions
(`Conv1DTransposeQ.activate`, `FixedFormat.requantize`); the tests compare
against those.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tconv.model.fixed_activations import (
    ACTIVATIONS,
    LEAKY_SLOPE_CODE,
    LEAKY_SLOPE_FRAC,
    activation_extra_bits,
    activation_frac,
)

__all__ = ["Activation", "Requantize", "activation_width", "check_activation", "Narrowing", "narrowing", "narrow"]


def check_activation(name: str) -> None:
    if name not in ACTIVATIONS:
        raise ValueError(f"layer.activation {name!r} is not supported in hardware; "
                         f"supported: {', '.join(ACTIVATIONS)}")


def activation_width(name: str, acc_width: int, acc_frac: int) -> int:
    """Signed width that holds every activation result of a ``acc_width``-bit accumulator."""
    return acc_width + activation_extra_bits(name, acc_frac)


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


def narrowing(name: str, acc_frac: int, fmt) -> Narrowing:
    """The `Narrowing` for activation ``name`` on an accumulator with ``acc_frac``
    fractional bits, requantized to ``fmt``."""
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
    else:  # leaky_relu: the negative branch multiplies, so every low bit matters
        lo, hi, sign = 0, top, True
    drop = low - (act_frac - activation_frac(name, acc_frac - lo))
    keep = top - low if wrap else None
    return Narrowing(lo, hi, sign, drop, keep, sign_mode)


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
        One of ``ACTIVATIONS`` (linear, relu, relu6, leaky_relu).
    acc_width, acc_frac : int
        Signed accumulator width and fractional bits ``Fa``.
    drop_lsbs : int
        Fractional bits to drop (floor) before the output register: what a
        truncating (TRN) requantizer would drop anyway, so no register keeps
        bits nobody reads.
    keep_bits, keep_sign : int or None, bool
        Keep only the low ``keep_bits`` bits (and the sign) of the result: all a
        wrapping (WRAP) requantizer reads (see `Narrowing`).

    Members
    -------
    i : In(signed(acc_width))
    o : Out(signed(out_width))
        Registered; ``out_frac = activation_frac(name, acc_frac) - drop_lsbs``
        fractional bits.
    """

    def __init__(self, name: str, *, acc_width: int, acc_frac: int, drop_lsbs: int = 0,
                 keep_bits: int | None = None, keep_sign: bool = True):
        check_activation(name)
        self._name = name
        self._acc_frac = acc_frac
        self._drop = drop_lsbs
        self.out_frac = activation_frac(name, acc_frac) - drop_lsbs
        full = max(activation_width(name, acc_width, acc_frac) - drop_lsbs, 1)
        if keep_bits is not None and keep_bits + int(keep_sign) >= full:
            keep_bits = None
        self._keep, self._keep_sign = keep_bits, keep_sign
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
        else:  # leaky_relu
            result = Mux(v[-1], v * LEAKY_SLOPE_CODE, v << LEAKY_SLOPE_FRAC)
        if self._drop:
            result = result.as_signed() >> self._drop
        if self._keep is not None:
            result = narrow(result, 0, self._keep, self._keep_sign)
        m.d.sync += self.o.eq(result)
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
        fmt, shift, w = self._fmt, self._shift, self._in_width
        v = self.i
        if shift > 0:
            # Sign-extend so that the dropped bits exist even when shift >= width.
            ext = Signal(signed(max(w, shift) + 1))
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
            if mode == "TRN":
                up = 0
            elif mode == "TRN_ZERO":
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
            # WRAP keeps the low bits only, so it needs no more of them.
            width = fmt.width if fmt.overflow == "WRAP" else max(w - shift + 2, fmt.width + 1)
            rounded = Signal(signed(width))
            m.d.sync += rounded.eq(floor + up)
        else:
            width = fmt.width if fmt.overflow == "WRAP" else max(w - shift, fmt.width + 1)
            rounded = Signal(signed(width))
            m.d.sync += rounded.eq(v << -shift)

        hi = fmt.max_code
        lo = fmt.saturation_min  # SAT_SYM: -max_code (ap_fixed's min | 1)
        if fmt.overflow == "WRAP":
            m.d.sync += self.o.eq(rounded.as_unsigned())
            return m
        over_hi = rounded > hi
        over_lo = rounded < lo
        if fmt.overflow == "SAT_ZERO":
            result = Mux(over_hi | over_lo, 0, rounded[:fmt.width])
        else:  # SAT, SAT_SYM
            result = Mux(over_hi, hi & ((1 << fmt.width) - 1),
                         Mux(over_lo, lo & ((1 << fmt.width) - 1), rounded[:fmt.width]))
        m.d.sync += self.o.eq(result)
        return m
