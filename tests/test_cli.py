"""The ``tconv`` command line: output on good input, one clear line and exit 2 on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tconv.flow.cli import main

CONFIG = {
    "layer": {"filters": 4, "kernel_size": 5, "strides": 3, "padding": "same", "output_padding": None,
              "dilation_rate": 1, "data_format": "channels_last", "activation": "relu", "use_bias": True,
              "in_channels": 3},
    "formats": {"input": "fixed<8,3,RND,SAT>", "weight": "fixed<8,1,RND,SAT>", "bias": "fixed<16,6>",
                "output": "fixed<16,6,RND,SAT>"},
    "array": {"pe_count": 64},
}


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(CONFIG))
    weights = tmp_path / "w.npz"
    np.savez(weights, kernel=rng.normal(0, 0.2, (5, 4, 3)), bias=rng.normal(0, 0.3, 4))
    return tmp_path, cfg, weights


def test_analyze_json_and_report_file(files, capsys):
    tmp, cfg, weights = files
    data = tmp / "x.npy"
    np.save(data, np.random.default_rng(1).uniform(-3, 3, (2, 9, 3)))
    rc = main(["analyze", str(cfg), "--weights", str(weights), "--data", str(data), "--json",
               "-o", str(tmp / "rep")])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n_outputs"] == 2 * 27 * 4
    assert out["within_bound"] is True
    assert out["formats"]["accumulator"].startswith("fixed<")
    assert json.loads((tmp / "rep" / "report.json").read_text())["sqnr_db"] == out["sqnr_db"]


def test_analyze_text_with_sweep(files, capsys):
    _, cfg, weights = files
    assert main(["analyze", str(cfg), "--weights", str(weights), "--sweep", "6:8", "--vary", "weight", "-q"]) == 0
    out = capsys.readouterr().out
    assert "SQNR" in out and "fixed<6,1,RND,SAT>" in out and "fixed<8,1,RND,SAT>" in out


def _edit(cfg: Path, **changes) -> None:
    data = json.loads(json.dumps(CONFIG))
    for dotted, value in changes.items():
        node = data
        *path, last = dotted.split("__")
        for key in path:
            node = node[key]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    cfg.write_text(json.dumps(data))


@pytest.mark.parametrize("changes,message", [
    (dict(layer__strides=0), "layer: The `strides` argument must be a tuple of 1 integers"),
    (dict(layer__padding="full"), "The `padding` argument must be"),
    (dict(layer__in_channels=KeyError), "'in_channels' is required"),
    (dict(formats__input="fixed<8>"), "formats.input: cannot parse fixed-point format 'fixed<8>'"),
    (dict(formats__output="fixed<8,3,ROUND>"), "unknown quantization mode 'ROUND'"),
    (dict(formats__bias=KeyError), "formats: missing 'bias'"),
    (dict(formats__bias="fixed<16,2>"), "bias format fixed<16,2> has 14 fractional bits"),
    (dict(layer__activation="softmax"), "is not elementwise"),
    (dict(layer=[1, 2]), "'layer' must be a JSON object"),
    (dict(extra=1), "unknown key(s) ['extra']"),
])
def test_bad_config_is_one_line_exit_2(files, capsys, changes, message):
    tmp, cfg, weights = files
    _edit(cfg, **changes)
    rc = main(["analyze", str(cfg), "--weights", str(weights), "-o", str(tmp / "rep")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("tconv: error: ") and err.count("\n") == 1, err
    assert message in err
    assert not (tmp / "rep").exists()


@pytest.mark.parametrize("arrays,message", [
    (dict(kernel=np.zeros((5, 4, 2)), bias=np.zeros(4)), "kernel has shape (5, 4, 2), expected"),
    (dict(kernel=np.zeros((5, 4, 3))), "missing array 'bias'"),
    (dict(bias=np.zeros(4)), "missing array 'kernel'"),
    (dict(kernel=np.full((5, 4, 3), np.nan), bias=np.zeros(4)), "kernel holds 60 NaN/inf"),
    (dict(kernel=np.zeros((5, 4, 3)), bias=np.zeros(5)), "bias has shape (5,), expected (filters,) = (4,)"),
    (dict(kernel=np.array([["a"]]), bias=np.zeros(4)), "kernel must hold real numbers"),
])
def test_bad_weights(files, capsys, arrays, message):
    tmp, cfg, _ = files
    bad = tmp / "bad.npz"
    np.savez(bad, **arrays)
    assert main(["analyze", str(cfg), "--weights", str(bad)]) == 2
    assert message in capsys.readouterr().err


def test_missing_and_malformed_files(files, capsys):
    tmp, cfg, weights = files
    assert main(["analyze", str(tmp / "nope.json"), "--weights", str(weights)]) == 2
    assert "nope.json: no such file" in capsys.readouterr().err
    cfg.write_text("{not json")
    assert main(["analyze", str(cfg), "--weights", str(weights)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    (tmp / "w.txt").write_text("hello")
    cfg.write_text(json.dumps(CONFIG))
    assert main(["analyze", str(cfg), "--weights", str(tmp / "w.txt")]) == 2
    assert "not a readable .npz file" in capsys.readouterr().err


def test_bad_data(files, capsys):
    tmp, cfg, weights = files
    np.save(tmp / "x.npy", np.zeros((2, 9, 4)))
    assert main(["analyze", str(cfg), "--weights", str(weights), "--data", str(tmp / "x.npy")]) == 2
    assert "data has shape (2, 9, 4), expected (batch, length, in_channels) with in_channels=3" in \
        capsys.readouterr().err


def test_console_script_entry_point(files):
    """The installed ``tconv`` command (not just the function) runs and fails cleanly."""
    exe = shutil.which("tconv", path=str(Path(sys.executable).parent))
    assert exe, "the tconv console script is not installed next to this Python"
    _, cfg, weights = files
    ok = subprocess.run([exe, "analyze", str(cfg), "--weights", str(weights), "-q"], capture_output=True, text=True)
    assert ok.returncode == 0 and "SQNR" in ok.stdout
    bad = subprocess.run([exe, "analyze", str(cfg)], capture_output=True, text=True)
    assert bad.returncode == 2 and "--weights" in bad.stderr and "Traceback" not in bad.stderr


def test_closed_pipe_ends_quietly(files):
    """`tconv analyze ... | head -0`: no error line, no traceback when the reader has gone away."""
    tmp, cfg, weights = files
    proc = subprocess.Popen([sys.executable, "-m", "tconv.flow.cli", "analyze", str(cfg), "--weights", str(weights),
                             "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # gone before the command (still importing numpy) writes anything
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == "", err
