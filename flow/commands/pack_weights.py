"""``tconv pack-weights``: a weight set for a runtime-weights design, as its w_axis beats."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def register(sub) -> None:
    """Add the subcommand to ``tconv``'s subparsers."""
    p = sub.add_parser(
        "pack-weights", help="a weight set for a runtime-weights design (w_axis beats)",
        description="Quantize float weights (W.npz with 'kernel' and 'bias', as for generate) by the "
                    "design's formats, or take codes ('kernel_codes', 'bias_codes'), and write them as "
                    "the design's w_axis beats (manifest 'weights_stream'): W.hex has one beat a line, "
                    "hexadecimal, most significant digit first; W.npy holds the codes field by field "
                    "(beats, lanes). Send the beats in order with tlast on the last.")
    p.add_argument("design", metavar="OUT/", help="folder written by tconv generate --runtime-weights")
    p.add_argument("--weights", required=True, metavar="W.npz",
                   help="float 'kernel' (kernel_size, filters, in_channels) and 'bias' (filters,), or integer "
                        "'kernel_codes' and 'bias_codes' in the design's formats")
    p.add_argument("-o", "--output", required=True, metavar="W.hex|W.npy", help="file to write")
    p.set_defaults(func=run)


def load_set(design, path) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """``(kernel_codes, bias_codes, warning)`` of a weights file for ``design``: codes as given,
    or floats quantized by the design's formats (``warning``: what saturated, as generate says)."""
    from ..files import load_weights, np_load
    from ..report import quantization_warning

    cfg = design.layer.config
    npz = np_load(Path(path), ".npz")
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: holds a single array (.npy), not an .npz archive with 'kernel' and 'bias' "
                         "(or 'kernel_codes' and 'bias_codes')")
    try:
        with npz:
            names = set(npz.files)
            kc = np.asarray(npz["kernel_codes"]) if "kernel_codes" in names else None
            bc = np.asarray(npz["bias_codes"]) if cfg.use_bias and "bias_codes" in names else None
    except Exception as err:  # a damaged member: zip, zlib or .npy header errors of any kind
        raise ValueError(f"{path}: not a readable .npz file ({type(err).__name__}: {err})") from None
    if kc is not None:
        if cfg.use_bias and bc is None:
            raise ValueError(f"{path}: has kernel_codes but no 'bias_codes' of shape ({cfg.filters},) (use_bias "
                             "is true)")
        return kc, bc, None
    kernel, bias = load_weights(path, cfg)
    layer = design.quantize_weights(kernel, bias)
    return layer.kernel_codes, layer.bias_codes if cfg.use_bias else None, quantization_warning(layer)


def run(args: argparse.Namespace) -> int:
    from tconv.hw.files import write_atomic
    from tconv.hw.weight_stream import hex_text, set_fields

    from .simulate import _load_design

    out = Path(args.output)
    if out.suffix not in (".hex", ".npy"):
        raise ValueError(f"-o {out}: must end in .hex (beats) or .npy (codes)")
    design = _load_design(args.design)
    layout = design.weights_layout()
    kc, bc, warning = load_set(design, args.weights)
    try:
        beats = design.pack_weights(kc, bc)
    except ValueError as err:
        raise ValueError(f"{args.weights}: {err}") from None
    if out.suffix == ".hex":
        write_atomic(out, hex_text(beats, layout.beat_width))
    else:
        import io

        buf = io.BytesIO()
        np.save(buf, set_fields(design.layer, layout, beats))
        write_atomic(out, buf.getvalue())
    print(f"wrote {out}: {layout.beats} beats of {layout.beat_width} bits "
          f"({layout.weight_beats} weight, {layout.bias_beats} bias)")
    if warning:
        print(f"tconv: warning: {warning}", file=sys.stderr)
    return 0
