"""Double buffer of input steps between ``s_axis`` and the MAC array.

While the array works on one step (``cycles_per_step`` cycles), the next one is
already taken from the stream, so the array never waits for a source that keeps
up. A step stays in place until the array releases it with ``consume``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["StepBuffer", "step_layout"]


def step_layout(width: int) -> data.StructLayout:
    """Payload of one input beat: the packed channel codes and ``tlast``."""
    return data.StructLayout({"data": width, "last": 1})


class StepBuffer(wiring.Component):
    """Two-entry ping-pong buffer.

    Members
    -------
    i : In(stream.Signature(step_layout(width)))
    valid : Out(1)
        A step is available in ``step``.
    step : Out(step_layout(width))
        The oldest buffered step; stable until ``consume``.
    consume : In(1)
        Releases ``step`` (only while ``valid``).
    """

    def __init__(self, width: int):
        self._width = width
        super().__init__({
            "i": In(stream.Signature(step_layout(width))),
            "valid": Out(1),
            "step": Out(step_layout(width)),
            "consume": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        layout = step_layout(self._width)
        entries = [Signal(layout, name=f"entry{n}") for n in range(2)]
        full = [Signal(name=f"full{n}") for n in range(2)]
        wp, rp = Signal(), Signal()
        m.d.comb += self.i.ready.eq(~Mux(wp, full[1], full[0]))
        m.d.comb += [
            self.valid.eq(Mux(rp, full[1], full[0])),
            self.step.eq(Mux(rp, entries[1].as_value(), entries[0].as_value())),
        ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += wp.eq(~wp)
            for n in range(2):
                with m.If(wp == n):
                    m.d.sync += [entries[n].eq(self.i.payload), full[n].eq(1)]
        with m.If(self.consume & self.valid):
            m.d.sync += rp.eq(~rp)
            for n in range(2):
                with m.If(rp == n):
                    m.d.sync += full[n].eq(0)
        return m

