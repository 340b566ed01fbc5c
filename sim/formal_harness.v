// Formal harness of a tconv layer (tconv.sim.formal): the environment and the obligations.
//
// The layer under test is module tconv_formal_dut (tconv.sim.formal elaborates the design
// folder's layer under that name, with the invariants its queues state under Amaranth's
// "formal" platform). Everything that depends on the layer comes in as parameters, set by
// the job's `chparam` (tconv.sim.formal.harness_parameters):
//   IN_W, OUT_W   s_axis / m_axis tdata widths
//   LMAX, LW      longest frame explored (steps) and the width of a step count
//   OCW           width of an output-beat count
//   LOUT          L_out(n) for n = 1..LMAX, OCW bits each, n = 1 lowest
//   EARLY         beats a frame may have sent after c steps, before its end is known,
//                 for c = 0..LMAX-1, OCW bits each, c = 0 lowest
//   FW            width of frame indices (never wraps within a trace)
//   CW, BOUND     width of the wait counters and the progress bound (cycles)
//   RESET_FIRST   1: reset only in the first cycle; 0: resets anywhere after it
//   W_W, W_BEATS, W_BW  (runtime-weights designs) w_axis tdata width, beats of a set and
//                 the width of a beat count
// Groups of assertions are selected per task by defines (CHECK_AXIS, CHECK_COUNT,
// CHECK_PROGRESS, CHECK_WEIGHTS); CONTROL_ONLY leaves the output data unconnected;
// FORMAL_EXTRA includes formal_extra.vh inside the harness (e.g. a property meant to fail).
// RUNTIME_WEIGHTS (defined for a runtime-weights design) adds w_axis as free inputs (a
// source that keeps the AXI4-Stream rules) and the layer's probe f_s_bank: the weight bank
// of the input step accepted now (tconv.sim.formal.formal_verilog adds that port).
`default_nettype none
module tconv_formal #(
  parameter integer IN_W = 1,
  parameter integer OUT_W = 1,
  parameter integer LMAX = 1,
  parameter integer LW = 1,
  parameter integer OCW = 1,
  parameter [LMAX*OCW-1:0] LOUT = 0,
  parameter [LMAX*OCW-1:0] EARLY = 0,
  parameter integer FW = 8,
  parameter integer CW = 8,
  parameter integer BOUND = 1,
  parameter integer RESET_FIRST = 0,
  parameter integer W_W = 1,
  parameter integer W_BEATS = 1,
  parameter integer W_BW = 1
) (
  input  wire clk,
  input  wire rst,
  input  wire [IN_W-1:0] s_axis_tdata,
  input  wire s_axis_tvalid,
  output wire s_axis_tready,
  input  wire s_axis_tlast,
  output wire [OUT_W-1:0] m_axis_tdata,
  output wire m_axis_tvalid,
  input  wire m_axis_tready,
  output wire m_axis_tlast
`ifdef RUNTIME_WEIGHTS
  ,
  input  wire [W_W-1:0] w_axis_tdata,
  input  wire w_axis_tvalid,
  output wire w_axis_tready,
  input  wire w_axis_tlast
`endif
);
`ifdef RUNTIME_WEIGHTS
  wire f_s_bank;
`endif
  tconv_formal_dut dut (
    .clk(clk), .rst(rst),
    .s_axis_tdata(s_axis_tdata), .s_axis_tvalid(s_axis_tvalid), .s_axis_tready(s_axis_tready),
    .s_axis_tlast(s_axis_tlast),
`ifdef CONTROL_ONLY
    // The properties of this task do not read the output data: leave it unconnected, so that the
    // data path (multipliers, scatter bank contents, post-processing) drops out of the model.
    .m_axis_tdata(),
`else
    .m_axis_tdata(m_axis_tdata),
`endif
`ifdef RUNTIME_WEIGHTS
    .w_axis_tdata(w_axis_tdata), .w_axis_tvalid(w_axis_tvalid), .w_axis_tready(w_axis_tready),
    .w_axis_tlast(w_axis_tlast), .f_s_bank(f_s_bank),
`endif
    .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready), .m_axis_tlast(m_axis_tlast));
`ifdef CONTROL_ONLY
  assign m_axis_tdata = {OUT_W{1'b0}};
`endif

`ifdef FORMAL
  // L_out of a frame of n steps (0 outside 1..LMAX).
  function [OCW-1:0] f_lout;
    input [LW-1:0] n;
    integer k;
    begin
      f_lout = {OCW{1'b0}};
      for (k = 1; k <= LMAX; k = k + 1)
        if (n == k) f_lout = LOUT[(k-1)*OCW +: OCW];
    end
  endfunction

  // Beats a frame may have sent after c of its steps, before its end is known.
  function [OCW-1:0] f_early;
    input [LW-1:0] c;
    integer k;
    begin
      f_early = {OCW{1'b0}};
      for (k = 0; k < LMAX; k = k + 1)
        if (c == k) f_early = EARLY[k*OCW +: OCW];
    end
  endfunction

  reg f_past = 1'b0;
  always @(posedge clk) f_past <= 1'b1;
  always @(*) if (!f_past) assume(rst);
  always @(*) if (RESET_FIRST && f_past) assume(!rst);  // else rst is free after the first cycle

  wire f_in_hs = !rst && s_axis_tvalid && s_axis_tready;
  wire f_out_hs = !rst && m_axis_tvalid && m_axis_tready;

  // ---- source: AXI4-Stream rules and frames of at most LMAX steps ----
  reg [LW-1:0] f_in_count = {LW{1'b0}};         // steps of the input frame in progress
  always @(posedge clk)
    if (f_past && !$past(rst) && !rst && $past(s_axis_tvalid && !s_axis_tready)) begin
      assume(s_axis_tvalid);
      assume(s_axis_tdata == $past(s_axis_tdata));
      assume(s_axis_tlast == $past(s_axis_tlast));
    end
  always @(*) if (!rst && s_axis_tvalid && f_in_count == LMAX - 1) assume(s_axis_tlast);

  // ---- frame bookkeeping ----
  // Frames with L_out > 0 are numbered from 0 after each reset: on the input side when their tlast
  // is accepted (f_in_frame = frames complete on input), on the output side by the tlast beats sent
  // (f_out_frame). One frame, f_sel, is chosen by the solver (any value, constant over the trace)
  // and watched: its length and its output beats. A proof for every f_sel covers every frame.
  (* anyconst *) reg [FW-1:0] f_sel;
  reg [FW-1:0] f_in_frame = {FW{1'b0}}, f_out_frame = {FW{1'b0}};
  reg [OCW-1:0] f_out_count = {OCW{1'b0}};      // beats sent of frame f_out_frame
  reg f_sel_known = 1'b0;                        // f_sel's input is complete: its length is f_sel_len
  reg [LW-1:0] f_sel_len = {LW{1'b0}};
  wire [LW-1:0] f_in_len = f_in_count + 1'b1;
  wire f_in_end = f_in_hs && s_axis_tlast && f_lout(f_in_len) != 0;
  always @(posedge clk)
    if (rst) begin
      f_in_count <= 0; f_in_frame <= 0; f_out_frame <= 0; f_out_count <= 0; f_sel_known <= 0;
    end else begin
      if (f_in_hs) f_in_count <= s_axis_tlast ? {LW{1'b0}} : f_in_len;
      if (f_in_end) f_in_frame <= f_in_frame + 1'b1;
      if (f_in_end && f_in_frame == f_sel) begin
        f_sel_known <= 1'b1;
        f_sel_len <= f_in_len;
      end
      if (f_out_hs) begin
        f_out_count <= m_axis_tlast ? {OCW{1'b0}} : f_out_count + 1'b1;
        if (m_axis_tlast) f_out_frame <= f_out_frame + 1'b1;
      end
    end
  wire f_pending = f_out_frame != f_in_frame;  // some frame's input is complete, its output is not

  // ---- sink: ready at least every other cycle since the last reset ("fair") ----
  reg f_ready_q = 1'b1, f_fair = 1'b1;
  reg [CW-1:0] f_wait = {CW{1'b0}};             // cycles without an output beat while a frame is due
  reg [CW-1:0] f_in_wait = {CW{1'b0}};          // cycles an offered input beat has waited
  always @(posedge clk) begin
    f_ready_q <= rst || m_axis_tready;
    if (rst) f_fair <= 1'b1;
    else if (!m_axis_tready && !f_ready_q) f_fair <= 1'b0;
    if (rst || f_out_hs || !f_pending) f_wait <= 0;
    else if (f_wait != {CW{1'b1}}) f_wait <= f_wait + 1'b1;
    if (rst || !s_axis_tvalid || s_axis_tready) f_in_wait <= 0;
    else if (f_in_wait != {CW{1'b1}}) f_in_wait <= f_in_wait + 1'b1;
  end

  // ---- obligations of the layer ----
`ifdef CHECK_AXIS
  always @(posedge clk)
    if (f_past && !$past(rst) && !rst && $past(m_axis_tvalid && !m_axis_tready)) begin
      axis_hold_valid: assert(m_axis_tvalid);
      axis_hold_data: assert(m_axis_tdata == $past(m_axis_tdata));
      axis_hold_last: assert(m_axis_tlast == $past(m_axis_tlast));
    end
`endif
`ifdef CHECK_COUNT
  always @(*)
    if (f_out_hs && f_out_frame == f_sel) begin
      if (f_sel_known) begin                 // length known: exactly L_out beats, tlast on the last
        beat_count_known: assert(f_out_count < f_lout(f_sel_len));
        beat_count_last: assert(m_axis_tlast == (f_out_count + 1'b1 == f_lout(f_sel_len)));
      end else begin                         // still coming in: only beats its steps so far decide
        beat_count_started: assert(f_in_frame == f_sel);
        beat_count_early: assert(f_out_count < f_early(f_in_count));
        beat_count_nolast: assert(!m_axis_tlast);
      end
    end
`endif
`ifdef CHECK_PROGRESS
  always @(*) if (!rst) begin
    progress_output: assert(!f_fair || f_wait < BOUND);
    progress_input: assert(!f_fair || f_in_wait < BOUND);
  end
`endif
`ifdef RUNTIME_WEIGHTS
  // ---- w_axis source: AXI4-Stream rules; otherwise any tvalid, tlast and data at any time ----
  wire f_w_hs = !rst && w_axis_tvalid && w_axis_tready;
  always @(posedge clk)
    if (f_past && !$past(rst) && !rst && $past(w_axis_tvalid && !w_axis_tready)) begin
      assume(w_axis_tvalid);
      assume(w_axis_tdata == $past(w_axis_tdata));
      assume(w_axis_tlast == $past(w_axis_tlast));
    end

  // ---- the contract's switch rule, kept by the harness ----
  // f_run: beats since the last tlast or reset (saturating past W_BEATS). A handshake with tlast
  // after exactly W_BEATS - 1 beats ends a complete set (f_set_end); every other tlast ends a set
  // to drop. f_flip toggles after each complete set and, like the active set, survives reset:
  // frame i must use bank f_base ^ f_flip as seen at its first step (the bank of the very first
  // frame fixes f_base), so a complete set is used from the next frame that starts after its
  // last beat, and no other set ever is.
  reg [W_BW-1:0] f_run = {W_BW{1'b0}};
  wire f_set_end = f_w_hs && w_axis_tlast && f_run == W_BEATS - 1;
  reg f_flip = 1'b0, f_base = 1'b0, f_base_known = 1'b0;
  reg f_first = 1'b1;                           // the next input step starts a frame
  reg f_frame_bank = 1'b0;                      // the bank of the frame in progress
  wire f_frame_start = f_in_hs && f_first;
  // Frames started since the last reset (f_started), and how many of them had started when
  // the newest complete set ended (f_mark): those use an older set.
  reg [FW-1:0] f_started = {FW{1'b0}}, f_mark = {FW{1'b0}};
  always @(posedge clk) begin
    if (f_set_end) f_flip <= !f_flip;
    if (f_frame_start && !f_base_known) begin
      f_base_known <= 1'b1;
      f_base <= f_s_bank ^ f_flip;
    end
    if (rst) begin
      f_run <= {W_BW{1'b0}}; f_first <= 1'b1; f_started <= {FW{1'b0}}; f_mark <= {FW{1'b0}};
    end else begin
      if (f_w_hs) f_run <= w_axis_tlast ? {W_BW{1'b0}} : (f_run == W_BEATS ? f_run : f_run + 1'b1);
      if (f_in_hs) f_first <= s_axis_tlast;
      if (f_frame_start) begin
        f_frame_bank <= f_s_bank;
        f_started <= f_started + 1'b1;
      end
      if (f_set_end) f_mark <= f_started + f_frame_start;
    end
  end
`endif
`ifdef CHECK_WEIGHTS
  always @(*) if (!rst) begin
    if (f_in_hs && !f_first) weights_bank_per_frame: assert(f_s_bank == f_frame_bank);
    if (f_frame_start && f_base_known) weights_switch_rule: assert(f_s_bank == (f_base ^ f_flip));
    // w_axis_tready low only while frames that use an older set than the newest complete one are
    // in flight (their output incomplete): loading waits for nothing else.
    if (!w_axis_tready) weights_ready: assert(f_out_frame < f_mark);
  end
  always @(*) if (rst) weights_no_load_in_reset: assert(!w_axis_tready);
`endif
`ifdef FORMAL_EXTRA
`include "formal_extra.vh"
`endif
`endif
endmodule
`default_nettype wire
