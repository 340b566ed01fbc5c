"""Fuzzing the command line (hypothesis): bad files must give one clear line and exit status 2.

``tconv analyze``, ``tconv generate`` and ``tconv simulate`` get malformed JSON,
wrong types, missing and unknown fields, huge values, NaN/inf weights, random
bytes as config, weights, data, manifest and input files. Every run must end
either in success (the input happened to be valid) or in exit status 2 with one
line ``tconv: error: ...`` on stderr -- never an exception escaping ``main``
(a traceback), and never a half-written output folder. ``simulate`` never
reaches the simulator here: the runner is replaced by a stub that records that
the input was accepted.

Examples are derandomized in ``make test``; ``pytest --long`` runs 20x more,
random each time. Bugs the fuzzing found are kept as regression tests at the end.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import shutil
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from conftest import long_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tconv.flow.cli import main

LONG = long_run()

CONFIG = {
    "layer": {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same", "output_padding": None,
              "dilation_rate": 1, "data_format": "channels_last", "activation": "relu", "use_bias": True,
              "in_channels": 3},
    "formats": {"input": "fixed<8,3,RND,SAT>", "weight": "fixed<8,1,RND,SAT>", "bias": "fixed<12,4>",
                "output": "fixed<12,5,RND,SAT>"},
    "array": {"pe_count": 4},
}
SHAPES = {"kernel": (3, 2, 3), "bias": (2,)}


def fuzz(examples: int):
    return settings(max_examples=examples * (20 if LONG else 1), deadline=None, derandomize=not LONG,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])


class _WouldSimulate(Exception):
    """Raised by the stub runner: simulate accepted its input (nothing is simulated here)."""


def _stub_simulate(*args, **kwargs):
    raise _WouldSimulate


def run_cli(*argv) -> tuple[object, str, str]:
    """``main`` in this process; an exception escaping it fails the test with its traceback."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            mock.patch("tconv.sim.runner.simulate", _stub_simulate):
        try:
            rc = main([str(a) for a in argv])
        except _WouldSimulate:
            rc = "simulate"
    return rc, out.getvalue(), err.getvalue()


def assert_clean_error(rc, err: str, *names) -> None:
    assert rc == 2, (rc, err)
    assert err.startswith("tconv: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for name in names:
        assert name in err, (name, err)


def assert_nothing_written(root: Path, *names) -> None:
    for name in names:
        assert not (root / name).exists(), f"{name} was written although the command failed"
    leftovers = [p.name for p in root.iterdir() if p.name.startswith(".")]
    assert leftovers == [], f"temporary files left behind: {leftovers}"


# ------------------------------------------------------------------ strategies
json_scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.integers(-3, 70)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
                | st.sampled_from(["fixed<8,3>", "fixed<20,4>", "ufixed<1,0>", "fixed<62,900,RND,SAT>", "same",
                                   "VALID", "relu", "tanh", "channels_first", "fixed<0,0>", "[3]", "1e309"]))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
KEY_PATHS = [("layer", k) for k in CONFIG["layer"]] + [("formats", k) for k in CONFIG["formats"]] + [
    ("array", "pe_count"), ("layer",), ("formats",), ("array",)]


@st.composite
def broken_configs(draw):
    cfg = copy.deepcopy(CONFIG)
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["set", "set", "delete", "unknown", "list"]))
        path = draw(st.sampled_from(KEY_PATHS))
        node = cfg
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        if action == "delete":
            node.pop(path[-1], None)
        elif action == "unknown":
            node[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
        elif action == "list":
            node[path[-1]] = [node.get(path[-1])]   # Keras' 1-tuples, and nonsense lists
        else:
            node[path[-1]] = draw(json_values)
    return cfg


@st.composite
def weight_arrays(draw):
    """Arrays for a weights .npz: right or wrong shapes, dtypes, NaN/inf, missing or extra keys."""
    arrays = {}
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    for key in ("kernel", "bias"):
        if draw(st.integers(0, 9)) == 0:
            continue  # missing
        shape = SHAPES[key] if draw(st.booleans()) else tuple(draw(st.lists(st.integers(0, 4), max_size=4)))
        dtype = draw(st.sampled_from(["float64", "float32", "float16", "int8", "int64", "uint8", "bool",
                                      "complex64", "U3", "datetime64[s]"]))
        values = rng.normal(0, draw(st.sampled_from([0.1, 1.0, 1e30, 1e300])), shape)
        if dtype.startswith("U"):
            arr = values.astype(str).astype(dtype)
        else:
            with np.errstate(all="ignore"):
                arr = values.astype(np.int64).astype(dtype) if dtype.startswith("datetime") else values.astype(dtype)
        if arr.dtype.kind == "f" and arr.size and draw(st.booleans()):
            arr.flat[draw(st.integers(0, arr.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        arrays[key] = arr
    if draw(st.booleans()):
        arrays[draw(st.sampled_from(["extra", "kernel_codes", "weights"]))] = np.zeros(2)
    return arrays


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzzcli")
    (root / "config.json").write_text(json.dumps(CONFIG))
    rng = np.random.default_rng(0)
    np.savez(root / "w.npz", kernel=rng.uniform(-1, 1, SHAPES["kernel"]), bias=rng.uniform(-2, 2, SHAPES["bias"]))
    rc, _, err = run_cli("generate", root / "config.json", "--weights", root / "w.npz", "-o", root / "design", "-q")
    assert rc == 0, err
    return root


@pytest.fixture
def work(tmp_path):
    return tmp_path


def _fresh(work: Path) -> Path:
    """An empty subfolder of ``work`` for one example."""
    folder = work / "case"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return folder


# ------------------------------------------------------------------ analyze / generate: CONFIG.json
@fuzz(25)
@given(cfg=broken_configs())
def test_config_fuzz(base, work, cfg):
    case = _fresh(work)
    (case / "c.json").write_text(json.dumps(cfg))
    rc, _, err = run_cli("analyze", case / "c.json", "--weights", base / "w.npz", "-o", case / "report",
                         "--no-plots", "--batch", "1", "--length", "3", "-q")
    if rc != 0:
        assert_clean_error(rc, err)
        assert_nothing_written(case, "report")
    rc, _, err = run_cli("generate", case / "c.json", "--weights", base / "w.npz", "-o", case / "out", "-q")
    if rc == 0:
        manifest = json.loads((case / "out" / "manifest.json").read_text())
        assert all((case / "out" / v).is_file() for v in manifest["verilog"])
    else:
        assert_clean_error(rc, err)
        assert_nothing_written(case, "out")


@fuzz(30)
@given(raw=st.binary(max_size=300) | st.text(max_size=200).map(str.encode)
       | st.sampled_from([b"", b"{", b"[]", b"null", b"1e999", b'{"layer": NaN}', b"\xef\xbb\xbf{}",
                          b'{"layer":' * 3000, b"\x00" * 64, json.dumps(CONFIG)[:-7].encode()]))
def test_config_file_bytes(base, work, raw):
    case = _fresh(work)
    (case / "c.json").write_bytes(raw)
    for command in ("analyze", "generate"):
        rc, _, err = run_cli(command, case / "c.json", "--weights", base / "w.npz", "-o", case / "out", "-q")
        assert_clean_error(rc, err, "c.json")
        assert_nothing_written(case, "out")


# ------------------------------------------------------------------ weights and data files
@fuzz(40)
@given(arrays=weight_arrays())
def test_weights_fuzz(base, work, arrays):
    case = _fresh(work)
    np.savez(case / "w.npz", **arrays)
    ok_shapes = all(k in arrays and arrays[k].shape == SHAPES[k] and arrays[k].dtype.kind in "biuf"
                    for k in SHAPES)
    finite = ok_shapes and all(np.isfinite(arrays[k].astype(np.float64)).all() for k in SHAPES)
    rc, _, err = run_cli("analyze", base / "config.json", "--weights", case / "w.npz", "-q", "--batch", "1",
                         "--length", "3")
    if finite:
        assert rc == 0, err
    else:
        assert_clean_error(rc, err, "w.npz")
    if not finite:
        rc, _, err = run_cli("generate", base / "config.json", "--weights", case / "w.npz", "-o", case / "out")
        assert_clean_error(rc, err, "w.npz")
        assert_nothing_written(case, "out")


@fuzz(30)
@given(raw=st.binary(max_size=400), keep_header=st.booleans())
def test_random_bytes_as_npz_and_npy(base, work, raw, keep_header):
    case = _fresh(work)
    if keep_header:  # a zip or .npy header followed by garbage
        raw = (b"PK\x03\x04" if len(raw) % 2 else b"\x93NUMPY\x01\x00") + raw
    (case / "w.npz").write_bytes(raw)
    (case / "x.npy").write_bytes(raw)
    rc, _, err = run_cli("analyze", base / "config.json", "--weights", case / "w.npz", "-q")
    assert_clean_error(rc, err, "w.npz")
    rc, _, err = run_cli("analyze", base / "config.json", "--weights", base / "w.npz", "--data", case / "x.npy", "-q")
    assert_clean_error(rc, err, "x.npy")


@fuzz(30)
@given(shape=st.lists(st.integers(0, 5), max_size=4),
       dtype=st.sampled_from(["float64", "float32", "int16", "bool", "complex128", "U2"]),
       poison=st.sampled_from([None, np.nan, np.inf]))
def test_data_fuzz(base, work, shape, dtype, poison):
    case = _fresh(work)
    x = np.ones(shape).astype(dtype)
    if poison is not None and x.dtype.kind == "f" and x.size:
        x.flat[0] = poison
    np.save(case / "x.npy", x)
    rc, out, err = run_cli("analyze", base / "config.json", "--weights", base / "w.npz", "--data", case / "x.npy",
                           "-q", "--json")
    good = (x.dtype.kind in "biuf" and x.ndim in (2, 3) and x.shape[-1] == 3 and x.shape[-2] >= 1
            and (x.ndim == 2 or x.shape[0] >= 1) and np.isfinite(x.astype(np.float64)).all())
    if good:
        assert rc == 0, err
    elif rc != 0:
        assert_clean_error(rc, err)


# ------------------------------------------------------------------ simulate: a broken design folder
MANIFEST_PATHS = [("top",), ("verilog",), ("layer",), ("formats",), ("interface",), ("array",), ("performance",),
                  ("weights",), ("test_vectors",), ("layer", "filters"), ("layer", "strides"), ("layer", "padding"),
                  ("formats", "input"), ("formats", "weight"), ("formats", "output"),
                  ("performance", "cycles_per_frame"), ("performance", "cycles_per_frame", "per_step"),
                  ("performance", "cycles_per_frame", "short_frames"), ("array", "cycles_per_step"),
                  ("verilator_waivers",), ("files",), ("array", "multiplier_cell", "ecp5_verilog"), ("verilog_ecp5",),
                  ("interface", "s_axis_tdata_width")]


@fuzz(40)
@given(edits=st.lists(st.tuples(st.sampled_from(MANIFEST_PATHS), st.booleans(), json_values), min_size=1,
                      max_size=3),
       damage=st.sampled_from([None, "weights", "test_vectors", "verilog"]), raw=st.binary(max_size=64))
def test_simulate_broken_design_folder(base, work, edits, damage, raw):
    case = _fresh(work)
    folder = case / "design"
    shutil.copytree(base / "design", folder, ignore=shutil.ignore_patterns("sim_build"))
    manifest = json.loads((folder / "manifest.json").read_text())
    for path, delete, value in edits:
        node = manifest
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            if delete:
                node.pop(path[-1], None)
            else:
                node[path[-1]] = value
    (folder / "manifest.json").write_text(json.dumps(manifest))
    if damage == "verilog":
        (folder / "tconv_conv1d_transpose.v").write_bytes(raw)
    elif damage:
        (folder / f"{damage}.npz").write_bytes(raw)
    rc, _, err = run_cli("simulate", folder, "-q")
    if rc != "simulate":     # a damaged Verilog file is only found by the simulator's build
        assert_clean_error(rc, err)


@fuzz(40)
@given(shape=st.lists(st.integers(0, 4), max_size=4),
       dtype=st.sampled_from(["int64", "int8", "uint64", "float64", "float32", "bool", "complex64", "U1"]),
       scale=st.sampled_from([1, 100, 1e6, 1e300]), poison=st.sampled_from([None, np.nan, -np.inf]),
       as_npz=st.booleans())
def test_simulate_input_fuzz(base, work, shape, dtype, scale, poison, as_npz):
    case = _fresh(work)
    with np.errstate(all="ignore"):
        x = (np.random.default_rng(len(shape)).normal(0, scale, shape)).astype(dtype)
    if poison is not None and x.dtype.kind == "f" and x.size:
        x.flat[-1] = poison
    path = case / ("x.npz" if as_npz else "x.npy")
    (np.savez if as_npz else np.save)(path, x)
    rc, _, err = run_cli("simulate", base / "design", "--input", path, "-q")
    if rc != "simulate":
        assert_clean_error(rc, err)


@pytest.mark.parametrize("argv,message", [
    (["--frames", str(10**12), "--length", "1"], "at most"),
    (["--frames", "1", "--length", str(10**12)], "at most"),
    (["--input", "missing.npy"], "missing.npy: no such file"),
])
def test_simulate_bad_arguments(base, argv, message):
    rc, _, err = run_cli("simulate", base / "design", "-q", *argv)
    assert_clean_error(rc, err, message)


# ------------------------------------------------------------------ bugs the fuzzing found (fixed)
class _Elaborating(Exception):
    pass


@pytest.mark.parametrize("pe_count", [2**17, 2**40])
def test_huge_pe_count_is_refused_before_elaborating(base, tmp_path, pe_count):
    """Was: no upper bound, and 2**40 PEs planned for ever in Conv1DTransposeCore.elaborate."""
    cfg = copy.deepcopy(CONFIG)
    cfg["array"]["pe_count"] = pe_count
    (tmp_path / "c.json").write_text(json.dumps(cfg))

    def elaborate(*args, **kwargs):
        raise _Elaborating(f"elaboration reached with pe_count {pe_count}")

    with mock.patch("tconv.hw.layer.Conv1DTransposeCore.elaborate", elaborate):
        rc, _, err = run_cli("generate", tmp_path / "c.json", "--weights", base / "w.npz", "-o", tmp_path / "out")
    assert_clean_error(rc, err, "pe_count", "65536")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("top", ["module", "wire", "logic", "3x", "a-b"])
def test_bad_top_is_refused(base, tmp_path, top):
    """Was: --top accepted Verilog keywords and wrote `module module(...)`, which no tool can read."""
    rc, _, err = run_cli("generate", base / "config.json", "--weights", base / "w.npz", "-o", tmp_path / "out",
                         "--top", top, "-q")
    assert_clean_error(rc, err, "--top")
    assert not (tmp_path / "out").exists()


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fault", ["config", "nan-weights", "top", "pe_count"])
def test_failed_generate_leaves_an_existing_design_untouched(base, tmp_path, fault):
    """-o naming an existing design folder: a failing run must leave every file of it as it was."""
    out = tmp_path / "design"
    shutil.copytree(base / "design", out, ignore=shutil.ignore_patterns("sim_build"))
    before = _snapshot(out)
    cfg, weights, extra = copy.deepcopy(CONFIG), base / "w.npz", []
    if fault == "config":
        cfg["layer"]["strides"] = "two"
    elif fault == "pe_count":
        cfg["array"]["pe_count"] = 2**20
    elif fault == "top":
        extra = ["--top", "endmodule"]
    else:
        weights = tmp_path / "nan.npz"
        np.savez(weights, kernel=np.full(SHAPES["kernel"], np.nan), bias=np.zeros(SHAPES["bias"]))
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    rc, _, err = run_cli("generate", tmp_path / "c.json", "--weights", weights, "-o", out, "-q", *extra)
    assert_clean_error(rc, err)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["design", "c.json"]
                                                                 + (["nan.npz"] if fault == "nan-weights" else []))
