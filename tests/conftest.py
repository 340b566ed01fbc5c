"""Shared pytest set-up: real Keras runs on the jax backend (CPU); the ``--long`` option.

``--long`` turns the short, repeatable soak and fuzz runs of ``make test`` into
long ones: tens of thousands of frames per simulator in ``tests/test_soak.py``, 20 times
the examples (random each run) in ``tests/test_fuzz_*.py``. Test modules read it
at import through :func:`long_run` (pytest configures before it collects).
Soak tests attach their counts to their report (``user_properties``, which
pytest-xdist carries back from its workers); they are printed at the end.
"""

import json
import os

# Must happen before anything imports keras; jax is the backend tconv installs.
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

_LONG = False

#: The smallest layer the command-line tests generate (4 PEs, 3 -> 2 channels, stride 2).
TINY_CONFIG = {
    "layer": {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "relu",
              "in_channels": 3},
    "formats": {"input": "fixed<8,3,RND,SAT>", "weight": "fixed<8,1,RND,SAT>", "bias": "fixed<12,4>",
                "output": "fixed<12,5,RND,SAT>"},
    "array": {"pe_count": 4},
}


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true", default=False,
                     help="tconv: long soak (tens of thousands of frames per simulator, two layers, 40 mid-frame resets "
                          "per port), fuzz runs (20x the examples, random each run), 40 random layers on both "
                          "simulators and every ECP5 RAM shape on Verilator, instead of the short, derandomized ones")


def pytest_configure(config):
    global _LONG
    _LONG = bool(config.getoption("--long"))


def long_run() -> bool:
    """True under ``pytest --long``."""
    return _LONG


def pytest_terminal_summary(terminalreporter):
    lines = []
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", None) != "call":
                continue
            for key, value in getattr(report, "user_properties", []):
                if key == "soak_counts":
                    lines.append(f"{report.nodeid.split('::')[-1]} ({outcome}): {json.dumps(value)}")
    if lines:
        terminalreporter.section("soak counts")
        for line in sorted(lines):
            terminalreporter.write_line(line)


def require_simulator(simulator: str) -> None:
    """Skip with the install command when a simulator is missing, unless the run
    requires simulators (``make test`` sets TCONV_REQUIRE_SIMULATORS=1)."""
    import pytest

    from tconv.sim.tools import SimulatorMissing, check_simulator

    try:
        check_simulator(simulator)
    except SimulatorMissing as err:
        if os.environ.get("TCONV_REQUIRE_SIMULATORS") == "1":
            pytest.fail(f"simulator required by this run: {err}")
        pytest.skip(str(err))
