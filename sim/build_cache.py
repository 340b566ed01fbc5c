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
import re
import shutil
import subprocess
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["cache_root", "build_dir", "build_lock", "is_built", "mark_built", "verilator_runtime"]

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


def build_dir(simulator: str, sources: list[Path], *, waves: bool = False, options: str = "") -> Path:
    """The cache folder for building ``sources`` (in order) on ``simulator`` with the tool ``options``."""
    digest = hashlib.sha256()
    digest.update(f"{simulator}\0{int(waves)}\0{_tool_stamp(simulator)}\0{options}\0".encode())
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


def _mk_settings(obj_dir: Path, prefix: str) -> tuple[list[str], str]:
    """The run-time library's objects a Verilated model links, and what they are compiled with:
    the ``VM_*`` switches of ``<prefix>_classes.mk`` and the user's C flags of ``<prefix>.mk``."""
    classes = (obj_dir / f"{prefix}_classes.mk").read_text()
    mk = (obj_dir / f"{prefix}.mk").read_text()
    switches = re.findall(r"^(VM_\w+ = .*)$", classes, re.M)
    globals_ = []
    for block in re.findall(r"^VM_GLOBAL_(?:FAST|SLOW) \+= \\\n((?:  \S+ \\\n)*)", classes, re.M):
        globals_ += re.findall(r"^  (\S+) \\$", block, re.M)
    user = re.search(r"^VM_USER_CFLAGS = \\\n((?:  .* \\\n)*)", mk, re.M)
    return sorted(set(globals_)), "\n".join([*switches, user.group(1) if user else ""])


def verilator_runtime(obj_dir: Path, prefix: str, make: list[str], env: dict, log):
    """Put Verilator's compiled run-time library (``verilated.o`` and the like) into a freshly
    Verilated ``obj_dir`` from the cache, compiling it there once per Verilator install and
    settings (in this cache: ``sim/verilator-runtime-<key>``).

    A Verilated model's own C++ compiles in seconds; the library it links takes three times as
    long and is the same for every model built with the same switches. Returns None when the
    cached objects were copied in (``make`` then finds them up to date), else the finished
    ``make`` of the objects (its return code says whether it worked).
    """
    names, settings = _mk_settings(obj_dir, prefix)
    digest = hashlib.sha256()
    digest.update(f"{_tool_stamp('verilator')}\0{env.get('VERILATOR_ROOT', '')}\0{settings}\0".encode())
    digest.update(" ".join(names).encode())
    folder = cache_root() / "sim" / f"verilator-runtime-{digest.hexdigest()[:20]}"
    with build_lock(folder):
        if not is_built(folder):
            proc = subprocess.run([*make, *(f"{n}.o" for n in names)], stdout=log, stderr=subprocess.STDOUT,
                                  env=env)
            if proc.returncode != 0:
                return proc
            folder.mkdir(parents=True, exist_ok=True)
            for name in names:
                for ext in (".o", ".d"):
                    if (obj_dir / f"{name}{ext}").is_file():
                        shutil.copyfile(obj_dir / f"{name}{ext}", folder / f"{name}{ext}")
            mark_built(folder)
            return proc
        now = time.time()
        for name in names:
            for ext in (".o", ".d"):
                if (folder / f"{name}{ext}").is_file():
                    shutil.copyfile(folder / f"{name}{ext}", obj_dir / f"{name}{ext}")
                    os.utime(obj_dir / f"{name}{ext}", (now, now))  # newer than the .mk they depend on
    return None
