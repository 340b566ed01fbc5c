"""The whole layer: step buffer, MAC array, scatter banks, emitter and output FIFO.

`Conv1DTransposeCore` has stream interfaces (`amaranth.lib.stream`);
`Conv1DTransposeTop` is the thin component with the flat AXI4-Stream ports of
docs/contract.md that the Verilog is generated from. docs/architecture.md describes
the dataflow; `tconv.hw.schedule` holds every number the structure uses.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .dot import DotProduct, adder_tree
from .multiplier import MultiplierCell
from .postprocess import Activation, Requantize, narrow, narrowing
from .queues import FrameQueue, OutputFifo, thermometer
from .scatter import ScatterBank
from .schedule import Schedule
from .stepbuffer import StepBuffer, step_layout

__all__ = ["Conv1DTransposeCore", "Conv1DTransposeTop", "output_layout"]


def output_layout(width: int) -> data.StructLayout:
    """Payload of one output beat: the packed filter codes and ``tlast``."""
    return data.StructLayout({"data": width, "last": 1})


def _shape(fmt) -> Shape:
    return signed(fmt.width) if fmt.signed else unsigned(fmt.width)


def lookup(index, values):
    """``values[index]`` as a balanced tree of 2:1 muxes on the bits of ``index``.

    ``values`` are Amaranth values or ints of one shape; indices past the end
    read the last entry. (A tree instead of `Array`: no case statements with
    holes or overlaps in the Verilog, and one mux level per index bit.)
    """
    values = list(values)

    def build(lo: int, bit: int):
        if bit < 0 or lo + 1 >= len(values):
            return values[min(lo, len(values) - 1)]
        half = 1 << bit
        if lo + half >= len(values):
            return build(lo, bit - 1)
        return Mux(index[bit], build(lo + half, bit - 1), build(lo, bit - 1))

    return build(0, len(index) - 1)


def index_bits(tables, count: int) -> list[int]:
    """The index bits (below ``count``) that the entries of some table in ``tables`` depend on.

    A bit is left out when every table reads the same entry with it set and
    clear (indices past a table's end never occur). Registers that carry the
    index for a constant lookup keep only these bits: a bit no table reads
    would be a register bit that nothing reads.
    """
    dropped = 0
    for bit in range(count):
        trial = dropped | (1 << bit)
        if all(len({v for i, v in enumerate(t) if i & ~trial == key}) <= 1
               for t in tables for key in {i & ~trial for i in range(len(t))}):
            dropped = trial
    return [bit for bit in range(count) if not dropped >> bit & 1]


def select_bits(values, bits: list[int]) -> list:
    """``values`` re-indexed by the index bits ``bits`` only (see `index_bits`)."""
    out = []
    for key in range(1 << len(bits)):
        full = sum(((key >> k) & 1) << b for k, b in enumerate(bits))
        matches = [i for i in range(len(values)) if all(((i >> b) & 1) == ((full >> b) & 1) for b in bits)]
        out.append(values[matches[0]] if matches else values[-1])
    return out


def _at_least(counter, bound: int, limit: int):
    """``counter >= bound`` for a counter that stays below ``limit``, folded when constant."""
    if bound <= 0:
        return Const(1, 1)
    if bound >= limit:
        return Const(0, 1)
    return counter >= bound


class _Counter:
    """A modulo-``n`` counter (see `_counter`): ``value``, enable ``ce``, flags ``first``/``last``."""

    def __init__(self, value, ce, first, last):
        self.value, self.ce, self.first, self.last = value, ce, first, last


def _counter(m: Module, n: int, name: str) -> _Counter:
    """A counter ``0, 1, ..., n-1, 0, ...`` that advances in cycles with ``ce`` set.

    Its ``last`` (``== n - 1``) and ``first`` (``== 0``) flags are registers
    of their own, so decisions taken on them start at flip-flops.
    """
    value = Signal(range(n), name=name)
    ce = Signal(name=f"{name}_ce")
    last = Signal(name=f"{name}_last", init=int(n == 1))
    first = Signal(name=f"{name}_first", init=1)
    if n > 1:
        with m.If(ce):
            m.d.sync += [
                value.eq(Mux(last, 0, value + 1)),
                last.eq(~last & (value == n - 2)),
                first.eq(last),
            ]
    return _Counter(value, ce, first, last)


class Conv1DTransposeCore(wiring.Component):
    """A ``Conv1DTranspose`` layer with its weights baked in.

    Parameters
    ----------
    layer_q : tconv.model.Conv1DTransposeQ
        The quantized layer (config, codes and formats).
    schedule : tconv.hw.schedule.Schedule
        Its mapping onto the array, from :func:`tconv.hw.check.check_layer`
        (which validates what the hardware can build).
    garbage_seed : int, optional
        Simulation only: fill the scatter banks with random words at start, so
        that a read of a never-written word shows up as a wrong result.
    mul_cell : str, optional
        Multiply through instances of a Verilog module of this name
        (``multiplier_cell`` describes it; `tconv.hw.generate` writes it).
        Without it the multipliers are built inline, for Amaranth's simulator.

    Members
    -------
    i : In(stream.Signature(step_layout(in_channels * Wx)))
        One input step per beat, channel 0 in the low bits; ``last`` ends a frame.
    o : Out(stream.Signature(output_layout(filters * Wo)))
        One output step per beat, filter 0 in the low bits; ``last`` on a frame's last beat.
    """

    def __init__(self, layer_q, schedule: Schedule, *, garbage_seed: int | None = None,
                 mul_cell: str | None = None):
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a tconv.hw.schedule.Schedule (from check_layer), "
                            f"got {type(schedule).__name__}")
        self.schedule = schedule
        self.layer_q = layer_q
        self._garbage_seed = garbage_seed
        self.multiplier_cell = None if mul_cell is None else MultiplierCell.for_shapes(
            mul_cell, _shape(layer_q.input_format), _shape(layer_q.weight_format))
        cfg = layer_q.config
        self.in_width = cfg.in_channels * layer_q.input_format.width
        self.out_width = cfg.filters * layer_q.output_format.width
        super().__init__({
            "i": In(stream.Signature(step_layout(self.in_width))),
            "o": Out(stream.Signature(output_layout(self.out_width))),
        })

    # ---------------------------------------------------------------- tables
    def _weight_rom(self, group: int) -> list[int]:
        """Words of group ``group``'s weight ROM: item ``t`` holds ``lanes`` weight codes."""
        sch, q = self.schedule, self.layer_q
        ww = q.weight_format.width
        mask = (1 << ww) - 1
        words = []
        for t in range(sch.cycles_per_step):
            k, f, channels = sch.work(group, t)
            word = 0
            if k < sch.kernel_size and f < sch.filters:
                for r, ch in enumerate(channels):
                    word |= (int(q.kernel_codes[k, f, ch]) & mask) << (r * ww)
            words.append(word)
        return words

    def _bias_table(self, gf: int) -> list[int]:
        """Aligned bias codes of filter group ``gf``, by filter row ``fl``."""
        sch, q = self.schedule, self.layer_q
        out = []
        for fl in range(sch.filters_per_group):
            f = gf + sch.filter_groups * fl
            out.append(int(q.bias_codes[f]) << q.bias_shift if f < sch.filters else 0)
        return out

    # ------------------------------------------------------------- elaborate
    def elaborate(self, platform):
        m = Module()
        sch, q = self.schedule, self.layer_q
        cfg = q.config
        F = cfg.filters
        R, Gf, Gk = sch.lanes, sch.filter_groups, sch.tap_groups
        Fg, Kg, CH, T, D = (sch.filters_per_group, sch.taps_per_group, sch.chunks,
                            sch.cycles_per_step, sch.slots)
        s, d = sch.strides, sch.dilation_rate
        lat = sch.latency
        Lp = lat.issue_to_write
        xf, wf, of, af = q.input_format, q.weight_format, q.output_format, q.accumulator_format
        Ww, Wo, Wa, Wx = wf.width, of.width, af.width, xf.width
        AW = (D - 1).bit_length()
        # Positions are compared as differences modulo 2**PW; every live
        # difference is far below half of that.
        PW = (4 * (D + sch.tail_span + s + sch.keff)).bit_length() + 1
        Q = sch.frame_queue_depth
        j0 = sch.revisit_steps
        # Groups whose share of taps or filters is empty would only multiply
        # zeros: they are not built.
        taps_gk = [gk for gk in range(Gk) if sch.taps_in_group(gk) > 0]
        filters_gf = [gf for gf in range(Gf) if gf < F]

        def negative(a, b):
            """``a - b < 0`` for positions modulo 2**PW: the sign bit of the difference."""
            return (a - b)[PW - 1]

        # ------------------------------------------------------ input steps
        m.submodules.steps = buf = StepBuffer(self.in_width)
        wiring.connect(m, wiring.flipped(self.i), buf.i)
        last = buf.step.last  # a register

        # Emitter signals the issue logic uses (defined with the emitter below).
        free = Signal()      # the emitter releases position ep in this cycle
        free_d = Signal()    # ... registered: the issue logic sees the slot one cycle later
        pop = Signal()       # the emitter drops the current frame descriptor
        m.d.sync += free_d.eq(free)

        # ------------------------------------------------------------ issue
        # Every decision of the issue logic is a function of registers: item
        # counters carry registered first/last flags, and the slot check is
        # the sign of `room` = (positions released) - (first position the next
        # step needs free), kept up to date by additions instead of compared.
        ct, cc, cfl, ckl = (_counter(m, T, "t"), _counter(m, CH, "c"), _counter(m, Fg, "fl"),
                            _counter(m, Kg, "kl"))
        t, t_last = ct.value, ct.last
        c, c_first, c_last = cc.value, cc.first, cc.last
        fl, fl_last = cfl.value, cfl.last
        kl = ckl.value
        mid = Signal()                   # t != 0: the current step has started
        step_no = Signal(range(j0 + 1))  # step index within the frame, saturated at j0
        pstep = Signal(PW)               # position of the current step
        room = Signal(signed(PW), init=D - sch.keff)
        fq_count = Signal(range(Q + 1))  # frame descriptors pushed and not yet popped
        # A step may start if it is not a frame's last or the frame queue has
        # room: `fq_count < Q - 1` one cycle ago, so a push now fits.
        last_ok = Signal(init=1)
        issue = Signal()
        m.d.comb += issue.eq(mid | (buf.valid & ~room[-1] & last_ok))
        step_done = issue & t_last
        m.d.comb += buf.consume.eq(step_done)
        for ctr, ce in ((ct, issue), (cc, issue), (cfl, issue & c_last),
                        (ckl, issue & c_last & fl_last)):
            m.d.comb += ctr.ce.eq(ce)
        with m.If(issue):
            m.d.sync += mid.eq(~t_last if T > 1 else 0)
        with m.If(step_done):
            with m.If(last):
                m.d.sync += [pstep.eq(pstep + sch.tail_span), step_no.eq(0)]
            with m.Else():
                m.d.sync += [pstep.eq(pstep + s), step_no.eq(Mux(step_no == j0, j0, step_no + 1))]
        # room' = room + free_d - (step_done ? (last ? tail_span : strides) : 0): the three
        # sums are formed from registers in parallel and then selected.
        keep_room = Signal(signed(PW))
        room_s = Signal(signed(PW))
        room_tail = Signal(signed(PW))
        m.d.comb += [keep_room.eq(room + free_d), room_s.eq(room + free_d - s),
                     room_tail.eq(room + free_d - sch.tail_span)]
        m.d.sync += room.eq(Mux(step_done, Mux(last, room_tail, room_s), keep_room))

        # The frame descriptor (crop_left + L_out end, frame end) is pushed when the
        # frame's last step starts, through a register.
        m.submodules.frames = frames = FrameQueue(width=2 * PW, depth=Q)
        push = issue & ~mid & last
        push_d = Signal()
        push_data = Signal(2 * PW, reset_less=True)
        m.d.sync += push_d.eq(push)
        with m.If(push):
            m.d.sync += push_data.eq(Cat((pstep + sch.crop_left + sch.out_pad)[:PW],
                                         (pstep + sch.tail_span)[:PW]))
        m.d.comb += [frames.push.eq(push_d), frames.push_data.eq(push_data), frames.pop.eq(pop)]
        m.d.sync += [fq_count.eq(fq_count + push - pop),
                     last_ok.eq(~buf.next_last | (fq_count < Q - 1))]

        # Tags of the issued item; tags[j] is what stage j (j cycles after issue) sees.
        off = lookup(kl, [Const(sch.final_offset(n, False), PW) for n in range(Kg)])
        off_last = lookup(kl, [Const(sch.final_offset(n, True), PW) for n in range(Kg)])
        tag0 = {
            "valid": issue,
            "c_first": c_first,
            "c_last": c_last,
            "event": fl_last & c_last,
            "event_fp": (pstep + Mux(last, off_last, off))[:PW],
        }
        for gk in taps_gk:
            reach = lookup(kl, [Const((gk * d + n * Gk * d) % D, AW) for n in range(Kg)])
            slot = (pstep[:AW] + reach)[:AW]
            tag0[f"addr{gk}"] = Cat(slot, fl) if Fg > 1 else slot
            tag0[f"slot{gk}"] = slot
            tag0[f"first{gk}"] = (step_no < j0) | _at_least(kl, sch.first_touch_tap_level(gk), Kg)
            tag0[f"wen{gk}"] = ~_at_least(kl, sch.taps_in_group(gk), Kg)
        # The scatter banks take address and first flag at the read stage.
        lead = ScatterBank.LEAD
        depth = {name: Lp - lead if name.startswith(("addr", "first")) else Lp for name in tag0}
        depth["c"] = 1
        tag0["c"] = c
        tags = [tag0]
        for j in range(1, Lp + 1):
            cur = {}
            for name, value in tags[-1].items():
                if j > depth[name]:
                    continue
                sig = Signal(len(value), name=f"{name}_s{j}", reset_less=name != "valid")
                m.d.sync += sig.eq(value)
                cur[name] = sig
            tags.append(cur)
        tw = tags[Lp]          # the write stage
        tr = tags[Lp - lead]   # the scatter read stage

        # ------------------------------------------------------ MAC array
        # The multipliers' operand registers take the item's weights and
        # channel chunk c of the step: at the end of the issue cycle from a LUT
        # ROM, or one cycle later from a block-RAM ROM (whose output is
        # registered there, with the step's data read one cycle late from
        # the step buffer).
        x_shape = _shape(xf)
        w_shape = _shape(wf)
        luts = sch.weights_in_luts
        x_all = Cat(buf.step.data if luts else buf.data_d, Const(0, CH * R * Wx - self.in_width))
        chunks = [x_all[n * R * Wx:(n + 1) * R * Wx] for n in range(CH)]
        x_sel = Signal(R * Wx)
        m.d.comb += x_sel.eq(lookup(c if luts else tags[1]["c"], chunks))
        operand_stage = 0 if luts else 1
        banks = {}
        for gk in taps_gk:
            for gf in filters_gf:
                g = sch.group_of(gf, gk)
                words = self._weight_rom(g)
                if luts:
                    weights = lookup(t, [Const(v, R * Ww) for v in words])
                else:
                    rom = memory.Memory(shape=R * Ww, depth=T, init=words)
                    m.submodules[f"weights{g}"] = rom
                    rport = rom.read_port()
                    m.d.comb += rport.addr.eq(t)
                    weights = rport.data
                dot = DotProduct(R, x_shape=x_shape, w_shape=w_shape, out_width=Wa,
                                 operand_stages=lat.operand, product_stages=lat.product,
                                 cell=self.multiplier_cell)
                m.submodules[f"dot{g}"] = dot
                m.d.comb += [dot.x.eq(x_sel), dot.w.eq(weights)]
                partial = dot.o
                stage = operand_stage + dot.latency
                if CH > 1:
                    acc = Signal(signed(Wa), name=f"chunk_acc{g}", reset_less=True)
                    with m.If(tags[stage]["valid"]):
                        m.d.sync += acc.eq(Mux(tags[stage]["c_first"], 0, acc) + partial)
                    partial = acc
                    stage += 1
                while stage < Lp:
                    pad = Signal(signed(Wa), name=f"partial_pad{g}_{stage}", reset_less=True)
                    m.d.sync += pad.eq(partial)
                    partial = pad
                    stage += 1
                assert stage == Lp, (stage, Lp)
                init = ()
                if self._garbage_seed is not None:
                    rng = np.random.default_rng([self._garbage_seed, g])
                    init = rng.integers(af.min_code, af.max_code, sch.bank_words, endpoint=True)
                bank = ScatterBank(depth=sch.bank_words, width=Wa, init=[int(v) for v in init])
                m.submodules[f"bank{g}"] = bank
                m.d.comb += [
                    bank.valid.eq(tr["valid"] & tr["c_last"] & tr[f"wen{gk}"]),
                    bank.addr.eq(tr[f"addr{gk}"]),
                    bank.first.eq(tr[f"first{gk}"]),
                    bank.partial.eq(partial),
                ]
                banks[gf, gk] = bank

        # --------------------------------------------------------- emitter
        ep = Signal(PW)                # positions below ep are emitted and their slots free
        ep1 = Signal(PW, init=1)       # ep + 1
        ep2 = Signal(PW, init=2)       # ep + 2
        fp = Signal(PW)                # positions below fp are final
        fp_next = Signal(PW)           # ... from the next cycle on
        m.d.comb += fp_next.eq(Mux(tw["valid"] & tw["event"], tw["event_fp"], fp))
        m.d.sync += fp.eq(fp_next)
        eslot = ep[:AW]

        # Which slots hold data written since they were last emitted, per tap
        # group. A release clears its slot's bit one cycle later.
        eslot_d = Signal(AW)
        m.d.sync += eslot_d.eq(eslot)
        touched = {gk: Signal(D, name=f"touched{gk}") for gk in taps_gk}
        for gk in taps_gk:
            touch_set = Signal(D, name=f"touch_set{gk}")
            with m.If(tw["valid"] & tw["c_last"] & tw[f"wen{gk}"]):
                m.d.comb += touch_set.eq(1 << tw[f"slot{gk}"])
            clear = Mux(free_d, 1 << eslot_d, 0)
            m.d.sync += touched[gk].eq((touched[gk] | touch_set) & ~clear)

        # Position compares, registered: each cycle they are evaluated for ep
        # and ep + 1 (against next cycle's final pointer and the head
        # descriptor) and the one for next cycle's ep is kept. A pop clears
        # `fin` and `have` for one cycle, while the compares are redone for
        # the new head.
        emit_end = frames.head[:PW]
        frame_end = frames.head[PW:]
        compares = {
            "fin": (negative(ep, fp_next), negative(ep1, fp_next)),      # ep < fp
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
                now[name] = Mux(free_d, r1, r0)
                continue
            r = Signal(name=f"{name}_now")
            nxt = Mux(free, f1, f0)
            m.d.sync += r.eq(nxt & ~pop if name == "fin" else nxt)
            now[name] = r
        have = Signal()    # the head descriptor's compares are valid
        m.d.sync += have.eq(frames.head_valid & ~pop)

        cefl = _counter(m, Fg, "efl")
        efl, efl_last = cefl.value, cefl.last
        head = Signal(range(sch.crop_left + 1), init=sch.crop_left)
        head_nz = Signal(init=sch.crop_left != 0)
        # A row may be read: within a position, or a new position's beat has
        # an output FIFO credit (fewer than out_fifo_depth beats reserved:
        # emitted or in the emission pipeline, and not yet taken by the sink).
        can_emit = Signal(init=1)
        em_issue = Signal()
        is_final = now["fin"]
        in_tail = have & now["tail"]
        at_frame_end = have & now["end"]
        skip = head_nz | in_tail
        with m.If(at_frame_end):
            m.d.comb += pop.eq(1)
            m.d.sync += [head.eq(sch.crop_left), head_nz.eq(sch.crop_left != 0)]
        with m.Elif(is_final & skip):
            m.d.comb += free.eq(1)
            with m.If(head_nz):
                m.d.sync += [head.eq(head - 1), head_nz.eq(head != 1)]
        with m.Elif(is_final & can_emit):
            m.d.comb += [em_issue.eq(1), cefl.ce.eq(1)]
            with m.If(efl_last):
                m.d.comb += free.eq(1)
        with m.If(free):
            m.d.sync += [ep.eq(ep1), ep1.eq(ep2), ep2.eq(ep2 + 1)]

        m.submodules.out_fifo = ofifo = OutputFifo(width=self.out_width + 1,
                                                   depth=sch.out_fifo_depth)
        out_taken = ofifo.r_valid & self.o.ready
        reserve = em_issue & cefl.first
        _, reserved_next = thermometer(m, sch.out_fifo_depth, reserve, out_taken, name="reserved")
        efl_first_next = Mux(em_issue, efl_last, cefl.first)
        m.d.sync += can_emit.eq(~efl_first_next | ~reserved_next[-1])
        m.d.comb += [
            self.o.valid.eq(ofifo.r_valid),
            self.o.payload.eq(ofifo.r_data),
            ofifo.r_en.eq(self.o.ready),
        ]

        # Emission pipeline: etags[j] is seen j cycles after the emitter's read.
        # The filter row selects the bias: only the bits of it that the bias
        # tables depend on travel (none when every row has the same bias).
        bias_tables = {gf: self._bias_table(gf) for gf in filters_gf}
        fl_bits = index_bits(list(bias_tables.values()), len(efl))
        etag0 = {
            "valid": em_issue,
            **({"fl": Cat(*(efl[b] for b in fl_bits))} if fl_bits else {}),
            "last_row": efl_last,
            "beat_last": have & now["beat_last"],
        }
        for gk in taps_gk:
            etag0[f"touched{gk}"] = lookup(eslot, [touched[gk][n] for n in range(D)])
        em_addr = Cat(eslot, efl) if Fg > 1 else eslot
        for bank in banks.values():
            m.d.comb += bank.em_addr.eq(em_addr)
        merge_stages = lat.merge
        out_stage = 2 + merge_stages + 3
        etags = [etag0]
        for j in range(1, out_stage + 1):
            cur = {}
            for name, value in etags[-1].items():
                sig = Signal(len(value), name=f"e{name}_s{j}", reset_less=name != "valid")
                m.d.sync += sig.eq(value)
                cur[name] = sig
            etags.append(cur)

        rows = []
        for gf in filters_gf:
            operands = []
            for gk in taps_gk:
                # The bank's read data is registered as it is (a block RAM's
                # output register can hold it); a word the frame never touched
                # is masked one stage later, inside the first adder.
                qv = Signal(signed(Wa), name=f"emit_q{gf}_{gk}", reset_less=True)
                m.d.sync += qv.eq(banks[gf, gk].em_data)
                operands.append(Mux(etags[2][f"touched{gk}"], qv, 0))
            bias = Signal(signed(Wa), name=f"emit_bias{gf}", reset_less=True)
            table = [Const(v, signed(Wa)) for v in select_bits(bias_tables[gf], fl_bits)]
            m.d.sync += bias.eq(lookup(etags[1]["fl"], table) if fl_bits else table[0])
            operands.append(bias)
            nr = narrowing(cfg.activation, af.frac, of)
            merged_width = len(narrow(Signal(signed(Wa)), nr.acc_lo, nr.acc_hi, nr.acc_sign))
            acc = adder_tree(m, operands, signed(merged_width), name=f"merge{gf}",
                             select=lambda v: narrow(v[:Wa].as_signed(), nr.acc_lo, nr.acc_hi,
                                                     nr.acc_sign))
            act = Activation(cfg.activation, acc_width=merged_width, acc_frac=af.frac - nr.acc_lo,
                             drop_lsbs=nr.act_drop, keep_bits=nr.act_keep, keep_sign=nr.act_sign)
            m.submodules[f"activation{gf}"] = act
            req = Requantize(of, in_width=act.out_width, in_frac=act.out_frac)
            m.submodules[f"requantize{gf}"] = req
            m.d.comb += [act.i.eq(acc), req.i.eq(act.o)]
            rows.append(req.o)
        row = Cat(*rows)
        et = etags[out_stage]
        RW = Gf * Wo
        if Fg > 1:
            sr = Signal((Fg - 1) * RW, reset_less=True)
            with m.If(et["valid"] & ~et["last_row"]):
                m.d.sync += sr.eq(Cat(sr[RW:], row))
            beat = Cat(sr, row)
        else:
            beat = row
        m.d.comb += [
            ofifo.w_en.eq(et["valid"] & et["last_row"]),
            ofifo.w_data.eq(Cat(beat[:self.out_width], et["beat_last"])),
        ]
        return m


class Conv1DTransposeTop(wiring.Component):
    """The generated module: exactly docs/contract.md's ports (plus ``clk``/``rst`` of the sync domain).

    Members
    -------
    s_axis_tdata : In(in_channels * Wx)
    s_axis_tvalid, s_axis_tlast : In(1)
    s_axis_tready : Out(1)
    m_axis_tdata : Out(filters * Wo)
    m_axis_tvalid, m_axis_tlast : Out(1)
    m_axis_tready : In(1)
    """

    def __init__(self, layer_q, schedule: Schedule, *, garbage_seed: int | None = None,
                 mul_cell: str | None = None):
        self.core = Conv1DTransposeCore(layer_q, schedule, garbage_seed=garbage_seed, mul_cell=mul_cell)
        self.schedule = self.core.schedule
        super().__init__({
            "s_axis_tdata": In(self.core.in_width),
            "s_axis_tvalid": In(1),
            "s_axis_tready": Out(1),
            "s_axis_tlast": In(1),
            "m_axis_tdata": Out(self.core.out_width),
            "m_axis_tvalid": Out(1),
            "m_axis_tready": In(1),
            "m_axis_tlast": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        m.d.comb += [
            core.i.payload.data.eq(self.s_axis_tdata),
            core.i.payload.last.eq(self.s_axis_tlast),
            core.i.valid.eq(self.s_axis_tvalid),
            self.s_axis_tready.eq(core.i.ready),
            self.m_axis_tdata.eq(core.o.payload.data),
            self.m_axis_tlast.eq(core.o.payload.last),
            self.m_axis_tvalid.eq(core.o.valid),
            core.o.ready.eq(self.m_axis_tready),
        ]
        return m
