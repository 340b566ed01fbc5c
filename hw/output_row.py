"""One filter group's share of an output beat: its bank words, masked, plus the bias,
merged and passed through the activation and the output requantization."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .dot import adder_tree
from .issue import built_tap_groups
from .lookup import lookup, select_bits
from .pipeline import delay
from .postprocess import PostProcess, narrow, narrowing
from .schedule import Schedule, postprocess_stages

__all__ = ["OutputRow", "bias_table"]


def bias_table(layer_q, sch: Schedule, gf: int) -> list[int]:
    """Aligned bias codes of filter group ``gf``, by filter row ``fl``."""
    out = []
    for fl in range(sch.filters_per_group):
        f = gf + sch.filter_groups * fl
        out.append(int(layer_q.bias_codes[f]) << layer_q.bias_shift if f < sch.filters else 0)
    return out


class OutputRow(wiring.Component):
    """Output code of filter ``gf + filter_groups * fl`` at an emitted position.

    Timing (cycle 0 is the emitter's read): ``fl`` in cycle 1, ``words`` (the
    banks' read data, registered behind the RAMs) and ``touched`` in cycle 2, ``o`` in cycle ``latency`` =
    2 + ``schedule.latency.bank_read`` (block-RAM banks: their words, the touched bits and the
    bias pass one more register) + ``schedule.latency.merge`` (the merge tree) + `PostProcess`'s
    stages (activation and requantization, or the activation's table:
    `tconv.hw.schedule.postprocess_stages`).

    Parameters
    ----------
    layer_q, schedule
        As for `Conv1DTransposeCore`.
    gf : int
        The filter group.
    row_bits : list of int
        The bits of ``fl`` that select the bias (`index_bits` of the bias tables;
        all of them with runtime weights).
    runtime : tconv.hw.weight_stream.StreamLayout, optional
        Runtime weights (with a bias): the bias is a two-bank RAM (distributed,
        read in cycle 1 like the table it replaces) written by the loader.

    Members
    -------
    words : In(ArrayLayout(signed(Wa), built tap groups))
        The group's bank words at the position (registered read data of the banks).
    fl : In(len(row_bits))
        The filter row's ``row_bits``.
    touched : In(ArrayLayout(1, built tap groups))
        Which banks were written at the position since its slot was last
        emitted (an untouched word is stale and counts as zero).
    o : Out(Wo)
        The output code.
    bank : In(1)
        (runtime bias) The bias bank of the row, in cycle 1.
    wr_en, wr_fl, wr_bank, wr_data : In
        (runtime bias) The bias RAM's write port, as the loader drives it.
    """

    def __init__(self, layer_q, schedule: Schedule, gf: int, row_bits: list[int], *, runtime=None):
        self.layer_q, self.schedule, self.gf = layer_q, schedule, gf
        self._row_bits = list(row_bits)
        self._runtime = runtime if runtime is not None and runtime.bias_width else None
        self._taps = len(built_tap_groups(schedule))
        self.latency = (2 + schedule.latency.bank_read + schedule.latency.merge
                        + postprocess_stages(layer_q.config.activation))
        wa = layer_q.accumulator_format.width
        ports = {
            "words": In(data.ArrayLayout(signed(wa), self._taps)),
            "fl": In(len(row_bits)),
            "touched": In(data.ArrayLayout(1, self._taps)),
            "o": Out(layer_q.output_format.width),
        }
        if self._runtime is not None:
            ports.update({"bank": In(1), "wr_en": In(1), "wr_fl": In(range(schedule.filters_per_group)),
                          "wr_bank": In(1), "wr_data": In(self._runtime.beat_width)})
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        q = self.layer_q
        af, of, Wa = q.accumulator_format, q.output_format, q.accumulator_format.width
        bias = Signal(signed(Wa), name="emit_bias", reset_less=True)
        m.d.sync += bias.eq(self._bias(m))
        words, touched = self.words, self.touched
        if self.schedule.latency.bank_read:
            # Block-RAM banks: their read data passes a fabric register near the RAM
            # before the mask and the merge adders, and the bias and the touched bits follow.
            words, touched, bias = (delay(m, v, 1, name=n)[1] for v, n in
                                    ((words, "bank_words"), (touched, "bank_touched"), (bias, "emit_bias")))
        operands = []
        for i in range(self._taps):
            # The bank's read data arrives registered (ScatterBank); a word the
            # frame never touched is masked inside the first adder.
            operands.append(Mux(touched[i], words[i], 0))
        operands.append(bias)
        nr = narrowing(q.config.activation, af.frac, of, q.activation_table)
        merged_width = len(narrow(Signal(signed(Wa)), nr.acc_lo, nr.acc_hi, nr.acc_sign))
        acc = adder_tree(m, operands, signed(merged_width), name="merge",
                         select=lambda v: narrow(v[:Wa].as_signed(), nr.acc_lo, nr.acc_hi, nr.acc_sign))
        post = PostProcess(q.config.activation, of, acc_width=merged_width, acc_frac=af.frac - nr.acc_lo,
                           table=q.activation_table, narrowing=nr)
        m.submodules.postprocess = post
        m.d.comb += [post.i.eq(acc), self.o.eq(post.o)]
        return m

    def _bias(self, m):
        """The aligned bias of row ``fl``: a constant table, or (runtime weights) the bias
        RAM's word at (``fl``, ``bank``), both banks starting with the generation's codes."""
        q, sch, Wa = self.layer_q, self.schedule, self.layer_q.accumulator_format.width
        if self._runtime is None:
            table = [Const(v, signed(Wa)) for v in select_bits(bias_table(q, sch, self.gf), self._row_bits)]
            return lookup(self.fl, table) if self._row_bits else table[0]
        wb, rw = q.bias_format.width, len(self.fl)
        codes = [int(q.bias_codes[f]) if f < sch.filters else 0
                 for f in (self.gf + sch.filter_groups * fl for fl in range(1 << rw))]
        shape = signed(wb) if q.bias_format.signed else unsigned(wb)
        ram = memory.Memory(shape=shape, depth=2 << rw, init=codes * 2)
        m.submodules.bias = ram
        wport, rport = ram.write_port(), ram.read_port(domain="comb")
        m.d.comb += [wport.addr.eq(Cat(self.wr_fl, self.wr_bank)), wport.data.eq(self.wr_data[:wb]),
                     wport.en.eq(self.wr_en), rport.addr.eq(Cat(self.fl, self.bank))]
        return rport.data << q.bias_shift
