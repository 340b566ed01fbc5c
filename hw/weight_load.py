"""The weight-load path of a runtime-weights design: ``w_axis`` beats into the weight and bias RAMs.

Every weight and bias RAM has two banks. The *active* bank (``active``, a
register that survives reset) holds the newest complete set; a set arriving on
``w_axis`` is written into the other bank, beat by beat in the order of
`tconv.hw.weight_stream` (each beat goes to one RAM: the registered write
ports ``wr_*``). When its last beat is accepted with ``tlast`` the other bank
becomes the active one: every frame whose first step is accepted from the next
cycle on uses it (``s_bank``, carried with each step through the step buffer
and with the item through the array; the bias bank follows the frame to the
output rows as ``emit_bank``).

A bank is written only while no frame in flight uses it: frames are counted
per bank from their first step's handshake to their descriptor's pop (the
emitter is done with them), and ``w_ready`` stays low until the inactive
bank's count is zero. Since frames leave in order and only the active bank
gains frames, the frames in flight are some of the inactive bank's followed by
some of the active one's: the emitter's frame uses the inactive bank while its
count is not zero.

A set with ``tlast`` before its last beat, or without it on its last beat, is
dropped whole: beats are taken and ignored up to and including the next
``tlast``; the active bank stays. ``rst`` drops a set being loaded (the beat
count restarts) and keeps ``active``.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Module, Mux, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .weight_stream import StreamLayout

__all__ = ["WeightLoader"]


class WeightLoader(wiring.Component):
    """The load state machine, the active bank and the per-bank frame counts.

    Parameters
    ----------
    layout : StreamLayout
        The set's beats (`tconv.hw.weight_stream.stream_layout`).
    frames_in_flight : int
        A bound on the frames between a first step's handshake and the pop of
        the frame's descriptor (the counters' range).

    Members
    -------
    w_data : In(beat_width)
    w_valid, w_last : In(1)
    w_ready : Out(1)
        ``w_axis``.
    s_take, s_last : In(1)
        An input step is accepted now, and its ``tlast``.
    s_bank : Out(1)
        The bank of the step accepted now (its frame's).
    done : In(1)
        The oldest frame in flight is finished (the emitter pops its descriptor).
    emit_bank : Out(1)
        The bank of the oldest frame in flight (the one being emitted).
    active : Out(1)
        The bank of the newest complete set.
    wr_group : Out(len(groups))
        One-hot: write ``wr_data`` into that group's weight RAM at ``wr_t`` of bank ``wr_bank``.
    wr_bias : Out(len(filter_groups))
        One-hot: write ``wr_data`` into that filter group's bias RAM at row ``wr_fl``.
    wr_t, wr_fl, wr_bank, wr_data
        Registered: the write happens the cycle after the beat's handshake.
    """

    def __init__(self, layout: StreamLayout, *, frames_in_flight: int):
        self.layout = layout
        self._bound = frames_in_flight
        ng, nb = len(layout.groups), len(layout.filter_groups)
        super().__init__({
            "w_data": In(layout.beat_width), "w_valid": In(1), "w_last": In(1), "w_ready": Out(1),
            "s_take": In(1), "s_last": In(1), "s_bank": Out(1),
            "done": In(1), "emit_bank": Out(1), "active": Out(1),
            "wr_group": Out(ng), "wr_bias": Out(max(nb, 1)),
            "wr_t": Out(range(layout.cycles_per_step)), "wr_fl": Out(range(layout.filters_per_group)),
            "wr_bank": Out(1), "wr_data": Out(layout.beat_width),
        })

    def elaborate(self, platform):
        m = Module()
        self._platform = platform
        active = Signal(name="active_bank", reset_less=True)  # survives rst
        m.d.comb += self.active.eq(active)
        busy, busy_next = self._frames(m, active)
        self._load(m, active, busy, busy_next)
        return m

    def _frames(self, m, active):
        """Frames in flight per bank; ``s_bank`` and ``emit_bank``. Returns the
        flags ``busy[b]`` (bank ``b`` has frames in flight) and their next values."""
        first = Signal(init=1)  # the next step accepted starts a frame
        cur = Signal(reset_less=True)
        counts = [Signal(range(self._bound + 1), name=f"frames_bank{b}") for b in range(2)]
        # busy[b] == (counts[b] != 0), a register of its own whose next value only
        # selects among register outputs: the count's adder and zero test were the
        # runtime design's critical path (from the input handshake into w_ready).
        busy = [Signal(name=f"busy_bank{b}") for b in range(2)]
        busy_next = [Signal(name=f"busy_bank{b}_next") for b in range(2)]
        m.d.comb += [
            self.s_bank.eq(Mux(first, active, cur)),
            self.emit_bank.eq(Mux(Mux(active, busy[0], busy[1]), ~active, active)),
        ]
        with m.If(self.s_take):
            m.d.sync += [cur.eq(self.s_bank), first.eq(self.s_last)]
        for b in range(2):
            inc = self.s_take & first & (self.s_bank == b)
            dec = self.done & (self.emit_bank == b)
            # A frame in: busy. One out and none in: busy unless it was the last one.
            m.d.comb += busy_next[b].eq(Mux(inc, 1, Mux(dec, counts[b] != 1, busy[b])))
            m.d.sync += [counts[b].eq(counts[b] + inc - dec), busy[b].eq(busy_next[b])]
        return busy, busy_next

    def _load(self, m, active, busy, busy_next):
        """Beat counting, malformed sets, the write ports and the bank switch."""
        lay = self.layout
        ng, nb = len(lay.groups), len(lay.filter_groups)
        beat = Signal(range(lay.beats), name="w_beat")
        dropping = Signal(name="w_dropping")
        bias_phase = Signal(name="w_bias_phase")
        # Where the next beat goes: group gi's word t, or filter group bi's bias row fl.
        gi, t = Signal(range(ng), name="w_group"), Signal(range(lay.cycles_per_step), name="w_t")
        bi, fl = Signal(range(max(nb, 1)), name="w_bgroup"), Signal(range(lay.filters_per_group), name="w_fl")
        take = Signal()
        # Beats are taken while dropping a malformed set, or while no frame in flight
        # uses the inactive bank. ``ready`` is that, registered (it is a flip-flop, so
        # the beat counters' enables start one gate from registers): its next value
        # from the next values of ``dropping``, ``active`` and the busy flags.
        ready = Signal(init=1, name="w_ready_r")
        # No handshake during rst: a beat taken then would be neither written nor counted
        # (the write registers reset), while the active bank does not reset.
        m.d.comb += [self.w_ready.eq(ready & ~ResetSignal()),
                     take.eq(self.w_valid & self.w_ready)]
        write = take & ~dropping
        last_beat = beat == lay.beats - 1
        switch = write & last_beat & self.w_last             # a complete set: the other bank is active
        drop = write & last_beat & ~self.w_last              # no tlast on the last beat
        dropping_next = Mux(dropping, ~(take & self.w_last), drop)
        active_next = active ^ switch
        m.d.sync += ready.eq(dropping_next | ~Mux(active_next, busy_next[0], busy_next[1]))
        if self._platform == "formal":
            m.d.comb += Assert(ready == (dropping | ~Mux(active, busy[0], busy[1])))
        # Registered write ports: one group's (or filter group's) RAM per beat.
        m.d.sync += [self.wr_t.eq(t), self.wr_fl.eq(fl), self.wr_bank.eq(~active), self.wr_data.eq(self.w_data),
                     self.wr_group.eq(Mux(write & ~bias_phase, 1 << gi, 0))]
        if nb:
            m.d.sync += self.wr_bias.eq(Mux(write & bias_phase, 1 << bi, 0))
        m.d.sync += [dropping.eq(dropping_next), active.eq(active_next)]
        restart = Signal()
        with m.If(write):
            with m.If(last_beat):
                m.d.comb += restart.eq(1)       # the set ends here: complete, or dropped through the next tlast
            with m.Elif(self.w_last):
                m.d.comb += restart.eq(1)       # early tlast: this beat ends the dropped set
            with m.Else():
                m.d.sync += beat.eq(beat + 1)
                with m.If(beat == lay.weight_beats - 1):
                    m.d.sync += [bias_phase.eq(1), gi.eq(0), t.eq(0)]
                with m.Elif(~bias_phase):
                    m.d.sync += gi.eq(Mux(gi == ng - 1, 0, gi + 1))
                    with m.If(gi == ng - 1):
                        m.d.sync += t.eq(t + 1)
                with m.Else():
                    m.d.sync += bi.eq(Mux(bi == nb - 1, 0, bi + 1))
                    with m.If(bi == nb - 1):
                        m.d.sync += fl.eq(fl + 1)
        with m.If(restart):
            m.d.sync += [beat.eq(0), bias_phase.eq(0), gi.eq(0), t.eq(0), bi.eq(0), fl.eq(0)]
