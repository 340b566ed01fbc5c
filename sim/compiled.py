"""The compiled testbench engine: the design and sim/tb_compiled.v run on their own, Python before and after.

:func:`run` writes the input beats (hex, one a line, with the gating that
isolates frames), the back-pressure table of both ports and the run's counts;
the simulator runs ``tconv_tb`` (Icarus through vvp, Verilator as an
executable whose ``main`` toggles the clock, sim/tb_compiled_main.cpp), which drives s_axis, checks m_axis's
AXI4-Stream hold rule every cycle and writes each handshake with its cycle.
The outputs are then compared with the model, and the same
:class:`tconv.sim.runner.SimResult` as the cocotb engine's comes back.

Only the design folder's checked Verilog (``GeneratedDesign.verilog``, and the
waivers for Verilator) reaches the simulator; the testbench text takes the top
name only when it is a plain identifier. Builds live in the per-user cache
(:mod:`tconv.sim.build_cache`), keyed by every source including the testbench.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from . import build_cache
from .design import ISOLATE_GAP, GeneratedDesign, expected_with_sets, frame_mismatch
from .patterns import pause_table
from .tools import simulator_env

__all__ = ["TESTBENCH", "testbench_text", "cycle_limit", "run"]

TESTBENCH = Path(__file__).with_name("tb_compiled.v")
MAIN = Path(__file__).with_name("tb_compiled_main.cpp")
PAT_DEPTH = 65400
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class BuildError(RuntimeError):
    pass


_W_PORTS = ",\n    .w_axis_tdata(w_tdata), .w_axis_tvalid(w_tvalid), .w_axis_tready(w_tready), .w_axis_tlast(w_tlast)"
_W_DECL = """  // w_axis (runtime weights). +w=FILE: one beat a line, tdata tlast gate (hex), offered once
  // `gate` input beats were accepted; +wpat=FILE: PAT_DEPTH lines of 1 bit, stall w_axis_tvalid
  // in that cycle; +n_w=N beats. Each w handshake is written as "W cycle tlast". With
  // +w_rst_beat=B +w_rst_in=G +w_rst_out=O: once B w beats and G input beats were accepted and
  // O output beats left, rst is pulsed (RESET_CYCLES); w and input beats wait for it.
  localparam integer DW_W = @DW_W@;
  reg [DW_W-1:0] w_tdata = {DW_W{1'b0}};
  reg w_tvalid = 1'b0;
  reg w_tlast = 1'b0;
  wire w_tready;
  reg wpat [0:PAT_DEPTH-1];
  reg [8*4096-1:0] w_path, wpat_path;
  integer w_fd;
  reg [63:0] n_w = 64'd0, w_loaded = 64'd0, w_gate = 64'd0;
  reg w_have = 1'b0, w_next_last = 1'b0;
  reg [DW_W-1:0] w_next_data = {DW_W{1'b0}};
  reg [63:0] w_taken = 64'd0, w_rst_beat = 64'd0, w_rst_in = 64'd0, w_rst_out = 64'd0;
  reg w_rst_wait = 1'b0;
  initial begin
    w_fd = 0;
    if ($value$plusargs("w_rst_beat=%d", w_rst_beat) && $value$plusargs("w_rst_in=%d", w_rst_in)
        && $value$plusargs("w_rst_out=%d", w_rst_out))
      w_rst_wait = 1'b1;
    if ($value$plusargs("w=%s", w_path) && $value$plusargs("wpat=%s", wpat_path)
        && $value$plusargs("n_w=%d", n_w)) begin
      $readmemh(wpat_path, wpat);
      w_fd = $fopen(w_path, "r");
      if (w_fd == 0) begin
        $display("tconv_tb: cannot open the w_axis beats");
        $finish;
      end
    end
  end
"""
_W_STEP = """        if (w_tvalid && w_tready) begin
          $fwrite(out_fd, "W %0d %0d\\n", cycle, w_tlast);
          w_have = 1'b0;
          w_taken = w_taken + 64'd1;
        end
        if (w_rst_wait && w_taken == w_rst_beat && in_count == w_rst_in && out_count >= w_rst_out
            && !s_tvalid && !(w_tvalid && !w_tready)) begin
          $fwrite(out_fd, "Z %0d\\n", cycle);
          w_rst_wait = 1'b0;
          rst <= 1'b1;
          rst_count = 3'd0;
        end
        if (!w_have && w_loaded < n_w) begin
          code = $fscanf(w_fd, "%h %h %h\\n", w_next_data, w_next_last, w_gate);
          if (code != 3) finish_with("R");
          w_loaded = w_loaded + 64'd1;
          w_have = 1'b1;
        end
        if (!(w_tvalid && !w_tready)) begin
          if (w_have && in_count >= w_gate && !wpat[pat_i] && !(w_rst_wait && w_taken == w_rst_beat)
              && !rst) begin
            w_tvalid <= 1'b1;
            w_tdata <= w_next_data;
            w_tlast <= w_next_last;
          end else begin
            w_tvalid <= 1'b0;
          end
        end
"""


def testbench_text(top: str, in_width: int, out_width: int, *, waves: bool = False,
                   w_width: int | None = None) -> str:
    """sim/tb_compiled.v for one design: its top's name and tdata widths filled in (and, for a
    runtime-weights design, ``w_width``: the w_axis driver)."""
    if not _IDENT.match(top):
        raise ValueError(f"top module name {top!r} is not a plain Verilog identifier")
    dump = ('    begin : dump\n      reg [8*4096-1:0] wave_path;\n'
            '      if ($value$plusargs("waves=%s", wave_path)) begin\n'
            '        $dumpfile(wave_path);\n        $dumpvars(0, tconv_tb);\n      end\n    end\n') if waves else ""
    return (TESTBENCH.read_text().replace("@TOP@", top).replace("@DW_IN@", str(int(in_width)))
            .replace("@DW_OUT@", str(int(out_width))).replace("@WAVES@\n", dump)
            .replace("@W_PORTS@", _W_PORTS if w_width else "")
            .replace("@W_DECL@\n", _W_DECL.replace("@DW_W@", str(int(w_width))) if w_width else "")
            .replace("@W_STEP@", _W_STEP if w_width else "")
            .replace("@W_HOLD_IN@", " && !(w_rst_wait && in_count >= w_rst_in) && !rst" if w_width else ""))


def _run_simulator(cmd, out, cwd, env) -> None:
    """Run the simulator to its end. The wait polls (Popen.wait with a timeout sleeps in
    Python between checks) rather than block in waitpid, so the main thread runs Python
    code often and a signal's handler (tconv.flow.signals) runs at once even when the
    signal reached another thread; on any exception the simulator is killed and reaped."""
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env)
    try:
        while True:
            try:
                proc.wait(timeout=0.2)
                return
            except subprocess.TimeoutExpired:
                continue
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def cycle_limit(design: GeneratedDesign, lengths) -> int:
    """When the testbench gives up: 20x the formula's cycles (or a crude bound) plus slack,
    as generous as the cocotb testbench's per-frame timeout."""
    per_step = design.cycles_per_step or 1
    bound = sum(design.frame_cycles(n) or (n * per_step + 200) for n in lengths)
    return int(bound * 20 + 5000 + (ISOLATE_GAP + 5) * len(lengths))


#: Verilator's options for the testbench (besides the sources, --Mdir and --trace): its own
#: main() drives the clock (no --timing), optimised Verilation and C++.
VERILATOR_OPTIONS = ("--cc", "--exe", "-Wno-fatal", "--top-module", "tconv_tb", "+define+TCONV_CLOCK_FROM_MAIN",
                     "--timescale", "1ns/1ps",
                     "-O3", "--x-assign", "fast", "--x-initial", "fast", "-CFLAGS", "-O2", "-o", "Vtconv_tb")
ICARUS_OPTIONS = ("-g2012", "-s", "tconv_tb")


def _build(design: GeneratedDesign, simulator: str, waves: bool, verbose: bool) -> Path:
    """Build (once per content) and return the cache folder holding the runnable simulation."""
    layer = design.layer
    text = testbench_text(design.top, layer.config.in_channels * layer.input_format.width,
                          layer.config.filters * layer.output_format.width, waves=waves,
                          w_width=design.files.parsed["w_axis_tdata_width"])
    with tempfile.TemporaryDirectory(prefix="tconv_tb_") as stage:
        tb = Path(stage) / "tconv_tb.v"
        tb.write_text(text)
        sources = [*design.verilog]
        if simulator == "verilator" and design.waivers is not None:
            sources.insert(0, design.waivers)
        sources.append(tb)
        if simulator == "verilator":
            sources.append(MAIN)
        options = " ".join(VERILATOR_OPTIONS if simulator == "verilator" else ICARUS_OPTIONS)
        build_dir = build_cache.build_dir(simulator, sources, waves=waves, options=options)
        with build_cache.build_lock(build_dir):
            if build_cache.is_built(build_dir):
                return build_dir
            build_dir.mkdir(parents=True, exist_ok=True)
            (build_dir / "tconv_tb.v").write_text(text)
            srcs = [str(s) for s in design.verilog] + [str(build_dir / "tconv_tb.v")]
            env = {**os.environ, **simulator_env(simulator)}
            log = build_dir / "build.log"
            with open(log, "w") as fh:
                if simulator == "icarus":
                    proc = subprocess.run(["iverilog", *ICARUS_OPTIONS, "-o", str(build_dir / "sim.vvp"), *srcs],
                                          stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=build_dir)
                else:
                    shutil.copyfile(MAIN, build_dir / MAIN.name)
                    waivers = [str(design.waivers)] if design.waivers is not None else []
                    proc = _build_verilator(build_dir, [*waivers, *srcs, str(build_dir / MAIN.name)], waves, env, fh)
            if verbose:
                print(log.read_text(errors="replace"))
            if proc.returncode != 0:
                raise BuildError(log)
            build_cache.mark_built(build_dir)
    return build_dir


def _build_verilator(build_dir: Path, srcs: list[str], waves: bool, env: dict, log) -> subprocess.CompletedProcess:
    """Verilate, then compile with make; Verilator's run-time library comes from
    :func:`tconv.sim.build_cache.verilator_runtime`, compiled once, not once per design."""
    obj = build_dir / "obj_dir"
    cmd = ["verilator", *VERILATOR_OPTIONS, "--Mdir", str(obj), *(["--trace"] if waves else []), *srcs]
    proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=build_dir)
    if proc.returncode != 0:
        return proc
    # The wheel's verilated.mk leaves its precompiled-header flag empty (see runner._build_env).
    make = ["make", "-C", str(obj), "-f", "Vtconv_tb.mk", f"-j{os.cpu_count() or 1}",
            "CFG_CXXFLAGS_PCH_I=-include"]
    log.flush()
    proc = build_cache.verilator_runtime(obj, "Vtconv_tb", make, env, log)
    if proc is not None and proc.returncode != 0:
        return proc
    log.flush()
    return subprocess.run([*make, "Vtconv_tb"], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=build_dir)


def _write_job(tmp: Path, design: GeneratedDesign, frames, expected, lengths, source_pause, sink_pause, seed,
               isolate: bool) -> None:
    width = design.layer.input_format.width * design.layer.config.in_channels
    digits = max(1, (width + 3) // 4)
    lines = []
    out_before, gap = 0, ISOLATE_GAP
    for index, frame in enumerate(frames):
        words = design.pack_inputs(frame)
        for i, word in enumerate(words):
            gate, delay = (out_before, gap) if (isolate and i == 0) else (0, 0)
            lines.append(f"{word:0{digits}x} {int(i == len(words) - 1)} {gate:x} {delay:x}\n")
        out_before += expected[index].shape[0]
        gap = design.isolation_gap(len(words)) if isolate else 0
    (tmp / "in.hex").write_text("".join(lines))
    table = pause_table(source_pause, sink_pause, seed, PAT_DEPTH)
    (tmp / "pat.hex").write_text("".join(f"{int(a) | (int(b) << 1):x}\n" for a, b in table))


def _write_weight_job(tmp: Path, design: GeneratedDesign, weight_sets, weight_pause: str, seed: int,
                      reset=None, lengths=(), out_lengths=()) -> list[str]:
    """The w_axis beats of ``weight_sets`` ([(beats, gate)]: a set's beats, offered once ``gate``
    input beats were accepted; ``tlast`` on each set's last beat) and their stall table;
    the testbench's plusargs. ``reset`` = (set, n): rst is pulsed once ``n`` beats of that
    set were accepted (and its gate's frames have left; the gate must end a frame)."""
    width = design.files.parsed["w_axis_tdata_width"]
    digits = max(1, -(-width // 4))
    lines = []
    for beats, gate in weight_sets:
        lines += [f"{b:0{digits}x} {int(n == len(beats) - 1)} {int(gate):x}\n" for n, b in enumerate(beats)]
    (tmp / "w.hex").write_text("".join(lines))
    table = pause_table(weight_pause, "none", seed + 1, PAT_DEPTH)
    (tmp / "wpat.hex").write_text("".join(f"{int(a)}\n" for a, _ in table))
    args = [f"+w={tmp / 'w.hex'}", f"+wpat={tmp / 'wpat.hex'}", f"+n_w={len(lines)}"]
    if reset is not None:
        index, n = reset
        gate = int(weight_sets[index][1])
        ends = list(np.cumsum(lengths))
        if gate not in [0, *ends] or not 1 <= n < len(weight_sets[index][0]):
            raise ValueError(f"weight_reset {reset}: the set's gate must end a frame and 1 <= n < its beats")
        frames_before = [0, *ends].index(gate)
        args += [f"+w_rst_beat={sum(len(b) for b, _ in weight_sets[:index]) + n}", f"+w_rst_in={gate}",
                 f"+w_rst_out={int(sum(out_lengths[:frames_before]))}"]
    return args


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _parse(path: Path):
    ins, outs, ws, end = [], [], [], None
    text = path.read_text() if path.is_file() else ""
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "I":
            ins.append(int(parts[1]))
        elif parts[0] == "O":
            outs.append((int(parts[1]), parts[2] == "1", int(parts[3], 16)))
        elif parts[0] == "W":
            ws.append(int(parts[1]))
        elif parts[0] == "Z":
            continue  # the reset of a weight_reset run
        else:
            end = (parts[0], int(parts[1]))
    return ins, outs, ws, end


_ENDINGS = {"T": "no end within the cycle limit of {limit} cycles: the design hangs (stopped at cycle {cycle})",
            "H": "AXI4-Stream hold rule broken on m_axis at cycle {cycle}: tvalid dropped or tdata/tlast changed "
                 "while tvalid was high and tready low",
            "X": "X/Z at cycle {cycle} on s_axis_tready/m_axis_tvalid, or on m_axis_tdata/tlast while tvalid",
            "R": "the testbench could not read input beat at cycle {cycle} (its input file is short)"}


def run(design: GeneratedDesign, simulator: str, lengths: list[int], inputs: np.ndarray, *, seed: int,
        source_pause: str, sink_pause: str, waves: Path | None, isolate_frames: bool, verbose: bool,
        weight_sets=None, weight_pause: str = "none", weight_reset=None) -> dict:
    """Run the compiled testbench; the keys :func:`tconv.sim.runner.simulate` reads (as tb_layer writes them),
    and ``sim_seconds`` / ``sim_cpu_seconds``: the simulator process's wall and CPU time, start to
    exit (the build excluded).

    ``weight_sets`` (runtime-weights designs): ``[(beats, gate)]``, each set's beats sent on
    w_axis once ``gate`` input beats were accepted, with ``weight_pause`` stalls on its
    tvalid. Each frame is then checked against the model with the set the contract's rule
    gives (`tconv.hw.weight_stream.weight_switch`), reported as ``weight_sets_used``
    (-1: the generation's weights). ``weight_reset`` = (set, n): rst is pulsed once ``n``
    beats of that set were accepted (after the frames before its gate have left, before
    the next frame starts); that set is then dropped, the active one kept."""
    build_dir = _build(design, simulator, waves is not None, verbose)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    frames = [inputs[starts[i]:starts[i + 1]] for i in range(len(lengths))]
    expected = [design.expected_frame(f) for f in frames]
    out_lengths = [w.shape[0] for w in expected]
    limit = cycle_limit(design, lengths)
    with tempfile.TemporaryDirectory(prefix="tconv_sim_") as tmp:
        tmp = Path(tmp)
        _write_job(tmp, design, frames, expected, lengths, source_pause, sink_pause, seed, isolate_frames)
        args = [f"+in={tmp / 'in.hex'}", f"+out={tmp / 'out.txt'}", f"+pat={tmp / 'pat.hex'}",
                f"+n_in={sum(lengths)}", f"+n_out={sum(out_lengths)}", f"+limit={limit}"]
        if weight_sets:
            args += _write_weight_job(tmp, design, weight_sets, weight_pause, seed, weight_reset, lengths,
                                      out_lengths)
        if waves is not None:
            args.append(f"+waves={waves}")
        if simulator == "icarus":
            cmd = ["vvp", "-n", str(build_dir / "sim.vvp"), *(["-fst"] if waves is not None else []), *args]
        else:
            cmd = [str(build_dir / "obj_dir" / "Vtconv_tb"), *args]
        log = tmp / "sim.log"
        env = {**os.environ, **simulator_env(simulator)}
        with open(log, "w") as fh:
            started, cpu = time.perf_counter(), _children_cpu()
            _run_simulator(cmd, fh, tmp, env)
            sim_seconds, sim_cpu_seconds = time.perf_counter() - started, _children_cpu() - cpu
        sim_log = log.read_text(errors="replace")
        ins, outs, w_cycles, end = _parse(tmp / "out.txt")
    run_log = build_dir / f"run-{os.getpid()}.log"
    run_log.write_text(sim_log)
    if verbose:
        print(sim_log)

    used = None
    if design.files.parsed["runtime_weights"]:
        used, expected = expected_with_sets(design, frames, expected, lengths, ins, w_cycles, weight_sets or [],
                                             None if weight_reset is None else weight_reset[0])
    mismatches = []
    if end is None:
        mismatches.append({"problem": f"the testbench stopped without a verdict (log: {run_log})"})
    elif end[0] != "E":
        mismatches.append({"problem": _ENDINGS[end[0]].format(limit=limit, cycle=end[1])})
    # Output frames end at tlast, as the cocotb sink receives them.
    pos = 0
    for index, want in enumerate(expected):
        if want.shape[0] == 0:
            continue
        stop = pos
        while stop < len(outs) and not outs[stop][1]:
            stop += 1
        if stop >= len(outs):
            if not any("problem" in m and "frame" not in m for m in mismatches):
                mismatches.append({"frame": index, "problem": "frame never finished (no tlast)"})
            break
        got = design.unpack_outputs([w for _, _, w in outs[pos:stop + 1]])
        pos = stop + 1
        mismatch = frame_mismatch(index, got, want)
        if mismatch:
            mismatches.append(mismatch)
            if "problem" in mismatch:
                break
    extra = max(0, len(outs) - sum(out_lengths))
    if extra and not mismatches:
        mismatches.append({"problem": f"{extra} output beat(s) after the last expected one"})
    if len(ins) != sum(lengths) and not mismatches:
        mismatches.append({"problem": f"{len(ins)} of {sum(lengths)} input beats accepted"})
    cycles, in_pos, out_pos = [], 0, 0
    for length, out_len in zip(lengths, out_lengths):
        first_in = ins[in_pos] if in_pos < len(ins) else None
        in_pos += length
        out_pos += out_len
        cycles.append(None if out_len == 0 or first_in is None or out_pos > len(outs)
                      else outs[out_pos - 1][0] - first_in + 1)
    train = outs[-1][0] - ins[0] + 1 if ins and outs else None  # first input to last output handshake
    return {"frames": len(lengths), "beats_in": len(ins), "beats_out": len(outs), "weight_sets_used": used,
            "train_cycles": train,
            "expected_beats_out": int(sum(out_lengths)), "extra_beats": extra, "mismatches": mismatches,
            "cycles": cycles, "total_cycles": end[1] if end else 0, "log": run_log, "passed": True,
            "sim_seconds": sim_seconds, "sim_cpu_seconds": sim_cpu_seconds}
