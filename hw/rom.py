"""Large ROMs as Verilog modules of their own, their contents written as text.

A weight ROM of a large layer holds millions of bits. Elaborated as an Amaranth
``Memory`` with an ``init``, every bit becomes a netlist constant and Yosys
parses it twice on the way to Verilog: MelGAN's 512 -> 256 layer (2M weights)
took 5 minutes and 2.3 GB to generate. Here the design instantiates a small
module per ROM and the module's text, contents included, is written directly
(``initial`` assignments, one word a line, as Yosys itself writes memory
contents), so the cost is that of formatting the words.

The module is the plain synchronous-read ROM every synthesis tool infers as
block RAM, with its read data registered once more: ``data`` is ``mem[addr]``
two clock edges later (the second register is what a block RAM's output register
holds: Vivado and Quartus absorb it). No system task, no file outside the Verilog
(design folders refuse ``$readmemh``: docs/design-folders.md).
`RomModule.ecp5_verilog` is the same module for Lattice ECP5 (``ecp5/<top>.v``):
DP16KD cells with that register as their output register, mapped as
`tconv.hw.ram.BlockRam` maps a block RAM (`tconv.hw.ram.ecp5_plan`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import ClockSignal, Instance, Signal

from .ram import dp16kd_low_address_bits, dp16kd_parameters, ecp5_plan

__all__ = ["RomModule", "address_width", "pack_words", "rom_instance"]


@dataclass(frozen=True)
class RomModule:
    """A ROM of ``depth`` words of ``width`` bits as Verilog module ``name``: ``data`` is
    word ``addr`` of two cycles earlier (read latency 2, as `tconv.hw.ram.BlockRam`
    with ``registered``).

    ``words`` are the contents, word ``i`` at address ``i`` (a tuple of ints, each
    in ``[0, 2**width)``).
    """

    name: str
    width: int
    depth: int
    words: tuple

    def __post_init__(self):
        if len(self.words) != self.depth:
            raise ValueError(f"ROM {self.name}: {len(self.words)} words for depth {self.depth}")

    @property
    def addr_width(self) -> int:
        return address_width(self.depth)

    def verilog(self) -> str:
        """The module's text: ports, the contents as ``initial`` assignments, the registered read."""
        W, D, A = self.width, self.depth, self.addr_width
        digits = max(1, -(-W // 4))
        # One format call per word: the contents of a 2M-weight layer are written in about a second.
        body = "".join(f"        mem[{i}] = {W}'h{w:0{digits}x};\n" for i, w in enumerate(self.words))
        return (f"// ROM of {D} words x {W} bits: data is mem[addr] registered twice on clk\n"
                f"// (the second register is the block RAM's output register where it has one).\n"
                f"module {self.name} (\n"
                f"    input  wire clk,\n"
                f"    input  wire [{A - 1}:0] addr,\n"
                f"    output reg  [{W - 1}:0] data\n"
                f");\n"
                f"    reg [{W - 1}:0] mem [{D - 1}:0];\n"
                f"    reg [{W - 1}:0] word;\n"
                f"    initial begin\n"
                f"{body}"
                f"    end\n"
                f"    always @(posedge clk) begin\n"
                f"        word <= mem[addr];\n"
                f"        data <= word;\n"
                f"    end\n"
                f"endmodule\n")

    def ecp5_verilog(self) -> str:
        """The same module for Lattice ECP5: DP16KD cells (port B reads, output register on),
        as `tconv.hw.ram.ecp5_plan` lays them out; beyond one cell's depth, the bank's
        data is chosen behind the cells by the address bits above the cell's, delayed as
        the data is."""
        W, A = self.width, self.addr_width
        plan = ecp5_plan(W, self.depth)
        pw, cab = plan.port_width, plan.cell_address_bits
        low = dp16kd_low_address_bits(pw)
        ra = [f"addr[{k}]" if k < min(A, cab) else "1'b0" for k in range(cab)]
        adb = ["1'b0"] * low + ra + ["1'b0"] * (14 - low - cab)
        lines = [f"// {self.name} for Lattice ECP5: {plan.cells} DP16KD ({plan.banks} x {plan.slices}, "
                 f"{pw}-bit ports), output registers on.",
                 f"module {self.name} (", "    input  wire clk,", f"    input  wire [{A - 1}:0] addr,",
                 f"    output wire [{W - 1}:0] data", ");"]
        banks = []
        for b in range(plan.banks):
            bank_words = self.words[b * plan.words_per_cell:(b + 1) * plan.words_per_cell]
            slices = []
            for sl in range(plan.slices):
                lo, hi = sl * pw, min((sl + 1) * pw, W)
                name = f"b{b}_s{sl}"
                params = dp16kd_parameters(pw, [(w >> lo) & ((1 << (hi - lo)) - 1) for w in bank_words], True)
                lines.append(f"    wire [{pw - 1}:0] {name}_do;")
                lines.append("    DP16KD #(" + ", ".join(_parameter(k, v) for k, v in params.items()) + f") {name} (")
                pins = [".CLKA(clk)", ".CLKB(clk)", ".CEA(1'b1)", ".CEB(1'b1)", ".OCEA(1'b1)", ".OCEB(1'b1)",
                        ".RSTA(1'b0)", ".RSTB(1'b0)", ".WEA(1'b0)", ".WEB(1'b0)"]
                pins += [f".CS{p}{k}(1'b0)" for p in "AB" for k in range(3)]
                pins += [f".ADB{k}({a})" for k, a in enumerate(adb)]
                if pw == 36:  # rows 2a and 2a+1 of a word come out of port A and port B
                    pins += [f".DOA{k}({name}_do[{k}])" for k in range(18)]
                    pins += [f".DOB{k}({name}_do[{18 + k}])" for k in range(18)]
                else:
                    pins += [f".DOB{k}({name}_do[{k}])" for k in range(18)]
                lines.append("        " + ",\n        ".join(pins) + "\n    );")
                slices.append(f"{name}_do[{hi - lo - 1}:0]")
            banks.append("{" + ", ".join(reversed(slices)) + "}")
        if plan.banks == 1:
            lines.append(f"    assign data = {banks[0]};")
        else:
            sb = A - cab
            lines += [f"    reg [{sb - 1}:0] bank1, bank2;",
                      f"    always @(posedge clk) begin bank1 <= addr[{A - 1}:{cab}]; bank2 <= bank1; end",
                      f"    reg [{W - 1}:0] word;", "    always @* begin", "        case (bank2)"]
            lines += [f"            {sb}'d{b}: word = {bank};" for b, bank in enumerate(banks)]
            lines += [f"            default: word = {W}'d0;", "        endcase", "    end",
                      "    assign data = word;"]
        lines.append("endmodule")
        return "\n".join(lines) + "\n"


def _parameter(key: str, value) -> str:
    """A DP16KD parameter as Verilog: INITVALs as 320-bit hex, strings quoted, ints as they are."""
    if key.startswith("INITVAL_"):
        return f".{key}(320'h{value:080x})"
    return f'.{key}("{value}")' if isinstance(value, str) else f".{key}({value})"


def address_width(depth: int) -> int:
    """Address bits of a ROM of ``depth`` words (at least one)."""
    return max(1, (depth - 1).bit_length())


def rom_instance(m, module: str, width: int, depth: int, addr, *, name: str) -> Signal:
    """Instantiate ROM module ``module`` (a `RomModule`'s ``name``) in ``m`` as submodule
    ``name``, reading at ``addr``; returns the read data (two cycles after ``addr``)."""
    data = Signal(width, name=f"{name}_data")
    m.submodules[name] = Instance(module, i_clk=ClockSignal(), i_addr=addr[:address_width(depth)], o_data=data)
    return data


def pack_words(codes: np.ndarray, width: int) -> tuple:
    """Rows of integer codes ``(words, lanes)`` to words: lane ``r`` in bits ``[r*width, (r+1)*width)``,
    two's complement (Python ints of any width, built without a loop per code)."""
    codes = np.asarray(codes, dtype=np.int64)
    mask = (1 << width) - 1
    words = [0] * codes.shape[0]
    for r in range(codes.shape[1]):  # one pass per lane, vectorised over the words
        lane = (codes[:, r] & mask).tolist()
        shift = r * width
        words = [w | (v << shift) for w, v in zip(words, lane)]
    return tuple(words)
