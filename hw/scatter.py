"""Output-stationary scatter bank: read-modify-write accumulation with forwarding.

One bank belongs to one PE group. It holds, for each of ``slots`` output
positions, the partial sums of the group's filters (word ``fl * slots + slot``).
A write either starts a position's sum (``first``: the old word is stale and
ignored) or adds to it. The read for an update is issued ``LEAD = 4`` cycles
before the sum is written (the block RAM's read, then a register, then the
forwarding merge, then the add, whose sum is registered before it goes into
the RAM, for clock speed), so the four writes in between are forwarded from
registers instead of stalling: back-to-back updates of one word are legal.
Three of them are merged a cycle early, so the add cycle holds one 2:1 select
in front of the adder. A second, independent read port serves the emitter.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .ram import BlockRam

__all__ = ["ScatterBank"]


class ScatterBank(wiring.Component):
    """Accumulator memory of ``depth`` words of ``signed(width)``.

    Timing (cycle ``e`` is the write cycle of an update): ``valid``, ``addr``
    and ``first`` are presented in cycle ``e - LEAD``, ``partial`` in cycle
    ``e - PARTIAL_LEAD`` (the add); the new word is readable by any read issued
    after cycle ``e``.

    Parameters
    ----------
    depth, width : int
    init : iterable of int
        Initial contents (simulation only: tests fill the banks with garbage to
        prove that no stale word is ever used).

    Members
    -------
    valid, addr, first : In
        The update, ``LEAD`` cycles ahead of its write.
    partial : In(signed(width))
        The value to add (or to store, for a first update), ``PARTIAL_LEAD`` cycles
        ahead of the write.
    em_addr : In
        Emitter read address; ``em_data`` holds the word two cycles later
        (the read data registered behind the RAM).
    em_data : Out(signed(width))
    """

    #: Cycles from an update's address to its write.
    LEAD = 4
    #: Cycles from an update's ``partial`` to its write (the sum is registered in between).
    PARTIAL_LEAD = 1

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
        # Reads never depend on a write to the same word in the same cycle
        # (those are forwarded), so the memory is marked `no_rw_check`: Yosys
        # then maps the portable form to block RAM without collision-emulation
        # logic after the read ports. Both reads are registered behind the RAM
        # (its output register on the ECP5), the update's as the read stage's
        # register, the emitter's for the output rows.
        m.submodules.mem = mem = BlockRam(width=self.width, depth=self.depth, init=self._init, reads=2,
                                          write=True, registered=True, attrs={"no_rw_check": 1})
        aw = len(self.addr)
        W = signed(self.width)

        # The update's control through its stages: b (cycle e-3, the RAM reads),
        # c (e-2, read data registered, older writes merged), a (e-1, add), w (e, the
        # registered sum is written). (Only the valid bits are reset; the rest is data.)
        valid_b, first_b, addr_b = Signal(), Signal(reset_less=True), Signal(aw, reset_less=True)
        valid_c, first_c, addr_c = Signal(), Signal(reset_less=True), Signal(aw, reset_less=True)
        valid_a, addr_a = Signal(), Signal(aw, reset_less=True)
        valid_w, addr_w = Signal(), Signal(aw, reset_less=True)
        m.d.comb += mem.r_addr[0].eq(self.addr)
        m.d.sync += [
            valid_b.eq(self.valid), first_b.eq(self.first), addr_b.eq(self.addr),
            valid_c.eq(valid_b), first_c.eq(first_b), addr_c.eq(addr_b),
            valid_a.eq(valid_c), addr_a.eq(addr_c),
            valid_w.eq(valid_a), addr_w.eq(addr_a),
        ]
        # The sums of the writes of this cycle and the last two, newest first: sum_w
        # (written at the end of this cycle), then wr1 (cycle e-1 as seen in e), wr2.
        wr1_valid, wr1_addr = Signal(), Signal(aw, reset_less=True)
        sum_w, wr1_data, wr2_data = (Signal(W, reset_less=True, name=n) for n in ("sum_w", "wr1_data", "wr2_data"))
        total = Signal(W)

        # Stage b: which of the writes the read missed touch the same word: the
        # one in cycle e-2 (now in stage a), in e-3 (now in stage w) and in e-4 (now wr1).
        hit_e2, hit_e3, hit_e4 = (Signal(reset_less=True, name=n) for n in ("hit_e2", "hit_e3", "hit_e4"))
        m.d.sync += [
            hit_e2.eq(valid_a & (addr_a == addr_b)),
            hit_e3.eq(valid_w & (addr_w == addr_b)),
            hit_e4.eq(wr1_valid & (wr1_addr == addr_b)),
        ]
        # Stage c: merge the RAM word (registered behind the RAM) with those three
        # writes' sums (now sum_w, wr1 and wr2); the write of cycle e-1 (now in
        # stage a) is checked for stage a.
        rdata = mem.r_data[0].as_signed()
        pre = Signal(W, reset_less=True)
        hit_e1 = Signal(reset_less=True)
        m.d.sync += [
            pre.eq(Mux(first_c, 0, Mux(hit_e2, sum_w, Mux(hit_e3, wr1_data, Mux(hit_e4, wr2_data, rdata))))),
            hit_e1.eq(valid_a & (addr_a == addr_c) & ~first_c),
        ]
        # Stage a: add (the sum of cycle e-1 is in sum_w); stage w: write the sum.
        m.d.comb += [
            total.eq(Mux(hit_e1, sum_w, pre) + self.partial),
            mem.w_addr.eq(addr_w),
            mem.w_data.eq(sum_w),
            mem.w_en.eq(valid_w),
        ]
        m.d.sync += [
            sum_w.eq(total),
            wr1_valid.eq(valid_w), wr1_addr.eq(addr_w), wr1_data.eq(sum_w),
            wr2_data.eq(wr1_data),
        ]
        m.d.comb += [mem.r_addr[1].eq(self.em_addr), self.em_data.eq(mem.r_data[1])]
        return m
