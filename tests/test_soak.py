"""Constrained-random soak (tconv.sim.tb_soak) on Icarus and Verilator.

Short by default (a few hundred frames per simulator, one layer, inside
``make test``); ``pytest --long`` runs tens of thousands of frames on two layers with
40 mid-frame resets per port. Every frame is compared word for word with the
model; no beat may be lost or duplicated. Each run's counts (frames, beats in
and out, resets, stall cycles) are printed in pytest's summary ("soak counts").
"""

from __future__ import annotations

import functools
import json
import re
import shutil

import numpy as np
import pytest
from conftest import long_run, require_simulator

from tconv.hw.generate import generate
from tconv.model import LayerConfig, random_layer
from tconv.sim.design import GeneratedDesign
from tconv.sim.runner import simulate
from tconv.sim.tb_soak import soak_frames

LONG = long_run()
SIMULATORS = ["icarus", "verilator"]

CONFIGS = {
    # same padding, even kernel, output_padding 0: L=1 frames have L_out = 0 and emit nothing;
    # a 6-bit saturating output that all-min/all-max frames drive into both rails.
    "s2-k4-same-op0": (dict(filters=3, kernel_size=4, strides=2, padding="same", output_padding=0,
                            in_channels=3, activation="relu"),
                       dict(input="fixed<6,2,RND,SAT>", weight="fixed<6,1,RND_CONV,SAT>", bias="fixed<10,4>",
                            output="fixed<7,3,RND,SAT>"), 4),
    # odd stride, several filter groups, leaky_relu, wrapping output
    "s3-k5-same-leaky": (dict(filters=4, kernel_size=5, strides=3, padding="same", in_channels=4,
                              activation="leaky_relu"),
                         dict(input="fixed<8,3,RND,SAT>", weight="fixed<8,1,RND,SAT>", bias="fixed<12,4>",
                              output="fixed<9,4,RND_CONV,WRAP>"), 16),
}
SHORT = {"frames": {"icarus": 200, "verilator": 400}, "resets": 4, "configs": ["s2-k4-same-op0"]}
LONG_RUN = {"frames": {"icarus": 30000, "verilator": 100000}, "resets": 40, "configs": list(CONFIGS)}
RUN = LONG_RUN if LONG else SHORT


def _require(simulator: str) -> None:
    require_simulator(simulator)


def _generate(root, name: str):
    layer, fmts, pe = CONFIGS[name]
    cfg = LayerConfig(**layer)
    out = root / name
    generate(random_layer(cfg, fmts, seed=11, bias_range=(-3, 3)), out, pe_count=pe)
    return out


@pytest.fixture(scope="module")
def designs(tmp_path_factory):
    """``designs(name)``: each design generated once per module."""
    return functools.lru_cache(maxsize=None)(functools.partial(_generate, tmp_path_factory.mktemp("soak")))


#: What a soak run reports (from tb_soak's results).
COUNTS = ("frames_checked", "frames_empty_output", "frames_dropped_by_reset", "frames_cut_on_input",
          "frames_length_1", "beats_dropped_by_reset", "resets_mid_input", "resets_mid_output", "reset_cycles",
          "sink_stall_cycles", "input_wait_cycles", "source_idle_cycles", "longest_ready_low",
          "longest_input_wait", "kinds", "wall_seconds", "cycles_per_second")


def soak_counts(res, name) -> dict:
    soak = res.extra.get("soak", {})
    return {"layer": name, "simulator": res.simulator, "frames": res.frames, "beats_in": res.beats_in,
            "beats_out": res.beats_out, "expected_beats_out": res.expected_beats_out, "cycles": res.total_cycles,
            **{k: soak[k] for k in COUNTS if k in soak}}


def _soak(folder, simulator, frames, resets, seed):
    design = GeneratedDesign.load(folder)
    lengths, inputs, kinds = soak_frames(design, frames, seed=seed)
    res = simulate(folder, simulator, lengths=lengths, inputs=inputs, seed=seed, test_module="tconv.sim.tb_soak",
                   job={"soak": {"resets": {"input": resets, "output": resets}, "kinds": kinds}})
    return res, lengths


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("name", RUN["configs"])
def test_soak(designs, name, simulator, record_property):
    _require(simulator)
    folder = designs(name)
    res, lengths = _soak(folder, simulator, RUN["frames"][simulator], RUN["resets"], seed=1)
    soak = res.extra.get("soak", {})
    record_property("soak_counts", soak_counts(res, name))
    print(f"\n{name} on {simulator}: {res.summary().splitlines()[0]}, {res.total_cycles} cycles")
    print(json.dumps({k: v for k, v in soak.items() if k != "phases"}))
    assert res.passed, res.summary()
    assert res.mismatches == []
    assert res.beats_out == res.expected_beats_out      # nothing lost, nothing duplicated
    n = len(lengths)
    assert soak["frames_checked"] + soak["frames_empty_output"] + soak["frames_dropped_by_reset"] == n
    assert soak["resets_mid_input"] == RUN["resets"] and soak["resets_mid_output"] == RUN["resets"]
    assert soak["frames_length_1"] > 0 and soak["kinds"]["min"] > 0 and soak["kinds"]["max"] > 0
    assert soak["longest_ready_low"] >= 200           # the sink held ready low for long stretches
    assert soak["sink_stall_cycles"] > 0 and soak["input_wait_cycles"] > 0 and soak["source_idle_cycles"] > 0
    # Resets drop only what is in flight: most frames come out whole (beats checked one by one).
    assert soak["frames_checked"] >= n // 2


def _only_first_reset(verilog: str) -> str:
    """The layer obeying rst only until it first goes low: later (mid-frame) resets are ignored."""
    body_start = verilog.index(");") + 2
    body = "\n".join(line if re.match(r"\s*(input|wire)\s+rst\s*;", line)
                     else re.sub(r"\brst\b", "(rst & ~mut_started)", line)
                     for line in verilog[body_start:].split("\n"))
    end = body.find("\nendmodule") + 1  # the layer's module (its multiplier cell follows)
    body = (body[:end] + "  reg mut_started = 1'b0;\n  always @(posedge clk) if (!rst) mut_started <= 1'b1;\n"
            + body[end:])
    return verilog[:body_start] + body


@pytest.mark.parametrize("fault", ["weight", "reset"])
def test_soak_catches_faults(designs, tmp_path, fault, record_property):
    """A weight one LSB off, or a layer that ignores mid-frame resets: the soak must fail and say where."""
    _require("icarus")
    folder = tmp_path / "broken"
    shutil.copytree(designs("s2-k4-same-op0"), folder, ignore=shutil.ignore_patterns("sim_build"))
    if fault == "weight":
        with np.load(folder / "weights.npz") as w:
            saved = dict(w)
        codes = saved["kernel_codes"].copy()
        codes[0, 0, 0] += 1 if codes[0, 0, 0] < 31 else -1   # the model's weight moves, the RTL's does not
        saved["kernel_codes"] = codes
        np.savez(folder / "weights.npz", **saved)
    else:
        verilog = folder / GeneratedDesign.load(folder).manifest["verilog"][0]
        verilog.write_text(_only_first_reset(verilog.read_text()))
    res, _ = _soak(folder, "icarus", 60, 2, seed=4)
    record_property("soak_counts", {**soak_counts(res, f"s2-k4-same-op0, {fault} fault"),
                                    "first_problem": res.mismatches[0] if res.mismatches else None})
    assert not res.passed
    first = res.mismatches[0]
    if fault == "weight":
        assert {"frame", "step", "expected", "got"} <= set(first), first
    else:
        # The frame cut by the reset goes on inside the layer: stale or wrong beats after the reset.
        assert first.get("problem", "").startswith(("output beat after a reset", "output beat with no frame")) \
            or "expected" in first, first
