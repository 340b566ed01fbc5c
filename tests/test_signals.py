"""SIGTERM, SIGHUP and SIGINT end a ``tconv`` command in order (tconv.flow.signals).

Each test runs the real command line (``python -m tconv.flow.cli``) as a child
process, signals it at a chosen moment and checks: the exit status (143, 129,
130), one line on stderr and no traceback, no process it started still running
(the simulator, or make and the compiler), no temporary folder left behind.
Every wait is bounded; whatever a failing test leaves running is killed.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_CONFIG, require_simulator

TOP = "sigtop"
# Elaborating this one takes seconds: long enough to be signalled in the middle of it.
BIG = {**TINY_CONFIG, "layer": {**TINY_CONFIG["layer"], "filters": 16, "kernel_size": 4, "in_channels": 64},
       "array": {"pe_count": 256}}
# Far more than any test waits for: the simulation is always still running when signalled.
LONG_RUN = ["--frames", "5000", "--length", "64", "-q"]
#: The compiled Verilator testbench runs LONG_RUN in well under a second: ten times as much.
LONG_RUN_VERILATOR = ["--frames", "50000", "--length", "64", "-q"]
MESSAGES = {"SIGTERM": (143, "tconv: terminated (SIGTERM)"), "SIGHUP": (129, "tconv: terminated (SIGHUP)"),
            "SIGINT": (130, "tconv: interrupted")}


# --- processes, from /proc -------------------------------------------------------------------


def _stat(pid: int):
    """(state, ppid, start time, name) of a process, None when it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    name = data[data.index(b"(") + 1:data.rindex(b")")].decode(errors="replace")
    fields = data[data.rindex(b")") + 2:].split()
    return fields[0].decode(), int(fields[1]), int(fields[19]), name


def _tree(root: int) -> dict[int, tuple[int, str]]:
    """Every process below ``root``: {pid: (start time, name)}."""
    children: dict[int, list] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            children.setdefault(st[1], []).append((int(entry), st[2], st[3]))
    found, todo = {}, [root]
    while todo:
        for pid, start, name in children.get(todo.pop(), ()):
            if pid not in found:
                found[pid] = (start, name)
                todo.append(pid)
    return found


def _running(pid: int, start: int) -> bool:
    """Still the same process (not a reused pid) and not ended (a zombie has)."""
    st = _stat(pid)
    return st is not None and st[2] == start and st[0] not in "ZXx"


def _wait_for(predicate, timeout: float, what: str, proc=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"tconv ended (status {proc.returncode}) before {what}: {proc.stderr.read()}")
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def _cleanup(proc, seen: dict) -> None:
    """Kill what a failed test left: the command and every process it started."""
    if proc.poll() is None:
        proc.kill()
    for pid, (start, _) in {**seen, **_tree(proc.pid)}.items():
        if _running(pid, start):
            os.kill(pid, signal.SIGKILL)
    try:
        proc.communicate(timeout=10)
    except (subprocess.TimeoutExpired, ValueError):
        pass


# --- the command --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def design(tmp_path_factory):
    """A small design folder (top module ``sigtop``)."""
    from tconv.flow.cli import main

    tmp = tmp_path_factory.mktemp("signals")
    _write_inputs(tmp, TINY_CONFIG)
    assert main(["generate", str(tmp / "config.json"), "--weights", str(tmp / "w.npz"), "-o", str(tmp / "out"),
                 "--top", TOP, "-q"]) == 0
    return tmp / "out"


def _write_inputs(folder: Path, config: dict) -> None:
    layer = config["layer"]
    rng = np.random.default_rng(0)
    (folder / "config.json").write_text(json.dumps(config))
    np.savez(folder / "w.npz", kernel=rng.uniform(-1, 1, (layer["kernel_size"], layer["filters"],
                                                           layer["in_channels"])),
             bias=rng.uniform(-2, 2, layer["filters"]))


def _default_signals() -> None:
    """In the child before exec: the signals the tests send at their default action. tconv
    keeps a signal that its parent ignores ignored (as under ``nohup``, or a shell's
    background job for SIGINT), so a suite started that way would otherwise wait for
    nothing."""
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)


def _start(args, cache: Path, cwd: Path, prefix=()):
    env = {**os.environ, "TCONV_CACHE_DIR": str(cache)}
    return subprocess.Popen([sys.executable, *(prefix or ["-m", "tconv.flow.cli"]), *map(str, args)],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_signals)


def _check_ending(proc, signame: str) -> str:
    """The command's exit status and stderr after ``signame``; returns stderr."""
    status, message = MESSAGES[signame]
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert "Traceback" not in err and err.count("tconv:") == 1, err
    assert err.strip().splitlines()[-1] == message, err
    return err


def _check_ended(procs: dict) -> None:
    """Every recorded process has ended (allowing init a moment to reap orphans)."""
    _wait_for(lambda: not any(_running(pid, start) for pid, (start, _) in procs.items()), 10,
              f"the processes tconv started to end: {procs}")


def _temporary(*folders: Path) -> list[Path]:
    return [p for folder in folders if folder.exists() for p in folder.rglob("tconv_sim_*")]


# --- simulate -----------------------------------------------------------------------------


@pytest.mark.parametrize("simulator,signame", [("icarus", "SIGTERM"), ("icarus", "SIGHUP"), ("icarus", "SIGINT"),
                                               ("verilator", "SIGTERM")])
def test_signal_during_simulation_ends_the_simulator_and_removes_its_files(design, tmp_path, simulator, signame):
    require_simulator(simulator)
    cache = tmp_path / "cache"
    run = LONG_RUN_VERILATOR if simulator == "verilator" else LONG_RUN
    proc = _start(["simulate", design, "--simulator", simulator, *run], cache, tmp_path)
    seen: dict = {}
    try:
        # Verilator compiles first (tens of seconds on a loaded machine).
        sim = _wait_for(lambda: next((pid for pid, (_, name) in _tree(proc.pid).items()
                                      if name in ("vvp", TOP, "Vtconv_tb")), None), 240, f"the {simulator} child", proc)
        time.sleep(0.5)  # the testbench is running, its files open in the temporary folder
        test_dir = Path(os.readlink(f"/proc/{sim}/cwd"))
        assert test_dir.name.startswith("tconv_sim_") and test_dir.is_dir()
        seen = _tree(proc.pid)
        proc.send_signal(getattr(signal, signame))
        _check_ending(proc, signame)
        _check_ended(seen)
        assert not test_dir.exists()
        assert _temporary(cache, design) == []
    finally:
        _cleanup(proc, seen)


def test_a_burst_of_signals_still_ends_in_order(design, tmp_path):
    """Signals arriving while the first one's clean-up runs are ignored: one line, no
    traceback, nothing left. (Python handles pending signals in number order, so
    SIGHUP may be the one reported.)"""
    require_simulator("icarus")
    cache = tmp_path / "cache"
    proc = _start(["simulate", design, *LONG_RUN], cache, tmp_path)
    seen: dict = {}
    try:
        sim = _wait_for(lambda: next((pid for pid, (_, name) in _tree(proc.pid).items() if name == "vvp"), None),
                        120, "the icarus child", proc)
        time.sleep(0.5)
        test_dir = Path(os.readlink(f"/proc/{sim}/cwd"))
        seen = _tree(proc.pid)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        signame = next(name for name, (_, message) in MESSAGES.items() if err.strip() == message)
        assert proc.returncode == MESSAGES[signame][0], err
        _check_ended(seen)
        assert not test_dir.exists() and _temporary(cache, design) == []
    finally:
        _cleanup(proc, seen)


def test_sigterm_during_a_verilator_build_ends_make_and_the_compiler(design, tmp_path):
    """The build's grandchildren (make's compiler jobs) end too, not only make."""
    require_simulator("verilator")
    cache = tmp_path / "cache"
    proc = _start(["simulate", design, "--simulator", "verilator", *LONG_RUN], cache, tmp_path)
    seen: dict = {}
    try:
        _wait_for(lambda: any(name == "cc1plus" for _, name in _tree(proc.pid).values()), 240,
                  "the C++ compiler", proc)
        seen = _tree(proc.pid)
        assert {"make", "cc1plus"} <= {name for _, name in seen.values()}, seen
        proc.send_signal(signal.SIGTERM)
        _check_ending(proc, "SIGTERM")
        _check_ended(seen)
        assert _temporary(cache, design) == []
    finally:
        _cleanup(proc, seen)


# --- generate -----------------------------------------------------------------------------


def _dot_entries(*folders: Path) -> list[Path]:
    return [p for folder in folders if folder.is_dir() for p in folder.rglob(".*")]


def test_sigterm_while_generate_elaborates_writes_nothing(tmp_path):
    _write_inputs(tmp_path, BIG)
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = _start(["generate", "config.json", "--weights", "w.npz", "-o", "out"], tmp_path / "cache", tmp_path)
    try:
        # The progress line comes just before the seconds of elaboration.
        line, end = "", time.monotonic() + 120
        while "elaborating" not in line:
            assert time.monotonic() < end and proc.poll() is None, "generate did not start elaborating"
            if select.select([proc.stderr], [], [], 1)[0]:
                line = proc.stderr.readline()
        proc.send_signal(signal.SIGTERM)
        _check_ending(proc, "SIGTERM")
        assert sorted(p.name for p in tmp_path.iterdir()) == before
    finally:
        _cleanup(proc, {})


# Sends this process SIGTERM at its first write into a dot-named (temporary) folder
# or file under ROOT: the signal arrives while generate stages its files.
_SIGNAL_ON_STAGING = r"""
import os, signal, sys
root = os.path.abspath(sys.argv[1])
fired = False
def hook(event, args):
    global fired
    if fired or event != "open" or not args or isinstance(args[0], int):
        return
    try:
        rel = os.path.relpath(os.path.abspath(os.fsdecode(args[0])), root)
    except (TypeError, ValueError):
        return
    mode, flags = args[1] or "", args[2] or 0
    writing = any(c in str(mode) for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR)
    if writing and not rel.startswith("..") and any(part.startswith(".") for part in rel.split(os.sep)):
        fired = True
        os.kill(os.getpid(), signal.SIGTERM)
sys.addaudithook(hook)
from tconv.flow.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_sigterm_while_generate_writes_leaves_the_folder_as_it_was(tmp_path):
    """Regenerating over an earlier design, interrupted mid-write: the earlier design
    is intact and no temporary file or folder is left, inside or beside it."""
    _write_inputs(tmp_path, TINY_CONFIG)
    out = tmp_path / "out"
    proc = _start(["generate", "config.json", "--weights", "w.npz", "-o", "out", "-q"], tmp_path / "cache",
                  tmp_path)
    assert proc.communicate(timeout=120)[0] and proc.returncode == 0
    files = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    beside = sorted(p.name for p in tmp_path.iterdir())
    proc = _start([tmp_path, "generate", "config.json", "--weights", "w.npz", "-o", "out", "--top", "other", "-q"],
                  tmp_path / "cache", tmp_path, prefix=["-c", _SIGNAL_ON_STAGING])
    try:
        _check_ending(proc, "SIGTERM")
        assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == files
        assert _dot_entries(tmp_path) == [] and sorted(p.name for p in tmp_path.iterdir()) == beside
    finally:
        _cleanup(proc, {})
