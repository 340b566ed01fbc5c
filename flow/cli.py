"""The ``tconv`` command line.

Each subcommand lives in its own function; bad input of any kind ends in one
line on stderr (``tconv: error: ...``) and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

__all__ = ["main"]


def _version() -> str:
    try:
        return version("tconv")
    except PackageNotFoundError:  # running from a source tree without install
        return "unknown"


def _widths(text: str) -> list[int]:
    """``4:16`` (inclusive range) or ``4,6,8``."""
    try:
        if ":" in text:
            lo, hi = (int(v) for v in text.split(":"))
            widths = list(range(lo, hi + 1))
        else:
            widths = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO:HI or a comma list of integers, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive integers, got {text!r}")
    return widths


def cmd_analyze(args: argparse.Namespace) -> int:
    from tconv.model import analyze, sweep

    from .files import build_layer, load_config, load_data, load_weights, write_json_atomic

    design = load_config(args.config)
    kernel, bias = load_weights(args.weights, design)
    layer = build_layer(design, kernel, bias)
    x = load_data(args.data, design) if args.data else None
    report = analyze(layer, x, batch=args.batch, length=args.length, seed=args.seed)
    rows = None
    if args.sweep:
        vary = tuple(s.strip() for s in args.vary.split(","))
        rows = sweep(layer, x, widths=args.sweep, vary=vary, progress=not args.quiet,
                     batch=args.batch, length=args.length, seed=args.seed)

    result = report.to_dict()
    result["formats"] = {k: str(v) for k, v in design.formats.items()}
    result["formats"]["accumulator"] = str(layer.accumulator_format)
    if rows is not None:
        result["sweep"] = [{**r, "sqnr_db": r["sqnr_db"] if np.isfinite(r["sqnr_db"]) else "inf"} for r in rows]
    if args.output:
        write_json_atomic(Path(args.output) / "report.json", result)

    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(report)
    print(f"  accumulator       {layer.accumulator_format}")
    if rows is not None:
        print("\nbit-width sweep (one format varied, the others as configured)")
        print(f"  {'stage':<7} {'format':<22} {'SQNR dB':>8} {'max |err|':>11} {'bound':>11}")
        for r in rows:
            print(f"  {r['stage']:<7} {r['format']:<22} {r['sqnr_db']:>8.2f} {r['max_abs_error']:>11.4g} "
                  f"{r['bound']:>11.4g}")
    if args.output:
        print(f"\nwrote {Path(args.output) / 'report.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tconv",
        description="Keras Conv1DTranspose layers as bit-exact fixed-point FPGA hardware.")
    parser.add_argument("--version", action="version", version=f"tconv {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "analyze", help="quantization error of the fixed-point layer against the float (Keras) layer",
        description="Run the float layer and the bit-accurate fixed-point model on the same input and "
                    "report max |error|, RMSE, SQNR, the analytic error bound and overflow counts.")
    p.add_argument("config", metavar="CONFIG.json", help="layer, formats (and array) as in design.md")
    p.add_argument("--weights", required=True, metavar="W.npz",
                   help="float 'kernel' (kernel_size, filters, in_channels) and 'bias' (filters,)")
    p.add_argument("--data", metavar="X.npy", help="float input (batch, length, in_channels); "
                   "random data over the input format's range if omitted")
    p.add_argument("--batch", type=int, default=4, help="random input: sequences (default 4)")
    p.add_argument("--length", type=int, default=32, help="random input: steps per sequence (default 32)")
    p.add_argument("--seed", type=int, default=0, help="random input: seed (default 0)")
    p.add_argument("--sweep", type=_widths, metavar="LO:HI", help="also sweep format widths, e.g. 4:16")
    p.add_argument("--vary", default="weight,input,output",
                   help="formats the sweep varies, comma separated (default weight,input,output)")
    p.add_argument("-o", "--output", metavar="REPORT/", help="write REPORT/report.json")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_analyze)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("batch", "length"):
        if getattr(args, name, 1) < 1:
            parser.error(f"--{name} must be at least 1")
    try:
        return args.func(args)
    except (ValueError, OSError) as err:
        print(f"tconv: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tconv: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
