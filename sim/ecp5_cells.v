// Behavioural models of the Lattice ECP5 primitives that a design's verilog_ecp5 instantiates,
// for simulation only (tconv.sim.ecp5; synthesis uses the tools' own cells). They follow
// Lattice's documentation (FPGA-TN-02204 "ECP5 and ECP5-5G Memory Usage Guide",
// FPGA-TN-02205 "ECP5 and ECP5-5G sysDSP Usage Guide") for the modes tconv uses.

// DP16KD: 16 Kbit true dual-port block RAM, 1024 rows of 18 bits.
// Modes modelled: DATA_WIDTH 18 on each port (address ADx[13:4], byte enables ADx[1:0] on
// writes: bits [8:0] and [17:9]), and DATA_WIDTH 36 on both ports (the pseudo dual-port
// mode: port A writes, port B reads; a word is rows 2a and 2a+1, address ADx[13:5],
// byte enables ADA[3:0]; data bits [17:0] on the A pins, [35:18] on the B pins).
// A port is active when CEx is high and CSx[2:0] equals CSDECODE_x. A write (WEx) stores
// the enabled bytes; a read latches the row(s) into the port's output latch on the clock
// edge (NOREG: the pins show the latch, one cycle of latency). REGMODE "OUTREG" adds the
// output register, loaded from the latch when OCEx is high (two cycles). RSTx (RESETMODE
// SYNC) clears the latch and the register on the clock edge. The output of a read during a
// write to the same row from the other port is undefined in the documentation; the model
// returns the old word (tconv's designs never depend on it). Both latches and output
// registers start at zero (after configuration, GSR disabled). INITVAL_xx holds 16 rows,
// row 16*xx + j in bits [20j, 20j+18).
module DP16KD #(
    parameter DATA_WIDTH_A = 18, parameter DATA_WIDTH_B = 18,
    parameter REGMODE_A = "NOREG", parameter REGMODE_B = "NOREG",
    parameter RESETMODE = "SYNC", parameter ASYNC_RESET_RELEASE = "SYNC",
    parameter CSDECODE_A = "0b000", parameter CSDECODE_B = "0b000",
    parameter WRITEMODE_A = "NORMAL", parameter WRITEMODE_B = "NORMAL",
    parameter GSR = "DISABLED",
    parameter [319:0] INITVAL_00 = 320'h0, parameter [319:0] INITVAL_01 = 320'h0,
    parameter [319:0] INITVAL_02 = 320'h0, parameter [319:0] INITVAL_03 = 320'h0,
    parameter [319:0] INITVAL_04 = 320'h0, parameter [319:0] INITVAL_05 = 320'h0,
    parameter [319:0] INITVAL_06 = 320'h0, parameter [319:0] INITVAL_07 = 320'h0,
    parameter [319:0] INITVAL_08 = 320'h0, parameter [319:0] INITVAL_09 = 320'h0,
    parameter [319:0] INITVAL_0A = 320'h0, parameter [319:0] INITVAL_0B = 320'h0,
    parameter [319:0] INITVAL_0C = 320'h0, parameter [319:0] INITVAL_0D = 320'h0,
    parameter [319:0] INITVAL_0E = 320'h0, parameter [319:0] INITVAL_0F = 320'h0,
    parameter [319:0] INITVAL_10 = 320'h0, parameter [319:0] INITVAL_11 = 320'h0,
    parameter [319:0] INITVAL_12 = 320'h0, parameter [319:0] INITVAL_13 = 320'h0,
    parameter [319:0] INITVAL_14 = 320'h0, parameter [319:0] INITVAL_15 = 320'h0,
    parameter [319:0] INITVAL_16 = 320'h0, parameter [319:0] INITVAL_17 = 320'h0,
    parameter [319:0] INITVAL_18 = 320'h0, parameter [319:0] INITVAL_19 = 320'h0,
    parameter [319:0] INITVAL_1A = 320'h0, parameter [319:0] INITVAL_1B = 320'h0,
    parameter [319:0] INITVAL_1C = 320'h0, parameter [319:0] INITVAL_1D = 320'h0,
    parameter [319:0] INITVAL_1E = 320'h0, parameter [319:0] INITVAL_1F = 320'h0,
    parameter [319:0] INITVAL_20 = 320'h0, parameter [319:0] INITVAL_21 = 320'h0,
    parameter [319:0] INITVAL_22 = 320'h0, parameter [319:0] INITVAL_23 = 320'h0,
    parameter [319:0] INITVAL_24 = 320'h0, parameter [319:0] INITVAL_25 = 320'h0,
    parameter [319:0] INITVAL_26 = 320'h0, parameter [319:0] INITVAL_27 = 320'h0,
    parameter [319:0] INITVAL_28 = 320'h0, parameter [319:0] INITVAL_29 = 320'h0,
    parameter [319:0] INITVAL_2A = 320'h0, parameter [319:0] INITVAL_2B = 320'h0,
    parameter [319:0] INITVAL_2C = 320'h0, parameter [319:0] INITVAL_2D = 320'h0,
    parameter [319:0] INITVAL_2E = 320'h0, parameter [319:0] INITVAL_2F = 320'h0,
    parameter [319:0] INITVAL_30 = 320'h0, parameter [319:0] INITVAL_31 = 320'h0,
    parameter [319:0] INITVAL_32 = 320'h0, parameter [319:0] INITVAL_33 = 320'h0,
    parameter [319:0] INITVAL_34 = 320'h0, parameter [319:0] INITVAL_35 = 320'h0,
    parameter [319:0] INITVAL_36 = 320'h0, parameter [319:0] INITVAL_37 = 320'h0,
    parameter [319:0] INITVAL_38 = 320'h0, parameter [319:0] INITVAL_39 = 320'h0,
    parameter [319:0] INITVAL_3A = 320'h0, parameter [319:0] INITVAL_3B = 320'h0,
    parameter [319:0] INITVAL_3C = 320'h0, parameter [319:0] INITVAL_3D = 320'h0,
    parameter [319:0] INITVAL_3E = 320'h0, parameter [319:0] INITVAL_3F = 320'h0
) (
    input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5, DIA4, DIA3,
    input DIA2, DIA1, DIA0,
    input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
    input CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0,
    output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3,
    output DOA2, DOA1, DOA0,
    input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5, DIB4, DIB3,
    input DIB2, DIB1, DIB0,
    input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
    input CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0,
    output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3,
    output DOB2, DOB1, DOB0
);
    localparam [20479:0] INIT = {
        INITVAL_3F, INITVAL_3E, INITVAL_3D, INITVAL_3C, INITVAL_3B, INITVAL_3A, INITVAL_39, INITVAL_38,
        INITVAL_37, INITVAL_36, INITVAL_35, INITVAL_34, INITVAL_33, INITVAL_32, INITVAL_31, INITVAL_30,
        INITVAL_2F, INITVAL_2E, INITVAL_2D, INITVAL_2C, INITVAL_2B, INITVAL_2A, INITVAL_29, INITVAL_28,
        INITVAL_27, INITVAL_26, INITVAL_25, INITVAL_24, INITVAL_23, INITVAL_22, INITVAL_21, INITVAL_20,
        INITVAL_1F, INITVAL_1E, INITVAL_1D, INITVAL_1C, INITVAL_1B, INITVAL_1A, INITVAL_19, INITVAL_18,
        INITVAL_17, INITVAL_16, INITVAL_15, INITVAL_14, INITVAL_13, INITVAL_12, INITVAL_11, INITVAL_10,
        INITVAL_0F, INITVAL_0E, INITVAL_0D, INITVAL_0C, INITVAL_0B, INITVAL_0A, INITVAL_09, INITVAL_08,
        INITVAL_07, INITVAL_06, INITVAL_05, INITVAL_04, INITVAL_03, INITVAL_02, INITVAL_01, INITVAL_00};
    localparam WIDE = (DATA_WIDTH_A == 36);
    localparam [2:0] CS_A = (CSDECODE_A == "0b001") ? 3'd1 : (CSDECODE_A == "0b010") ? 3'd2 :
                            (CSDECODE_A == "0b011") ? 3'd3 : (CSDECODE_A == "0b100") ? 3'd4 :
                            (CSDECODE_A == "0b101") ? 3'd5 : (CSDECODE_A == "0b110") ? 3'd6 :
                            (CSDECODE_A == "0b111") ? 3'd7 : 3'd0;
    localparam [2:0] CS_B = (CSDECODE_B == "0b001") ? 3'd1 : (CSDECODE_B == "0b010") ? 3'd2 :
                            (CSDECODE_B == "0b011") ? 3'd3 : (CSDECODE_B == "0b100") ? 3'd4 :
                            (CSDECODE_B == "0b101") ? 3'd5 : (CSDECODE_B == "0b110") ? 3'd6 :
                            (CSDECODE_B == "0b111") ? 3'd7 : 3'd0;

    reg [17:0] rows [0:1023];
    integer n;
    initial begin
        for (n = 0; n < 1024; n = n + 1)
            rows[n] = INIT[(n / 16) * 320 + (n % 16) * 20 +: 18];
    end

    wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5,
                       DIA4, DIA3, DIA2, DIA1, DIA0};
    wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5,
                       DIB4, DIB3, DIB2, DIB1, DIB0};
    wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0};
    wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0};
    wire sel_a = CEA && ({CSA2, CSA1, CSA0} == CS_A);
    wire sel_b = CEB && ({CSB2, CSB1, CSB0} == CS_B);
    // 18-bit mode: row ADx[13:4]; 36-bit mode: rows {ADx[13:5], 0} and {ADx[13:5], 1}.
    wire [9:0] row_a = WIDE ? {ada[13:5], 1'b0} : ada[13:4];
    wire [9:0] row_b = WIDE ? {adb[13:5], 1'b0} : adb[13:4];

    // latch_lo holds the low half of a 36-bit read (port B's clock); port A's output
    // register takes it in the 36-bit mode, port A's own read latch otherwise.
    reg [17:0] latch_a = 18'd0, latch_lo = 18'd0, latch_b = 18'd0, out_a = 18'd0, out_b = 18'd0;

    function [17:0] merge(input [17:0] old, input [17:0] new_bits, input [1:0] bytes);
        merge = {bytes[1] ? new_bits[17:9] : old[17:9], bytes[0] ? new_bits[8:0] : old[8:0]};
    endfunction

    // Port A: writes (both rows of a word in the 36-bit mode), reads in the 18-bit mode.
    always @(posedge CLKA) begin
        if (RSTA) begin
            latch_a <= 18'd0;
        end else if (sel_a) begin
            if (WEA) begin
                rows[row_a] <= merge(rows[row_a], dia, ada[1:0]);
                if (WIDE)
                    rows[row_a | 10'd1] <= merge(rows[row_a | 10'd1], dib, ada[3:2]);
            end else if (!WIDE) begin
                latch_a <= rows[row_a];
            end
        end
        if (RSTA)
            out_a <= 18'd0;
        else if (OCEA)
            out_a <= WIDE ? latch_lo : latch_a;
    end

    // Port B: reads (both rows in the 36-bit mode), writes in the 18-bit mode.
    always @(posedge CLKB) begin
        if (RSTB) begin
            latch_b <= 18'd0;
            latch_lo <= 18'd0;
        end else if (sel_b) begin
            if (WEB && !WIDE) begin
                rows[row_b] <= merge(rows[row_b], dib, adb[1:0]);
            end else if (!WEB) begin
                latch_b <= rows[row_b | (WIDE ? 10'd1 : 10'd0)];
                latch_lo <= rows[row_b];
            end
        end
        if (RSTB)
            out_b <= 18'd0;
        else if (OCEB)
            out_b <= latch_b;
    end

    wire [17:0] doa = (REGMODE_A == "OUTREG") ? out_a : (WIDE ? latch_lo : latch_a);
    wire [17:0] dob = (REGMODE_B == "OUTREG") ? out_b : latch_b;
    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6, DOA5, DOA4, DOA3,
            DOA2, DOA1, DOA0} = doa;
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6, DOB5, DOB4, DOB3,
            DOB2, DOB1, DOB0} = dob;
endmodule

// MULT18X18D: 18x18 multiplier with optional input registers (A, B) and output register,
// all on CLK0 here. The subset tconv's multiplier cell uses: SIGNEDA/SIGNEDB select two's
// complement operands, no pipeline register, C input and cascades unused. RST0 (RESETMODE
// SYNC) clears the registers; CE0 enables them.
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
