"""Block RAM of any shape, as a portable Amaranth memory or as Lattice ECP5 DP16KD cells.

`BlockRam` is every block RAM of the design (weight ROMs, scatter banks, table
ROMs): ``depth`` words of ``width`` bits, an optional write port and any number
of read ports, whose read data is registered once more (``registered``) or not.
It elaborates two ways, with the same ports and the same cycle timing:

- portable (any platform but ``"ecp5"``): an `amaranth.lib.memory.Memory`, and a
  flip-flop behind each read port when ``registered``. Vendor tools that absorb
  that flip-flop into the RAM's output register (Vivado, Quartus) do so.
- ``platform == "ecp5"`` (and more than ``LUT_RAM_DEPTH`` words): DP16KD instances
  (`ecp5_plan` says which and how), with the read data's register as the DP16KD's
  own output register
  (``REGMODE = "OUTREG"``). Yosys' ``synth_ecp5`` never switches that register
  on when it infers a RAM, and without it the RAM's clock-to-out (about 4.3 ns
  at speed 8) starts the paths behind it; with it, they start at a register.

The mapping is a function of the memory's shape and ports only (`ecp5_plan`),
so any memory the design grows (a write port on a weight RAM, more read ports)
maps the same way: one copy of the RAM per read port, the write port (if any)
writing every copy. A read of a word in the cycle it is written returns undefined
data on the ECP5 (the old word in the models and the portable form); tconv's
designs never depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Signal
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from .lookup import lookup

__all__ = ["BlockRam", "Ecp5Plan", "ecp5_plan", "dp16kd_initvals", "dp16kd_parameters", "dp16kd_low_address_bits",
           "DP16KD_ROWS", "LUT_RAM_DEPTH"]

#: Memories of at most this many words stay in the portable form on the ECP5 too:
#: Yosys maps them to LUT RAM (TRELLIS_DPR16X4, 16 words) or flip-flops, whose read
#: is fast, rather than spending a 16 Kbit block on them.
LUT_RAM_DEPTH = 16
#: A DP16KD holds 1024 rows of 18 bits (its 16 Kbit plus parity bits).
DP16KD_ROWS = 1024
ROW_BITS = 18


@dataclass(frozen=True)
class Ecp5Plan:
    """How one copy of a ``width`` x ``depth`` memory (one read port) maps onto DP16KD cells.

    ``port_width`` is the DP16KD data width of both ports: 36 (one 36-bit write
    port A and one 36-bit read port B, the cell's pseudo dual-port mode, up to
    512 words) or 18 (write port A, read port B, up to 1024 words).
    ``slices`` cells side by side cover the width; ``banks`` of them, one after
    the other, cover the depth (a bank is chosen by the address bits above the
    cell's, and its read data by a multiplexer behind the cells).
    """

    width: int
    depth: int
    port_width: int
    slices: int
    banks: int

    @property
    def words_per_cell(self) -> int:
        return DP16KD_ROWS if self.port_width == 18 else DP16KD_ROWS // 2

    @property
    def cell_address_bits(self) -> int:
        return (self.words_per_cell - 1).bit_length()

    @property
    def cells(self) -> int:
        return self.slices * self.banks


def ecp5_plan(width: int, depth: int) -> Ecp5Plan:
    """The DP16KD cells of one copy of a ``width`` x ``depth`` RAM: 36-bit ports up to
    512 words, 18-bit ports up to 1024, and 1024-word banks of 18-bit cells beyond."""
    if width < 1 or depth < 1:
        raise ValueError(f"a block RAM needs width and depth >= 1, got {width} x {depth}")
    if depth <= DP16KD_ROWS // 2:
        return Ecp5Plan(width, depth, 36, -(-width // 36), 1)
    return Ecp5Plan(width, depth, 18, -(-width // 18), -(-depth // DP16KD_ROWS))


def dp16kd_initvals(rows: list[int]) -> dict[str, int]:
    """``INITVAL_00`` .. ``INITVAL_3F`` of a DP16KD holding ``rows`` (18-bit rows from row 0).

    Each 320-bit value holds 16 rows, row ``16 i + j`` in bits ``[20 j, 20 j + 18)``
    (Lattice's layout, as Yosys' ECP5 block-RAM mapping writes it).
    """
    if len(rows) > DP16KD_ROWS:
        raise ValueError(f"a DP16KD holds {DP16KD_ROWS} rows, got {len(rows)}")
    vals = {}
    for i in range(64):
        v = 0
        for j in range(16):
            n = 16 * i + j
            if n < len(rows):
                v |= (rows[n] & ((1 << ROW_BITS) - 1)) << (20 * j)
        vals[f"INITVAL_{i:02X}"] = v
    return vals


def dp16kd_low_address_bits(port_width: int) -> int:
    """Address pins below a word's row address: ``ADx[4:0]`` at 36 bits (byte enables
    ``ADA[3:0]``, then a don't-care bit), ``ADx[3:0]`` at 18 (``ADA[1:0]``, then two)."""
    return 5 if port_width == 36 else 4


def dp16kd_parameters(port_width: int, words: list[int], registered: bool) -> dict:
    """The parameters of a DP16KD with port A writing and port B reading ``port_width``-bit
    ``words`` from word 0 (``INITVAL_xx`` as ints), the output register as ``registered``.

    At 36 bits a word is rows ``2a`` (bits 0-17) and ``2a + 1`` (bits 18-35)."""
    if port_width == 36:
        rows = [r for w in words for r in (w & 0x3FFFF, w >> 18)]
    else:
        rows = list(words)
    regmode = "OUTREG" if registered else "NOREG"
    return {
        "DATA_WIDTH_A": port_width, "DATA_WIDTH_B": port_width, "REGMODE_A": regmode, "REGMODE_B": regmode,
        "RESETMODE": "SYNC", "ASYNC_RESET_RELEASE": "SYNC", "CSDECODE_A": "0b000", "CSDECODE_B": "0b000",
        "WRITEMODE_A": "NORMAL", "WRITEMODE_B": "NORMAL", "GSR": "DISABLED",
        **dp16kd_initvals(rows),
    }


class BlockRam(wiring.Component):
    """``depth`` words of ``width`` bits: optional write port, ``reads`` read ports.

    Parameters
    ----------
    width, depth : int
    init : iterable of int
        Initial words (the rest are zero).
    reads : int
        Read ports.
    write : bool
        With a write port (else a ROM).
    registered : bool
        Read data registered once more behind the RAM (read latency 2, else 1).
    attrs : dict, optional
        Attributes of the portable memory (e.g. ``no_rw_check``).

    Members
    -------
    w_addr, w_data, w_en : In
        The write port (only with ``write``); a word written in cycle ``n`` is
        read by reads issued after ``n``. A read of the word written in the same
        cycle returns undefined data: the design never depends on it.
    r_addr : In(ArrayLayout(unsigned(address bits), reads))
    r_data : Out(ArrayLayout(unsigned(width), reads))
        The word at ``r_addr`` of ``latency`` cycles earlier.
    """

    def __init__(self, *, width: int, depth: int, init=(), reads: int = 1, write: bool = False,
                 registered: bool = True, attrs=None):
        self.width, self.depth, self.reads = width, depth, reads
        self.write, self.registered = write, registered
        self._init = [int(v) & ((1 << width) - 1) for v in init]  # two's complement of signed words
        if len(self._init) > depth:
            raise ValueError(f"{len(self._init)} initial words for a RAM of {depth}")
        self._attrs = dict(attrs or {})
        self.latency = 1 + registered
        aw = max((depth - 1).bit_length(), 1)
        members = {
            "r_addr": In(data.ArrayLayout(aw, reads)),
            "r_data": Out(data.ArrayLayout(width, reads)),
        }
        if write:
            members |= {"w_addr": In(aw), "w_data": In(width), "w_en": In(1)}
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        if platform == "ecp5" and self.depth > LUT_RAM_DEPTH:
            for n in range(self.reads):
                self._ecp5_copy(m, n)
            return m
        mem = memory.Memory(shape=self.width, depth=self.depth, init=self._init, attrs=self._attrs)
        m.submodules.mem = mem
        if self.write:
            wport = mem.write_port()
            m.d.comb += [wport.addr.eq(self.w_addr), wport.data.eq(self.w_data), wport.en.eq(self.w_en)]
        for n in range(self.reads):
            port = mem.read_port()
            m.d.comb += port.addr.eq(self.r_addr[n])
            if self.registered:
                # Read data registered as it is: a RAM's output register can hold it.
                held = Signal(self.width, name=f"rdata{n}", reset_less=True)
                m.d.sync += held.eq(port.data)
                m.d.comb += self.r_data[n].eq(held)
            else:
                m.d.comb += self.r_data[n].eq(port.data)
        return m

    def _ecp5_copy(self, m: Module, n: int) -> None:
        """DP16KD cells of read port ``n`` (a full copy of the RAM, written by the write port)."""
        plan = ecp5_plan(self.width, self.depth)
        cab = plan.cell_address_bits
        outs = []
        for b in range(plan.banks):
            bank_words = self._init[b * plan.words_per_cell:(b + 1) * plan.words_per_cell]
            bank_out = []
            for s in range(plan.slices):
                lo, hi = s * plan.port_width, min((s + 1) * plan.port_width, self.width)
                words = [(w >> lo) & ((1 << (hi - lo)) - 1) for w in bank_words]
                do = Signal(plan.port_width, name=f"ebr{n}_b{b}_s{s}_do")
                di = Signal(plan.port_width, name=f"ebr{n}_b{b}_s{s}_di")
                we = Signal(name=f"ebr{n}_b{b}_we")
                if self.write:
                    hit = (self.w_addr[cab:] == b) if plan.banks > 1 else 1
                    m.d.comb += [di.eq(self.w_data[lo:hi]), we.eq(self.w_en & hit)]
                name = f"ebr{n}_b{b}_s{s}"
                wa, ra = Signal(cab, name=f"{name}_wa"), Signal(cab, name=f"{name}_ra")
                m.d.comb += [wa.eq(self.w_addr[:cab] if self.write else 0), ra.eq(self.r_addr[n][:cab])]
                m.submodules[name] = self._cell(plan, words, wa, ra, di[:hi - lo], we, do)
                bank_out.append(do[:hi - lo])
            outs.append(bank_out)
        if plan.banks == 1:
            m.d.comb += self.r_data[n].eq(Cat(*outs[0]))
            return
        # The bank's read data is chosen by its address bits, delayed as the data is.
        sel = self.r_addr[n][cab:]
        for k in range(self.latency):
            nxt = Signal(len(sel), name=f"ebr{n}_bank_sel{k}", reset_less=True)
            m.d.sync += nxt.eq(sel)
            sel = nxt
        m.d.comb += self.r_data[n].eq(lookup(sel, [Cat(*bank) for bank in outs]))

    def _cell(self, plan: Ecp5Plan, words: list[int], wa, ra, di, we, do) -> Instance:
        """One DP16KD: port A writes (36- or 18-bit), port B reads, output register as ``registered``."""
        pw = plan.port_width
        low_bits = dp16kd_low_address_bits(pw)
        params = dp16kd_parameters(pw, words, self.registered)
        params.update({k: Const(v, 320) for k, v in params.items() if k.startswith("INITVAL_")})
        ports = {"i_CLKA": ClockSignal(), "i_CLKB": ClockSignal(), "i_CEA": 1, "i_CEB": 1, "i_OCEA": 1,
                 "i_OCEB": 1, "i_RSTA": 0, "i_RSTB": 0, "i_WEA": we, "i_WEB": 0}
        for s in "AB":
            for k in range(3):
                ports[f"i_CS{s}{k}"] = 0
        byte_enables = 4 if pw == 36 else 2
        ad_a = Cat(Const(2 ** byte_enables - 1, byte_enables), Const(0, low_bits - byte_enables), wa,
                   Const(0, 14 - low_bits - len(wa)))
        ad_b = Cat(Const(0, low_bits), ra, Const(0, 14 - low_bits - len(ra)))
        # Pins whose value never matters stay unconnected, so that place-and-route has no
        # constant to bring to them: a ROM's whole write side, data bits past the word,
        # port B's data inputs (it never writes).
        for k in range(14):
            if self.write:
                ports[f"i_ADA{k}"] = ad_a[k]
            ports[f"i_ADB{k}"] = ad_b[k]
        for k in range(18):
            if self.write and k < len(di):
                ports[f"i_DIA{k}"] = di[k]
            if self.write and pw == 36 and 18 + k < len(di):
                ports[f"i_DIB{k}"] = di[18 + k]
            ports[f"o_DOB{k}"] = do[18 + k] if pw == 36 else do[k]
            if pw == 36:
                ports[f"o_DOA{k}"] = do[k]
        return Instance("DP16KD", **{f"p_{k}": v for k, v in params.items()}, **ports)
