"""Constant tables read by an index: `lookup`, and the index bits a table depends on."""

from __future__ import annotations

from amaranth.hdl import Mux

__all__ = ["lookup", "index_bits", "select_bits"]


def lookup(index, values):
    """``values[index]`` as a balanced tree of 2:1 muxes on the bits of ``index``.

    ``values`` are Amaranth values or ints of one shape; indices past the end
    read the last entry. (A tree instead of `Array`: no case statements with
    holes or overlaps in the Verilog, and one mux level per index bit.)
    """
    values = list(values)

    def build(lo: int, bit: int):
        if bit < 0 or lo + 1 >= len(values):
            return values[min(lo, len(values) - 1)]
        half = 1 << bit
        if lo + half >= len(values):
            return build(lo, bit - 1)
        return Mux(index[bit], build(lo + half, bit - 1), build(lo, bit - 1))

    return build(0, len(index) - 1)


def index_bits(tables, count: int) -> list[int]:
    """The index bits (below ``count``) that the entries of some table in ``tables`` depend on.

    A bit is left out when every table reads the same entry with it set and
    clear (indices past a table's end never occur). Registers that carry the
    index for a constant lookup keep only these bits: a bit no table reads
    would be a register bit that nothing reads.
    """
    dropped = 0
    for bit in range(count):
        trial = dropped | (1 << bit)
        if all(len({v for i, v in enumerate(t) if i & ~trial == key}) <= 1
               for t in tables for key in {i & ~trial for i in range(len(t))}):
            dropped = trial
    return [bit for bit in range(count) if not dropped >> bit & 1]


def select_bits(values, bits: list[int]) -> list:
    """``values`` re-indexed by the index bits ``bits`` only (see `index_bits`)."""
    out = []
    for key in range(1 << len(bits)):
        full = sum(((key >> k) & 1) << b for k, b in enumerate(bits))
        matches = [i for i in range(len(values)) if all(((i >> b) & 1) == ((full >> b) & 1) for b in bits)]
        out.append(values[matches[0]] if matches else values[-1])
    return out
