"""The MAC array's multiplier cell: one DSP block with its input and output registers.

Every PE multiplies through one instance of a small Verilog module, ``<top>_mul``:
operands registered, product registered, two cycles from operands to product.
The generated Verilog defines it in plain, portable Verilog (`generic_verilog`),
which vendor tools map to one DSP block with both registers inside it. Yosys'
``synth_ecp5`` maps a multiplication to a MULT18X18D but never moves flip-flops
into it, so the multiplier's 3 ns of logic would sit between two fabric
flip-flops and set the clock. `ecp5_verilog` is the same module written as a
MULT18X18D with its A/B input registers and its output register switched on;
``tconv synth`` reads it in place of the generic one (``read_verilog
-overwrite``). Both have the same ports, latency and result; the tests simulate
both against the model (the ECP5 one with `ECP5_MULT18X18D_MODEL`, a behavioural
model of the primitive's registered signed mode).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Shape, signed

__all__ = ["MultiplierCell", "ECP5_MULT18X18D_MODEL", "GENERIC_BEGIN", "GENERIC_END"]

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
            f"// {self.name} for Lattice ECP5 (read by tconv synth in place of the generic\n"
            f"// module): one MULT18X18D, A/B input registers and output register on CLK0.\n"
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


#: Behavioural model of the MULT18X18D subset `MultiplierCell.ecp5_verilog` uses
#: (signed A/B, optional input and output registers on CLK0, no pipeline register),
#: for simulating the ECP5 variant. Not used for synthesis.
ECP5_MULT18X18D_MODEL = """\
// Simulation model of the Lattice ECP5 MULT18X18D subset tconv uses (tests only).
module MULT18X18D #(
    parameter REG_INPUTA_CLK = "NONE", parameter REG_INPUTB_CLK = "NONE",
    parameter REG_OUTPUT_CLK = "NONE", parameter REG_PIPELINE_CLK = "NONE",
    parameter GSR = "ENABLED", parameter RESETMODE = "SYNC"
) (
    input A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11, A12, A13, A14, A15, A16, A17,
    input B0, B1, B2, B3, B4, B5, B6, B7, B8, B9, B10, B11, B12, B13, B14, B15, B16, B17,
    input C0, C1, C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13, C14, C15, C16, C17,
    input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CE0, RST0,
    output P0, P1, P2, P3, P4, P5, P6, P7, P8, P9, P10, P11, P12, P13, P14, P15, P16, P17,
    output P18, P19, P20, P21, P22, P23, P24, P25, P26, P27, P28, P29, P30, P31, P32, P33,
    output P34, P35
);
    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
    reg [17:0] a_r = 18'd0, b_r = 18'd0;
    reg [35:0] p_r = 36'd0;
    wire [17:0] a_u = (REG_INPUTA_CLK == "NONE") ? a : a_r;
    wire [17:0] b_u = (REG_INPUTB_CLK == "NONE") ? b : b_r;
    wire [35:0] a_x = {{18{SIGNEDA & a_u[17]}}, a_u};
    wire [35:0] b_x = {{18{SIGNEDB & b_u[17]}}, b_u};
    wire [35:0] prod = a_x * b_x;
    wire [35:0] p = (REG_OUTPUT_CLK == "NONE") ? prod : p_r;
    always @(posedge CLK0) begin
        if (RST0) begin
            a_r <= 18'd0; b_r <= 18'd0; p_r <= 36'd0;
        end else if (CE0) begin
            a_r <= a; b_r <= b; p_r <= prod;
        end
    end
    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18,
            P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} = p;
endmodule
"""
