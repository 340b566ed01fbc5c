"""The MAC array: one PE group per (filter group, tap group), each with its weight ROM,
dot product, chunk accumulator and scatter bank.

An issued item (`issue_tag_layout`) enters with the step's data; the array
carries its tag down the pipeline (`delay`) and, ``latency.issue_to_write``
cycles after issue, every group adds its partial sum into its bank at the
tag's slots. The emitter reads the banks through a second port.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .dot import DotProduct
from .issue import bank_address_width, built_tap_groups, issue_tag_layout
from .lookup import lookup
from .pipeline import delay
from .ram import BlockRam
from .rom import RomModule, pack_words, rom_instance
from .scatter import ScatterBank
from .schedule import Schedule

__all__ = ["MacArray", "format_shape", "bank_words_layout", "weight_rom_words", "weight_rom_modules",
           "step_read_copies", "LANES_PER_READ_COPY"]


def format_shape(fmt) -> Shape:
    """The Amaranth shape of fixed-point format ``fmt``'s codes."""
    return signed(fmt.width) if fmt.signed else unsigned(fmt.width)


#: Lanes whose operands one copy of the step buffer's read pointer selects.
LANES_PER_READ_COPY = 8


def step_read_copies(sch: Schedule, input_width: int) -> list[int]:
    """For each bit of a step (``in_channels`` codes of ``input_width`` bits), the copy of the
    step buffer's read pointer that selects it (`tconv.hw.stepbuffer.StepBuffer`): channel
    ``ch`` feeds lane ``ch % lanes`` (in chunk ``ch // lanes``), and the lanes go in blocks of
    `LANES_PER_READ_COPY` to one copy, so an operand's select (over both entries and every
    chunk) reads one copy only."""
    return [((b // input_width) % sch.lanes) // LANES_PER_READ_COPY
            for b in range(sch.in_channels * input_width)]


def bank_words_layout(layer_q, sch: Schedule) -> data.ArrayLayout:
    """One word per bank, ``[filter group][built tap group]``."""
    word = signed(layer_q.accumulator_format.width)
    return data.ArrayLayout(data.ArrayLayout(word, len(built_tap_groups(sch))),
                            min(sch.filter_groups, sch.filters))


def weight_rom_words(layer_q, sch: Schedule, group: int) -> list[int]:
    """Words of group ``group``'s weight ROM: item ``t`` holds ``lanes`` weight codes
    (lane ``r`` in bits ``[r*W, (r+1)*W)``, zeros where the layer has no weight)."""
    codes = np.zeros((sch.cycles_per_step, sch.lanes), dtype=np.int64)
    for t in range(sch.cycles_per_step):
        k, f, channels = sch.work(group, t)
        if k < sch.kernel_size and f < sch.filters:
            codes[t, :len(channels)] = layer_q.kernel_codes[k, f, channels.start:channels.stop]
    return list(pack_words(codes, layer_q.weight_format.width))


def built_groups(sch: Schedule) -> list[int]:
    """The PE groups the array builds, in elaboration order."""
    return [sch.group_of(gf, gk) for gk in built_tap_groups(sch) for gf in range(min(sch.filter_groups, sch.filters))]


def weight_rom_modules(layer_q, sch: Schedule, prefix: str | None) -> list[RomModule]:
    """The block-RAM weight ROMs as Verilog modules ``prefix`` + group (`tconv.hw.rom`):
    empty when the weights are in LUTs or ``prefix`` is None (Amaranth memories then)."""
    if prefix is None or sch.weights_in_luts:
        return []
    width = sch.lanes * layer_q.weight_format.width
    return [RomModule(f"{prefix}{g}", width, sch.cycles_per_step, tuple(weight_rom_words(layer_q, sch, g)))
            for g in built_groups(sch)]


class MacArray(wiring.Component):
    """The PE groups and their scatter banks.

    Parameters
    ----------
    layer_q, schedule
        As for `Conv1DTransposeCore`.
    cell : tconv.hw.multiplier.MultiplierCell, optional
        Multiplier instances (else inline multiplications).
    garbage_seed : int, optional
        Fill the banks with random words (simulation only).
    rom_prefix : str, optional
        Block-RAM weight ROMs become instances of Verilog modules ``rom_prefix`` + group
        (`weight_rom_modules` gives their text; `tconv.hw.rom`), else Amaranth memories.
    runtime : tconv.hw.weight_stream.StreamLayout, optional
        Runtime weights: each group's weights are a two-bank RAM with a write
        port (`tconv.hw.weight_load.WeightLoader`'s ``wr_*``), read at bank
        ``bank``; without it, ROMs of the layer's codes.

    Members
    -------
    tag : In(issue_tag_layout(schedule))
        The item issued in this cycle.
    x : In(in_channels * Wx)
        The step's data in the issue cycle.
    written : Out(issue_tag_layout(schedule))
        The tag of the item whose sums are written into the banks now.
    upcoming : Out(issue_tag_layout(schedule))
        The tag that ``written`` holds in the next cycle (a register).
    em_addr : In(bank_address_width(schedule))
        The emitter's read address (the same in every bank).
    em_data : Out(bank_words_layout(layer_q, schedule))
        The words at ``em_addr`` of the previous cycle.
    bank : In(1)
        (runtime weights) The weight bank of the item issued in this cycle.
    wr_group, wr_t, wr_bank, wr_data : In
        (runtime weights) The weight RAMs' write port, as the loader drives it.
    """

    def __init__(self, layer_q, schedule: Schedule, *, cell=None, garbage_seed: int | None = None,
                 rom_prefix: str | None = None, runtime=None):
        self.layer_q, self.schedule = layer_q, schedule
        self._cell, self._garbage_seed, self._runtime = cell, garbage_seed, runtime
        self._rom_prefix = rom_prefix
        sch = schedule
        ports = {
            "tag": In(issue_tag_layout(sch)),
            "x": In(layer_q.config.in_channels * layer_q.input_format.width),
            "written": Out(issue_tag_layout(sch)),
            "upcoming": Out(issue_tag_layout(sch)),
            "em_addr": In(bank_address_width(sch)),
            "em_data": Out(bank_words_layout(layer_q, sch)),
        }
        if runtime is not None:
            ports.update({"bank": In(1), "wr_group": In(len(runtime.groups)),
                          "wr_t": In(range(sch.cycles_per_step)), "wr_bank": In(1),
                          "wr_data": In(runtime.beat_width)})
        super().__init__(ports)

    def weight_rom(self, group: int) -> list[int]:
        """Words of group ``group``'s weight ROM (`weight_rom_words`)."""
        return weight_rom_words(self.layer_q, self.schedule, group)

    def elaborate(self, platform):
        m = Module()
        sch = self.schedule
        R, CH, Wx = sch.lanes, sch.chunks, self.layer_q.input_format.width
        Lp = sch.latency.issue_to_write
        tags = delay(m, self.tag, Lp, name="", reset=("valid",))
        m.d.comb += [self.written.eq(tags[Lp]), self.upcoming.eq(tags[Lp - 1])]
        # The operand registers take channel chunk c of the step: at the end of
        # the issue cycle with LUT weights; with block-RAM weights (read one cycle
        # later) the chunk selected in the issue cycle passes a register first.
        # That register takes the select (read pointer, chunk) off the long
        # route to the operand registers at the DSP rows, which then starts at
        # a flip-flop (the 64-PE layer's speed-6 critical path went through it).
        luts = sch.weights_in_luts
        x_all = Cat(self.x, Const(0, CH * R * Wx - len(self.x)))
        chunks = [x_all[n * R * Wx:(n + 1) * R * Wx] for n in range(CH)]
        x_sel = Signal(R * Wx, name="x_sel", reset_less=True)
        m.d["comb" if luts else "sync"] += x_sel.eq(lookup(tags[0].c, chunks))
        nf = min(sch.filter_groups, sch.filters)
        for i, gk in enumerate(built_tap_groups(sch)):
            for j in range(nf):
                self._group(m, j, gk, i, x_sel, tags, i * nf + j)
        return m

    def _weights(self, m, g: int, n: int, addr):
        """Group ``g``'s weight word for item ``addr`` (a ROM), or for item ``addr`` of bank
        ``bank`` (a two-bank RAM written by the loader; ``n``: its write enable bit), and how
        many of the dot product's operand registers it has passed: from LUTs the word is
        there in the issue cycle (0), from block RAM two cycles later, its read data
        registered behind the RAM (1: that register is the first operand register)."""
        sch, q = self.schedule, self.layer_q
        width = sch.lanes * q.weight_format.width
        luts = sch.weights_in_luts
        if self._runtime is None and luts:
            return lookup(addr, [Const(v, width) for v in self.weight_rom(g)]), 0
        if self._runtime is None and self._rom_prefix is not None:
            # contents in the module's text (weight_rom_modules), not elaborated here
            return rom_instance(m, f"{self._rom_prefix}{g}", width, sch.cycles_per_step, addr,
                                name=f"weights{g}"), 1
        words = self.weight_rom(g)
        if self._runtime is None:
            rom = BlockRam(width=width, depth=sch.cycles_per_step, init=words, registered=True)
            m.submodules[f"weights{g}"] = rom
            m.d.comb += rom.r_addr[0].eq(addr)
            return rom.r_data[0], 1
        # Both banks start with the generation's weights; bank = the address's top bit.
        tw = len(addr)
        padded = words + [0] * ((1 << tw) - len(words))
        if luts:  # LUT RAM, read in the issue cycle
            ram = memory.Memory(shape=width, depth=2 << tw, init=padded * 2)
            m.submodules[f"weights{g}"] = ram
            wport, rport = ram.write_port(), ram.read_port(domain="comb")
            m.d.comb += [wport.addr.eq(Cat(self.wr_t, self.wr_bank)), wport.data.eq(self.wr_data[:width]),
                         wport.en.eq(self.wr_group[n]), rport.addr.eq(Cat(addr, self.bank))]
            return rport.data, 0
        ram = BlockRam(width=width, depth=2 << tw, init=padded * 2, write=True, registered=True)
        m.submodules[f"weights{g}"] = ram
        m.d.comb += [ram.w_addr.eq(Cat(self.wr_t, self.wr_bank)), ram.w_data.eq(self.wr_data[:width]),
                     ram.w_en.eq(self.wr_group[n]), ram.r_addr[0].eq(Cat(addr, self.bank))]
        return ram.r_data[0], 1

    def _group(self, m, gf: int, gk: int, tap: int, x_sel, tags, n: int):
        """PE group (gf, gk): weight ROM, dot product, chunk accumulator, pads to the
        write stage, and its scatter bank."""
        sch, q = self.schedule, self.layer_q
        lat, CH = sch.latency, sch.chunks
        Lp, R, Wa = lat.issue_to_write, sch.lanes, q.accumulator_format.width
        g = sch.group_of(gf, gk)
        # The weights reach the operand registers at the end of the issue cycle
        # from a LUT ROM, or from a block-RAM ROM whose read data is registered
        # (the RAM's output register on the ECP5) as the first operand register
        # of the weights: the step's data passes its own first operand register then.
        weights, w_registered = self._weights(m, g, n, tags[0].t)
        dot = DotProduct(R, x_shape=format_shape(q.input_format), w_shape=format_shape(q.weight_format),
                         out_width=Wa, operand_stages=lat.operand, product_stages=lat.product,
                         cell=self._cell, w_registered=w_registered)
        m.submodules[f"dot{g}"] = dot
        m.d.comb += [dot.x.eq(x_sel), dot.w.eq(weights)]
        partial = dot.o
        stage = (0 if sch.weights_in_luts else 1) + dot.latency
        if CH > 1:
            acc = Signal(signed(Wa), name=f"chunk_acc{g}", reset_less=True)
            with m.If(tags[stage].valid):
                m.d.sync += acc.eq(Mux(tags[stage].c_first, 0, acc) + partial)
            partial = acc
            stage += 1
        # the bank adds the partial ScatterBank.PARTIAL_LEAD cycles before its write (cycle Lp)
        add = Lp - ScatterBank.PARTIAL_LEAD
        assert stage <= add, (stage, add)
        partial = delay(m, partial, add - stage, name=f"partial_pad{g}")[-1]
        init = ()
        if self._garbage_seed is not None:
            af = q.accumulator_format
            rng = np.random.default_rng([self._garbage_seed, g])
            init = rng.integers(af.min_code, af.max_code, sch.bank_words, endpoint=True)
        bank = ScatterBank(depth=sch.bank_words, width=Wa, init=[int(v) for v in init])
        m.submodules[f"bank{g}"] = bank
        tr = tags[Lp - ScatterBank.LEAD]  # the bank takes address and first flag at its read stage
        m.d.comb += [
            bank.valid.eq(tr.valid & tr.c_last & tr.taps[tap].wen),
            bank.addr.eq(tr.taps[tap].addr),
            bank.first.eq(tr.taps[tap].first),
            bank.partial.eq(partial),
            bank.em_addr.eq(self.em_addr),
            self.em_data[gf][tap].eq(bank.em_data),
        ]
