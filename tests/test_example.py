"""``make demo``'s script end to end: train, save .keras, import, calibrate, analyze, generate, simulate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tconv.sim.tools import SimulatorMissing, check_simulator

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "keras_to_verilog.py"


@pytest.mark.keras
@pytest.mark.slow
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_keras_to_verilog_example_runs_end_to_end(tmp_path, activation):
    pytest.importorskip("keras", reason="the example needs Keras: pip install -e '.[keras]'")
    try:
        check_simulator("icarus")
    except SimulatorMissing as err:
        if os.environ.get("TCONV_REQUIRE_SIMULATORS") == "1":
            pytest.fail(f"simulator required by this run: {err}")
        pytest.skip(str(err))
    # One epoch: the flow, not the training, is under test.
    run = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path), "--epochs", "1",
                          "--activation", activation],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    for n in range(1, 6):
        assert f"=== [{n}/5]" in out
    assert "imported exactly: True" in out
    assert "icarus: PASS - 3 frame(s)" in out and out.rstrip().splitlines()[-1].startswith("done:")
    assert (tmp_path / "model.keras").is_file() and (tmp_path / "calib.npy").is_file()
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    manifest = json.loads((tmp_path / "hw" / "manifest.json").read_text())
    # The report, the generated design and the Python import agree on the calibrated formats.
    assert report["calibration"]["formats"] == {k: v for k, v in manifest["formats"].items() if k != "accumulator"}
    assert report["within_bound"] is True and report["sqnr_db"] > 30
    assert manifest["layer"]["activation"] == activation
    assert manifest["activation"]["kind"] == ("table" if activation == "tanh" else "exact")
    assert {p.name for p in (tmp_path / "report").glob("*.png")} == {"sqnr_vs_bits.png", "error_histogram.png",
                                                                     "trace.png"}


@pytest.mark.keras
@pytest.mark.slow
def test_keras_decoder_chain_example_runs_end_to_end(tmp_path):
    """examples/keras_decoder_chain.py: three upsampling layers from a saved .keras model as one
    design, bit-exact on Icarus and Verilator."""
    pytest.importorskip("keras", reason="the example needs Keras: pip install -e '.[keras]'")
    for sim in ("icarus", "verilator"):
        try:
            check_simulator(sim)
        except SimulatorMissing as err:
            if os.environ.get("TCONV_REQUIRE_SIMULATORS") == "1":
                pytest.fail(f"simulator required by this run: {err}")
            pytest.skip(str(err))
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "keras_decoder_chain.py"), "--out", str(tmp_path),
                          "--epochs", "1"], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    assert "icarus: PASS" in out and out.count("verilator: PASS") == 2
    assert out.rstrip().splitlines()[-1].startswith("done:")
    manifest = json.loads((tmp_path / "hw" / "manifest.json").read_text())
    assert [s["name"] for s in manifest["stages"]] == ["up1", "up2", "up3"]
    for a, b in zip(manifest["stages"], manifest["stages"][1:]):
        assert a["formats"]["output"] == b["formats"]["input"]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["source"]["skipped"] == ["drop"] and len(report["stages"]) == 3
