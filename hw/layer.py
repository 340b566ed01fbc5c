"""The whole layer: step buffer, MAC array, scatter banks, emitter and output FIFO.

`Conv1DTransposeCore` has stream interfaces (`amaranth.lib.stream`);
`Conv1DTransposeTop` is the thin component with the flat AXI4-Stream ports of
design.md that the Verilog is generated from. docs/architecture.md describes
the dataflow; `tconv.hw.schedule` holds every number the structure uses.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .dot import DotProduct, adder_tree
from .postprocess import Activation, Requantize, check_activation, narrow, narrowing
from .scatter import ScatterBank
from .schedule import MAX_OPERAND_BITS, Schedule
from .stepbuffer import StepBuffer, step_layout

__all__ = ["Conv1DTransposeCore", "Conv1DTransposeTop", "check_layer", "output_layout"]


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


def _at_least(counter, bound: int, limit: int):
    """``counter >= bound`` for a counter that stays below ``limit``, folded when constant."""
    if bound <= 0:
        return Const(1, 1)
    if bound >= limit:
        return Const(0, 1)
    return counter >= bound


def check_layer(layer_q, pe_count: int) -> Schedule:
    """Validate what the hardware can build; returns the schedule.

    Raises
    ------
    ValueError
        Naming the field and what it allows: ``array.pe_count`` (a power of two),
        ``layer.activation`` (linear, relu, relu6, leaky_relu), ``formats.input`` /
        ``formats.weight`` (at most 18 bits signed, 17 unsigned, one MULT18X18D
        operand).
    """
    config = layer_q.config
    check_activation(config.activation)
    for field, fmt in (("input", layer_q.input_format), ("weight", layer_q.weight_format)):
        bits = fmt.width + (0 if fmt.signed else 1)
        if bits > MAX_OPERAND_BITS:
            raise ValueError(
                f"formats.{field} {fmt} is too wide for the array's multipliers (one ECP5 "
                f"MULT18X18D per PE): allowed are at most {MAX_OPERAND_BITS} bits signed "
                f"(fixed<W,I> with W <= {MAX_OPERAND_BITS}) or {MAX_OPERAND_BITS - 1} bits unsigned")
    return Schedule.plan(config, pe_count)


class Conv1DTransposeCore(wiring.Component):
    """A ``Conv1DTranspose`` layer with its weights baked in.

    Parameters
    ----------
    layer_q : tconv.model.Conv1DTransposeQ
        The quantized layer (config, codes and formats).
    pe_count : int
        Multipliers in the array, a power of two.
    garbage_seed : int, optional
        Simulation only: fill the scatter banks with random words at start, so
        that a read of a never-written word shows up as a wrong result.

    Members
    -------
    i : In(stream.Signature(step_layout(in_channels * Wx)))
        One input step per beat, channel 0 in the low bits; ``last`` ends a frame.
    o : Out(stream.Signature(output_layout(filters * Wo)))
        One output step per beat, filter 0 in the low bits; ``last`` on a frame's last beat.
    """

    def __init__(self, layer_q, *, pe_count: int = 64, garbage_seed: int | None = None):
        self.schedule = check_layer(layer_q, pe_count)
        self.layer_q = layer_q
        self._garbage_seed = garbage_seed
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
        C, F = cfg.in_channels, cfg.filters
        R, Gf, Gk = sch.lanes, sch.filter_groups, sch.tap_groups
        Fg, Kg, CH, T, D = (sch.filters_per_group, sch.taps_per_group, sch.chunks,
                            sch.cycles_per_step, sch.slots)
        s, d = sch.strides, sch.dilation_rate
        lat = sch.latency
        Lp = lat.issue_to_write
        xf, wf, of, af = q.input_format, q.weight_format, q.output_format, q.accumulator_format
        Wx, Ww, Wo, Wa = xf.width, wf.width, of.width, af.width
        AW = (D - 1).bit_length()
        # Positions are compared as differences modulo 2**PW; every live
        # difference is far below half of that.
        PW = (4 * (D + sch.tail_span + s + sch.keff)).bit_length() + 1
        j0 = sch.revisit_steps
        # Groups whose share of taps or filters is empty would only multiply
        # zeros: they are not built.
        taps_gk = [gk for gk in range(Gk) if sch.taps_in_group(gk) > 0]
        filters_gf = [gf for gf in range(Gf) if gf < F]

        def diff(a, b, name):
            """``a - b`` modulo 2**PW, as a signed number."""
            sig = Signal(signed(PW), name=name)
            m.d.comb += sig.eq(a - b)
            return sig

        # ------------------------------------------------------ input steps
        m.submodules.steps = buf = StepBuffer(self.in_width)
        wiring.connect(m, wiring.flipped(self.i), buf.i)

        # -------------------------------------------------- emitter state (used by issue)
        ep = Signal(PW)          # positions below ep are emitted and their slots free
        fp = Signal(PW)          # positions below fp are final
        m.submodules.frames = frames = fifo.SyncFIFO(width=2 * PW, depth=sch.frame_queue_depth)

        # ------------------------------------------------------------ issue
        t = Signal(range(T))
        c = Signal(range(CH))
        fl = Signal(range(Fg))
        kl = Signal(range(Kg))
        step_no = Signal(range(j0 + 1))  # step index within the frame, saturated at j0
        pstep = Signal(PW)               # position of the current step
        last = buf.step.last
        space = diff(pstep + (sch.keff - D), ep, "space")
        start_ok = (space <= 0) & (~last | frames.w_rdy)
        issue = Signal()
        m.d.comb += issue.eq(buf.valid & ((t != 0) | start_ok))
        end_of_step = t == T - 1

        with m.If(issue):
            m.d.sync += t.eq(Mux(end_of_step, 0, t + 1))
            with m.If(c == CH - 1):
                m.d.sync += c.eq(0)
                with m.If(fl == Fg - 1):
                    m.d.sync += [fl.eq(0), kl.eq(Mux(kl == Kg - 1, 0, kl + 1))]
                with m.Else():
                    m.d.sync += fl.eq(fl + 1)
            with m.Else():
                m.d.sync += c.eq(c + 1)
            with m.If(end_of_step):
                m.d.comb += buf.consume.eq(1)
                with m.If(last):
                    m.d.sync += [pstep.eq(pstep + sch.tail_span), step_no.eq(0)]
                with m.Else():
                    m.d.sync += [pstep.eq(pstep + s),
                                 step_no.eq(Mux(step_no == j0, j0, step_no + 1))]
            with m.If((t == 0) & last):
                m.d.comb += [
                    frames.w_en.eq(1),
                    frames.w_data.eq(Cat((pstep + sch.crop_left + sch.out_pad)[:PW],
                                         (pstep + sch.tail_span)[:PW])),
                ]

        # Channel chunk c of the step, zero-padded to whole chunks.
        x_shape = _shape(xf)
        w_shape = _shape(wf)
        x_all = Cat(buf.step.data, Const(0, CH * R * Wx - self.in_width))
        x_reg = Signal(data.ArrayLayout(x_shape, R))
        chunks = [x_all[n * R * Wx:(n + 1) * R * Wx] for n in range(CH)]
        m.d.sync += x_reg.eq(lookup(c, chunks))

        # Tags of the issued item; tags[j] is what stage j (j cycles after issue) sees.
        off = lookup(kl, [Const(sch.final_offset(n, False), PW) for n in range(Kg)])
        off_last = lookup(kl, [Const(sch.final_offset(n, True), PW) for n in range(Kg)])
        tag0 = {
            "valid": issue,
            "c_first": c == 0,
            "c_last": c == CH - 1,
            "event": (fl == Fg - 1) & (c == CH - 1),
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
        depth = {name: Lp - 2 if name.startswith(("addr", "first")) else Lp for name in tag0}
        tags = [tag0]
        for j in range(1, Lp + 1):
            cur = {}
            for name, value in tags[-1].items():
                if j > depth[name]:
                    continue
                sig = Signal(len(value), name=f"{name}_s{j}")
                m.d.sync += sig.eq(value)
                cur[name] = sig
            tags.append(cur)
        tw = tags[Lp]       # the write stage
        tr = tags[Lp - 2]   # the scatter read stage

        # ------------------------------------------------------ MAC array
        banks = {}
        for gk in taps_gk:
            for gf in filters_gf:
                g = sch.group_of(gf, gk)
                rom = memory.Memory(shape=R * Ww, depth=T, init=self._weight_rom(g))
                m.submodules[f"weights{g}"] = rom
                rport = rom.read_port()
                m.d.comb += rport.addr.eq(t)
                dot = DotProduct(R, x_shape=x_shape, w_shape=w_shape, out_width=Wa)
                m.submodules[f"dot{g}"] = dot
                m.d.comb += [dot.x.eq(x_reg), dot.w.eq(rport.data)]
                partial = dot.o
                stage = 1 + dot.latency
                if CH > 1:
                    acc = Signal(signed(Wa), name=f"chunk_acc{g}")
                    with m.If(tags[stage]["valid"]):
                        m.d.sync += acc.eq(Mux(tags[stage]["c_first"], 0, acc) + partial)
                    partial = acc
                    stage += 1
                while stage < Lp:
                    pad = Signal(signed(Wa), name=f"partial_pad{g}_{stage}")
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

        # Which slots hold data written since they were last emitted, per tap group.
        touched = {gk: Signal(D, name=f"touched{gk}") for gk in taps_gk}
        touch_set = {gk: Signal(D, name=f"touch_set{gk}") for gk in taps_gk}
        with m.If(tw["valid"] & tw["event"]):
            m.d.sync += fp.eq(tw["event_fp"])
        for gk in taps_gk:
            with m.If(tw["valid"] & tw["c_last"] & tw[f"wen{gk}"]):
                m.d.comb += touch_set[gk].eq(1 << tw[f"slot{gk}"])

        # --------------------------------------------------------- emitter
        efl = Signal(range(Fg))
        head = Signal(range(sch.crop_left + 1), init=sch.crop_left)
        reserved = Signal(range(sch.out_fifo_depth + 1))
        emit_end = frames.r_data[:PW]
        frame_end = frames.r_data[PW:]
        have_frame = frames.r_rdy
        at_frame_end = have_frame & (ep == frame_end)
        is_final = diff(ep, fp, "ep_minus_fp") < 0
        in_tail = have_frame & (diff(ep, emit_end, "ep_minus_emit_end") >= 0)
        skip = (head != 0) | in_tail
        credit = reserved < sch.out_fifo_depth
        em_issue = Signal()
        free = Signal()
        eslot = ep[:AW]
        with m.If(at_frame_end):
            m.d.comb += frames.r_en.eq(1)
            m.d.sync += head.eq(sch.crop_left)
        with m.Elif(is_final & skip):
            m.d.comb += free.eq(1)
            with m.If(head != 0):
                m.d.sync += head.eq(head - 1)
        with m.Elif(is_final & ((efl != 0) | credit)):
            m.d.comb += em_issue.eq(1)
            with m.If(efl == Fg - 1):
                m.d.comb += free.eq(1)
                m.d.sync += efl.eq(0)
            with m.Else():
                m.d.sync += efl.eq(efl + 1)
        with m.If(free):
            m.d.sync += ep.eq(ep + 1)
        clear = Mux(free, 1 << eslot, 0)
        for gk in taps_gk:
            m.d.sync += touched[gk].eq((touched[gk] | touch_set[gk]) & ~clear)

        m.submodules.out_fifo = ofifo = fifo.SyncFIFO(width=self.out_width + 1,
                                                      depth=sch.out_fifo_depth)
        out_taken = ofifo.r_rdy & self.o.ready
        reserve = em_issue & (efl == 0)
        m.d.sync += reserved.eq(reserved + reserve - out_taken)
        m.d.comb += [
            self.o.valid.eq(ofifo.r_rdy),
            self.o.payload.eq(ofifo.r_data),
            ofifo.r_en.eq(self.o.ready),
        ]

        # Emission pipeline: etags[j] is seen j cycles after the emitter's read.
        etag0 = {
            "valid": em_issue,
            "fl": efl,
            "last_row": efl == Fg - 1,
            "beat_last": have_frame & ((ep + 1)[:PW] == emit_end),
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
                sig = Signal(len(value), name=f"e{name}_s{j}")
                m.d.sync += sig.eq(value)
                cur[name] = sig
            etags.append(cur)

        rows = []
        for gf in filters_gf:
            operands = []
            for gk in taps_gk:
                qv = Signal(signed(Wa), name=f"emit_q{gf}_{gk}")
                m.d.sync += qv.eq(Mux(etags[1][f"touched{gk}"], banks[gf, gk].em_data, 0))
                operands.append(qv)
            bias = Signal(signed(Wa), name=f"emit_bias{gf}")
            table = [Const(v, signed(Wa)) for v in self._bias_table(gf)]
            m.d.sync += bias.eq(lookup(etags[1]["fl"], table))
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
            sr = Signal((Fg - 1) * RW)
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
    """The generated module: exactly design.md's ports (plus ``clk``/``rst`` of the sync domain).

    Members
    -------
    s_axis_tdata : In(in_channels * Wx)
    s_axis_tvalid, s_axis_tlast : In(1)
    s_axis_tready : Out(1)
    m_axis_tdata : Out(filters * Wo)
    m_axis_tvalid, m_axis_tlast : Out(1)
    m_axis_tready : In(1)
    """

    def __init__(self, layer_q, *, pe_count: int = 64, garbage_seed: int | None = None):
        self.core = Conv1DTransposeCore(layer_q, pe_count=pe_count, garbage_seed=garbage_seed)
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
