"""Large ROMs as Verilog modules of their own, their contents written as text.

A weight ROM of a large layer holds millions of bits. Elaborated as an Amaranth
``Memory`` with an ``init``, every bit becomes a netlist constant and Yosys
parses it twice on the way to Verilog: MelGAN's 512 -> 256 layer (2M weights)
took 5 minutes and 2.3 GB to generate. Here the design instantiates a small
module per ROM and the module's text, contents included, is written directly
(``initial`` assignments, one word a line, as Yosys itself writes memory
contents), so the cost is that of formatting the words.

The module is the plain synchronous-read ROM every synthesis tool infers as
block RAM: ``data`` is ``mem[addr]`` registered on ``clk`` (as an Amaranth
``read_port()`` with its default domain). No system task, no file outside the
Verilog (design folders refuse ``$readmemh``: docs/design-folders.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import ClockSignal, Instance, Signal

__all__ = ["RomModule", "address_width", "pack_words", "rom_instance"]


@dataclass(frozen=True)
class RomModule:
    """A ROM of ``depth`` words of ``width`` bits as Verilog module ``name``.

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
        return (f"// ROM of {D} words x {W} bits: data is mem[addr] registered on clk.\n"
                f"module {self.name} (\n"
                f"    input  wire clk,\n"
                f"    input  wire [{A - 1}:0] addr,\n"
                f"    output reg  [{W - 1}:0] data\n"
                f");\n"
                f"    reg [{W - 1}:0] mem [{D - 1}:0];\n"
                f"    initial begin\n"
                f"{body}"
                f"    end\n"
                f"    always @(posedge clk) data <= mem[addr];\n"
                f"endmodule\n")


def address_width(depth: int) -> int:
    """Address bits of a ROM of ``depth`` words (at least one)."""
    return max(1, (depth - 1).bit_length())


def rom_instance(m, module: str, width: int, depth: int, addr, *, name: str) -> Signal:
    """Instantiate ROM module ``module`` (a `RomModule`'s ``name``) in ``m`` as submodule
    ``name``, reading at ``addr``; returns the registered read data."""
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
