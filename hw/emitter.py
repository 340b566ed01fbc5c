"""The emitter: reads finished output positions out of the scatter banks, in order.

It keeps two position pointers: ``fp`` (positions below it are final: no
later item writes them; advanced by the write-stage tags' events) and ``ep``
(positions below it are emitted and their slots free). A final position is
skipped (the ``crop_left`` head of a frame, or past the frame's ``emit_end``)
or read one filter row per cycle; at the frame's end its descriptor is
popped. A position's first row needs an output FIFO credit (`thermometer`
``reserved``: beats emitted or in the emission pipeline and not yet taken by
the sink). Each read row leaves with an `emission_tag`.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .counter import counter
from .issue import bank_address_width, built_tap_groups, frame_layout, issue_tag_layout, position_width, slot_width
from .lookup import lookup
from .queues import count_of, thermometer
from .schedule import Schedule

__all__ = ["Emitter", "emission_tag_layout"]


def emission_tag_layout(sch: Schedule, row_bits: int) -> data.StructLayout:
    """What travels with a row read from the banks: ``valid``; ``fl``, the ``row_bits``
    bits of the filter row that select its bias; ``last_row`` (the position's last
    row: the beat is complete); ``beat_last`` (the frame's last beat); and per built
    tap group ``touched`` (the slot was written since it was last emitted)."""
    return data.StructLayout({"valid": 1, "fl": row_bits, "last_row": 1, "beat_last": 1,
                              "touched": data.ArrayLayout(1, len(built_tap_groups(sch)))})


class Emitter(wiring.Component):
    """Emission pointers, touched bits, registered position compares, pop/free, head crop
    and output credits.

    Parameters
    ----------
    schedule : Schedule
    row_bits : list of int
        The bits of the filter row that the emission tag carries (`index_bits`
        of the bias tables).

    Members
    -------
    written : In(issue_tag_layout(schedule))
        The MAC array's write-stage tag.
    upcoming : In(issue_tag_layout(schedule))
        The tag that ``written`` holds in the next cycle.
    head_valid : In(1)
    head : In(frame_layout(schedule))
        The frame queue's head descriptor.
    pop : Out(1)
        Drop the head descriptor.
    released : Out(1)
        A position's slot was released in the previous cycle (a register).
    taken : In(1)
        A beat's credit returns: the core drives it a cycle after the sink takes
        the beat from the output FIFO (a register).
    em_addr : Out(bank_address_width(schedule))
        The bank address of the row read now.
    tag : Out(emission_tag_layout(schedule, len(row_bits)))
        The row read now (``tag.valid``).

    ``credits`` (beats holding an output FIFO credit: emitted or in the emission
    pipeline, not yet taken) is an attribute driven on the ``"formal"``
    platform only, for the core's credit invariants.
    """

    def __init__(self, schedule: Schedule, row_bits: list[int]):
        self.schedule = schedule
        self.credits = Signal(range(schedule.out_fifo_depth + 1), name="credits")
        self._row_bits = list(row_bits)
        sch = schedule
        super().__init__({
            "written": In(issue_tag_layout(sch)), "upcoming": In(issue_tag_layout(sch)),
            "head_valid": In(1), "head": In(frame_layout(sch)), "pop": Out(1),
            "released": Out(1), "taken": In(1),
            "em_addr": Out(bank_address_width(sch)),
            "tag": Out(emission_tag_layout(sch, len(row_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        self._platform = platform
        sch = self.schedule
        PW, AW = position_width(sch), slot_width(sch)
        free = Signal()  # the emitter releases position ep in this cycle
        m.d.sync += self.released.eq(free)
        ep = Signal(PW)            # positions below ep are emitted and their slots free
        ep1 = Signal(PW, init=1)   # ep + 1
        ep2 = Signal(PW, init=2)   # ep + 2
        fp = Signal(PW)            # positions below fp are final
        fp_next = Signal(PW)       # ... from the next cycle on
        w = self.written
        m.d.comb += fp_next.eq(Mux(w.valid & w.event, w.event_fp, fp))
        m.d.sync += fp.eq(fp_next)
        with m.If(free):
            m.d.sync += [ep.eq(ep1), ep1.eq(ep2), ep2.eq(ep2 + 1)]
        # The touched bits are looked up at a copy of ep's slot bits of their own: ep drives
        # the compares and the bank address, and its route to the touched bits' 16:1
        # select was a speed-6 critical path. (It counts on its own: no tool merges it with ep.)
        eslot = Signal(AW, name="eslot")
        with m.If(free):
            m.d.sync += eslot.eq(eslot + 1)
        if platform == "formal":
            m.d.comb += [Assert(eslot == ep[:AW]), Assert(ep1 == (ep + 1)[:PW]), Assert(ep2 == (ep + 2)[:PW])]
        touched = self._touched(m, eslot)
        now, have = self._compares(m, free, ep, ep1, ep2, fp)
        cefl = counter(m, sch.filters_per_group, "efl")
        em_issue = self._control(m, free, now, have, cefl)
        efl = cefl.value
        m.d.comb += [
            self.em_addr.eq(Cat(ep[:AW], efl) if sch.filters_per_group > 1 else ep[:AW]),
            self.tag.valid.eq(em_issue),
            self.tag.fl.eq(Cat(*(efl[b] for b in self._row_bits))),
            self.tag.last_row.eq(cefl.last),
            self.tag.beat_last.eq(have & now["beat_last"]),
        ]
        for i, bits in enumerate(touched):
            m.d.comb += self.tag.touched[i].eq(lookup(eslot, [bits[n] for n in range(sch.slots)]))
        return m

    def _touched(self, m, eslot):
        """Per built tap group, which slots hold data written since they were last
        emitted. A release clears its slot's bit one cycle later."""
        sch = self.schedule
        eslot_d = Signal(len(eslot))
        m.d.sync += eslot_d.eq(eslot)
        w = self.written
        out = []
        for i, gk in enumerate(built_tap_groups(sch)):
            touched = Signal(sch.slots, name=f"touched{gk}")
            touch_set = Signal(sch.slots, name=f"touch_set{gk}")
            with m.If(w.valid & w.c_last & w.taps[i].wen):
                m.d.comb += touch_set.eq(1 << w.taps[i].slot)
            clear = Mux(self.released, 1 << eslot_d, 0)
            m.d.sync += touched.eq((touched | touch_set) & ~clear)
            out.append(touched)
        return out

    def _compares(self, m, free, ep, ep1, ep2, fp):
        """Position compares, registered: each cycle they are evaluated for ep and
        ep + 1 (against next cycle's final pointer and the head descriptor) and the
        one for next cycle's ep is kept. A pop clears ``fin`` and ``have`` for one
        cycle, while the compares are redone for the new head."""
        PW = position_width(self.schedule)

        def negative(a, b):
            """``a - b < 0`` for positions modulo 2**PW: the sign bit of the difference."""
            return (a - b)[PW - 1]

        emit_end, frame_end = self.head.emit_end, self.head.frame_end
        # ep < fp_next, for both values of fp_next: the compares start at registers and the
        # late write-stage event only selects (it was a subtractor's input: a critical path).
        # The compares with the event's pointer are made a cycle ahead, from the upcoming
        # tag, for ep, ep + 1 and ep + 2 (this cycle's ep and ep + 1 are among them), and
        # registered; `released` (ep moved on) selects (a subtractor from the tag pipeline
        # into this select was the 64-PE layer's speed-6 critical path).
        w, up = self.written, self.upcoming
        moved = w.valid & w.event
        ahead = [Signal(name=f"event_neg{k}", reset_less=True) for k in range(3)]
        m.d.sync += [r.eq(negative(p, up.event_fp)) for r, p in zip(ahead, (ep, ep1, ep2))]
        at_event = (Mux(self.released, ahead[1], ahead[0]), Mux(self.released, ahead[2], ahead[1]))
        if self._platform == "formal":
            m.d.comb += [Assert(~moved | (at_event[0] == negative(ep, w.event_fp))),
                         Assert(~moved | (at_event[1] == negative(ep1, w.event_fp)))]

        def before_final(k, p):
            return Mux(moved, at_event[k], negative(p, fp))

        compares = {
            "fin": (before_final(0, ep), before_final(1, ep1)),           # ep < fp
            "tail": (~negative(ep, emit_end), ~negative(ep1, emit_end)),  # ep >= emit_end
            "end": (ep == frame_end, ep1 == frame_end),
            "beat_last": (ep1 == emit_end, ep2 == emit_end),
        }
        now = {}
        for name, (f0, f1) in compares.items():
            if name == "beat_last":
                # Only tags the row (registered): selected after the fact.
                r0, r1 = Signal(name=f"{name}0"), Signal(name=f"{name}1")
                m.d.sync += [r0.eq(f0), r1.eq(f1)]
                now[name] = Mux(self.released, r1, r0)
                continue
            r = Signal(name=f"{name}_now")
            nxt = Mux(free, f1, f0)
            m.d.sync += r.eq(nxt & ~self.pop if name == "fin" else nxt)
            now[name] = r
        have = Signal()  # the head descriptor's compares are valid
        m.d.sync += have.eq(self.head_valid & ~self.pop)
        return now, have

    def _control(self, m, free, now, have, cefl):
        """Pop at a frame's end, skip a cropped position, or read a row when a credit
        allows; returns the read strobe."""
        sch = self.schedule
        head = Signal(range(sch.crop_left + 1), init=sch.crop_left)
        head_nz = Signal(init=sch.crop_left != 0)
        # A row may be read: within a position, or a new position's beat has
        # an output FIFO credit (fewer than out_fifo_depth beats reserved:
        # emitted or in the emission pipeline, and not yet taken by the sink).
        can_emit = Signal(init=1)
        em_issue = Signal()
        is_final = now["fin"]
        skip = head_nz | (have & now["tail"])
        with m.If(have & now["end"]):
            m.d.comb += self.pop.eq(1)
            m.d.sync += [head.eq(sch.crop_left), head_nz.eq(sch.crop_left != 0)]
        with m.Elif(is_final & skip):
            m.d.comb += free.eq(1)
            with m.If(head_nz):
                m.d.sync += [head.eq(head - 1), head_nz.eq(head != 1)]
        with m.Elif(is_final & can_emit):
            m.d.comb += [em_issue.eq(1), cefl.ce.eq(1)]
            with m.If(cefl.last):
                m.d.comb += free.eq(1)
        reserve = em_issue & cefl.first
        reserved, reserved_next = thermometer(m, sch.out_fifo_depth, reserve, self.taken, name="reserved",
                                              platform=self._platform)
        if self._platform == "formal":
            m.d.comb += self.credits.eq(count_of(reserved))
        efl_first_next = Mux(em_issue, cefl.last, cefl.first)
        m.d.sync += can_emit.eq(~efl_first_next | ~reserved_next[-1])
        return em_issue
