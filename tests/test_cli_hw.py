"""``tconv generate`` and ``tconv simulate`` from the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import TINY_CONFIG

from tconv.flow.cli import main
from tconv.sim.tools import SimulatorMissing, check_simulator


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "config.json").write_text(json.dumps(TINY_CONFIG))
    np.savez(tmp_path / "w.npz", kernel=rng.uniform(-1, 1, (3, 2, 3)), bias=rng.uniform(-2, 2, 2))
    return tmp_path


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_generate_writes_the_design_folder(files, capsys):
    rc, out, _ = _run(capsys, "generate", files / "config.json", "--weights", files / "w.npz",
                      "-o", files / "out", "--top", "my_layer", "-q")
    assert rc == 0, out
    names = sorted(p.name for p in (files / "out").iterdir())
    assert names == ["ecp5", "manifest.json", "my_layer.v", "my_layer.vlt", "test_vectors.npz", "weights.npz"]
    assert sorted(p.name for p in (files / "out" / "ecp5").iterdir()) == ["my_layer.v", "my_layer_mul.v"]
    manifest = json.loads((files / "out" / "manifest.json").read_text())
    assert manifest["top"] == "my_layer" and manifest["verilog"] == ["my_layer.v"]
    assert manifest["layer"]["strides"] == 2 and manifest["array"]["pe_count"] == 4
    assert manifest["interface"] == {**manifest["interface"], "s_axis_tdata_width": 24, "m_axis_tdata_width": 24}
    assert "module my_layer(" in (files / "out" / "my_layer.v").read_text()
    # Regenerating into the same folder replaces it.
    assert _run(capsys, "generate", files / "config.json", "--weights", files / "w.npz", "-o", files / "out",
                "-q")[0] == 0
    assert (files / "out" / "tconv_conv1d_transpose.v").is_file()
    assert not (files / "out" / "my_layer.v").exists()


@pytest.mark.parametrize("edit,message", [
    (lambda c: c["array"].update(pe_count=6), "array.pe_count must be a power of two"),
    (lambda c: c["array"].update(pes=4), "array: unknown key(s) ['pes']"),
    (lambda c: c["layer"].update(activation="softmax"), "'softmax' is not elementwise"),
    (lambda c: (c["layer"].update(activation="softsign"), c["formats"].update(output="fixed<24,2,RND,SAT>")),
     "needs a table of more than 65536 entries"),
    (lambda c: c["formats"].update(input="fixed<20,3>"), "formats.input fixed<20,3> is too wide"),
    (lambda c: c["formats"].update(output="fixed<6,-12>"), "formats.output fixed<6,-12> wraps away every bit"),
])
def test_generate_refuses_bad_configs_and_writes_nothing(files, capsys, edit, message):
    cfg = json.loads(json.dumps(TINY_CONFIG))
    edit(cfg)
    (files / "config.json").write_text(json.dumps(cfg))
    rc, _, err = _run(capsys, "generate", files / "config.json", "--weights", files / "w.npz", "-o", files / "out")
    assert rc == 2 and message in err and err.count("\n") == 1, err
    assert not (files / "out").exists()
    assert [p.name for p in files.iterdir() if p.name.startswith(".")] == []


def test_generate_refuses_a_foreign_nonempty_folder(files, capsys):
    (files / "out").mkdir()
    (files / "out" / "notes.txt").write_text("mine")
    rc, _, err = _run(capsys, "generate", files / "config.json", "--weights", files / "w.npz", "-o", files / "out")
    assert rc == 2 and "not empty and holds no tconv design" in err
    assert [p.name for p in (files / "out").iterdir()] == ["notes.txt"]


def test_generate_names_the_folder_it_cannot_create(files, capsys):
    """A file where a parent folder should be: one line naming the user's path, not a temporary one."""
    (files / "afile").write_text("x")
    rc, _, err = _run(capsys, "generate", files / "config.json", "--weights", files / "w.npz",
                      "-o", files / "afile" / "out")
    assert rc == 2 and err.count("\n") == 1, err
    assert f"cannot create the design folder {files / 'afile' / 'out'}" in err and "is a file, not a folder" in err
    assert (files / "afile").read_text() == "x"


def test_simulate_shipped_vectors_and_random_frames(files, capsys):
    try:
        check_simulator("icarus")
    except SimulatorMissing as err:
        pytest.skip(str(err))
    assert _run(capsys, "generate", files / "config.json", "--weights", files / "w.npz", "-o", files / "out",
                "-q")[0] == 0
    written = sorted(p.relative_to(files / "out") for p in (files / "out").rglob("*"))
    rc, out, _ = _run(capsys, "simulate", files / "out", "--simulator", "icarus", "-q")
    assert rc == 0 and "icarus: PASS - 3 frame(s)" in out and "MAC utilization" in out, out
    # Build products go to the cache, never into the design folder (no sim_build/ left there).
    assert sorted(p.relative_to(files / "out") for p in (files / "out").rglob("*")) == written
    rc, out, _ = _run(capsys, "simulate", files / "out", "--frames", "2", "--length", "3", "--sink-pause",
                      "random", "--isolate-frames", "--waves", "-q")
    assert rc == 0 and "2 frame(s), 6 input beats" in out and "waveform:" in out, out
    x = np.random.default_rng(1).uniform(-4, 4, (2, 5, 3))
    np.save(files / "x.npy", x)
    rc, out, _ = _run(capsys, "simulate", files / "out", "--input", files / "x.npy", "-q")
    assert rc == 0 and "10 input beats" in out


def test_simulate_errors(files, capsys):
    rc, _, err = _run(capsys, "simulate", files / "nothing-here")
    assert rc == 2 and "no manifest.json" in err


def test_generated_files_are_not_private(files, capsys):
    """The design folder gets ordinary permissions, not the 0700/0600 of temporary files."""
    assert _run(capsys, "generate", files / "config.json", "--weights", files / "w.npz", "-o", files / "out",
                "-q")[0] == 0
    import os
    mask = os.umask(0)
    os.umask(mask)
    assert (files / "out").stat().st_mode & 0o777 == 0o777 & ~mask
    for f in (files / "out").rglob("*"):
        assert f.stat().st_mode & 0o777 == (0o777 if f.is_dir() else 0o666) & ~mask, f
    assert (files / "out" / "ecp5").is_dir()
