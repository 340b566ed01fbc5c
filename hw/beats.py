"""Beat assembly: the rows of one output position, shifted together into an output beat."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BeatAssembler", "output_layout"]


def output_layout(width: int) -> data.StructLayout:
    """Payload of one output beat (and word of the output FIFO): the packed filter codes and ``tlast``."""
    return data.StructLayout({"data": width, "last": 1})


class BeatAssembler(wiring.Component):
    """Collects the ``rows`` rows of a position (row ``fl`` holds filters ``fl * n ..
    fl * n + n - 1`` of ``n`` each) into one beat of ``width`` bits.

    Members
    -------
    valid, last_row, beat_last : In(1)
        A row arrives; it is the position's last one; the beat ends its frame.
    row : In(row_width)
    w_en : Out(1)
        The beat is complete (with the last row, no register in between).
    word : Out(output_layout(width))
        The beat: the rows, first in the low bits, cut to ``width``; ``last`` is
        the last row's ``beat_last``.
    """

    def __init__(self, *, rows: int, row_width: int, width: int):
        self._rows, self._row_width, self._width = rows, row_width, width
        super().__init__({
            "valid": In(1), "last_row": In(1), "beat_last": In(1), "row": In(row_width),
            "w_en": Out(1), "word": Out(output_layout(width)),
        })

    def elaborate(self, platform):
        m = Module()
        RW = self._row_width
        if self._rows > 1:
            sr = Signal((self._rows - 1) * RW, reset_less=True)
            with m.If(self.valid & ~self.last_row):
                m.d.sync += sr.eq(Cat(sr[RW:], self.row))
            beat = Cat(sr, self.row)
        else:
            beat = self.row
        m.d.comb += [
            self.w_en.eq(self.valid & self.last_row),
            self.word.data.eq(beat[:self._width]),
            self.word.last.eq(self.beat_last),
        ]
        return m
