"""The compiled testbench engine against the cocotb one, and the faults it must catch."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import require_simulator
from test_sim import _make_design

from tconv.sim.design import GeneratedDesign
from tconv.sim.runner import random_frames, simulate

SIMULATORS = ["icarus", "verilator"]
# (design of test_sim.CONFIGS, lengths, source pause, sink pause)
CASES = [("s2-k3-valid-relu", [1, 4, 2], "random", "random"),
         ("d2-k3-same-relu6", [3, 1], "none", "toggle"),
         ("channels-first-unsigned-in", [1, 5], "bursty", "long"),
         ("s3-k5-same-odd", [1], "none", "none")]


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_engines_agree(tmp_path, case, simulator):
    require_simulator(simulator)
    name, lengths, src, snk = case
    folder = _make_design(tmp_path, name)
    design = GeneratedDesign.load(folder)
    inputs = random_frames(design, lengths, seed=5)
    for isolate, (sp, kp) in ((True, ("none", "none")), (False, (src, snk))):
        runs = [simulate(folder, simulator, lengths=lengths, inputs=inputs, seed=4, source_pause=sp, sink_pause=kp,
                         isolate_frames=isolate, engine=engine) for engine in ("compiled", "cocotb")]
        compiled, cocotb = runs
        assert compiled.passed and cocotb.passed, (compiled.summary(), cocotb.summary())
        assert (compiled.beats_in, compiled.beats_out, compiled.expected_beats_out) == \
               (cocotb.beats_in, cocotb.beats_out, cocotb.expected_beats_out)
        if isolate:
            assert compiled.cycles == cocotb.cycles
            assert [c for c in compiled.cycles if c is not None] == \
                   [f for c, f in zip(compiled.cycles, compiled.formula_cycles) if c is not None]


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_compiled_engine_names_a_wrong_weight(tmp_path, simulator):
    require_simulator(simulator)
    folder = _make_design(tmp_path, "s2-k3-valid-relu", corrupt=True)
    res = simulate(folder, simulator, lengths=[4, 3], seed=2, engine="compiled")
    assert not res.passed
    first = res.mismatches[0]
    assert {"frame", "step", "filter", "expected", "got"} <= set(first), first
    assert first["filter"] == 0


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_compiled_engine_catches_a_hold_rule_violation(tmp_path, simulator):
    """A copy of the design whose m_axis_tdata has bit 0 flipped while stalled breaks AXI4-Stream."""
    require_simulator(simulator)
    folder = _make_design(tmp_path, "s2-k3-valid-relu")
    design = GeneratedDesign.load(folder)
    top_v = design.verilog[0]
    text = top_v.read_text()
    assert "  output [23:0] m_axis_tdata;\n" in text
    # Rename the real output and drive the port from it, bit 0 flipped while stalled.
    text = text.replace("  output [23:0] m_axis_tdata;\n", "  output [23:0] m_axis_tdata;\n  wire [23:0] real_tdata;\n"
                        "  assign m_axis_tdata = real_tdata ^ {23'd0, m_axis_tvalid & ~m_axis_tready};\n", 1)
    head, sep, body = text.partition("  assign m_axis_tdata = real_tdata")
    body = body.replace(".m_axis_tdata(m_axis_tdata)", ".m_axis_tdata(real_tdata)")
    body = body.replace("assign m_axis_tdata =", "assign real_tdata =")
    top_v.write_text(head + sep + body)
    res = simulate(folder, simulator, lengths=[4, 3], seed=2, sink_pause="random", engine="compiled")
    assert not res.passed
    assert any("hold rule" in m.get("problem", "") for m in res.mismatches), res.mismatches


def _lint(tmp_path, design, *, clock_from_main: bool, waves: bool, extra: str = "") -> str:
    """``verilator --lint-only -Wall`` of sim/tb_compiled.v with ``design``, as the engine builds it
    (its clock from sim/tb_compiled_main.cpp) or as Icarus runs it (its own ``always #5`` clock)."""
    from tconv.sim.compiled import testbench_text
    from tconv.sim.tools import simulator_env

    layer = design.layer
    text = testbench_text(design.top, layer.config.in_channels * layer.input_format.width,
                          layer.config.filters * layer.output_format.width, waves=waves)
    tb = tmp_path / "tconv_tb.v"   # the module's own name (DECLFILENAME), as in the build folder
    tb.write_text(text.replace("endmodule", f"{extra}endmodule", 1))
    cmd = ["verilator", "--lint-only", "-Wall", "--timescale", "1ns/1ps", "--top-module", "tconv_tb",
           *(["+define+TCONV_CLOCK_FROM_MAIN"] if clock_from_main else ["--timing"]),
           str(design.waivers), *map(str, design.verilog), str(tb)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **simulator_env("verilator")})
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("clock_from_main", [True, False], ids=["verilator-build", "icarus-clock"])
def test_testbench_passes_verilator_lint(tmp_path, clock_from_main):
    """The testbench is clean under -Wall; its only waivers (BLKSEQ, PROCASSINIT) are in the file with
    the reason. `--timescale` gives the design's modules, which have no `timescale, the testbench's."""
    require_simulator("verilator")
    design = GeneratedDesign.load(_make_design(tmp_path, "s3-k5-same-odd"))
    report = _lint(tmp_path, design, clock_from_main=clock_from_main, waves=not clock_from_main)
    assert "%Warning" not in report and "%Error" not in report, report
    # ... and the same lint reports a width mismatch put into the testbench.
    report = _lint(tmp_path, design, clock_from_main=clock_from_main, waves=False,
                   extra="  wire [3:0] lint_probe = cycle;\n")
    assert "%Warning-WIDTHTRUNC" in report and "lint_probe" in report, report


def test_verilator_waves(tmp_path):
    """--waves on Verilator: the clock's main() turns tracing on and advances time (10 ns a cycle)."""
    require_simulator("verilator")
    folder = _make_design(tmp_path, "s2-k3-valid-relu")
    wave = tmp_path / "w.vcd"
    res = simulate(folder, "verilator", lengths=[2, 3], seed=1, sink_pause="random", waves=wave)
    assert res.passed, res.summary()
    assert res.waves == wave.resolve()
    stamps = [int(line[1:]) for line in wave.read_text().splitlines() if line.startswith("#")]
    assert stamps == sorted(stamps) and stamps[-1] >= res.total_cycles * 10_000  # ps, timescale 1ns/1ps
