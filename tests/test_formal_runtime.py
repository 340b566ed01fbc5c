"""Formal checks (SymbiYosys, smtbmc z3) of the whole smallest runtime-weights design, and that
broken ones fail.

The harness (sim/formal_harness.v with ``RUNTIME_WEIGHTS``) drives ``w_axis_tvalid``,
``tlast`` and ``tdata`` freely (a source keeping the AXI4-Stream rules) beside s_axis,
m_axis back-pressure and ``rst``: the m_axis handshake rules (k-induction) and the beats
of every frame (BMC) hold with loads at any time, and the ``weights`` task checks the
contract's load rules at the layer's ports (docs/contract.md, "Runtime weights"). Depths
here are small (``make formal`` runs deeper ones).
"""

from __future__ import annotations

import pytest
from test_formal import _require_tools

from tconv.sim.formal import RUNTIME_TASKS, run_formal, smallest_design, write_job

DEPTHS = {"axis": 4, "count": 20, "progress": 44, "weights": 16}
WEIGHTS_DEPTH = {"weights": 16}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    _require_tools()
    return smallest_design(tmp_path_factory.mktemp("formal_rt") / "design", runtime_weights=True)


def test_runtime_smallest_configuration_is_proven(runtime, tmp_path):
    res = run_formal(runtime, tmp_path / "work", tasks=RUNTIME_TASKS, max_length=2, depths=DEPTHS, timeout=600)
    print(res.summary())
    assert [t.task for t in res.tasks] == ["axis", "count", "progress", "weights"]
    assert res.passed, res.summary()
    assert res.settings["runtime_weights"] and res.task("axis").mode == "prove"
    # The harness reaches w_axis: the job defines RUNTIME_WEIGHTS for every task, and the layer
    # has the bank probe the weights task reads.
    job = (tmp_path / "work" / "job.sby").read_text()
    assert job.count("-DRUNTIME_WEIGHTS") == 2 * len(RUNTIME_TASKS)
    assert "f_s_bank" in (tmp_path / "work" / "tconv_formal_dut.v").read_text()


def test_rom_design_has_no_weights_task(tmp_path):
    _require_tools()
    rom = smallest_design(tmp_path / "rom")
    with pytest.raises(ValueError, match="task 'weights' needs a runtime-weights design"):
        write_job(rom, tmp_path / "work", tasks=("weights",))
    job, _ = write_job(rom, tmp_path / "work", tasks=("count",))
    assert "RUNTIME_WEIGHTS" not in job.read_text()


# The mutations below edit the layer's formal Verilog (the loader's signals as Amaranth names them);
# each checks that its text is there, so a renamed signal fails the test instead of passing it.
STEP_BANK = r"\core.loader.first  ? \core.loader.active  : \core.loader.cur "
# w_ready's next value: the next cycle's inactive bank busy (select by the next active bank).
BUSY = r" ? \core.loader.busy_bank0_next  : \core.loader.busy_bank1_next ;"
BOTH = r"(\core.loader.busy_bank0_next  | \core.loader.busy_bank1_next )"
BOTH_BUSY = f" ? {BOTH} : {BOTH};"
LAST_BEAT = r"\core.loader.w_beat  == 2'h2"


def _replace(old: str, new: str):
    def mutate(verilog: str) -> str:
        assert old in verilog, f"mutation target {old!r} not found"
        return verilog.replace(old, new)
    return mutate


@pytest.mark.parametrize("new,caught", [
    # each step takes the bank active now, not its frame's: a set switches in the middle of a frame
    ((STEP_BANK, r"\core.loader.active "), "weights_bank_per_frame"),
    # the last beat recognised one beat early: a set one beat short becomes active (BMC reports the
    # first failure: a frame on the short set, or loading then held back for frames the rule says
    # use the newest complete set)
    ((LAST_BEAT, r"\core.loader.w_beat  == 2'h1"), ("weights_switch_rule", "weights_ready")),
    # loading waits for every frame in flight, not only for those of the older set
    ((BUSY, BOTH_BUSY), "weights_ready"),
], ids=["mid-frame", "short-set", "ready-low"])
def test_broken_load_path_fails(runtime, tmp_path, new, caught):
    res = run_formal(runtime, tmp_path / "work", tasks=("weights",), max_length=2, depths=WEIGHTS_DEPTH,
                     mutate=_replace(*new), timeout=600)
    task = res.task("weights")
    assert task.status == "FAIL", res.summary()
    assert any(name.startswith(caught) for name in task.failed), task.failed  # (str.startswith takes a tuple)


@pytest.mark.parametrize("name,prop", [
    ("false_ready", "always @(*) if (!rst) false_ready: assert(w_axis_tready);"),
    ("false_never_switch",
     "always @(*) if (!rst && f_frame_start && f_base_known) false_never_switch: assert(f_s_bank == f_base);"),
])
def test_weights_depth_reaches_loads(runtime, tmp_path, name, prop):
    """The weights task's depth reaches w_axis_tready low and a frame that uses a loaded set:
    claiming the opposite fails, so the load rules are checked on traces that load."""
    res = run_formal(runtime, tmp_path / "work", tasks=("weights",), max_length=2, depths=WEIGHTS_DEPTH,
                     extra="  " + prop, timeout=600)
    task = res.task("weights")
    assert task.status == "FAIL", res.summary()
    assert any(n.startswith(name) for n in task.failed), task.failed
