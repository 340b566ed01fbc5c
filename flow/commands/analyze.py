"""``tconv analyze``: quantization error of the fixed-point layer against the float layer.

Two forms: ``CONFIG.json --weights W.npz`` (formats as given) or ``--keras
MODEL.keras --layer NAME`` (formats calibrated on ``--data``, the model's
inputs); ``--keras MODEL.keras --layers A,B,C`` analyzes a chain of layers
against its float sub-model (:mod:`tconv.flow.chain_report`). Both print a table and, with ``-o REPORT/``, write
``REPORT/report.json`` and PNG plots (:mod:`tconv.flow.report`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tconv.model.config import MAX_VALUES
from tconv.model.fixedpoint import MAX_WIDTH

from ..keras_model import add_keras_arguments

#: Widths the --keras form sweeps when --sweep is not given.
DEFAULT_KERAS_SWEEP = list(range(4, 17))
#: Formats --vary may name (bias only for a layer with one), and those it varies by default.
VARY_STAGES = ("input", "weight", "bias", "output")
DEFAULT_VARY = ("weight", "input", "output")


def register(sub) -> None:
    """Add the subcommand to ``tconv``'s subparsers."""
    p = sub.add_parser(
        "analyze", help="quantization error of the fixed-point layer against the float (Keras) layer",
        description="Run the float layer and the bit-accurate fixed-point model on the same input and "
                    "report max |error|, RMSE, SQNR, the analytic error bound, per-filter errors and "
                    "overflow counts per stage; with -o also report.json and PNG plots. The layer comes "
                    "from CONFIG.json and --weights, or from a saved Keras model (--keras, --layer) with "
                    "its formats calibrated on --data.")
    p.add_argument("config", nargs="?", metavar="CONFIG.json", help="layer, formats (and array) as in design.md")
    p.add_argument("--weights", metavar="W.npz",
                   help="float 'kernel' (kernel_size, filters, in_channels) and 'bias' (filters,)")
    p.add_argument("--data", metavar="X.npy",
                   help="with CONFIG.json: float layer input (batch, length, in_channels), random over the "
                        "input format's range if omitted; with --keras: the MODEL's inputs, run through the "
                        "model up to the layer, a standard-normal batch of the layer's inputs if omitted")
    p.add_argument("--batch", type=int, default=4, help="random input: sequences (default 4)")
    p.add_argument("--length", type=int, default=32, help="random input: steps per sequence (default 32)")
    p.add_argument("--seed", type=int, default=0, help="random input: seed (default 0)")
    p.add_argument("--sweep", metavar="LO:HI",
                   help=f"also sweep format widths, e.g. 4:16 or 6,8,12, from 1 to {MAX_WIDTH} bits "
                        f"(default with --keras: 4:16)")
    p.add_argument("--no-sweep", action="store_true", help="with --keras: no bit-width sweep")
    p.add_argument("--vary", metavar="STAGES",
                   help=f"formats the sweep varies, comma separated, of {', '.join(VARY_STAGES)} "
                        f"(default {','.join(DEFAULT_VARY)})")
    p.add_argument("-o", "--output", metavar="REPORT/", help="write REPORT/report.json and the plots")
    p.add_argument("--no-plots", action="store_true", help="with -o: only report.json")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_keras_arguments(p, analyze=True)
    p.set_defaults(func=run)


def _widths(text: str) -> list[int]:
    """``--sweep``: ``4:16`` (inclusive range) or ``4,6,8``, each width from 1 to MAX_WIDTH."""
    try:
        if ":" in text:
            lo, hi = (int(v) for v in text.split(":"))
            ends = [lo, hi]
        else:
            ends = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--sweep expects LO:HI or a comma list of integers, e.g. 4:16, got {text!r}") from None
    # Checked before any range is made: --sweep 4:10**9 must not build a billion widths.
    if min(ends) < 1 or max(ends) > MAX_WIDTH or (":" in text and ends[0] > ends[1]):
        raise ValueError(f"--sweep {text}: widths must run from 1 to {MAX_WIDTH} bits (the widest format the "
                         f"fixed-point model supports), low to high")
    return list(range(ends[0], ends[1] + 1)) if ":" in text else list(dict.fromkeys(ends))


def _vary(args) -> tuple[str, ...]:
    """``--vary``: stage names, each one of VARY_STAGES (DEFAULT_VARY when not given)."""
    if args.vary is None:
        return DEFAULT_VARY
    stages = tuple(v.strip() for v in args.vary.split(","))
    bad = [v for v in stages if v not in VARY_STAGES]
    if bad:
        raise ValueError(f"--vary {args.vary}: unknown stage(s) {', '.join(map(repr, bad))}; the stages are "
                         f"{', '.join(VARY_STAGES)} (bias only for a layer with one)")
    return stages


def _check_options(args, form: str) -> tuple[tuple[str, ...], list[int] | None]:
    """Refuse bad --sweep, --vary, --batch and --length before anything is loaded.

    Returns the stages to vary and the --sweep widths (None without --sweep).
    """
    widths = _widths(args.sweep) if args.sweep is not None else None
    vary = _vary(args)
    sweeping = widths is not None or (form == "keras" and not args.no_sweep)
    if args.vary is not None and not sweeping:
        raise ValueError("--vary only applies to a bit-width sweep: add --sweep LO:HI"
                         + (" (or drop --no-sweep)" if form == "keras" else ""))
    # Random input (and --keras' default calibration batch) of --batch x --length steps
    # holds at least that many values; the layer's own limits follow once it is loaded.
    if args.batch * args.length > MAX_VALUES:
        raise ValueError(f"--batch {args.batch} x --length {args.length} = {args.batch * args.length} steps, "
                         f"more than tconv allows (batch x length x channels <= {MAX_VALUES} = 2**26 values, "
                         f"512 MiB of float64)")
    return vary, widths


def _from_config(args, widths):
    from ..files import load_config, load_data, load_weights

    config_file = load_config(args.config)
    layer = config_file.quantized(*load_weights(args.weights, config_file.config))
    if args.data:
        x = load_data(args.data, layer.config)
    else:
        from tconv.model import random_input
        layer.config.check_data_limits(args.batch, args.length, what=f"--batch {args.batch} x --length {args.length}")
        x = random_input(layer, batch=args.batch, length=args.length, seed=args.seed)
    data = str(args.data) if args.data else f"random ({args.batch}x{args.length}, seed {args.seed})"
    source = {"config": str(args.config), "weights": str(args.weights), "data": data,
              "measured_on": f"{data}, layer inputs {tuple(x.shape)}"}
    return layer, x, None, source, widths


def _from_keras(args, widths):
    from ..keras_model import load_keras_layer, load_test_inputs, parse_formats

    imported = load_keras_layer(args.keras, args.layer, data_path=args.data, width=args.width,
                                formats=parse_formats(args.formats, args.format), batch=args.batch,
                                length=args.length, seed=args.seed)
    x = imported.inputs
    data = args.data or "standard-normal layer inputs"
    measured = f"the calibration data ({data})"
    if args.test_data:
        x = load_test_inputs(imported, args.test_data)
        data = args.test_data
        measured = f"the test data {data} (calibrated on {args.data or 'standard-normal layer inputs'})"
    source = {"keras": str(args.keras), "layer": imported.name, "calibration_data": args.data,
              "data": str(data), "layer_input_shape": list(x.shape),
              "measured_on": f"{measured}, layer inputs {tuple(x.shape)}"}
    widths = None if args.no_sweep else (widths or DEFAULT_KERAS_SWEEP)
    return imported.layer, x, imported.calibration, source, widths


def run(args: argparse.Namespace) -> int:
    from ..keras_model import check_form
    from ..report import build_report, quantization_warning, write_report

    form = check_form(args, "analyze")
    if form == "keras" and args.layers:
        return _run_chain(args)
    vary, widths = _check_options(args, form)
    try:
        layer, x, calibration, source, widths = (_from_keras if form == "keras" else _from_config)(args, widths)
        report = build_report(layer, x, sweep_widths=widths, vary=vary, progress=not args.quiet,
                              calibration=calibration, source=source)
    except MemoryError:
        raise ValueError("out of memory analyzing this layer on this data: use less data (--data, --batch, "
                         "--length) or a smaller layer") from None
    written = write_report(report, args.output, plots=not args.no_plots) if args.output else []
    if calibration is not None:
        from ..keras_model import note_default_data
        note_default_data(calibration)
    warning = quantization_warning(layer, calibration)
    if warning:  # even under -q: the numbers below are computed with these clipped values
        print(f"tconv: warning: {warning}", file=sys.stderr)

    if args.json:
        result = report.to_dict()
        if written:
            result["files"] = [str(p) for p in written]
        print(json.dumps(result, indent=2))
        return 0
    if calibration is not None:
        print(f"{source['keras']}: layer {source['layer']!r}")
        print(calibration, end="\n\n")
    print(f"error measured on {source['measured_on']}")
    print(report.text())
    if written:
        print(f"\nwrote {', '.join(str(p) for p in written)}" if len(written) == 1 else
              f"\nwrote {Path(args.output)}/: {', '.join(p.name for p in written)}")
    return 0


def _run_chain(args: argparse.Namespace) -> int:
    """``--keras MODEL --layers A,B,C``: the chain's error against the float sub-model, end to end and per stage."""
    from tconv.model.chain_analysis import analyze_chain

    from ..chain_report import chain_report_dict, write_chain_report
    from ..keras_chain import load_keras_chain
    from ..keras_model import note_default_data, parse_formats

    if args.sweep is not None or args.vary is not None:
        raise ValueError("--sweep and --vary apply to one layer (--layer); a chain (--layers) is analyzed at its "
                         "calibrated formats")
    imported = load_keras_chain(args.keras, args.layers, data_path=args.data, width=args.width,
                                formats=parse_formats(args.formats, args.format), batch=args.batch,
                                length=args.length, seed=args.seed)
    x, data = imported.inputs[0], args.data or "standard-normal inputs of the first layer"
    if args.test_data:
        from ..keras_model import _batched, load_model_inputs
        x = imported.layer_inputs(_batched(imported.model, load_model_inputs(args.test_data)))
        data = args.test_data
    report = analyze_chain(imported.chain, x)
    source = {"keras": str(args.keras), "layers": imported.names, "skipped": [n for n, _ in imported.skipped],
              "calibration_data": args.data, "data": str(data)}
    written = (write_chain_report(report, imported.calibrations, source, args.output, plots=not args.no_plots)
               if args.output else [])
    note_default_data(imported.calibrations[0])
    if args.json:
        result = chain_report_dict(report, imported.calibrations, source)
        if written:
            result["files"] = [str(p) for p in written]
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.keras}: chain {' -> '.join(imported.names)}")
    print(report)
    if written:
        print(f"\nwrote {Path(args.output)}/: {', '.join(p.name for p in written)}")
    return 0
