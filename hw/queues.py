"""Small FIFOs with registered status: frame descriptors and output beats.

`FrameQueue` sits between the issue logic and the emitter. Its head is a
register of its own (``head``, ``head_valid``), so the emitter's position
compares start at flip-flops. An entry pushed in cycle ``n`` is written to the
(distributed RAM) storage at the end of ``n``; it reaches the head at the end
of ``n + 1`` at the earliest (when the head is free or popped then).

`OutputFifo` holds output beats in front of ``m_axis``; ``r_valid`` is a
register, so the sink's handshake is one gate deep.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FrameQueue", "OutputFifo"]


class FrameQueue(wiring.Component):
    """``depth`` stored entries plus the head register.

    Members
    -------
    push : In(1)
        Append ``push_data`` (the caller keeps count: at most ``depth`` entries
        besides the head).
    push_data : In(width)
    pop : In(1)
        Drop the head (only while ``head_valid``).
    head_valid : Out(1)
    head : Out(width)
    """

    def __init__(self, *, width: int, depth: int):
        self._width = width
        self._depth = depth
        super().__init__({
            "push": In(1),
            "push_data": In(width),
            "pop": In(1),
            "head_valid": Out(1),
            "head": Out(width),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self._depth
        m.submodules.storage = mem = memory.Memory(shape=self._width, depth=depth, init=[])
        wport = mem.write_port()
        rport = mem.read_port(domain="comb")
        wptr = Signal(range(depth))
        rptr = Signal(range(depth))
        stored = Signal(range(depth + 1))
        head_valid = Signal()
        head = Signal(self._width)
        load = (~head_valid | self.pop) & (stored != 0)

        def advance(ptr):
            return ptr + 1 if depth & (depth - 1) == 0 else Mux(ptr == depth - 1, 0, ptr + 1)

        m.d.comb += [
            wport.addr.eq(wptr), wport.data.eq(self.push_data), wport.en.eq(self.push),
            rport.addr.eq(rptr),
            self.head_valid.eq(head_valid), self.head.eq(head),
        ]
        with m.If(self.push):
            m.d.sync += wptr.eq(advance(wptr))
        with m.If(load):
            m.d.sync += [head.eq(rport.data), rptr.eq(advance(rptr)), head_valid.eq(1)]
        with m.Elif(self.pop):
            m.d.sync += head_valid.eq(0)
        m.d.sync += stored.eq(stored + self.push - load)
        return m


class OutputFifo(wiring.Component):
    """First-word-fall-through FIFO of ``depth`` words; the writer never overfills it.

    A word written in cycle ``n`` can be read from cycle ``n + 1``.

    Members
    -------
    w_en : In(1)
    w_data : In(width)
    r_valid : Out(1)
        A word is available (a register).
    r_data : Out(width)
    r_en : In(1)
        Take the word (when ``r_valid``).
    """

    def __init__(self, *, width: int, depth: int):
        self._width = width
        self._depth = depth
        super().__init__({
            "w_en": In(1),
            "w_data": In(width),
            "r_valid": Out(1),
            "r_data": Out(width),
            "r_en": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self._depth
        assert depth & (depth - 1) == 0
        m.submodules.storage = mem = memory.Memory(shape=self._width, depth=depth, init=[])
        wport = mem.write_port()
        rport = mem.read_port(domain="comb")
        wptr = Signal(range(depth))
        rptr = Signal(range(depth))
        count = Signal(range(depth + 1))
        valid = Signal()
        taken = valid & self.r_en
        count_next = Signal(range(depth + 2))
        m.d.comb += [
            wport.addr.eq(wptr), wport.data.eq(self.w_data), wport.en.eq(self.w_en),
            rport.addr.eq(rptr), self.r_data.eq(rport.data), self.r_valid.eq(valid),
            count_next.eq(count + self.w_en - taken),
        ]
        with m.If(self.w_en):
            m.d.sync += wptr.eq(wptr + 1)
        with m.If(taken):
            m.d.sync += rptr.eq(rptr + 1)
        m.d.sync += [count.eq(count_next), valid.eq(count_next != 0)]
        return m
