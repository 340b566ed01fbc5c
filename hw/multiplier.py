"""The MAC array's multiplier cell: one DSP block with its input and output registers.

Every PE multiplies through one instance of a small Verilog module, ``<top>_mul``:
operands registered, product registered, two cycles from operands to product.
The generated Verilog defines it in plain, portable Verilog (`generic_verilog`),
which vendor tools map to one DSP block with both registers inside it. Yosys'
``synth_ecp5`` maps a multiplication to a MULT18X18D but never moves flip-flops
into it, so the multiplier's 3 ns of logic would sit between two fabric
flip-flops and set the clock. `ecp5_verilog` is the same module written as a
MULT18X18D with its A/B input registers and its output register switched on;
it is part of the design's ECP5 sources (manifest ``verilog_ecp5``). Both have
the same ports, latency and result; the tests simulate both against the model
(the ECP5 one over the behavioural MULT18X18D model of sim/ecp5_cells.v).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Shape, signed

__all__ = ["MultiplierCell", "GENERIC_BEGIN", "GENERIC_END"]

#: Markers around the generic module in the generated ``<top>.v``.
GENERIC_BEGIN = "// tconv: multiplier cell begin"
GENERIC_END = "// tconv: multiplier cell end"

#: Widest signed operand of one ECP5 MULT18X18D.
DSP_OPERAND_BITS = 18


def _extend(sig: str, width: int, to: int) -> str:
    """Verilog for ``sig`` (``width`` bits) sign-extended to ``to`` bits."""
    if width == to:
        return sig
    return f"{{{{{to - width}{{{sig}[{width - 1}]}}}}, {sig}}}"


@dataclass(frozen=True)
class MultiplierCell:
    """Port widths of ``name``: signed ``a`` and ``b`` in, ``p = a * b`` out.

    Unsigned operands get a zero sign bit (`for_shapes`), so one signed multiply
    serves every format. ``p`` has the operands' own widths summed (not counting
    those added sign bits): every product of the formats fits it, so its low
    bits of the full product are the product.
    """

    name: str
    a_width: int
    b_width: int
    p_width: int

    @classmethod
    def for_shapes(cls, name: str, x_shape: Shape, w_shape: Shape) -> MultiplierCell:
        x_shape, w_shape = Shape.cast(x_shape), Shape.cast(w_shape)
        return cls(name, x_shape.width + (not x_shape.signed), w_shape.width + (not w_shape.signed),
                   x_shape.width + w_shape.width)

    @property
    def a_shape(self) -> Shape:
        return signed(self.a_width)

    @property
    def b_shape(self) -> Shape:
        return signed(self.b_width)

    #: Cycles from operands to product.
    latency = 2

    def _header(self, p_kind: str) -> str:
        A, B, P = self.a_width, self.b_width, self.p_width
        return (f"module {self.name} (\n"
                f"    input  wire clk,\n"
                f"    input  wire signed [{A - 1}:0] a,\n"
                f"    input  wire signed [{B - 1}:0] b,\n"
                f"    output {p_kind} signed [{P - 1}:0] p\n"
                f");\n")

    def generic_verilog(self) -> str:
        """The portable module (registered operands, registered product), between markers."""
        A, B, P = self.a_width, self.b_width, self.p_width
        return (
            f"{GENERIC_BEGIN}\n"
            f"// One PE's multiplier: a and b registered, their product registered (2 cycles).\n"
            f"// Synthesis maps it to one DSP block with its input and output registers.\n"
            + self._header("reg ") +
            f"    reg signed [{A - 1}:0] a_r = {A}'d0;\n"
            f"    reg signed [{B - 1}:0] b_r = {B}'d0;\n"
            f"    // Operands sign-extended to the product's width: the low {P} bits of the\n"
            f"    // product are exact.\n"
            f"    wire [{P - 1}:0] a_x = {_extend('a_r', A, P)};\n"
            f"    wire [{P - 1}:0] b_x = {_extend('b_r', B, P)};\n"
            f"    initial p = {P}'d0;\n"
            f"    always @(posedge clk) begin\n"
            f"        a_r <= a;\n"
            f"        b_r <= b;\n"
            f"        p <= a_x * b_x;\n"
            f"    end\n"
            f"endmodule\n"
            f"{GENERIC_END}\n")

    def ecp5_verilog(self) -> str:
        """The same module as one ECP5 MULT18X18D with its input and output registers."""
        A, B, P = self.a_width, self.b_width, self.p_width
        if max(A, B) > DSP_OPERAND_BITS:
            raise ValueError(f"{self.name}: operands of {A} and {B} bits exceed one MULT18X18D "
                             f"({DSP_OPERAND_BITS}-bit signed)")

        ports = ",\n".join(
            [f"        .A{n}(a18[{n}])" for n in range(18)] +
            [f"        .B{n}(b18[{n}])" for n in range(18)] +
            [f"        .C{n}(1'b0)" for n in range(18)] +
            ["        .SIGNEDA(1'b1)", "        .SIGNEDB(1'b1)",
             "        .SOURCEA(1'b0)", "        .SOURCEB(1'b0)",
             "        .CLK0(clk)", "        .CE0(1'b1)", "        .RST0(1'b0)"] +
            [f"        .P{n}(p36[{n}])" for n in range(36)])
        return (
            f"// {self.name} for Lattice ECP5 (part of the design's verilog_ecp5, in place of the\n"
            f"// generic module): one MULT18X18D, A/B input registers and output register on CLK0.\n"
            + self._header("wire") +
            f"    wire [17:0] a18 = {_extend('a', A, DSP_OPERAND_BITS)};\n"
            f"    wire [17:0] b18 = {_extend('b', B, DSP_OPERAND_BITS)};\n"
            f"    wire [35:0] p36;\n"
            f"    MULT18X18D #(\n"
            f"        .REG_INPUTA_CLK(\"CLK0\"), .REG_INPUTB_CLK(\"CLK0\"), .REG_OUTPUT_CLK(\"CLK0\"),\n"
            f"        .REG_PIPELINE_CLK(\"NONE\"), .GSR(\"DISABLED\"), .RESETMODE(\"SYNC\")\n"
            f"    ) dsp (\n{ports}\n    );\n"
            f"    assign p = p36[{P - 1}:0];\n"
            f"endmodule\n")
