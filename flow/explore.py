"""Design-space exploration (``tconv explore``): a grid of widths, array sizes and speed grades on Dask.

A *point* is one input width, one weight width, one PE count and (with
synthesis) one ECP5 speed grade. :func:`evaluate_point` turns a point into a
*row*: it calibrates the layer's formats for the widths
(:func:`tconv.model.calibrate.calibrate`, exactly as ``tconv generate --keras
--width W`` does when the two widths are equal), measures the fixed-point
model's error on the data (:func:`tconv.model.analyze`), plans the array
(:func:`tconv.hw.check.check_layer`: cycles per step, cycles of one frame, MAC
utilization) and, with synthesis, generates the design into a temporary folder
and places and routes it (:func:`tconv.flow.synth.synthesize`). It is a pure
function of the :class:`Problem` (the layer, its float weights and the data,
shipped to the workers as arrays) and the point: no file is shared with the
workers.

:func:`run_sweep` runs every point as one task on a Dask cluster (a
``LocalCluster`` of one single-threaded worker process per core, or an
existing scheduler), caches each finished row in ``EXPLORE/points/<key>.json``
(written atomically; the key hashes the point, the layer, the weights, the
data and the synthesis options), so a sweep that is interrupted, or run again
with more points, computes only the rows it lacks. A point that fails is a row
with ``error`` (the exception's first line) and is not cached; Dask retries a
task twice after an unexpected exception, and reruns the tasks of a worker
that died.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tconv.hw.check import MAX_OPERAND_BITS
from tconv.hw.files import write_atomic
from tconv.hw.schedule import check_pe_count
from tconv.model.analysis import json_number

__all__ = ["CONNECT_TIMEOUT", "DELAY_ENV", "MAX_POINTS", "MIN_WIDTH", "MAX_EXPLORE_WIDTH", "SPEEDS", "Point",
           "Problem", "SynthOptions", "Sweep", "check_explore_folder", "dask_client", "evaluate_point", "grid",
           "parse_pe_counts", "parse_scheduler", "parse_speeds", "parse_widths", "point_key", "point_layer",
           "run_sweep", "write_results"]

_log = logging.getLogger("tconv.flow.explore")

#: Bump when a row's meaning changes: it is part of every point's key, so old cached rows are not reused.
SCHEMA = 1
#: Widths the grid may hold: calibration needs 2 bits; an ECP5 MULT18X18D operand holds at most 18.
MIN_WIDTH, MAX_EXPLORE_WIDTH = 2, MAX_OPERAND_BITS
#: ECP5 speed grades (``tconv synth --speed``).
SPEEDS = (6, 7, 8)
#: Seconds to wait for ``--scheduler`` to answer, and then for it to have a worker.
CONNECT_TIMEOUT = 10.0
#: Most points one sweep may hold.
MAX_POINTS = 4096
#: Test hook: seconds each task sleeps before it starts (read on the worker), so tests can kill a
#: worker or the sweep while points are in flight. Not part of a point's key.
DELAY_ENV = "TCONV_EXPLORE_TEST_DELAY"


# ------------------------------------------------------------------ the grid
def _int_list(text: str, option: str, what: str, *, ranges: bool) -> list[int]:
    try:
        if ranges and ":" in text:
            lo, hi = (int(v) for v in text.split(":"))
            if lo > hi:
                raise ValueError(f"{option} {text}: the range runs low to high, e.g. {hi}:{lo}")
            if hi - lo > MAX_POINTS:
                raise ValueError(f"{option} {text}: more than {MAX_POINTS} values")
            return list(range(lo, hi + 1))
        return list(dict.fromkeys(int(v) for v in text.split(",")))
    except ValueError as err:
        if str(err).startswith(option):
            raise
        raise ValueError(f"{option} {text!r}: expected {what}") from None


def parse_widths(text: str, option: str = "--widths") -> list[int]:
    """``4:12`` (both ends included) or ``6,8,10``: widths from `MIN_WIDTH` to `MAX_EXPLORE_WIDTH` bits."""
    widths = _int_list(text, option, "LO:HI or a comma list of bit widths, e.g. 4:12 or 6,8,10", ranges=True)
    bad = [w for w in widths if not MIN_WIDTH <= w <= MAX_EXPLORE_WIDTH]
    if bad:
        raise ValueError(f"{option} {text}: widths must be from {MIN_WIDTH} to {MAX_EXPLORE_WIDTH} bits (an ECP5 "
                         f"MULT18X18D operand holds at most {MAX_EXPLORE_WIDTH}), got {bad[0]}")
    return widths


def parse_pe_counts(text: str) -> list[int]:
    """``16,64,128``: PE counts, each a power of two (`tconv.hw.schedule.check_pe_count`)."""
    counts = _int_list(text, "--pe-count", "a comma list of PE counts, e.g. 16,64,128", ranges=False)
    for n in counts:
        check_pe_count(n, f"--pe-count {text}: each PE count")
    return counts


def parse_speeds(text: str) -> list[int]:
    """``6,8``: ECP5 speed grades, each one of `SPEEDS`."""
    speeds = _int_list(text, "--speed", "a comma list of ECP5 speed grades, e.g. 6,8", ranges=False)
    bad = [s for s in speeds if s not in SPEEDS]
    if bad:
        raise ValueError(f"--speed {text}: unknown speed grade {bad[0]}; ECP5 speed grades are "
                         f"{', '.join(map(str, SPEEDS))}")
    return speeds


def parse_scheduler(text: str) -> str:
    """``tcp://HOST:PORT`` (or ``HOST:PORT``): a Dask scheduler's address."""
    m = re.fullmatch(r"(?:tcp://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})", text)
    if not m or not 1 <= int(m.group(2)) <= 65535:
        raise ValueError(f"--scheduler {text!r}: expected a Dask scheduler's address tcp://HOST:PORT, "
                         f"e.g. tcp://127.0.0.1:8786")
    return f"tcp://{m.group(1)}:{int(m.group(2))}"


@dataclass(frozen=True)
class Point:
    """One point of the grid: widths of the multiplier operands, PEs and (with synthesis) speed grade."""

    width_input: int
    width_weight: int
    pe_count: int
    speed: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def grid(input_widths, weight_widths, pe_counts, speeds=(None,), *, paired: bool) -> list[Point]:
    """The points: widths (paired: input width = weight width; else every combination) x PE counts x speeds."""
    pairs = list(zip(input_widths, input_widths)) if paired else \
        [(a, b) for a in input_widths for b in weight_widths]
    points = [Point(a, b, pe, s) for a, b in pairs for pe in pe_counts for s in speeds]
    if len(points) > MAX_POINTS:
        raise ValueError(f"the grid has {len(points)} points, more than tconv explore runs in one sweep "
                         f"({MAX_POINTS}); use fewer widths, PE counts or speed grades")
    return points


# ------------------------------------------------------------------ the problem
@dataclass(frozen=True)
class SynthOptions:
    """``--synth``: the device, nextpnr's seed and target clock (as ``tconv synth``)."""

    device: str = "ecp5-85k"
    seed: int = 1
    target_mhz: float = 250.0


@dataclass
class Problem:
    """Everything a task needs besides its point, shipped to the workers as data.

    Attributes
    ----------
    layer : dict
        ``LayerConfig.to_dict()`` (``in_channels`` set).
    kernel, bias : ndarray
        The float weights (bias None without one).
    inputs : ndarray
        Float inputs *of the layer* (batch first, in its data_format): the formats are
        calibrated on them and the error is measured on them.
    source : str
        Where the layer and the inputs came from (for the calibration's record).
    synth : SynthOptions or None
        Place and route each point (``--synth``) with these options.
    """

    layer: dict
    kernel: np.ndarray
    bias: np.ndarray | None
    inputs: np.ndarray
    source: str
    synth: SynthOptions | None = None
    _fingerprint: str | None = field(default=None, repr=False, compare=False)

    @property
    def frame_length(self) -> int:
        """Steps per sequence of ``inputs``: the frame whose cycles and MAC utilization a row gives."""
        return int(self.inputs.shape[2 if self.layer.get("data_format") == "channels_first" else 1])

    def fingerprint(self) -> str:
        """SHA-256 of the layer, the weights, the inputs and the synthesis options (not of ``source``)."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(json.dumps({"layer": self.layer, "synth": asdict(self.synth) if self.synth else None},
                                sort_keys=True).encode())
            for arr in (self.kernel, self.bias, self.inputs):
                if arr is None:
                    h.update(b"none")
                    continue
                a = np.ascontiguousarray(arr, dtype=np.float64)
                h.update(repr(a.shape).encode())
                h.update(a.tobytes())
            object.__setattr__(self, "_fingerprint", h.hexdigest())
        return self._fingerprint


def point_key(problem: Problem, point: Point) -> str:
    """The cache key of ``point`` of ``problem``: its file is ``EXPLORE/points/<key>.json``."""
    text = json.dumps({"schema": SCHEMA, "problem": problem.fingerprint(), **point.to_dict()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


# ------------------------------------------------------------------ one point
def point_layer(problem: Problem, point: Point):
    """The fixed-point layer of ``point``: formats calibrated on ``problem.inputs`` for its widths.

    Inputs get ``width_input`` bits, weights ``width_weight``, bias and output twice
    the wider of the two; equal widths give what ``tconv generate --keras --width W``
    gives. Returns ``(Conv1DTransposeQ, Calibration)``.
    """
    from tconv.model import Conv1DTransposeQ, LayerConfig
    from tconv.model.calibrate import CalibrationPolicy, calibrate, choose_format
    from tconv.model.fixedpoint import MAX_WIDTH

    config = LayerConfig.from_dict(problem.layer)
    wide = min(2 * max(point.width_input, point.width_weight), MAX_WIDTH)
    policy = CalibrationPolicy(width=point.width_input, output_width=wide, bias_width=wide)
    given = None
    if point.width_weight != point.width_input:  # the policy has one width for both: the weights' is chosen here
        given = {"weight": choose_format(problem.kernel, point.width_weight, headroom=policy.headroom("weight"),
                                         rounding=policy.rounding, overflow=policy.overflow)}
    cal = calibrate(config, problem.kernel, problem.bias, problem.inputs, formats=given, policy=policy,
                    data_name=problem.source)
    return Conv1DTransposeQ(config, problem.kernel, problem.bias, **cal.layer_kwargs()), cal


def _first_line(err: BaseException) -> str:
    lines = [s.strip() for s in str(err).splitlines() if s.strip()]
    return (lines[0] if lines else type(err).__name__)[:300]


def _worker_address() -> str | None:
    try:
        from distributed import get_worker
        return get_worker().address
    except (ImportError, ValueError):  # not running inside a Dask worker
        return None


def evaluate_point(problem: Problem, point: Point) -> dict:
    """The row of ``point``: formats, error, cycles, utilization and (with synthesis) Fmax and resources.

    A problem the point itself has (formats the hardware cannot build, a failed
    place-and-route, a missing tool) is a row with ``error``; anything else raises.
    """
    from tconv.model import analyze

    from .pareto import resource_cost

    delay = float(os.environ.get(DELAY_ENV) or 0)
    if delay > 0:
        time.sleep(delay)
    start = time.perf_counter()
    row = {**point.to_dict(), "width": max(point.width_input, point.width_weight), "worker": _worker_address()}
    try:
        q, _ = point_layer(problem, point)
        from tconv.hw.check import check_layer
        schedule = check_layer(q, point.pe_count)
        report = analyze(q, problem.inputs)
        row["formats"] = {"input": str(q.input_format), "weight": str(q.weight_format),
                          "bias": str(q.bias_format) if q.bias_format is not None else None,
                          "accumulator": str(q.accumulator_format), "output": str(q.output_format)}
        row.update(sqnr_db=json_number(report.sqnr_db), max_abs_error=json_number(report.max_abs_error),
                   rmse=json_number(report.rmse))
        length = problem.frame_length
        cycles = schedule.frame_cycles(length)
        row.update(cycles_per_step=schedule.cycles_per_step, frame_length=length, frame_cycles=cycles,
                   mac_utilization=round(q.config.useful_macs(length) / (point.pe_count * cycles), 6)
                   if cycles else 0.0,
                   multipliers=schedule.built_groups * schedule.lanes,
                   throughput_steps_per_cycle=1.0 / schedule.cycles_per_step)
        if problem.synth is not None:
            row.update(_synthesize_point(q, point, problem.synth, row))
        row["resource_cost"] = resource_cost(row, problem.synth.device if problem.synth else None)
    except (ValueError, RuntimeError) as err:  # RuntimeError: tconv.flow.synth.ToolMissing
        for key in [k for k in row if k not in ("width_input", "width_weight", "pe_count", "speed", "width",
                                                "worker")]:
            del row[key]
        row["error"] = _first_line(err)
    row["seconds"] = round(time.perf_counter() - start, 3)
    return row


def _synthesize_point(q, point: Point, opts: SynthOptions, row: dict) -> dict:
    """Generate the design into a temporary folder and place and route it for ``point.speed``."""
    from tconv.hw.generate import generate

    from .synth import synthesize

    with tempfile.TemporaryDirectory(prefix="tconv-explore-") as tmp:
        design = Path(tmp) / "design"
        generate(q, design, pe_count=point.pe_count)
        (r,) = synthesize(design, device=opts.device, speeds=(point.speed,), seed=opts.seed,
                          target_mhz=opts.target_mhz, work_dir=Path(tmp) / "synth", log=lambda msg: None)
    fmax = r.fmax_mhz
    return {"device": r.device, "fmax_mhz": fmax, "lut4": r.lut4, "ff": r.ff, "mult18": r.mult18, "ebr": r.ebr,
            "throughput_steps_per_s": round(fmax * 1e6 / row["cycles_per_step"], 1),
            "gops": round(2 * point.pe_count * fmax * row["mac_utilization"] / 1000, 3)}


# ------------------------------------------------------------------ the cluster
@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator:
    """A ``distributed.Client``: on a new ``LocalCluster`` (``workers`` single-threaded processes, one
    per core by default, on 127.0.0.1), or connected to ``scheduler`` within `CONNECT_TIMEOUT` seconds."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ValueError("tconv explore needs Dask: pip install -e '.[explore]' (or run make setup)") from None
    if scheduler is None:
        with tempfile.TemporaryDirectory(prefix="tconv-dask-") as scratch, \
                LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                             host="127.0.0.1", dashboard_address=None, local_directory=scratch,
                             silence_logs=logging.ERROR,
                             # no dashboard; the scheduler's HTTP routes on a free loopback port
                             scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"}) as cluster, \
                Client(cluster, set_as_default=False) as client:
            yield client
        return
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except Exception as err:  # OSError / TimeoutError, or whatever the comm layer raises
        raise ValueError(f"--scheduler {scheduler}: no Dask scheduler answered within {CONNECT_TIMEOUT:g} s "
                         f"({_first_line(err)}); start one (dask scheduler, then dask worker {scheduler}) "
                         f"or leave --scheduler out for a local cluster") from None
    with client:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except Exception:
            raise ValueError(f"--scheduler {scheduler}: the scheduler has no worker (none joined within "
                             f"{CONNECT_TIMEOUT:g} s); start one with dask worker {scheduler}") from None
        yield client


# ------------------------------------------------------------------ the sweep
@dataclass
class Sweep:
    """What :func:`run_sweep` did: the rows (in grid order) and how they were obtained."""

    rows: list[dict]
    computed: int
    cached: int
    workers: list[str]
    seconds: float

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if "error" in r]


def check_explore_folder(out_dir) -> Path:
    """``-o EXPLORE/``: a folder that does not exist yet, an empty one, or one tconv explore wrote."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"-o {out}: exists and is not a folder; choose another -o")
    if out.is_dir() and any(out.iterdir()) and not ((out / "points").is_dir() or (out / "results.json").is_file()):
        raise ValueError(f"-o {out}: a folder that holds other files and no tconv explore results; "
                         f"choose a new or empty folder")
    return out


def _cached_row(path: Path, point: Point) -> dict | None:
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # missing, unreadable or damaged: computed again
    if not isinstance(row, dict) or "error" in row or any(row.get(k) != v for k, v in point.to_dict().items()):
        return None
    return row


def _error_row(point: Point, err: BaseException) -> dict:
    return {**point.to_dict(), "width": max(point.width_input, point.width_weight), "worker": None,
            "error": f"{type(err).__name__}: {_first_line(err)}"}


def run_sweep(problem: Problem, points: list[Point], out_dir, *, scheduler: str | None = None,
              workers: int | None = None, progress: bool = True) -> Sweep:
    """Every point of ``points`` as a row: from ``out_dir/points/`` when cached, else as a task on Dask.

    Rows are cached as they finish, so an interrupted sweep loses only the points in
    flight. Returns them in the order of ``points``; ``pareto`` is not set here.
    """
    from tqdm import tqdm

    start = time.perf_counter()
    points_dir = Path(out_dir) / "points"
    keys = [point_key(problem, p) for p in points]
    rows: dict[str, dict] = {}
    for key, point in zip(keys, points):
        row = _cached_row(points_dir / f"{key}.json", point)
        if row is not None:
            rows[key] = row
    todo = {key: point for key, point in zip(keys, points) if key not in rows}
    cached = len(rows)
    if cached:
        _log.info("%d of %d point(s) from %s", cached, len(points), points_dir)
    seen_workers: list[str] = []
    if todo:
        from distributed import as_completed

        with dask_client(scheduler, workers) as client:
            seen_workers = sorted(client.scheduler_info().get("workers", {}))
            _log.info("%d point(s) on %d Dask worker(s) at %s", len(todo), len(seen_workers),
                      client.scheduler.address)
            shared = client.scatter(problem, broadcast=True, hash=False)
            futures = {client.submit(evaluate_point, shared, point, key=f"tconv-explore-{key}", retries=2,
                                     pure=False): key for key, point in todo.items()}
            with tqdm(total=len(futures), desc="explore", unit="point", disable=not progress) as bar:
                for future in as_completed(futures, loop=client.loop):
                    key = futures[future]
                    try:
                        row = future.result()
                    except Exception as err:  # failed after its retries (or lost): a row with error
                        row = _error_row(todo[key], err)
                    if "error" not in row:
                        write_atomic(points_dir / f"{key}.json", json.dumps(row, indent=1) + "\n")
                    rows[key] = row
                    bar.update()
    return Sweep([rows[k] for k in keys], computed=len(todo), cached=cached, workers=seen_workers,
                 seconds=time.perf_counter() - start)


def write_results(out_dir, rows: list[dict], plot: bytes) -> list[Path]:
    """``EXPLORE/results.json`` and ``EXPLORE/pareto.png``, each written atomically."""
    out = Path(out_dir)
    paths = [out / "results.json", out / "pareto.png"]
    write_atomic(paths[0], json.dumps(rows, indent=1, allow_nan=False) + "\n")
    write_atomic(paths[1], plot)
    return paths

