"""Modulo counters with registered first/last flags, and bounds on them folded when constant."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal

__all__ = ["Counter", "counter", "at_least"]


class Counter:
    """A modulo-``n`` counter (see `counter`): ``value``, enable ``ce``, flags ``first``/``last``."""

    def __init__(self, value, ce, first, last):
        self.value, self.ce, self.first, self.last = value, ce, first, last


def counter(m: Module, n: int, name: str) -> Counter:
    """A counter ``0, 1, ..., n-1, 0, ...`` that advances in cycles with ``ce`` set.

    Its ``last`` (``== n - 1``) and ``first`` (``== 0``) flags are registers
    of their own, so decisions taken on them start at flip-flops.
    """
    value = Signal(range(n), name=name)
    ce = Signal(name=f"{name}_ce")
    last = Signal(name=f"{name}_last", init=int(n == 1))
    first = Signal(name=f"{name}_first", init=1)
    if n > 1:
        with m.If(ce):
            m.d.sync += [
                value.eq(Mux(last, 0, value + 1)),
                last.eq(~last & (value == n - 2)),
                first.eq(last),
            ]
    return Counter(value, ce, first, last)


def at_least(value, bound: int, limit: int):
    """``value >= bound`` for a value that stays below ``limit``, folded when constant."""
    if bound <= 0:
        return Const(1, 1)
    if bound >= limit:
        return Const(0, 1)
    return value >= bound
