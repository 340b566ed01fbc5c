"""The compiled testbench engine against the cocotb one, and the faults it must catch."""

from __future__ import annotations

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
