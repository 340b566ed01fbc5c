"""Small FIFOs with registered status: frame descriptors and output beats.

`FrameQueue` sits between the issue logic and the emitter. Its head is a
register of its own (``head``, ``head_valid``), so the emitter's position
compares start at flip-flops. An entry pushed in cycle ``n`` is written to the
(distributed RAM) storage at the end of ``n``; it reaches the head at the end
of ``n + 1`` at the earliest (when the head is free or popped then).

`OutputFifo` holds output beats in front of ``m_axis``; its ``r_valid`` and
``r_data`` are flip-flops (an output register behind a fall-through store), so
the sink sees no logic of the layer; a beat is offered the cycle after it is
written at the earliest.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Const, Module, Mux, Shape, Signal
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["FrameQueue", "OutputFifo", "thermometer", "count_of"]


def _word(width, shape):
    """The shape of a queue's words (``shape``, a layout, or ``width`` bits) and its width."""
    if (width is None) == (shape is None):
        raise TypeError("give exactly one of width= and shape=")
    if shape is None:
        return width, width
    if isinstance(shape, data.Layout):
        return shape, shape.size
    return shape, Shape.cast(shape).width


def count_of(flags):
    """The count a list of thermometer flags stands for (their sum), for invariants."""
    return sum((f.as_unsigned() for f in flags), Const(0, range(len(flags) + 1)))


def thermometer(m: Module, depth: int, inc, dec, *, name: str, platform=None):
    """A count in ``0..depth`` kept as flags ``at_least[k] = count > k``, plus their next values.

    The count goes up by one on ``inc``, down by one on ``dec`` (both: stays);
    the caller keeps it in range. Each flag's next value is one small function
    of ``inc``, ``dec`` and its two neighbours, so tests such as "empty" or
    "full", and their next values, cost no adder and no comparator.
    Returns ``(flags, flags_next)``, lists of ``depth`` one-bit signals.
    On the ``"formal"`` platform it asserts that the flags are well formed
    (``flags[k + 1]`` implies ``flags[k]``).
    """
    flags = [Signal(name=f"{name}_gt{k}") for k in range(depth)]
    nxt = [Signal(name=f"{name}_gt{k}_next") for k in range(depth)]
    for k in range(depth):
        below = flags[k - 1] if k else 1
        above = flags[k + 1] if k + 1 < depth else 0
        # Both outcomes of `dec` first, `dec` last: it is the late one (an output
        # FIFO's take, from the sink's ready), and so passes one select only.
        if_dec = Signal(name=f"{name}_gt{k}_if_dec")
        if_keep = Signal(name=f"{name}_gt{k}_if_keep")
        m.d.comb += [if_dec.eq(Mux(inc, flags[k], above)), if_keep.eq(Mux(inc, below, flags[k])),
                     nxt[k].eq(Mux(dec, if_dec, if_keep))]
        m.d.sync += flags[k].eq(nxt[k])
    if platform == "formal":
        _well_formed(m, flags)
    return flags, nxt


def _well_formed(m: Module, flags) -> None:
    """Assert that thermometer ``flags`` are well formed: ``flags[k + 1]`` implies ``flags[k]``."""
    for k in range(len(flags) - 1):
        m.d.comb += Assert(~flags[k + 1] | flags[k])


def _pointer_invariant(m: Module, count, wptr, rptr, depth: int) -> None:
    """``count`` entries between the read and the write pointer of a ring of ``depth`` slots."""
    gap = Mux(wptr >= rptr, wptr - rptr, wptr + depth - rptr)
    m.d.comb += [Assert(count <= depth), Assert(Mux(count == depth, wptr == rptr, gap == count))]


class FrameQueue(wiring.Component):
    """``depth`` stored entries plus the head register.

    Members
    -------
    push : In(1)
        Append ``push_data`` (the caller keeps count: at most ``depth`` entries
        besides the head).
    push_data : In(shape)
    pop : In(1)
        Drop the head (only while ``head_valid``).
    head_valid : Out(1)
    head : Out(shape)

    The words are ``width`` bits or of ``shape`` (e.g. a `data.StructLayout`).

    On the ``"formal"`` platform it asserts its invariants (``stored <= depth``,
    ``stored`` = write pointer - read pointer around the ring) and drives
    ``held`` (entries stored plus the head register), for the invariants of its
    user; elsewhere ``held`` is left undriven and drops out.
    """

    def __init__(self, *, depth: int, width: int | None = None, shape=None):
        self._shape, self._width = _word(width, shape)
        self._depth = depth
        self.held = Signal(range(depth + 2), name="held")
        super().__init__({
            "push": In(1),
            "push_data": In(self._shape),
            "pop": In(1),
            "head_valid": Out(1),
            "head": Out(self._shape),
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
        head = Signal(self._shape)
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
        if platform == "formal":
            _pointer_invariant(m, stored, wptr, rptr, depth)
            m.d.comb += self.held.eq(stored + head_valid)
        return m


class OutputFifo(wiring.Component):
    """FIFO of ``depth`` words whose head sits in an output register; the writer never
    holds more than ``depth`` words in it (stored or in the output register).

    A word written in cycle ``n`` is offered from cycle ``n + 1`` on (straight
    into the output register when that is empty or its word is taken in ``n``;
    else stored). The output register refills every cycle its word is taken, so
    the sink can take one word per cycle. Why a register: with the word offered
    in the cycle it was written (a bypass), ``m_axis_tvalid`` came from the
    emission pipeline through the FIFO into the sink's logic, the speed-6
    critical path of the 64-PE layer (docs/benchmarks.md).

    Members
    -------
    w_en : In(1)
    w_data : In(shape)
    r_valid : Out(1)
        A word is offered (a flip-flop).
    r_data : Out(shape)
        The word offered (flip-flops).
    r_en : In(1)
        Take the word (when ``r_valid``).

    The words are ``width`` bits or of ``shape`` (e.g. a `data.StructLayout`).

    On the ``"formal"`` platform it asserts that its count (thermometer flags)
    is the distance between its pointers, and drives ``level`` (words held:
    stored or in the output register), for the credit invariants of its writer;
    elsewhere ``level`` drops out.
    """

    def __init__(self, *, depth: int, width: int | None = None, shape=None):
        if depth < 1 or depth & (depth - 1):
            raise ValueError(f"OutputFifo depth must be a power of two >= 1, got {depth}")
        self._shape, self._width = _word(width, shape)
        self._depth = depth
        self.level = Signal(range(depth + 1), name="level")
        super().__init__({
            "w_en": In(1),
            "w_data": In(self._shape),
            "r_valid": Out(1),
            "r_data": Out(self._shape),
            "r_en": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        depth = self._depth
        m.submodules.storage = mem = memory.Memory(shape=self._width, depth=depth, init=[])
        wport = mem.write_port()
        rport = mem.read_port(domain="comb")
        wptr = Signal(range(depth))
        rptr = Signal(range(depth))
        store = Signal()    # the word written now stays (it does not go straight to the output register)
        unstore = Signal()  # the oldest stored word moves to the output register
        load = Signal()     # the output register takes the next word (if there is one)
        out_valid = Signal(name="out_valid")
        out_data = Signal(self._width, name="out_data", reset_less=True)
        # The count (words stored) as thermometer flags, count > k. A word is stored only
        # while the output register holds one (stored -> out_valid), so a take moves a
        # stored word out exactly when one is stored, and each flag's next value is a
        # function of w_en, r_en and its neighbours (and out_valid for the first): one
        # LUT5, and w_en (late, from the emission pipeline) and r_en (the sink's) select
        # last. (The generic `thermometer` of store/unstore put both decisions, three LUT
        # levels, between m_axis_tvalid and the flags: a speed-8 critical path.)
        flags = [Signal(name=f"count_gt{k}") for k in range(depth)]
        stored = flags[0]
        w_en, r_en = self.w_en, self.r_en
        for k in range(depth):
            below = flags[k - 1] if k else out_valid & ~r_en  # (k = 0: the word stays if the register keeps its word)
            above = flags[k + 1] if k + 1 < depth else 0
            if_write = (flags[0] | below) if k == 0 else Mux(r_en, flags[k], below)
            m.d.sync += flags[k].eq(Mux(w_en, if_write, Mux(r_en, above, flags[k])))
        m.d.comb += [
            load.eq(~out_valid | self.r_en),
            store.eq(self.w_en & (stored | ~load)),
            unstore.eq(stored & load),
            # The slot at wptr is always free: the writer never holds more than
            # `depth` words and the output register holds one whenever a word is
            # stored, so at most depth - 1 are stored. So the store writes the
            # input bus there in every cycle, and wptr moves on only when a
            # written word stays: `w_en`, a late signal from the emission
            # pipeline, reaches the pointer and count flags only, not every
            # RAM cell's write enable.
            wport.addr.eq(wptr), wport.data.eq(self.w_data), wport.en.eq(1),
            rport.addr.eq(rptr),
            self.r_data.eq(out_data),
            self.r_valid.eq(out_valid),
        ]
        with m.If(load):
            m.d.sync += [out_valid.eq(stored | self.w_en),
                         out_data.eq(Mux(stored, rport.data, self.w_data))]
        with m.If(store):
            m.d.sync += wptr.eq(wptr + 1)
        with m.If(unstore):
            m.d.sync += rptr.eq(rptr + 1)
        if platform == "formal":
            _well_formed(m, flags)
            count = count_of(flags)
            m.d.comb += self.level.eq(count + out_valid)
            _pointer_invariant(m, count, wptr, rptr, depth)
            # The store never passes the output register: it holds a word whenever one is stored.
            # So (with level <= depth, the writer's invariant) the slot at wptr is free.
            m.d.comb += [Assert(~stored | out_valid), Assert(~flags[depth - 1])]
        return m
