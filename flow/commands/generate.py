"""``tconv generate``: Verilog, manifest, weight codes and test vectors for a layer.

Two forms: ``CONFIG.json --weights W.npz`` or ``--keras MODEL.keras --layer
NAME [--data X.npy] [--width 8]`` (formats calibrated, then recorded in the
manifest's ``"formats"``). Both write the same folder. ``--keras MODEL.keras
--layers A,B,C`` makes one design of consecutive layers (a chain,
:mod:`tconv.hw.chain_generate`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..keras_model import add_keras_arguments


def register(sub) -> None:
    """Add the subcommand to ``tconv``'s subparsers."""
    p = sub.add_parser(
        "generate", help="Verilog, manifest, weight codes and test vectors for a layer",
        description="Quantize the weights, elaborate the systolic array and write OUT/<top>.v "
                    "(the layer and its multiplier cell), OUT/ecp5/<top>_mul.v (that cell as an ECP5 "
                    "MULT18X18D, for tconv synth), "
                    "OUT/manifest.json, OUT/<top>.vlt (Verilator waivers), OUT/weights.npz, "
                    "OUT/test_vectors.npz and, for a table activation (sigmoid, tanh, gelu, ...), "
                    "OUT/activation_table.json. The layer comes from CONFIG.json and --weights, or from a saved "
                    "Keras model (--keras, --layer) with its formats calibrated on --data; --keras MODEL "
                    "--layers A,B,C makes one design of consecutive layers (a chain: stage to stage "
                    "streams, --pe-count the budget of the whole chain, the manifest's \"stages\" one object "
                    "per layer). Nothing is written when anything is wrong.")
    p.add_argument("config", nargs="?", metavar="CONFIG.json", help="layer, formats and array as in design.md")
    p.add_argument("--weights", metavar="W.npz",
                   help="float 'kernel' (kernel_size, filters, in_channels) and 'bias' (filters,)")
    p.add_argument("--data", metavar="X.npy", help="with --keras: the model's inputs for calibration (default: "
                   "a standard-normal batch of the layer's inputs)")
    p.add_argument("-o", "--output", required=True, metavar="OUT/", help="design folder to write")
    p.add_argument("--top", help="Verilog module name (default tconv_conv1d_transpose)")
    p.add_argument("--runtime-weights", action="store_true",
                   help="weights and bias in RAMs loadable at run time over w_axis (as \"array\": "
                        "{\"weights\": \"runtime\"}); the given weights are the power-up set")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    add_keras_arguments(p, analyze=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tconv.hw.generate import generate
    from tconv.hw.postprocess import LUT_TABLE_ENTRIES

    from ..files import load_config, load_weights
    from ..keras_model import check_form, load_keras_layer, note_default_data, parse_formats
    from ..report import quantization_warning

    form = check_form(args, "generate")
    calibration = None
    if form == "keras" and args.layers:
        return _run_chain(args)
    if form == "keras":
        imported = load_keras_layer(args.keras, args.layer, data_path=args.data, width=args.width,
                                    formats=parse_formats(args.formats, args.format))
        layer, pe_count, calibration = imported.layer, args.pe_count, imported.calibration
        runtime = args.runtime_weights
        if not args.quiet:
            print(f"{args.keras}: layer {imported.name!r}")
            print(calibration, end="\n\n")
    else:
        if args.data:
            raise ValueError("--data only applies with --keras MODEL.keras (CONFIG.json gives the formats)")
        config_file = load_config(args.config)
        layer = config_file.quantized(*load_weights(args.weights, config_file.config))
        pe_count = config_file.pe_count
        runtime = args.runtime_weights or config_file.runtime_weights
    manifest = generate(layer, args.output, pe_count=pe_count, top=args.top, runtime_weights=runtime)
    out = Path(args.output)
    arr, perf = manifest["array"], manifest["performance"]
    print(f"wrote {out / manifest['verilog'][0]} and {out / 'manifest.json'}")
    print(f"  top module        {manifest['top']}")
    print(f"  s_axis_tdata      {manifest['interface']['s_axis_tdata_width']} bits, "
          f"m_axis_tdata {manifest['interface']['m_axis_tdata_width']} bits")
    fmts = manifest["formats"]
    print(f"  formats           input {fmts['input']}, weight {fmts['weight']}"
          + (f", bias {fmts['bias']}" if fmts.get("bias") else "") + f", output {fmts['output']}")
    print(f"  accumulator       {fmts['accumulator']}")
    act = manifest["activation"]
    if act["kind"] == "table":
        where = "block RAM" if act["entries"] > LUT_TABLE_ENTRIES else "LUT ROM"
        print(f"  activation        {act['name']}: table of {act['entries']} x {act['entry_width']} bits ({where}, "
              f"input {act['input']['frac']} fractional bits), within {act['max_error_lsb']:.3f} output LSB "
              f"(bound {act['bound_lsb']:g}), {act['table']}")
    else:
        print(f"  activation        {act['name']} (exact)")
    print(f"  array             {arr['pe_count']} PEs, {perf['cycles_per_step']} cycles per input step")
    print(f"  cycles per frame  {perf['cycles_per_frame_formula']}")
    if runtime:
        iface = manifest["interface"]
        print(f"  runtime weights   w_axis_tdata {iface['w_axis_tdata_width']} bits, "
              f"{iface['w_axis_beats']} beats per set (tconv pack-weights)")
    if calibration is not None:
        note_default_data(calibration)
    warning = quantization_warning(layer, calibration)
    if warning:  # even under -q: the weights or calibration data overflowed their formats
        print(f"tconv: warning: {warning}", file=sys.stderr)
    return 0


def _run_chain(args: argparse.Namespace) -> int:
    """``--keras MODEL --layers A,B,C``: one design of the chain, the PE budget split over its stages."""
    from tconv.hw.chain_generate import generate_chain

    from ..keras_chain import load_keras_chain
    from ..keras_model import note_default_data, parse_formats
    from ..report import quantization_warning

    if getattr(args, "runtime_weights", False):
        raise ValueError("--runtime-weights does not apply to a chain (--layers): a chain's weights are baked in")
    imported = load_keras_chain(args.keras, args.layers, data_path=args.data, width=args.width,
                                formats=parse_formats(args.formats, args.format))
    chain = imported.chain
    if not args.quiet:
        skipped = ", ".join(f"{n} ({k})" for n, k in imported.skipped)
        print(f"{args.keras}: chain {' -> '.join(chain.names)}" + (f" (skipped: {skipped})" if skipped else ""))
        for name, cal in zip(chain.names, imported.calibrations):
            print(f"layer {name!r}: {cal}", end="\n\n")
    manifest = generate_chain(chain, args.output, pe_count=args.pe_count,
                              top=args.top or None)
    out = Path(args.output)
    print(f"wrote {out / manifest['verilog'][0]} and {out / 'manifest.json'}")
    print(f"  top module        {manifest['top']}")
    print(f"  s_axis_tdata      {manifest['interface']['s_axis_tdata_width']} bits, "
          f"m_axis_tdata {manifest['interface']['m_axis_tdata_width']} bits")
    for i, st in enumerate(manifest["stages"]):
        f = st["formats"]
        print(f"  stage {i} {st['name']:<10} input {f['input']}, weight {f['weight']}"
              + (f", bias {f['bias']}" if f.get("bias") else "") + f", output {f['output']}, "
              f"activation {st['activation']['name']}")
    print(chain_report(manifest))
    note_default_data(imported.calibrations[0])
    for name, st, cal in zip(chain.names, chain.stages, imported.calibrations):
        warning = quantization_warning(st, cal)
        if warning:
            print(f"tconv: warning: layer {name!r}: {warning}", file=sys.stderr)
    return 0


def chain_report(manifest: dict) -> str:
    """The PE split of a chain manifest: per stage PEs, cycles per own step and per chain input step."""
    lines = [f"  {'stage':<16} {'PEs':>5} {'built':>5} {'cycles/step':>11} {'steps/input':>11} "
             f"{'cycles/input':>12}"]
    for i, st in enumerate(manifest["stages"]):
        arr, perf = st["array"], st["performance"]
        mark = "  <- bottleneck" if perf["bottleneck"] else ""
        lines.append(f"  {i} {st['name']:<14} {arr['pe_count']:>5} {arr['multipliers_built']:>5} "
                     f"{perf['cycles_per_step']:>11} {perf['input_steps_per_chain_step']:>11} "
                     f"{perf['cycles_per_chain_step']:>12}{mark}")
    arr, perf = manifest["array"], manifest["performance"]
    lines.append(f"  chain: {arr['pe_count']} of {arr['pe_budget']} PEs in arrays, {arr['multipliers_built']} "
                 f"multipliers built; {perf['cycles_per_chain_step']} cycles per input step (bottleneck: "
                 f"{perf['bottleneck_layer']}); MAC utilization {100 * perf['steady_state_mac_utilization']:.1f}% "
                 f"on long frames")
    return "\n".join(lines)
