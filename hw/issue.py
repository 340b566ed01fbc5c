"""Issue control: which item of which input step the MAC array computes in each cycle.

A step is worked on in ``cycles_per_step`` items ``(kl, fl, c)`` (tap level,
filter row, channel chunk; `Schedule.item`), one per cycle. A step may start
when its positions are free (``room``, kept up to date from the positions the
emitter releases) and, if it ends its frame, when the frame queue has room;
its first item then pushes the frame descriptor. Each item leaves with an
`issue_tag` that the MAC array carries down its pipeline.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .counter import at_least, counter
from .lookup import lookup
from .schedule import Schedule

__all__ = ["IssueControl", "position_width", "slot_width", "row_width", "bank_address_width",
           "built_tap_groups", "frame_layout", "issue_tag_layout"]


def position_width(sch: Schedule) -> int:
    """Bits of an output position. Positions are compared as differences modulo
    ``2**width``; every live difference is far below half of that."""
    return (4 * (sch.slots + sch.tail_span + sch.strides + sch.keff)).bit_length() + 1


def slot_width(sch: Schedule) -> int:
    """Bits of a slot (a position modulo ``slots``) in the scatter banks."""
    return (sch.slots - 1).bit_length()


def row_width(sch: Schedule) -> int:
    """Bits of a filter row index ``fl`` (none with one row per group)."""
    return (sch.filters_per_group - 1).bit_length()


def bank_address_width(sch: Schedule) -> int:
    """Bits of a scatter bank address: the slot, and above it the filter row."""
    return slot_width(sch) + row_width(sch)


def built_tap_groups(sch: Schedule) -> list[int]:
    """Tap groups with at least one real tap (the others would only multiply zeros)."""
    return [gk for gk in range(sch.tap_groups) if sch.taps_in_group(gk) > 0]


def frame_layout(sch: Schedule) -> data.StructLayout:
    """A frame descriptor: ``emit_end`` (first position past the cropped output) and
    ``frame_end`` (first position of the next frame)."""
    pw = position_width(sch)
    return data.StructLayout({"emit_end": pw, "frame_end": pw})


def issue_tag_layout(sch: Schedule) -> data.StructLayout:
    """What travels with an issued item.

    ``valid``; ``t`` (item within the step) and ``c`` (channel chunk);
    ``c_first``/``c_last`` (first/last chunk of a sum); ``event`` (the item
    completes a tap level) with ``event_fp``, the final pointer once it is
    written; and per built tap group (`built_tap_groups`) in ``taps``: the
    ``slot`` it writes, its bank ``addr`` (slot and filter row), ``first``
    (no earlier step wrote that position) and ``wen`` (a real tap).
    """
    tap = data.StructLayout({"addr": bank_address_width(sch), "slot": slot_width(sch), "first": 1, "wen": 1})
    return data.StructLayout({
        "valid": 1, "t": range(sch.cycles_per_step), "c": range(sch.chunks),
        "c_first": 1, "c_last": 1, "event": 1, "event_fp": position_width(sch),
        "taps": data.ArrayLayout(tap, len(built_tap_groups(sch))),
    })


class IssueControl(wiring.Component):
    """Item counters, the slot check (``room``), step positions and the frame descriptor push.

    Every decision is a function of registers: the item counters carry
    registered first/last flags, and the slot check is the sign of ``room``
    = (positions released) - (first position the next step needs free),
    kept up to date by additions instead of compared. The issue decision itself
    is a register, decided a cycle ahead from those registers' next values.

    Members
    -------
    step_valid, step_valid_next, step_last, next_last : In(1)
        The step buffer's ``valid``, ``valid_next``, ``step.last`` and ``next_last``.
    consume : Out(1)
        The step's last item issues: release it.
    released : In(1)
        The emitter released a position in the previous cycle.
    pop : In(1)
        The emitter drops a frame descriptor.
    push : Out(1)
        A frame descriptor is pushed (a register: one cycle after the frame's
        last step started).
    descriptor : Out(frame_layout(schedule))
    tag : Out(issue_tag_layout(schedule))
        The item issued in this cycle (``tag.valid``).

    ``fq_count`` (frame descriptors pushed, or being pushed, and not yet popped)
    is an attribute, not a port: the core's formal invariants compare it with
    the frame queue's content.
    """

    def __init__(self, schedule: Schedule):
        self.schedule = schedule
        self.fq_count = Signal(range(schedule.frame_queue_depth + 1), name="fq_count")
        super().__init__({
            "step_valid": In(1), "step_valid_next": In(1), "step_last": In(1), "next_last": In(1), "consume": Out(1),
            "released": In(1), "pop": In(1),
            "push": Out(1), "descriptor": Out(frame_layout(schedule)),
            "tag": Out(issue_tag_layout(schedule)),
        })

    def elaborate(self, platform):
        m = Module()
        sch = self.schedule
        T, CH, Fg, Kg = sch.cycles_per_step, sch.chunks, sch.filters_per_group, sch.taps_per_group
        ct, cc, cfl, ckl = (counter(m, T, "t"), counter(m, CH, "c"), counter(m, Fg, "fl"),
                            counter(m, Kg, "kl"))
        mid = ~ct.first  # t != 0: the current step has started
        # A step may start if it is not a frame's last or the frame queue has
        # room: `fq_count < Q - 1` one cycle ago, so a push now fits.
        last_ok = Signal(init=1)
        room = Signal(signed(position_width(sch)), init=sch.slots - sch.keff)
        # issue = mid | (step_valid & ~room[-1] & last_ok), a register decided from the next
        # values of those registers. Formed in the cycle, from the step buffer's `valid`
        # through three LUTs into every counter's enable, it was the 64-PE layer's speed-6
        # critical path: `issue` drives every counter and tag field across the array's side.
        issue = Signal()
        room_next, last_ok_next = Signal.like(room, name="room_next"), Signal(name="last_ok_next")
        mid_next = ~Mux(issue, ct.last, ct.first)
        m.d.sync += [issue.eq(mid_next | (self.step_valid_next & ~room_next[-1] & last_ok_next)),
                     room.eq(room_next), last_ok.eq(last_ok_next)]
        if platform == "formal":
            m.d.comb += Assert(issue == (mid | (self.step_valid & ~room[-1] & last_ok)))
        # The step's last item issues. With more than one item a step, t = T - 1
        # means the step has started (mid), so it issues: `step_done` is the flag
        # register itself. It drives the step buffer's next state, the positions
        # and `room`; formed from `issue` it was the head of the issue side's
        # longest paths (four LUT levels into the step buffer and `last_ok`).
        step_done = ct.last if T > 1 else issue
        m.d.comb += self.consume.eq(step_done)
        for ctr, ce in ((ct, issue), (cc, issue), (cfl, issue & cc.last),
                        (ckl, issue & cc.last & cfl.last)):
            m.d.comb += ctr.ce.eq(ce)
        if platform == "formal":
            # the item counter's flags follow its value (step_done = t's last flag relies on it)
            m.d.comb += [Assert(ct.first == (ct.value == 0)), Assert(ct.last == (ct.value == T - 1))]
        pstep, step_no = self._positions(m, step_done, room, room_next)
        self._descriptor(m, issue & ~mid & self.step_last, pstep, last_ok_next)
        self._tag(m, issue, pstep, step_no, ct, cc, cfl, ckl)
        return m

    def _positions(self, m, step_done, room, room_next):
        """The current step's position and index within its frame, and the slot check's next ``room``."""
        sch = self.schedule
        PW, j0, s, last = position_width(sch), sch.revisit_steps, sch.strides, self.step_last
        step_no = Signal(range(j0 + 1))  # step index within the frame, saturated at j0
        pstep = Signal(PW)               # position of the current step
        with m.If(step_done):
            with m.If(last):
                m.d.sync += [pstep.eq(pstep + sch.tail_span), step_no.eq(0)]
            with m.Else():
                m.d.sync += [pstep.eq(pstep + s), step_no.eq(Mux(step_no == j0, j0, step_no + 1))]
        # room' = room + released - (step_done ? (last ? tail_span : strides) : 0): one carry
        # chain from the room register, whose other operand is one of six constants that
        # `released`, `step_done` and `last` select. Those are registers (`step_done` is
        # the item counter's last flag with more than one item a step), so the select
        # sits in front of the carry chain, and nothing behind it. (Six sums selected
        # behind the carry chains instead put a 6:1 select between the chain and the
        # register: the speed-8 critical path of the 64-PE layer.)
        rel = self.released
        delta = Signal(signed(PW), name="room_delta")

        def by_rel(sub):  # released - sub, as a constant per value of `released`
            return Mux(rel, Const(1 - sub, signed(PW)), Const(-sub, signed(PW)))

        m.d.comb += delta.eq(Mux(step_done, Mux(last, by_rel(sch.tail_span), by_rel(s)), by_rel(0)))
        m.d.comb += room_next.eq(room + delta)
        return pstep, step_no

    def _descriptor(self, m, push, pstep, last_ok_next):
        """The frame descriptor, pushed through a register when the frame's last step starts."""
        sch = self.schedule
        PW, Q = position_width(sch), sch.frame_queue_depth
        fq_count = self.fq_count
        push_data = Signal(frame_layout(sch), reset_less=True)
        m.d.sync += self.push.eq(push)
        with m.If(push):
            m.d.sync += [push_data.emit_end.eq((pstep + sch.crop_left + sch.out_pad)[:PW]),
                         push_data.frame_end.eq((pstep + sch.tail_span)[:PW])]
        m.d.comb += self.descriptor.eq(push_data)
        m.d.sync += fq_count.eq(fq_count + push - self.pop)
        m.d.comb += last_ok_next.eq(~self.next_last | (fq_count < Q - 1))

    def _tag(self, m, issue, pstep, step_no, ct, cc, cfl, ckl):
        """The issued item's tag."""
        sch = self.schedule
        PW, AW, D, Kg = position_width(sch), slot_width(sch), sch.slots, sch.taps_per_group
        Gk, d, kl, tag = sch.tap_groups, sch.dilation_rate, ckl.value, self.tag
        # Each computed field is a signal of its own (named like the field), so that
        # the netlist names its bits by it rather than by a slice of the whole tag.
        off = lookup(kl, [Const(sch.final_offset(n, False), PW) for n in range(Kg)])
        off_last = lookup(kl, [Const(sch.final_offset(n, True), PW) for n in range(Kg)])
        event, event_fp = Signal(), Signal(PW)
        m.d.comb += [
            event.eq(cfl.last & cc.last), event_fp.eq((pstep + Mux(self.step_last, off_last, off))[:PW]),
            tag.valid.eq(issue), tag.t.eq(ct.value), tag.c.eq(cc.value),
            tag.c_first.eq(cc.first), tag.c_last.eq(cc.last), tag.event.eq(event), tag.event_fp.eq(event_fp),
        ]
        for i, gk in enumerate(built_tap_groups(sch)):
            reach = lookup(kl, [Const((gk * d + n * Gk * d) % D, AW) for n in range(Kg)])
            slot, first, wen = Signal(AW, name=f"slot{gk}"), Signal(name=f"first{gk}"), Signal(name=f"wen{gk}")
            m.d.comb += [
                slot.eq((pstep[:AW] + reach)[:AW]),
                first.eq((step_no < sch.revisit_steps) | at_least(kl, sch.first_touch_tap_level(gk), Kg)),
                wen.eq(~at_least(kl, sch.taps_in_group(gk), Kg)),
                tag.taps[i].slot.eq(slot),
                tag.taps[i].addr.eq(Cat(slot, cfl.value) if sch.filters_per_group > 1 else slot),
                tag.taps[i].first.eq(first),
                tag.taps[i].wen.eq(wen),
            ]
