"""``tconv explore``: a grid of bit widths, PE counts and speed grades on Dask, and its Pareto front.

The layer comes from ``CONFIG.json --weights W.npz`` or ``--keras MODEL.keras
--layer NAME``; each point's formats are calibrated on ``--data`` for its widths
(:mod:`tconv.flow.explore`), the front and the plot are :mod:`tconv.flow.pareto`'s.
Writes ``EXPLORE/results.json``, ``EXPLORE/pareto.png`` and the per-point cache
``EXPLORE/points/``; ``--pick`` also writes the best point's CONFIG.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

from tconv.hw.files import write_atomic
from tconv.model.config import MAX_VALUES

DEFAULT_WIDTHS = "6,8,10"
DEFAULT_PE_COUNTS = "16,64,128"
DEFAULT_SPEEDS = "6,8"


def register(sub) -> None:
    """Add the subcommand to ``tconv``'s subparsers."""
    from ..synth import DEVICES

    p = sub.add_parser(
        "explore", help="design-space exploration: bit widths x PE counts (x speed grades) on Dask, Pareto front",
        description="Run every point of a grid of input/weight widths, PE counts and, with --synth, ECP5 speed "
                    "grades as one task on Dask (a LocalCluster of one worker process per core, or --scheduler). "
                    "Each point calibrates the layer's formats for its widths on --data, measures the fixed-point "
                    "error (SQNR, max |error|), plans the array (cycles per step, MAC utilization) and with "
                    "--synth places and routes it (Fmax, LUT4, FF, MULT18X18D, EBR). Writes EXPLORE/results.json "
                    "(one row per point, 'pareto' true on the front: max SQNR, min resource cost, max throughput) "
                    "and EXPLORE/pareto.png, and caches each point in EXPLORE/points/, so a rerun computes only "
                    "the points it lacks.")
    p.add_argument("config", nargs="?", metavar="CONFIG.json",
                   help="the layer (its formats only set the range of random inputs; each point calibrates its own)")
    p.add_argument("--weights", metavar="W.npz",
                   help="float 'kernel' (kernel_size, filters, in_channels) and 'bias' (filters,)")
    p.add_argument("--data", metavar="X.npy",
                   help="inputs to calibrate the formats on and measure the error with: with CONFIG.json the "
                        "layer's inputs (default: random over CONFIG.json's input format), with --keras the "
                        "MODEL's inputs (default: a standard-normal batch of the layer's inputs)")
    p.add_argument("--batch", type=int, default=4, help="random inputs: sequences (default 4)")
    p.add_argument("--length", type=int, default=32, help="random inputs: steps per sequence (default 32)")
    p.add_argument("--seed", type=int, default=0, help="random inputs: seed (default 0)")
    g = p.add_argument_group("Keras model (instead of CONFIG.json and --weights)")
    g.add_argument("--keras", metavar="MODEL.keras", help="a saved Keras 3 model holding the Conv1DTranspose layer")
    g.add_argument("--layer", metavar="NAME", help="its name; may be omitted when the model has one")
    g.add_argument("--layers", metavar="A,B,C", help=argparse.SUPPRESS)  # refused: explore sweeps one layer
    g = p.add_argument_group("the grid")
    g.add_argument("--widths", metavar="W", help=f"input and weight width, equal, as LO:HI or a comma list, e.g. "
                   f"4:12 or 6,8,10 (default {DEFAULT_WIDTHS}); bias and output get twice as many bits")
    g.add_argument("--width-input", metavar="W", help="input widths, instead of --widths: every combination "
                   "with --width-weight (default 8)")
    g.add_argument("--width-weight", metavar="W", help="weight widths, instead of --widths (default 8)")
    g.add_argument("--pe-count", metavar="N,N", default=DEFAULT_PE_COUNTS,
                   help=f"PE counts, powers of two (default {DEFAULT_PE_COUNTS})")
    g.add_argument("--synth", action="store_true",
                   help="also place and route every point (tconv synth's flow; 30-90 s a point)")
    g.add_argument("--speed", metavar="S,S", help=f"with --synth: ECP5 speed grades, of 6, 7, 8 "
                   f"(default {DEFAULT_SPEEDS}); each is a point of its own")
    g.add_argument("--device", choices=sorted(DEVICES), default="ecp5-85k", help="with --synth (default ecp5-85k)")
    g.add_argument("--freq", type=float, default=250.0, help="with --synth: nextpnr's target MHz (default 250)")
    g = p.add_argument_group("picking a point")
    g.add_argument("--min-sqnr", type=float, metavar="DB", help="only points with at least this SQNR")
    g.add_argument("--max-dsp", type=int, metavar="N", help="only points with at most N MULT18X18D (without --synth: "
                   "multipliers built)")
    g.add_argument("--min-fmax", type=float, metavar="MHZ", help="with --synth: only points with at least this Fmax")
    g.add_argument("--pick", nargs="?", const=True, metavar="PATH",
                   help="write the best point's CONFIG.json (default EXPLORE/CONFIG.json) for tconv generate")
    g = p.add_argument_group("Dask")
    g.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="an existing Dask scheduler (default: a "
                   "LocalCluster on this machine)")
    g.add_argument("--workers", type=int, metavar="N", help="LocalCluster worker processes (default: one per core)")
    p.add_argument("-o", "--output", required=True, metavar="EXPLORE/",
                   help="folder for results.json, pareto.png and the point cache points/")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or messages")
    p.set_defaults(func=run)


# ------------------------------------------------------------------ options
def _grid(args):
    from ..explore import grid, parse_pe_counts, parse_speeds, parse_widths

    separate = args.width_input is not None or args.width_weight is not None
    if args.widths is not None and separate:
        raise ValueError("give either --widths (input and weight widths equal) or --width-input/--width-weight "
                         "(every combination), not both")
    if separate:
        inputs = parse_widths(args.width_input or "8", "--width-input")
        weights = parse_widths(args.width_weight or "8", "--width-weight")
    else:
        inputs = weights = parse_widths(args.widths or DEFAULT_WIDTHS)
    pe_counts = parse_pe_counts(args.pe_count)
    if args.speed is not None and not args.synth:
        raise ValueError("--speed only applies with --synth (a speed grade changes only the placed design's Fmax)")
    speeds = parse_speeds(args.speed or DEFAULT_SPEEDS) if args.synth else [None]
    return grid(inputs, weights, pe_counts, speeds, paired=not separate)


def _constraints(args):
    from ..pareto import Constraints

    if args.min_sqnr is not None and not math.isfinite(args.min_sqnr):
        raise ValueError(f"--min-sqnr must be a finite number of dB, got {args.min_sqnr}")
    if args.max_dsp is not None and args.max_dsp < 0:
        raise ValueError(f"--max-dsp must be a count of MULT18X18D from 0, got {args.max_dsp}")
    if args.min_fmax is not None:
        if not args.synth:
            raise ValueError("--min-fmax only applies with --synth (Fmax comes from place-and-route)")
        if not math.isfinite(args.min_fmax) or args.min_fmax <= 0:
            raise ValueError(f"--min-fmax must be a positive number of MHz, got {args.min_fmax}")
    return Constraints(args.min_sqnr, args.max_dsp, args.min_fmax)


def _pick_path(args, out: Path) -> Path | None:
    if args.pick is None:
        return None
    path = out / "CONFIG.json" if args.pick is True else Path(args.pick)
    if path.is_dir():
        raise ValueError(f"--pick {path}: is a folder; give a file name")
    parent = path.parent
    if args.pick is not True and not parent.is_dir():
        raise ValueError(f"--pick {path}: the folder {parent} does not exist")
    if parent.is_dir():
        try:  # a real write (permission bits say nothing to root, nor about read-only mounts)
            with tempfile.NamedTemporaryFile(dir=parent, prefix=f".{path.name}.", suffix=".tmp"):
                pass
        except OSError as err:
            raise ValueError(f"--pick {path}: cannot write there ({err.strerror or err})") from None
    return path


def _check_options(args):
    """Everything about the options, refused in one line before anything is loaded or written."""
    from ..explore import check_explore_folder, parse_scheduler

    if args.layers is not None:
        raise ValueError("--layers: tconv explore sweeps one layer (--layer NAME); a chain of layers is made by "
                         "tconv generate --keras MODEL --layers A,B,C")
    if args.keras:
        if args.config or args.weights:
            raise ValueError("give either CONFIG.json --weights W.npz or --keras MODEL.keras, not both "
                             "(tconv explore --help)")
    elif not args.config:
        raise ValueError("nothing to explore: give CONFIG.json --weights W.npz, or --keras MODEL.keras --layer NAME")
    elif not args.weights:
        raise ValueError("CONFIG.json needs --weights W.npz (the float kernel and bias)")
    elif args.layer:
        raise ValueError("--layer only applies with --keras MODEL.keras")
    points = _grid(args)
    constraints = _constraints(args)
    if not args.synth and (args.device != "ecp5-85k" or args.freq != 250.0):
        raise ValueError("--device and --freq only apply with --synth")
    if not math.isfinite(args.freq) or not 1 <= args.freq <= 2000:
        raise ValueError(f"--freq must be a target clock in MHz from 1 to 2000, got {args.freq}")
    scheduler = parse_scheduler(args.scheduler) if args.scheduler is not None else None
    if args.workers is not None:
        if scheduler is not None:
            raise ValueError("--workers only applies to the local cluster; the scheduler's cluster has its own")
        if args.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {args.workers}")
    if args.batch * args.length > MAX_VALUES:
        raise ValueError(f"--batch {args.batch} x --length {args.length} = {args.batch * args.length} steps, "
                         f"more than tconv allows ({MAX_VALUES} = 2**26 values)")
    out = check_explore_folder(args.output)
    return points, constraints, scheduler, out, _pick_path(args, out)


# ------------------------------------------------------------------ the layer
def _problem(args):
    from ..explore import Problem, SynthOptions

    synth = SynthOptions(device=args.device, target_mhz=args.freq) if args.synth else None
    if args.keras:
        from ..keras_model import load_keras_layer, note_default_data

        imported = load_keras_layer(args.keras, args.layer, data_path=args.data, batch=args.batch,
                                    length=args.length, seed=args.seed)
        note_default_data(imported.calibration)
        q = imported.layer
        return Problem(q.config.to_dict(), q.kernel, q.bias if q.config.use_bias else None, imported.inputs,
                       imported.calibration.data, synth)
    from tconv.model import random_input

    from ..files import load_config, load_data, load_weights

    config_file = load_config(args.config)
    kernel, bias = load_weights(args.weights, config_file.config)
    cfg = config_file.config
    if args.data:
        x, source = load_data(args.data, cfg), f"{args.data}: layer inputs"
    else:
        cfg.check_data_limits(args.batch, args.length, what=f"--batch {args.batch} x --length {args.length}")
        x = random_input(config_file.quantized(kernel, bias), batch=args.batch, length=args.length, seed=args.seed)
        source = (f"random layer inputs over {config_file.formats['input']} ({args.batch}x{args.length}, "
                  f"seed {args.seed})")
    return Problem(cfg.to_dict(), kernel, bias, x, source, synth)


def _pick_config(row: dict, layer: dict) -> dict:
    formats = {k: row["formats"][k] for k in ("input", "weight", "bias", "output") if row["formats"].get(k)}
    return {"layer": layer, "formats": formats, "array": {"pe_count": row["pe_count"]}}


def _describe(row: dict) -> str:
    text = f"{row['width_input']}-bit inputs, {row['width_weight']}-bit weights, {row['pe_count']} PEs"
    if row.get("speed") is not None:
        text += f", speed {row['speed']}"
    sqnr = row["sqnr_db"]
    text += f": SQNR {sqnr if isinstance(sqnr, str) else f'{sqnr:.2f}'} dB, {row['cycles_per_step']} cycles/step"
    if "fmax_mhz" in row:
        text += (f", {row['fmax_mhz']:.1f} MHz, {row['throughput_steps_per_s'] / 1e6:.3f} Msteps/s, "
                 f"{row['lut4']} LUT4, {row['mult18']} MULT18X18D")
    else:
        text += f", {row['multipliers']} multipliers"
    return text


def run(args: argparse.Namespace) -> int:
    from ..explore import run_sweep, write_results
    from ..pareto import best_row, front_table, pareto_flags, render_plot

    points, constraints, scheduler, out, pick = _check_options(args)
    problem = _problem(args)
    sweep = run_sweep(problem, points, out, scheduler=scheduler, workers=args.workers, progress=not args.quiet)
    rows = sweep.rows
    for row, flag in zip(rows, pareto_flags(rows)):
        row["pareto"] = flag
    best = best_row(rows, constraints)
    for row in rows:
        if constraints:
            row["meets_constraints"] = constraints.met(row)
        row["best"] = row is best
    written = write_results(out, rows, render_plot(rows, synth=args.synth, best=best))

    where = f"on {len(sweep.workers)} Dask worker(s)" if sweep.computed else "(nothing to run)"
    print(f"explore: {len(rows)} point(s), {sweep.computed} computed {where}, {sweep.cached} from "
          f"{out / 'points'}/, {sweep.seconds:.1f} s")
    for r in sweep.failed:
        print(f"tconv: warning: point {r['width_input']}/{r['width_weight']} bits, {r['pe_count']} PEs"
              + (f", speed {r['speed']}" if r.get("speed") is not None else "") + f" failed: {r['error']}",
              file=sys.stderr)
    cost = "LUT4 + MULT18X18D + EBR cost" if args.synth else "multipliers built"
    tput = "steps/s" if args.synth else "steps/cycle"
    pool = [r for r in rows if constraints.met(r)] if constraints else rows
    front = [r for r, f in zip(pool, pareto_flags(pool)) if f]
    title = f"Pareto front (max SQNR, min {cost}, max {tput})"
    if constraints:
        title += f" of the {len(pool)} point(s) with {constraints.describe()}"
    print(f"{title}: {len(front)} point(s)")
    if front:
        print(front_table(front, synth=args.synth))
    if best is not None:
        print(f"best{' (' + constraints.describe() + ')' if constraints else ''}: {_describe(best)}")
    elif constraints:
        print(f"no point meets {constraints.describe()}")
    print(f"wrote {', '.join(str(p) for p in written)}")
    if pick is None:
        return 0
    if best is None:
        print(f"tconv: error: --pick: no point to pick ({'no point meets ' + constraints.describe() if constraints else 'every point failed'}); "
              f"no CONFIG.json written", file=sys.stderr)
        return 2
    write_atomic(pick, json.dumps(_pick_config(best, problem.layer), indent=2) + "\n")
    if args.keras:
        again = (f"tconv generate --keras {args.keras}" + (f" --layer {args.layer}" if args.layer else "")
                 + f" --formats {pick} --pe-count {best['pe_count']} -o OUT/")
    else:
        again = f"tconv generate {pick} --weights {args.weights} -o OUT/"
    print(f"wrote {pick}: {again}")
    return 0
