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
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .dot import DotProduct
from .issue import bank_address_width, built_tap_groups, issue_tag_layout
from .lookup import lookup
from .pipeline import delay
from .ram import BlockRam
from .scatter import ScatterBank
from .schedule import Schedule

__all__ = ["MacArray", "format_shape", "bank_words_layout"]


def format_shape(fmt) -> Shape:
    """The Amaranth shape of fixed-point format ``fmt``'s codes."""
    return signed(fmt.width) if fmt.signed else unsigned(fmt.width)


def bank_words_layout(layer_q, sch: Schedule) -> data.ArrayLayout:
    """One word per bank, ``[filter group][built tap group]``."""
    word = signed(layer_q.accumulator_format.width)
    return data.ArrayLayout(data.ArrayLayout(word, len(built_tap_groups(sch))),
                            min(sch.filter_groups, sch.filters))


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

    Members
    -------
    tag : In(issue_tag_layout(schedule))
        The item issued in this cycle.
    x : In(in_channels * Wx)
        The step's data at the operand stage: in the issue cycle when the
        weights are in LUTs (``schedule.weights_in_luts``), one cycle later
        when they are in block RAM.
    written : Out(issue_tag_layout(schedule))
        The tag of the item whose sums are written into the banks now.
    em_addr : In(bank_address_width(schedule))
        The emitter's read address (the same in every bank).
    em_data : Out(bank_words_layout(layer_q, schedule))
        The words at ``em_addr`` of the previous cycle.
    """

    def __init__(self, layer_q, schedule: Schedule, *, cell=None, garbage_seed: int | None = None):
        self.layer_q, self.schedule = layer_q, schedule
        self._cell, self._garbage_seed = cell, garbage_seed
        sch = schedule
        super().__init__({
            "tag": In(issue_tag_layout(sch)),
            "x": In(layer_q.config.in_channels * layer_q.input_format.width),
            "written": Out(issue_tag_layout(sch)),
            "em_addr": In(bank_address_width(sch)),
            "em_data": Out(bank_words_layout(layer_q, sch)),
        })

    def weight_rom(self, group: int) -> list[int]:
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

    def elaborate(self, platform):
        m = Module()
        sch = self.schedule
        R, CH, Wx = sch.lanes, sch.chunks, self.layer_q.input_format.width
        Lp = sch.latency.issue_to_write
        tags = delay(m, self.tag, Lp, name="", reset=("valid",))
        m.d.comb += self.written.eq(tags[Lp])
        # The operand registers take channel chunk c of the step (c of the
        # issue cycle, or one cycle later with block-RAM weights).
        luts = sch.weights_in_luts
        x_all = Cat(self.x, Const(0, CH * R * Wx - len(self.x)))
        chunks = [x_all[n * R * Wx:(n + 1) * R * Wx] for n in range(CH)]
        x_sel = Signal(R * Wx)
        m.d.comb += x_sel.eq(lookup(tags[0 if luts else 1].c, chunks))
        for i, gk in enumerate(built_tap_groups(sch)):
            for j in range(min(sch.filter_groups, sch.filters)):
                self._group(m, j, gk, i, x_sel, tags)
        return m

    def _group(self, m, gf: int, gk: int, tap: int, x_sel, tags):
        """PE group (gf, gk): weight ROM, dot product, chunk accumulator, pads to the
        write stage, and its scatter bank."""
        sch, q = self.schedule, self.layer_q
        lat, CH, T = sch.latency, sch.chunks, sch.cycles_per_step
        Lp, R, Wa = lat.issue_to_write, sch.lanes, q.accumulator_format.width
        g = sch.group_of(gf, gk)
        words = self.weight_rom(g)
        # The weights reach the operand registers at the end of the issue cycle
        # from a LUT ROM, or from a block-RAM ROM whose read data is registered
        # (the RAM's output register on the ECP5), as the first operand register
        # of the weights: the step's data passes its own first operand register then.
        if sch.weights_in_luts:
            weights = lookup(tags[0].t, [Const(v, R * q.weight_format.width) for v in words])
        else:
            rom = BlockRam(width=R * q.weight_format.width, depth=T, init=words, registered=True)
            m.submodules[f"weights{g}"] = rom
            m.d.comb += rom.r_addr[0].eq(tags[0].t)
            weights = rom.r_data[0]
        dot = DotProduct(R, x_shape=format_shape(q.input_format), w_shape=format_shape(q.weight_format),
                         out_width=Wa, operand_stages=lat.operand, product_stages=lat.product,
                         cell=self._cell, w_registered=0 if sch.weights_in_luts else 1)
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
        assert stage <= Lp, (stage, Lp)
        partial = delay(m, partial, Lp - stage, name=f"partial_pad{g}")[-1]
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
