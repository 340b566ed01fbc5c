"""Layer chains in RTL: the generated chain on Icarus and Verilator, every output word against
the chain model (the composition of the stages' ``forward_int``), under random back-pressure,
frames of one step included; measured cycles against the chain's cycle model.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest import require_simulator
from test_chain import random_chain

from tconv.hw.chain import plan_chain
from tconv.hw.chain_generate import generate_chain
from tconv.sim.runner import simulate

SIMULATORS = ["icarus", "verilator"]

# name: (stage specs, PE budget, (source pause, sink pause))
CHAINS = {
    "two-s2relu-d2": ([dict(filters=6, kernel_size=4, strides=2, padding="same", activation="relu", in_channels=4),
                       dict(filters=3, kernel_size=3, dilation_rate=2, activation="linear")], 16, ("random", "random")),
    "three-s2-d2-s3op1-tanh": ([dict(filters=4, kernel_size=3, strides=2, activation="leaky_relu", in_channels=3),
                                dict(filters=5, kernel_size=3, dilation_rate=2, padding="same", activation="relu6"),
                                dict(filters=2, kernel_size=5, strides=3, padding="same", output_padding=1,
                                     activation="tanh")], 32, ("bursty", "random")),
    # channels_first throughout; a one-step frame has no output after the first stage
    "four-empty-frames-channels-first": ([dict(filters=3, kernel_size=2, strides=2, padding="same", output_padding=0,
                                               in_channels=2, data_format="channels_first"),
                                          dict(filters=4, kernel_size=3, activation="relu",
                                               data_format="channels_first"),
                                          dict(filters=3, kernel_size=5, strides=2, padding="same", use_bias=False,
                                               data_format="channels_first"),
                                          dict(filters=2, kernel_size=2, dilation_rate=3, activation="sigmoid",
                                               data_format="channels_first")],
                                         16, ("random", "toggle")),
}
LENGTHS = [1, 5, 2, 9, 1, 3]


@functools.cache
def _design(root, name):
    specs, budget, _ = CHAINS[name]
    out = root / name
    generate_chain(random_chain(specs, seed=len(name)), out, pe_count=budget)
    return out


@pytest.fixture(scope="module")
def designs(tmp_path_factory):
    root = tmp_path_factory.mktemp("chains")
    return lambda name: _design(root, name)


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("name", sorted(CHAINS))
def test_chain_rtl_matches_model_under_back_pressure(designs, name, simulator):
    require_simulator(simulator)
    source, sink = CHAINS[name][2]
    result = simulate(designs(name), simulator, lengths=LENGTHS, seed=7, source_pause=source, sink_pause=sink)
    assert result.passed, result.summary()
    assert result.beats_out == result.expected_beats_out > 0
    assert result.beats_in == sum(LENGTHS)


# Balanced: every stage at the bottleneck; unbalanced: power-of-two arrays leave stage 0 idle most of the time.
CYCLE_CHAINS = {
    "balanced": ([dict(filters=8, kernel_size=4, strides=2, padding="same", in_channels=8),
                  dict(filters=4, kernel_size=4, strides=2, padding="same")], 32),
    "unbalanced": ([dict(filters=3, kernel_size=3, in_channels=1),
                    dict(filters=8, kernel_size=8, strides=4, padding="same")], 8),
}


@pytest.mark.parametrize("name", sorted(CYCLE_CHAINS))
def test_chain_cycles_match_the_chain_model(tmp_path, name):
    """Isolated frames against `ChainPlan.frame_cycles` (the chain cycle model)."""
    require_simulator("verilator")
    specs, budget = CYCLE_CHAINS[name]
    chain = random_chain(specs, seed=3)
    plan = plan_chain(chain, budget)
    if name == "balanced":
        assert plan.steady_utilization() >= 0.9
    else:
        assert plan.steady_utilization() < 0.9 and plan.utilization_note()
    generate_chain(chain, tmp_path / name, pe_count=budget)
    lengths = [1, 2, 5, 24, 48]
    result = simulate(tmp_path / name, "verilator", lengths=lengths, isolate_frames=True)
    assert result.passed, result.summary()
    measured = dict(zip(lengths, result.cycles))
    model = {n: plan.frame_cycles(n) for n in lengths}
    # each further input step costs the bottleneck's cycles, exactly
    assert measured[48] - measured[24] == plan.cycles_per_chain_step * 24, (measured, plan.report(chain.names))
    # whole frames: exact with one bottleneck stage; within 2 cycles per stage when both are
    # the bottleneck (their mutual back-pressure is not modelled)
    slack = 0 if name == "unbalanced" else 2 * len(specs)
    assert all(abs(measured[n] - model[n]) <= slack for n in lengths), (measured, model)
    util = chain.config.useful_macs(48) / (plan.multipliers_built * measured[48])
    if name == "balanced":
        assert util > 0.85, util  # a 48-step frame's fill costs a few percent of the steady >= 90%


@pytest.mark.parametrize("simulator", ["icarus"])  # a check of the check: one simulator is enough
def test_chain_one_wrong_weight_is_caught(tmp_path, simulator):
    """A test that could not fail proves nothing: one stage-1 weight code off by one in the folder's
    model (the RTL keeps the true one) must show up as a mismatch."""
    require_simulator(simulator)
    specs, budget, _ = CHAINS["two-s2relu-d2"]
    out = tmp_path / "c"
    generate_chain(random_chain(specs, seed=1), out, pe_count=budget)
    with np.load(out / "weights.npz") as w:
        arrays = dict(w)
    k = arrays["kernel_codes_1"]
    k[0, 0, 0] += 1 if k[0, 0, 0] < 127 else -1
    np.savez(out / "weights.npz", **arrays)
    result = simulate(out, simulator, lengths=[4, 3], seed=1)
    assert not result.passed and result.mismatches


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_chain_verilog_lints_clean(designs, name):
    """`verilator --lint-only -Wall <top>.vlt <verilog>` on a chain folder reports nothing (the
    waiver file covers every stage's multiplier cell)."""
    import json
    import os
    import subprocess

    from tconv.sim.tools import simulator_env

    require_simulator("verilator")
    out = designs(name)
    manifest = json.loads((out / "manifest.json").read_text())
    run = subprocess.run(["verilator", "--lint-only", "-Wall", manifest["verilator_waivers"], *manifest["verilog"]],
                         cwd=out, env={**os.environ, **simulator_env("verilator")}, capture_output=True, text=True)
    assert run.returncode == 0 and "%Warning" not in run.stderr and "%Error" not in run.stderr, run.stderr[-3000:]


def test_chain_on_the_cocotb_engine(designs):
    """The cocotb testbench (sim/tb_layer.py) takes a chain folder too."""
    require_simulator("icarus")
    result = simulate(designs("two-s2relu-d2"), "icarus", lengths=[3, 1, 4], seed=2, sink_pause="random",
                      engine="cocotb")
    assert result.passed, result.summary()
    assert result.beats_out == result.expected_beats_out > 0
