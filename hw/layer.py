"""The whole layer: step buffer, issue control, MAC array, emitter, output rows and output FIFO.

`Conv1DTransposeCore` has stream interfaces (`amaranth.lib.stream`) and only
wires its components together:

- `StepBuffer` (hw/stepbuffer.py): input steps, double buffered;
- `IssueControl` (hw/issue.py): which item issues when, and the frame descriptors;
- `MacArray` (hw/mac_array.py): PE groups and scatter banks, with the issue-tag pipeline;
- `FrameQueue` (hw/queues.py): frame descriptors from the issue side to the emitter;
- `Emitter` (hw/emitter.py): reads finished positions out of the banks, with output credits;
- `OutputRow` (hw/output_row.py), one per filter group: bias, merge, activation, requantize;
- `BeatAssembler` (hw/beats.py): rows into beats, into the `OutputFifo` (hw/queues.py).

`Conv1DTransposeTop` is the thin component with the flat AXI4-Stream ports of
docs/contract.md that the Verilog is generated from. docs/architecture.md describes
the dataflow; `tconv.hw.schedule` holds every number the structure uses.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .beats import BeatAssembler, output_layout
from .emitter import Emitter
from .issue import IssueControl, frame_layout, row_width
from .lookup import index_bits, lookup, select_bits
from .mac_array import MacArray, format_shape, step_read_copies, weight_rom_modules
from .multiplier import MultiplierCell
from .output_row import OutputRow, bias_table
from .pipeline import delay
from .queues import FrameQueue, OutputFifo
from .schedule import Schedule
from .stepbuffer import StepBuffer, step_layout
from .weight_load import WeightLoader
from .weight_stream import stream_layout

__all__ = ["Conv1DTransposeCore", "Conv1DTransposeTop", "output_layout", "lookup", "index_bits",
           "select_bits"]


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
    rom_prefix : str, optional
        Block-RAM weight ROMs as instances of Verilog modules of this prefix
        (`rom_modules` gives their text, contents included; `tconv.hw.rom`).
        Without it they are Amaranth memories, for Amaranth's simulator.
    runtime_weights : bool
        Weights and bias in two-bank RAMs loaded through ``w`` (docs/contract.md,
        "Runtime weights"; `tconv.hw.weight_load`); else ROMs of the layer's codes.

    Members
    -------
    i : In(stream.Signature(step_layout(in_channels * Wx)))
        One input step per beat, channel 0 in the low bits; ``last`` ends a frame.
    o : Out(stream.Signature(output_layout(filters * Wo)))
        One output step per beat, filter 0 in the low bits; ``last`` on a frame's last beat.
    w : In(stream.Signature(step_layout(beat_width)))
        (runtime weights) Weight-set beats (`tconv.hw.weight_stream`); ``last`` ends a set.
    """

    def __init__(self, layer_q, schedule: Schedule, *, garbage_seed: int | None = None,
                 mul_cell: str | None = None, rom_prefix: str | None = None, runtime_weights: bool = False):
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be a tconv.hw.schedule.Schedule (from check_layer), "
                            f"got {type(schedule).__name__}")
        self.schedule = schedule
        self.layer_q = layer_q
        self._garbage_seed = garbage_seed
        self._rom_prefix = rom_prefix
        self.multiplier_cell = None if mul_cell is None else MultiplierCell.for_shapes(
            mul_cell, format_shape(layer_q.input_format), format_shape(layer_q.weight_format))
        cfg = layer_q.config
        self.in_width = cfg.in_channels * layer_q.input_format.width
        self.out_width = cfg.filters * layer_q.output_format.width
        self.weights_stream = stream_layout(layer_q, schedule) if runtime_weights else None
        ports = {
            "i": In(stream.Signature(step_layout(self.in_width))),
            "o": Out(stream.Signature(output_layout(self.out_width))),
        }
        if runtime_weights:
            ports["w"] = In(stream.Signature(step_layout(self.weights_stream.beat_width)))
        super().__init__(ports)

    def rom_modules(self) -> list:
        """The weight ROMs' Verilog modules (`tconv.hw.rom.RomModule`), when ``rom_prefix`` was given."""
        return weight_rom_modules(self.layer_q, self.schedule, None if self.weights_stream else self._rom_prefix)

    def elaborate(self, platform):
        m = Module()
        sch, q, rt = self.schedule, self.layer_q, self.weights_stream
        # With runtime weights each step carries its frame's weight bank.
        m.submodules.steps = buf = StepBuffer(self.in_width, bank=rt is not None,
                                              read_copies=step_read_copies(sch, q.input_format.width))
        if rt is None:
            wiring.connect(m, wiring.flipped(self.i), buf.i)
        m.submodules.issue = issue = IssueControl(sch)
        m.submodules.frames = frames = FrameQueue(shape=frame_layout(sch), depth=sch.frame_queue_depth)
        m.submodules.macs = macs = MacArray(q, sch, cell=self.multiplier_cell, garbage_seed=self._garbage_seed,
                                            rom_prefix=self._rom_prefix, runtime=rt)
        # The filter row selects the bias: only the bits of it that the bias
        # tables depend on travel (none when every row has the same bias);
        # a runtime bias may differ in every row.
        groups = range(min(sch.filter_groups, sch.filters))
        if rt is not None and rt.bias_width:
            row_bits = list(range(row_width(sch)))
        else:
            row_bits = index_bits([bias_table(q, sch, gf) for gf in groups], row_width(sch))
        m.submodules.emitter = emitter = Emitter(sch, row_bits)
        m.submodules.beats = beats = BeatAssembler(rows=sch.filters_per_group, width=self.out_width,
                                                   row_width=sch.filter_groups * q.output_format.width)
        m.submodules.out_fifo = ofifo = OutputFifo(shape=output_layout(self.out_width),
                                                   depth=sch.out_fifo_depth)
        m.d.comb += [
            issue.step_valid.eq(buf.valid), issue.step_valid_next.eq(buf.valid_next),
            issue.step_last.eq(buf.step.last), issue.next_last.eq(buf.next_last), buf.consume.eq(issue.consume),
            issue.released.eq(emitter.released), issue.pop.eq(emitter.pop),
            frames.push.eq(issue.push), frames.push_data.eq(issue.descriptor), frames.pop.eq(emitter.pop),
            macs.tag.eq(issue.tag),
            macs.x.eq(buf.step.data),
            emitter.written.eq(macs.written), emitter.upcoming.eq(macs.upcoming), emitter.head.eq(frames.head),
            emitter.head_valid.eq(frames.head_valid), macs.em_addr.eq(emitter.em_addr),
        ]
        # A beat's credit returns a cycle after the sink takes it (`Schedule.out_fifo_depth`
        # counts that cycle). Taken at once, the FIFO's output register and the sink's ready
        # reached the emitter's credit flags across the die, beside the sink's own load
        # enable: the speed-8 critical path of the 64-PE layer, and of the 128-PE one.
        taken = Signal(name="credit_return")
        m.d.sync += taken.eq(ofifo.r_valid & self.o.ready)
        m.d.comb += emitter.taken.eq(taken)
        # The emission pipeline: etags[j] is seen j cycles after the emitter's read.
        rows = []
        for gf in groups:
            m.submodules[f"row{gf}"] = row = OutputRow(q, sch, gf, row_bits, runtime=rt)
            rows.append(row)
        if rows[0].latency + 1 != sch.latency.emit_to_out:  # + the output FIFO's output register
            raise ValueError(f"the schedule was planned for activation {sch.activation!r}, the layer has "
                             f"{self.layer_q.config.activation!r}: plan it from the layer's config")
        etags = delay(m, emitter.tag, rows[0].latency, name="e", reset=("valid",))
        if rt is not None:
            self._loader(m, rt, buf, macs, emitter, rows)
        for gf, row in zip(groups, rows):
            m.d.comb += [row.words.eq(macs.em_data[gf]), row.fl.eq(etags[1].fl),
                         row.touched.eq(etags[2].touched)]
        et = etags[-1]
        m.d.comb += [
            beats.valid.eq(et.valid), beats.last_row.eq(et.last_row), beats.beat_last.eq(et.beat_last),
            beats.row.eq(Cat(*(row.o for row in rows))),
            ofifo.w_en.eq(beats.w_en), ofifo.w_data.eq(beats.word),
            self.o.valid.eq(ofifo.r_valid), self.o.payload.eq(ofifo.r_data), ofifo.r_en.eq(self.o.ready),
        ]
        if platform == "formal":
            self._invariants(m, issue, frames, emitter, ofifo, etags, taken)
        return m

    def _loader(self, m, rt, buf, macs, emitter, rows) -> None:
        """Runtime weights: the `WeightLoader` between ``w``, the steps' bank bit, the
        weight RAMs (bank of the item issued) and the bias RAMs (bank of the frame emitted)."""
        sch = self.schedule
        m.submodules.loader = loader = WeightLoader(rt, frames_in_flight=2 * sch.frame_queue_depth + 8)
        # The loader sees a frame's end one cycle late: ``pop`` is formed late in the cycle
        # (from the emitter's registered compares) and the loader sits beside the input side,
        # so a direct wire made the emitter's decision cross the die twice (the runtime
        # design's critical path). This is safe: a pop clears the emitter's ``have`` for a
        # cycle, so the next frame's first row is read two cycles after the pop at the
        # earliest, when the counts (and ``emit_bank``) already include it; the inactive
        # bank just becomes writable one cycle later.
        pop_d = Signal(name="pop_d")
        m.d.sync += pop_d.eq(emitter.pop)
        m.d.comb += [
            buf.i.payload.data.eq(self.i.payload.data), buf.i.payload.bank.eq(loader.s_bank),
            buf.i.payload.last.eq(self.i.payload.last), buf.i.valid.eq(self.i.valid),
            self.i.ready.eq(buf.i.ready),
            loader.s_take.eq(self.i.valid & buf.i.ready), loader.s_last.eq(self.i.payload.last),
            loader.done.eq(pop_d),
            loader.w_data.eq(self.w.payload.data), loader.w_last.eq(self.w.payload.last),
            loader.w_valid.eq(self.w.valid), self.w.ready.eq(loader.w_ready),
            macs.bank.eq(buf.step.bank), macs.wr_group.eq(loader.wr_group), macs.wr_t.eq(loader.wr_t),
            macs.wr_bank.eq(loader.wr_bank), macs.wr_data.eq(loader.wr_data),
        ]
        if rt.bias_width:
            # The row's bias is read one cycle after the emitter's read: the bank follows.
            bank = delay(m, loader.emit_bank, 1, name="emit_bank")[1]
            for n, row in enumerate(rows):
                m.d.comb += [row.bank.eq(bank), row.wr_en.eq(loader.wr_bias[n]), row.wr_fl.eq(loader.wr_fl),
                             row.wr_bank.eq(loader.wr_bank), row.wr_data.eq(loader.wr_data)]

    def _invariants(self, m, issue, frames, emitter, ofifo, etags, taken) -> None:
        """What holds between the components in every reachable state (asserted on the
        ``"formal"`` platform; :mod:`tconv.sim.formal`'s k-induction needs them to close).

        - The issue side counts a frame descriptor from its push (through a
          register) to its pop: ``fq_count`` = the queue's entries + the push in flight.
        - A beat holds an output FIFO credit from its first row's read until the
          cycle after the sink takes it (``taken``, the credit's return): credits >=
          words in the FIFO, and with one row per beat credits = words in the FIFO +
          beats in the emission pipeline + the credit returning.
        """
        sch = self.schedule
        m.d.comb += [Assert(issue.fq_count == frames.held + issue.push),
                     Assert(issue.fq_count <= sch.frame_queue_depth),
                     Assert(ofifo.level <= emitter.credits)]
        if sch.filters_per_group == 1:
            inflight = sum(((et.valid & et.last_row).as_unsigned() for et in etags[1:]), Const(0, 1))
            m.d.comb += Assert(emitter.credits == ofifo.level + inflight + taken)


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
    w_axis_tdata : In(weights_stream.beat_width)
    w_axis_tvalid, w_axis_tlast : In(1)
    w_axis_tready : Out(1)
        Only with ``runtime_weights``.
    """

    def __init__(self, layer_q, schedule: Schedule, *, garbage_seed: int | None = None,
                 mul_cell: str | None = None, rom_prefix: str | None = None, runtime_weights: bool = False):
        self.core = Conv1DTransposeCore(layer_q, schedule, garbage_seed=garbage_seed, mul_cell=mul_cell,
                                        rom_prefix=rom_prefix, runtime_weights=runtime_weights)
        self.schedule = self.core.schedule
        self.weights_stream = self.core.weights_stream
        ports = {
            "s_axis_tdata": In(self.core.in_width),
            "s_axis_tvalid": In(1),
            "s_axis_tready": Out(1),
            "s_axis_tlast": In(1),
            "m_axis_tdata": Out(self.core.out_width),
            "m_axis_tvalid": Out(1),
            "m_axis_tready": In(1),
            "m_axis_tlast": Out(1),
        }
        if self.weights_stream is not None:
            ports.update({"w_axis_tdata": In(self.weights_stream.beat_width), "w_axis_tvalid": In(1),
                          "w_axis_tready": Out(1), "w_axis_tlast": In(1)})
        super().__init__(ports)

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
        if self.weights_stream is not None:
            m.d.comb += [core.w.payload.data.eq(self.w_axis_tdata), core.w.payload.last.eq(self.w_axis_tlast),
                         core.w.valid.eq(self.w_axis_tvalid), self.w_axis_tready.eq(core.w.ready)]
        return m
