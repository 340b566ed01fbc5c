"""Output-stationary scatter bank: read-modify-write accumulation with forwarding.

One bank belongs to one PE group. It holds, for each of ``slots`` output
positions, the partial sums of the group's filters (word ``fl * slots + slot``).
A write either starts a position's sum (``first``: the old word is stale and
ignored) or adds to it. The read for an update is issued two cycles before the
sum is written (the block RAM's read plus a register after it, for clock
speed), so the two writes in between are forwarded from registers instead of
stalling: back-to-back updates of one word are legal. A second, independent
read port serves the emitter.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ScatterBank"]


class ScatterBank(wiring.Component):
    """Accumulator memory of ``depth`` words of ``signed(width)``.

    Timing (cycle ``e`` is the write cycle of an update): ``valid``, ``addr``
    and ``first`` are presented in cycle ``e - 2``, ``partial`` in cycle ``e``;
    the new word is readable by any read issued after cycle ``e``.

    Parameters
    ----------
    depth, width : int
    init : iterable of int
        Initial contents (simulation only: tests fill the banks with garbage to
        prove that no stale word is ever used).

    Members
    -------
    valid, addr, first : In
        The update, two cycles ahead of its data.
    partial : In(signed(width))
        The value to add (or to store, for a first update).
    em_addr : In
        Emitter read address; ``em_data`` holds the word one cycle later.
    em_data : Out(signed(width))
    """

    def __init__(self, *, depth: int, width: int, init=()):
        self.depth = depth
        self.width = width
        self._init = list(init)
        super().__init__({
            "valid": In(1),
            "addr": In(range(depth)),
            "first": In(1),
            "partial": In(signed(width)),
            "em_addr": In(range(depth)),
            "em_data": Out(signed(width)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=signed(self.width), depth=self.depth,
                                                      init=self._init)
        wport = mem.write_port()
        rport = mem.read_port()
        eport = mem.read_port()
        aw = len(self.addr)

        # Stage 1 (cycle e-1): the read is under way.
        valid1, first1 = Signal(), Signal()
        addr1 = Signal(aw)
        # Stage 2 (cycle e): add and write.
        valid2, first2 = Signal(), Signal()
        addr2 = Signal(aw)
        rdata = Signal(signed(self.width))
        hit1, hit2 = Signal(), Signal()
        # The writes of the last two cycles, newest first.
        wr1_valid, wr2_valid = Signal(), Signal()
        wr1_addr, wr2_addr = Signal(aw), Signal(aw)
        wr1_data, wr2_data = Signal(signed(self.width)), Signal(signed(self.width))

        m.d.comb += rport.addr.eq(self.addr)
        m.d.sync += [
            valid1.eq(self.valid), first1.eq(self.first), addr1.eq(self.addr),
            valid2.eq(valid1), first2.eq(first1), addr2.eq(addr1),
            rdata.eq(rport.data),
            # Writes this read missed: the one in cycle e-1 (now in stage 2) and
            # the one in cycle e-2 (now in wr1).
            hit1.eq(valid2 & (addr2 == addr1)),
            hit2.eq(wr1_valid & (wr1_addr == addr1)),
        ]
        old = Mux(first2, 0, Mux(hit1, wr1_data, Mux(hit2, wr2_data, rdata)))
        total = Signal(signed(self.width))
        m.d.comb += [
            total.eq(old + self.partial),
            wport.addr.eq(addr2),
            wport.data.eq(total),
            wport.en.eq(valid2),
        ]
        m.d.sync += [
            wr1_valid.eq(valid2), wr1_addr.eq(addr2), wr1_data.eq(total),
            wr2_valid.eq(wr1_valid), wr2_addr.eq(wr1_addr), wr2_data.eq(wr1_data),
        ]
        m.d.comb += [eport.addr.eq(self.em_addr), self.em_data.eq(eport.data)]
        return m
