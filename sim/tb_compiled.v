// Compiled testbench of a generated layer (tconv.sim.compiled): no Python in the clock loop.
//
// tconv.sim.compiled writes this file's three placeholders (the top module's
// name, checked to be a plain identifier, and the two tdata widths) and builds
// it with the design's Verilog. On Icarus the clock is the `always #5` below;
// a Verilator build defines TCONV_CLOCK_FROM_MAIN and has no --timing,
// and sim/tb_compiled_main.cpp toggles `clk` (no coroutine scheduler per cycle).
// Plusargs name the files of one run:
//   +in=FILE     one input beat a line: tdata tlast gate delay (hex); the beat is
//                offered once `gate` output beats have left and `delay` more cycles passed
//   +pat=FILE    PAT_DEPTH lines of 2 bits: bit 0 stalls s_axis_tvalid, bit 1
//                m_axis_tready, in that cycle (repeating)
//   +out=FILE    written: "I cycle" per input handshake, "O cycle tlast tdata" per
//                output beat, then one of "E cycle" (done), "T cycle" (cycle limit),
//                "H cycle" (AXI4-Stream hold rule broken on m_axis), "X cycle" (X/Z on a
//                handshake or on m_axis while tvalid), "R cycle" (+in= shorter than +n_in=)
//   +n_in=N +n_out=N +limit=N   input beats, expected output beats, cycle limit
//   +waves=FILE  (builds with waves only) dump every signal
`timescale 1ns/1ps
// One process keeps the testbench's state: its blocking assignments are read
// only by itself, later in the same cycle (BLKSEQ); the reset and AXI4-Stream
// registers start defined before any clock edge (PROCASSINIT).
/* verilator lint_off BLKSEQ */
/* verilator lint_off PROCASSINIT */
`ifdef TCONV_CLOCK_FROM_MAIN
module tconv_tb (input wire clk);
`else
module tconv_tb;
  reg clk = 1'b0;
  always #5 clk = ~clk;
`endif
  localparam integer DW_IN = @DW_IN@;
  localparam integer DW_OUT = @DW_OUT@;
  localparam [31:0] PAT_DEPTH = 32'd65400;  // a multiple of the toggle and long patterns' periods
  localparam [63:0] TAIL = 64'd50;          // cycles watched for extra output beats after the last one
  localparam [2:0] RESET_CYCLES = 3'd4;

  reg rst = 1'b1;
  reg [DW_IN-1:0] s_tdata = {DW_IN{1'b0}};
  reg s_tvalid = 1'b0;
  reg s_tlast = 1'b0;
  wire s_tready;
  wire [DW_OUT-1:0] m_tdata;
  wire m_tvalid;
  wire m_tlast;
  reg m_tready = 1'b0;

  @TOP@ dut (
    .clk(clk), .rst(rst),
    .s_axis_tdata(s_tdata), .s_axis_tvalid(s_tvalid), .s_axis_tready(s_tready), .s_axis_tlast(s_tlast),
    .m_axis_tdata(m_tdata), .m_axis_tvalid(m_tvalid), .m_axis_tready(m_tready), .m_axis_tlast(m_tlast)@W_PORTS@);
@W_DECL@

  reg [1:0] pat [0:PAT_DEPTH-1];
  reg [8*4096-1:0] in_path, out_path, pat_path;
  integer in_fd, out_fd, code;
  reg [63:0] n_in, n_out, limit;
  reg [63:0] cycle, loaded, in_count, out_count, tail;
  reg [63:0] gate;
  reg [31:0] delay;
  reg [31:0] pat_i;
  reg [2:0] rst_count;
  reg have, ready, done;
  reg [DW_IN-1:0] next_data;
  reg next_last;
  reg prev_stall, prev_last;
  reg [DW_OUT-1:0] prev_data;
  reg src_pause, snk_pause;

  initial begin
    if (!$value$plusargs("in=%s", in_path) || !$value$plusargs("out=%s", out_path)
        || !$value$plusargs("pat=%s", pat_path) || !$value$plusargs("n_in=%d", n_in)
        || !$value$plusargs("n_out=%d", n_out) || !$value$plusargs("limit=%d", limit)) begin
      $display("tconv_tb: needs +in= +out= +pat= +n_in= +n_out= +limit=");
      $finish;
    end
    $readmemh(pat_path, pat);
    in_fd = $fopen(in_path, "r");
    out_fd = $fopen(out_path, "w");
    if (in_fd == 0 || out_fd == 0) begin
      $display("tconv_tb: cannot open the job's files");
      $finish;
    end
@WAVES@
    cycle = 64'd0; loaded = 64'd0; in_count = 64'd0; out_count = 64'd0; tail = 64'd0;
    gate = 64'd0; delay = 32'd0; pat_i = 32'd0; rst_count = 3'd0; code = 0;
    have = 1'b0; ready = 1'b0; done = 1'b0; prev_stall = 1'b0; prev_last = 1'b0;
    next_data = {DW_IN{1'b0}}; next_last = 1'b0; prev_data = {DW_OUT{1'b0}};
    src_pause = 1'b0; snk_pause = 1'b0;
  end

  task finish_with(input [7:0] kind);
    begin
      $fwrite(out_fd, "%c %0d\n", kind, cycle);
      $fclose(out_fd);
      done = 1'b1;
      $finish;
    end
  endtask

  always @(posedge clk) begin
    if (rst) begin
      // rst high for the first RESET_CYCLES rising edges, as the cocotb testbench holds it
      rst_count = rst_count + 3'd1;
      if (rst_count == RESET_CYCLES) rst <= 1'b0;
    end else if (!done) begin
      cycle = cycle + 64'd1;
      if ((^{s_tready, m_tvalid}) === 1'bx || (m_tvalid && (^{m_tdata, m_tlast}) === 1'bx))
        finish_with("X");
      // AXI4-Stream: a beat offered and not taken stays, unchanged, until it is taken.
      if (!done && prev_stall && (!m_tvalid || m_tdata != prev_data || m_tlast != prev_last))
        finish_with("H");
      if (!done) begin
        if (s_tvalid && s_tready) begin
          $fwrite(out_fd, "I %0d\n", cycle);
          in_count = in_count + 64'd1;
          have = 1'b0;
        end
        if (m_tvalid && m_tready) begin
          $fwrite(out_fd, "O %0d %0d %h\n", cycle, m_tlast, m_tdata);
          out_count = out_count + 64'd1;
        end
@W_STEP@        prev_stall = m_tvalid && !m_tready;
        prev_data = m_tdata;
        prev_last = m_tlast;
        if (!have && loaded < n_in) begin
          code = $fscanf(in_fd, "%h %h %h %h\n", next_data, next_last, gate, delay);
          if (code != 4) finish_with("R");
          loaded = loaded + 64'd1;
          have = 1'b1;
          ready = 1'b0;
        end
      end
      if (!done) begin
        if (have && !ready && out_count >= gate) begin
          if (delay == 32'd0) ready = 1'b1;
          else delay = delay - 32'd1;
        end
        src_pause = pat[pat_i][0];
        snk_pause = pat[pat_i][1];
        pat_i = (pat_i == PAT_DEPTH - 32'd1) ? 32'd0 : pat_i + 32'd1;
        if (!(s_tvalid && !s_tready)) begin
          if (have && ready && !src_pause@W_HOLD_IN@) begin
            s_tvalid <= 1'b1;
            s_tdata <= next_data;
            s_tlast <= next_last;
          end else begin
            s_tvalid <= 1'b0;
          end
        end
        m_tready <= !snk_pause;
        if (in_count == n_in && out_count >= n_out) tail = tail + 64'd1;
        if (tail == TAIL) finish_with("E");
        else if (cycle >= limit) finish_with("T");
      end
    end
  end
endmodule
/* verilator lint_on PROCASSINIT */
/* verilator lint_on BLKSEQ */
