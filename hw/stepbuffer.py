"""Double buffer of input steps between ``s_axis`` and the MAC array.

While the array works on one step (``cycles_per_step`` cycles), the next one is
already taken from the stream, so the array never waits for a source that keeps
up. A step stays in place until the array releases it with ``consume``.

For clock speed the control outputs (``valid``, ``step.last``) are registers of
their own (computed from the next state). The data is a select by the read
pointer (a register) between the two entries; with block-RAM weights the MAC
array registers the chunk it takes from it (`tconv.hw.mac_array.MacArray`).
The read pointer has copies (``read_copies``), each selecting its own bits: one
pointer driving every bit of a wide step (1024 selects at 64 PEs) was a speed-6
critical path, its net spread over the array's operand registers.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StepBuffer", "step_layout"]


def step_layout(width: int, bank: bool = False) -> data.StructLayout:
    """Payload of one input beat: the packed channel codes and ``tlast`` (and with ``bank``,
    the weight bank of the step's frame: runtime weights, `tconv.hw.weight_load`)."""
    return data.StructLayout({"data": width, "last": 1, **({"bank": 1} if bank else {})})


class StepBuffer(wiring.Component):
    """Two-entry ping-pong buffer.

    Members
    -------
    i : In(stream.Signature(step_layout(width, bank)))
    valid : Out(1)
        A step is available (a register).
    valid_next : Out(1)
        What ``valid`` will be in the next cycle (for registers that combine it
        with other state).
    step : Out(step_layout(width, bank))
        ``step.last`` is the oldest buffered step's ``tlast`` (a register);
        ``step.data`` its data (and ``step.bank`` its weight bank).
    next_last : Out(1)
        What ``step.last`` will be in the next cycle (for registers that
        combine it with other state).
    consume : In(1)
        Releases the oldest step (only while ``valid``).

    ``i.ready`` is the inverse of a register: the buffer takes a step unless
    both entries are full.

    Parameters
    ----------
    width : int
        Bits of a step's data.
    bank : bool
        Steps carry a weight bank bit.
    read_copies : list of int, optional
        For each data bit, which copy of the read pointer selects it (copies
        ``0 .. max``; by default one pointer selects every bit). Give the bits
        that one consumer reads together the same copy, so that no select needs
        two of them. On the ``"formal"`` platform the copies are asserted equal.
    """

    def __init__(self, width: int, *, bank: bool = False, read_copies=None):
        self._width, self._bank = width, bank
        self._copies = list(read_copies) if read_copies is not None else [0] * width
        if len(self._copies) != width or min(self._copies, default=0) < 0:
            raise ValueError(f"read_copies needs one copy index >= 0 per data bit ({width})")
        super().__init__({
            "i": In(stream.Signature(step_layout(width, bank))),
            "valid": Out(1),
            "valid_next": Out(1),
            "step": Out(step_layout(width, bank)),
            "next_last": Out(1),
            "consume": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        layout = step_layout(self._width, self._bank)
        entries = [Signal(layout, name=f"entry{n}", reset_less=True) for n in range(2)]
        wp, rp = Signal(), Signal()
        # Queue state as registers: `valid` (the oldest entry holds a step),
        # `other` (the second one does too) and the `last` bits of both.
        valid, other = Signal(), Signal()
        head_last, other_last = Signal(), Signal()
        take = self.i.valid & ~other
        release = self.consume & valid
        in_last = self.i.payload.last
        # Copies of the read pointer (each toggles on its own, so no tool merges them).
        rps = [rp] + [Signal(name=f"rp{n}") for n in range(1, max(self._copies, default=0) + 1)]
        runs, start = [], 0  # (copy, first bit, end) of each run of bits with one copy
        for b in range(1, self._width + 1):
            if b == self._width or self._copies[b] != self._copies[start]:
                runs.append((self._copies[start], start, b))
                start = b
        m.d.comb += [
            self.i.ready.eq(~other),
            self.valid.eq(valid),
            self.step.last.eq(head_last),
            self.step.data.eq(Cat(*(Mux(rps[n], entries[1].data[a:b], entries[0].data[a:b])
                                    for n, a, b in runs))),
        ]
        if platform == "formal":
            m.d.comb += [Assert(r == rp) for r in rps[1:]]
        if self._bank:
            m.d.comb += self.step.bank.eq(Mux(rp, entries[1].bank, entries[0].bank))
        # The entry at the write pointer copies the input bus in every cycle
        # in which it is empty (`we`, a register of its own: the wide bank of
        # entry flip-flops has a clock enable straight from a flip-flop); the
        # handshake only decides whether the copy counts.
        we = [Signal(name=f"we{n}", init=int(n == 0)) for n in range(2)]
        for n in range(2):
            with m.If(we[n]):
                m.d.sync += entries[n].eq(self.i.payload)
        wp_next = Signal()
        other_next = Signal()
        m.d.comb += wp_next.eq(wp ^ take)
        m.d.sync += [wp.eq(wp_next), other.eq(other_next)] + [r.eq(r ^ release) for r in rps]
        m.d.comb += self.next_last.eq(Mux(release, Mux(other, other_last, in_last),
                                          Mux(valid, head_last, in_last)))
        m.d.sync += head_last.eq(self.next_last)
        m.d.sync += valid.eq(self.valid_next)
        with m.If(release):
            # The second entry (if any) becomes the oldest; a step taken now follows it.
            m.d.comb += [other_next.eq(other & take), self.valid_next.eq(other | take)]
            m.d.sync += other_last.eq(in_last)
        with m.Else():
            m.d.comb += [other_next.eq(other | (valid & take)), self.valid_next.eq(valid | take)]
            m.d.sync += other_last.eq(Mux(other, other_last, in_last))
        for n in range(2):
            m.d.sync += we[n].eq((wp_next == n) & ~other_next)
        return m
