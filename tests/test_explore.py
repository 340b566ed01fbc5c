"""``tconv explore``: a grid of widths and PE counts on Dask, the cache, the front, the pick, bad input.

The sweeps run on the tiny layer of conftest (3 -> 2 channels, stride 2; the Keras test on
a layer of that size), cheap points (the model and the schedule) except the one
``--synth`` point, marked slow.
Expected values come from tconv's own model and schedule, computed here
independently of the sweep (formats -> layer -> analyze; LayerConfig -> Schedule).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_CONFIG

from tconv.flow.cli import main
from tconv.hw.schedule import Schedule
from tconv.model import Conv1DTransposeQ, LayerConfig, analyze

BIN = Path(sys.executable).parent
WIDTHS, PES = [4, 6, 8], [4, 16]


@pytest.fixture
def tiny(tmp_path):
    """CONFIG.json, weights and data of the tiny layer: ``(config, weights, data)`` paths."""
    rng = np.random.default_rng(0)
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps(TINY_CONFIG))
    weights = tmp_path / "w.npz"
    np.savez(weights, kernel=rng.normal(0, 0.5, (3, 2, 3)), bias=rng.normal(0, 0.2, 2))
    data = tmp_path / "x.npy"
    np.save(data, rng.normal(0, 1, (4, 16, 3)))
    return cfg, weights, data


def _args(tiny, out, *extra):
    cfg, weights, data = tiny
    widths = [] if {"--width-input", "--width-weight"} & set(extra) else ["--widths", ",".join(map(str, WIDTHS))]
    return ["explore", str(cfg), "--weights", str(weights), "--data", str(data), *widths,
            "--pe-count", ",".join(map(str, PES)), "-o", str(out), *extra]


def _rows(out: Path) -> list[dict]:
    return json.loads((out / "results.json").read_text())


def _summary(stdout: str) -> tuple[int, int, int]:
    """(points, computed, cached) from the first line tconv explore prints."""
    m = re.search(r"explore: (\d+) point\(s\), (\d+) computed .*?, (\d+) from ", stdout)
    assert m, stdout
    return tuple(int(v) for v in m.groups())


def _dominates(a, b, keys):
    va = [s * a[k] for k, s in keys]
    vb = [s * b[k] for k, s in keys]
    return all(x >= y for x, y in zip(va, vb)) and any(x > y for x, y in zip(va, vb))


def _check_rows(rows, tiny):
    """Every row against the model and the schedule, computed here from the row's formats."""
    cfg_path, weights, data = tiny
    w = np.load(weights)
    x = np.load(data)
    config = LayerConfig.from_dict(TINY_CONFIG["layer"])
    assert sorted((r["width_input"], r["width_weight"], r["pe_count"]) for r in rows) == \
        sorted((a, a, p) for a in WIDTHS for p in PES)
    for r in rows:
        assert "error" not in r, r
        f = r["formats"]
        q = Conv1DTransposeQ(config, w["kernel"], w["bias"], input_format=f["input"], weight_format=f["weight"],
                             bias_format=f["bias"], output_format=f["output"])
        assert q.input_format.width == r["width_input"] and q.weight_format.width == r["width_weight"]
        assert q.output_format.width == 2 * r["width"] and q.bias_format.width <= 2 * r["width"]
        rep = analyze(q, x)
        assert r["sqnr_db"] == pytest.approx(rep.sqnr_db) and r["max_abs_error"] == pytest.approx(rep.max_abs_error)
        sch = Schedule.plan(config, r["pe_count"])
        cycles = sch.frame_cycles(x.shape[1])
        assert (r["cycles_per_step"], r["frame_cycles"]) == (sch.cycles_per_step, cycles)
        assert r["mac_utilization"] == pytest.approx(config.useful_macs(x.shape[1]) / (r["pe_count"] * cycles),
                                                     abs=1e-6)
        assert r["multipliers"] == sch.summary()["multipliers_built"]
    # The front by its definition: no other row at least as good everywhere and better somewhere.
    keys = (("sqnr_db", 1), ("multipliers", -1), ("throughput_steps_per_cycle", 1))
    for r in rows:
        assert r["pareto"] == (not any(_dominates(o, r, keys) for o in rows if o is not r))
    assert any(r["pareto"] for r in rows) and not all(r["pareto"] for r in rows)


# ------------------------------------------------------------------ LocalCluster, CLI end to end
def test_local_cluster_sweep_front_and_pick_that_generate_accepts(tiny, tmp_path, capsys):
    out = tmp_path / "ex"
    assert main(_args(tiny, out, "--workers", "2", "-q", "--pick")) == 0
    stdout = capsys.readouterr().out
    assert _summary(stdout) == (6, 6, 0)
    rows = _rows(out)
    _check_rows(rows, tiny)
    assert all(re.fullmatch(r"tcp://127\.0\.0\.1:\d+", r["worker"]) for r in rows)
    assert len(list((out / "points").glob("*.json"))) == 6
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The table lists the front, one line per point after its header.
    table = stdout.split("point(s)\n", 1)[1].split("\nbest")[0].splitlines()
    assert len(table) - 1 == sum(r["pareto"] for r in rows)

    # --pick: the best row (the fastest, then the cheapest, then the most accurate) as a CONFIG.json ...
    best = [r for r in rows if r["best"]]
    assert len(best) == 1 and best[0]["pareto"]
    best = best[0]
    top = max(r["throughput_steps_per_cycle"] for r in rows)
    assert best["throughput_steps_per_cycle"] == top
    assert best["multipliers"] == min(r["multipliers"] for r in rows if r["throughput_steps_per_cycle"] == top)
    picked = json.loads((out / "CONFIG.json").read_text())
    assert picked["array"] == {"pe_count": best["pe_count"]}
    # ... that tconv generate turns into the point's design.
    assert main(["generate", str(out / "CONFIG.json"), "--weights", str(tiny[1]), "-o", str(tmp_path / "hw"),
                 "-q"]) == 0
    manifest = json.loads((tmp_path / "hw" / "manifest.json").read_text())
    assert manifest["formats"] == best["formats"]
    assert manifest["array"]["pe_count"] == best["pe_count"]
    assert manifest["array"]["cycles_per_step"] == best["cycles_per_step"]

    # Constraints pick among the rows that meet them; a rerun takes every row from the cache.
    capsys.readouterr()
    floor = sorted(r["sqnr_db"] for r in rows)[len(rows) // 2]
    budget = min(PES)
    assert main(_args(tiny, out, "-q", "--min-sqnr", str(floor), "--max-dsp", str(budget), "--pick",
                      str(tmp_path / "pick.json"))) == 0
    stdout = capsys.readouterr().out
    assert _summary(stdout) == (6, 0, 6)
    rows = _rows(out)
    ok = [r for r in rows if r["sqnr_db"] >= floor and r["multipliers"] <= budget]
    assert [r["meets_constraints"] for r in rows] == [r in ok for r in rows]
    (best,) = [r for r in rows if r["best"]]
    assert best in ok and best["sqnr_db"] == max(r["sqnr_db"] for r in ok)  # same throughput and cost: SQNR
    assert json.loads((tmp_path / "pick.json").read_text())["formats"]["input"] == best["formats"]["input"]
    assert main(_args(tiny, out, "-q", "--min-sqnr", "1000", "--pick", str(tmp_path / "none.json"))) == 2
    assert "no point meets SQNR >= 1000 dB" in capsys.readouterr().err
    assert not (tmp_path / "none.json").exists()


def test_separate_input_and_weight_widths(tiny, tmp_path, capsys):
    cfg, weights, data = tiny
    out = tmp_path / "ex"
    assert main(["explore", str(cfg), "--weights", str(weights), "--data", str(data), "--width-input", "6,8",
                 "--width-weight", "4", "--pe-count", "4", "--workers", "1", "-o", str(out), "-q"]) == 0
    rows = _rows(out)
    assert [(r["width_input"], r["width_weight"]) for r in rows] == [(6, 4), (8, 4)]
    for r in rows:
        assert r["formats"]["input"].startswith(f"fixed<{r['width_input']},") and \
            r["formats"]["weight"].startswith("fixed<4,")
        assert r["width"] == r["width_input"] and r["formats"]["output"].startswith(f"ufixed<{2 * r['width']},")


@pytest.mark.keras
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
def test_keras_model_sweep_and_a_pick_that_generate_reproduces(tmp_path, capsys):
    keras = pytest.importorskip("keras", reason="needs Keras: pip install -e '.[keras]'")
    from tconv.model import import_keras

    rng = np.random.default_rng(5)
    inputs = keras.Input((8, 2))
    # Zero initializers (Keras' random ones compile per shape, slowly); the weights are set below.
    enc = keras.layers.Conv1D(3, 3, padding="same", activation="relu", name="enc", kernel_initializer="zeros")
    up = keras.layers.Conv1DTranspose(2, 3, strides=2, padding="same", name="up", kernel_initializer="zeros")
    model = keras.Model(inputs, up(enc(inputs)))
    enc.set_weights([rng.normal(0, 0.5, (3, 2, 3)).astype("float32"), rng.normal(0, 0.1, 3).astype("float32")])
    up.set_weights([rng.normal(0, 0.5, (3, 2, 3)).astype("float32"), rng.normal(0, 0.1, 2).astype("float32")])
    model.save(tmp_path / "m.keras")
    x = rng.normal(0, 1, (4, 8, 2))
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "ex"
    assert main(["explore", "--keras", str(tmp_path / "m.keras"), "--layer", "up", "--data", str(tmp_path / "x.npy"),
                 "--widths", "6,8", "--pe-count", "4", "--workers", "1", "--pick", "-o", str(out), "-q"]) == 0
    stdout = capsys.readouterr().out
    rows = _rows(out)
    assert [r["width"] for r in rows] == [6, 8] and not any("error" in r for r in rows)
    # Equal widths calibrate as tconv generate --keras --width W does.
    for r in rows:
        cal = import_keras(model, name="up", data=x, width=r["width"]).calibration
        assert {k: str(v) for k, v in cal.formats.items()} == {k: v for k, v in r["formats"].items()
                                                               if k != "accumulator"}
    (best,) = [r for r in rows if r["best"]]
    assert f"--formats {out / 'CONFIG.json'} --pe-count {best['pe_count']}" in stdout
    assert main(["generate", "--keras", str(tmp_path / "m.keras"), "--layer", "up", "--formats",
                 str(out / "CONFIG.json"), "--pe-count", str(best["pe_count"]), "-o", str(tmp_path / "hw"), "-q"]) == 0
    manifest = json.loads((tmp_path / "hw" / "manifest.json").read_text())
    assert manifest["formats"] == best["formats"] and manifest["array"]["pe_count"] == best["pe_count"]


# ------------------------------------------------------------------ a real scheduler and workers
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, "dask scheduler exited"
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise AssertionError(f"no scheduler on port {port} after {seconds} s")


def _stop(proc: subprocess.Popen) -> None:
    """End a process the test started, and its process group (it was started in a session of its own)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def test_existing_scheduler_workers_and_a_worker_killed_mid_sweep(tiny, tmp_path):
    from distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "TCONV_EXPLORE_TEST_DELAY": "1.5"}  # points slow enough to kill a worker during one
    logs = tmp_path / "dask.log"
    procs = []
    try:
        with open(logs, "w") as log:
            procs.append(subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                           "--no-dashboard", "--dashboard-address", "127.0.0.1:0"], stdout=log, stderr=log, start_new_session=True))
            _wait_for_port(port, procs[0])
            procs.append(subprocess.Popen([str(BIN / "dask"), "worker", address, "--nworkers", "2", "--nthreads", "1",
                                           "--host", "127.0.0.1", "--no-dashboard", "--local-directory",
                                           str(tmp_path / "scratch")], stdout=log, stderr=log, env=env,
                                          start_new_session=True))
        with Client(address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
            pids = client.run(os.getpid)  # worker address -> its process id
            addresses = set(pids)
            out = tmp_path / "ex"
            sweep = subprocess.Popen([str(BIN / "tconv"), *_args(tiny, out, "--scheduler", address, "-q")],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
            procs.append(sweep)
            deadline = time.monotonic() + 90
            while len(list((out / "points").glob("*.json"))) < 2 and time.monotonic() < deadline \
                    and sweep.poll() is None:
                time.sleep(0.1)
            assert sweep.poll() is None, sweep.communicate()
            victim_address, victim = sorted(pids.items())[0]
            os.kill(victim, signal.SIGKILL)  # its nanny starts a new worker; its point is run again
            stdout, stderr = sweep.communicate(timeout=120)
            assert sweep.returncode == 0, stderr
            client.wait_for_workers(1, timeout=30)
            addresses |= set(client.scheduler_info()["workers"])
        assert _summary(stdout) == (6, 6, 0)
        rows = _rows(out)
        _check_rows(rows, tiny)  # every point there, none with an error: nothing lost
        assert {r["worker"] for r in rows} <= addresses
        assert len(list((out / "points").glob("*.json"))) == 6
    finally:
        for proc in reversed(procs):
            _stop(proc)


# ------------------------------------------------------------------ interrupted, then resumed
def test_an_interrupted_sweep_resumes_with_only_the_missing_points(tiny, tmp_path, capsys):
    out = tmp_path / "ex"
    env = {**os.environ, "TCONV_EXPLORE_TEST_DELAY": "1.0"}
    sweep = subprocess.Popen([str(BIN / "tconv"), *_args(tiny, out, "--workers", "2", "-q")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while len(list((out / "points").glob("*.json"))) < 2 and time.monotonic() < deadline \
                and sweep.poll() is None:
            time.sleep(0.1)
        assert sweep.poll() is None, sweep.communicate()
        sweep.send_signal(signal.SIGTERM)
        _, stderr = sweep.communicate(timeout=60)
    finally:
        _stop(sweep)
    assert sweep.returncode == 143, stderr
    assert not (out / "results.json").exists()  # only finished points, each whole
    done = {p.name: p.stat().st_mtime_ns for p in (out / "points").glob("*.json")}
    assert 2 <= len(done) < 6
    assert not list((out / "points").glob(".*"))  # no temporary file left behind
    # A cached row is taken as it is: mark one and find the mark in the results.
    marked = sorted(done)[0]
    row = json.loads((out / "points" / marked).read_text())
    row["rmse"] = -1.0
    (out / "points" / marked).write_text(json.dumps(row))
    done[marked] = (out / "points" / marked).stat().st_mtime_ns

    assert main(_args(tiny, out, "--workers", "2", "-q")) == 0
    assert _summary(capsys.readouterr().out) == (6, 6 - len(done), len(done))
    rows = _rows(out)
    assert sum(r["rmse"] == -1.0 for r in rows) == 1
    assert {p.name: p.stat().st_mtime_ns for p in (out / "points").glob("*.json") if p.name in done} == done
    assert len(list((out / "points").glob("*.json"))) == 6
    _check_rows(rows, tiny)  # the mark is in rmse, which it does not check


# ------------------------------------------------------------------ synthesis
@pytest.mark.slow
def test_one_point_with_synthesis(tiny, tmp_path, capsys):
    from tconv.flow.pareto import LUT4_PER_BLOCK

    cfg, weights, data = tiny
    out = tmp_path / "ex"
    assert main(["explore", str(cfg), "--weights", str(weights), "--data", str(data), "--widths", "6",
                 "--pe-count", "4", "--synth", "--speed", "8", "--workers", "1", "--min-fmax", "1", "-o", str(out),
                 "-q"]) == 0
    (row,) = _rows(out)
    assert "error" not in row, row
    assert row["speed"] == 8 and row["device"] == "LFE5U-85F"
    assert row["fmax_mhz"] > 0 and row["lut4"] > 0 and row["ff"] > 0
    assert row["mult18"] == row["multipliers"]  # one MULT18X18D per PE built (relu: no other multiply)
    assert row["throughput_steps_per_s"] == pytest.approx(row["fmax_mhz"] * 1e6 / row["cycles_per_step"], rel=1e-6)
    assert row["gops"] == pytest.approx(2 * row["pe_count"] * row["fmax_mhz"] * row["mac_utilization"] / 1000,
                                        abs=1e-3)
    w = LUT4_PER_BLOCK["ecp5-85k"]
    assert row["resource_cost"] == row["lut4"] + w["mult18"] * row["mult18"] + w["ebr"] * row["ebr"]
    assert row["pareto"] and row["best"] and row["meets_constraints"]
    assert "Fmax MHz" in capsys.readouterr().out


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("extra, needle", [
    (["--widths", "4:2"], "--widths 4:2"),
    (["--widths", "1,8"], "--widths 1,8: widths must be from 2 to 18"),
    (["--widths", "4:40"], "--widths 4:40: widths must be from 2 to 18"),
    (["--widths", "eight"], "--widths 'eight': expected LO:HI"),
    (["--widths", "8", "--width-input", "6"], "either --widths"),
    (["--width-weight", "19"], "--width-weight 19"),
    (["--pe-count", "3"], "--pe-count 3: each PE count must be a power of two"),
    (["--pe-count", "0,4"], "--pe-count 0,4"),
    (["--synth", "--speed", "9"], "--speed 9: unknown speed grade 9; ECP5 speed grades are 6, 7, 8"),
    (["--speed", "6"], "--speed only applies with --synth"),
    (["--min-fmax", "100"], "--min-fmax only applies with --synth"),
    (["--min-sqnr", "nan"], "--min-sqnr"),
    (["--max-dsp", "-1"], "--max-dsp"),
    (["--layers", "a,b"], "--layers: tconv explore sweeps one layer"),
    (["--scheduler", "http://x"], "--scheduler 'http://x': expected a Dask scheduler's address tcp://HOST:PORT"),
    (["--scheduler", "tcp://127.0.0.1:8786", "--workers", "2"], "--workers only applies to the local cluster"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--freq", "300"], "--device and --freq only apply with --synth"),
    (["--layer", "up"], "--layer only applies with --keras"),
])
def test_bad_options_end_in_one_line_and_write_nothing(tiny, tmp_path, capsys, extra, needle):
    out = tmp_path / "ex"
    assert main(_args(tiny, out, *extra)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tconv: error: ") and needle in err, err
    assert not out.exists()


def test_bad_output_folders_and_files(tiny, tmp_path, capsys):
    file = tmp_path / "file"
    file.write_text("x")
    assert main(_args(tiny, file)) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(_args(tiny, foreign)) == 2
    assert "holds other files and no tconv explore results" in capsys.readouterr().err
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    assert main(_args(tiny, tmp_path / "ex", "--pick", str(tmp_path / "no" / "pick.json"))) == 2
    assert "--pick" in capsys.readouterr().err and not (tmp_path / "ex").exists()
    cfg, weights, data = tiny
    assert main(["explore", str(cfg), "-o", str(tmp_path / "ex")]) == 2
    assert "needs --weights" in capsys.readouterr().err
    np.save(data, np.zeros((2, 5, 4)))  # 4 channels for a 3-channel layer
    assert main(_args(tiny, tmp_path / "ex")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "x.npy" in err and not (tmp_path / "ex").exists()


def test_unreachable_scheduler_is_one_line(tiny, tmp_path, capsys):
    port = _free_port()  # nothing listens there
    assert main(_args(tiny, tmp_path / "ex", "--scheduler", f"127.0.0.1:{port}")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--scheduler tcp://127.0.0.1:{port}: no Dask scheduler answered" in err, err
    assert not (tmp_path / "ex").exists()


# ------------------------------------------------------------------ the front on its own
def test_pareto_flags_by_definition():
    from tconv.flow.pareto import pareto_flags

    rng = np.random.default_rng(3)
    rows = [{"sqnr_db": float(rng.integers(0, 5)), "resource_cost": float(rng.integers(0, 5)),
             "throughput_steps_per_cycle": float(rng.integers(0, 5))} for _ in range(60)]
    rows.append({"error": "failed"})
    rows.append({"sqnr_db": "inf", "resource_cost": 0.0, "throughput_steps_per_cycle": 9.0})
    flags = pareto_flags(rows)
    keys = (("sqnr_db", 1), ("resource_cost", -1), ("throughput_steps_per_cycle", 1))
    num = [dict(r, sqnr_db=math.inf if r.get("sqnr_db") == "inf" else r.get("sqnr_db")) for r in rows]
    for i, r in enumerate(num):
        expect = "error" not in r and not any(_dominates(o, r, keys) for o in num if o is not r and "error" not in o)
        assert flags[i] == expect
    assert flags[-1] and not flags[-2] and sum(flags) < len(rows) - 2
