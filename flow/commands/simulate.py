"""``tconv simulate``: a generated design on Icarus or Verilator against the model."""

from __future__ import annotations

import argparse
import sys
import zipfile

import numpy as np


def register(sub) -> None:
    """Add the subcommand to ``tconv``'s subparsers."""
    p = sub.add_parser(
        "simulate", help="run a generated design on Icarus or Verilator and compare with the model",
        description="Run of OUT/'s Verilog (compiled testbench, or --engine cocotb): frames go in on s_axis, "
                    "every m_axis word is compared "
                    "with the bit-exact model. Exit status 0 only when all match. Input: --input, else "
                    "--frames/--length random frames, else OUT/test_vectors.npz.")
    p.add_argument("design", metavar="OUT/", help="folder written by tconv generate")
    p.add_argument("--simulator", choices=["icarus", "verilator"], default="icarus",
                   help="default icarus")
    p.add_argument("--engine", choices=["compiled", "cocotb"], default="compiled",
                   help="testbench: compiled (Verilog testbench, simulator speed; default) or cocotb "
                        "(sim/tb_layer.py, Python each cycle)")
    p.add_argument("--input", metavar="X.npy", help="frames (frames, length, in_channels): integer codes, "
                   "or floats to quantize with the input format")
    p.add_argument("--frames", type=int, help="random input: number of frames (default 3)")
    p.add_argument("--length", type=int, help="random input: steps per frame (default random 1-16)")
    p.add_argument("--seed", type=int, default=0, help="random input and back-pressure seed (default 0)")
    patterns = ["none", "random", "bursty", "toggle", "long"]
    p.add_argument("--source-pause", choices=patterns, default="none", help="s_axis_tvalid gaps (default none)")
    p.add_argument("--sink-pause", choices=patterns, default="none", help="m_axis_tready gaps (default none)")
    p.add_argument("--isolate-frames", action="store_true",
                   help="send each frame after the previous one has left, so every frame's cycle count "
                        "can be compared with the manifest's formula (default: back to back)")
    p.add_argument("--weights-file", action="append", metavar="W.hex",
                   help="runtime-weights design: a weight set (tconv pack-weights) to send on w_axis "
                        "(either engine); repeatable, sent in order")
    p.add_argument("--load-after-frames", action="append", type=int, metavar="N",
                   help="send the weight set of the same position once N frames were accepted (one value "
                        "for every set, or one per --weights-file; default 0). Each frame is checked "
                        "with the set the contract's rule gives; the report says which")
    p.add_argument("--weight-pause", choices=patterns, default="none", help="w_axis_tvalid gaps (default none)")
    p.add_argument("--waves", action="store_true", help="write a waveform (FST on Icarus, VCD on Verilator) "
                   "into the current folder, or to --wave-file")
    p.add_argument("--wave-file", metavar="PATH", help="where --waves writes the waveform (implies --waves)")
    p.add_argument("-v", "--verbose", action="store_true", help="show the simulator's output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=run)


#: Most input steps a run may ask for (random frames are made in memory first).
MAX_STEPS = 10_000_000


def _load_design(folder):
    """The design folder, checked as data (tconv.hw.folder): every way it can be broken is one
    ValueError naming the file and the key."""
    from tconv.sim.design import GeneratedDesign

    design = GeneratedDesign.load(folder)
    design.verilog  # noqa: B018 (checks every Verilog file now, before anything is built)
    design.waivers  # noqa: B018
    return design


def _sim_inputs(args, design):
    """Frames to simulate: --input X.npy, else --frames/--length random, else the shipped vectors."""
    if args.input:
        try:
            x = np.load(args.input, allow_pickle=False, mmap_mode="r")  # the shape is checked before reading
        except FileNotFoundError:
            raise ValueError(f"{args.input}: no such file") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise ValueError(f"{args.input}: not a readable .npy file ({err or type(err).__name__})") from None
        if not isinstance(x, np.ndarray):
            x.close()
            raise ValueError(f"{args.input}: an .npz archive; --input takes one array (.npy) of shape "
                             f"(frames, length, in_channels)")
        if x.dtype.kind not in "biuf":
            raise ValueError(f"{args.input}: must hold integer codes or real numbers, got dtype {x.dtype}")
        if x.ndim == 2:
            x = x[None]
        layer = design.layer
        if x.size > MAX_STEPS * layer.config.in_channels or (x.ndim == 3 and x.shape[0] * x.shape[1] > MAX_STEPS):
            raise ValueError(f"{args.input}: {x.shape} holds more than {MAX_STEPS} input steps; at most "
                             f"{MAX_STEPS} per run (split it into several runs)")
        if x.ndim != 3:
            raise ValueError(f"{args.input}: expected (frames, length, in_channels), got shape {x.shape}")
        if layer.config.data_format == "channels_first":
            x = x.transpose(0, 2, 1)
        if x.shape[2] != layer.config.in_channels:
            raise ValueError(f"{args.input}: {x.shape[2]} channels, the layer has in_channels="
                             f"{layer.config.in_channels}")
        # Integer arrays are codes already; floats are quantized by the input format.
        codes = x.astype(np.int64) if x.dtype.kind in "iu" else layer.input_format.quantize(x, name=args.input)
        return codes.reshape(-1, codes.shape[2]), [codes.shape[1]] * codes.shape[0]
    if args.frames is None and args.length is None:
        vec = design.files.test_vectors
        if vec is not None:
            try:
                with zipfile.ZipFile(vec) as zf:  # the size is checked before anything is decompressed
                    size = zf.getinfo("inputs.npy").file_size
                limit = MAX_STEPS * design.layer.config.in_channels * 8 + 4096
                if size > limit:
                    raise ValueError(f"inputs.npy unpacks to {size} bytes, more than {MAX_STEPS} steps "
                                     f"({limit} bytes)")
                with np.load(vec, allow_pickle=False) as v:
                    return v["inputs"], [int(n) for n in v["lengths"]]
            except Exception as err:  # random bytes, missing arrays, damaged members
                raise ValueError(f"{vec}: not a readable test vector file ({type(err).__name__}: {err}); "
                                 f"use --frames/--length or --input instead") from None
    steps = (args.frames or 3) * (args.length or 16)
    if steps > MAX_STEPS:
        raise ValueError(f"--frames {args.frames or 3} x --length {args.length or 16} asks for {steps} input steps; "
                         f"at most {MAX_STEPS} per run")
    rng = np.random.default_rng(args.seed)
    frames = args.frames or 3
    lengths = [args.length] * frames if args.length else [int(n) for n in rng.integers(1, 17, frames)]
    fmt = design.layer.input_format
    return rng.integers(fmt.min_code, fmt.max_code + 1, (sum(lengths), design.layer.config.in_channels)), lengths


def _weight_sets(args, design, lengths) -> list | None:
    """``[(beats, gate)]`` of --weights-file/--load-after-frames: gate = the input beats of the first N frames."""
    from tconv.hw.weight_stream import read_hex_set

    files, points = args.weights_file or [], args.load_after_frames or []
    if not files:
        if points:
            raise ValueError("--load-after-frames needs --weights-file")
        return None
    if not design.runtime_weights:
        raise ValueError(f"{args.design}: --weights-file needs a runtime-weights design (array.weights is 'rom'; "
                         "generate with --runtime-weights)")
    if len(points) not in (0, 1, len(files)):
        raise ValueError(f"--load-after-frames: give one value, or one per --weights-file ({len(files)}), "
                         f"got {len(points)}")
    points = points * len(files) if len(points) == 1 else (points or [0] * len(files))
    width = design.weights_layout().beat_width
    sets = []
    for path, n in zip(files, points):
        if not 0 <= n <= len(lengths):
            raise ValueError(f"--load-after-frames {n}: must be from 0 to the number of frames ({len(lengths)})")
        sets.append((read_hex_set(path, width), int(sum(lengths[:n]))))
    return sets


def run(args: argparse.Namespace) -> int:
    from tconv.sim.runner import simulate
    from tconv.sim.tools import SimulatorMissing

    design = _load_design(args.design)
    inputs, lengths = _sim_inputs(args, design)
    weight_sets = _weight_sets(args, design, lengths)
    if not args.quiet:
        print(f"simulating {design.top} on {args.simulator}: {len(lengths)} frame(s), "
              f"{sum(lengths)} input steps ...", file=sys.stderr)
    try:
        result = simulate(design.folder, args.simulator, lengths=lengths, inputs=inputs, seed=args.seed,
                          source_pause=args.source_pause, sink_pause=args.sink_pause,
                          waves=args.wave_file or args.waves, isolate_frames=args.isolate_frames,
                          verbose=args.verbose, engine=args.engine, weight_sets=weight_sets,
                          weight_pause=args.weight_pause)
    except SimulatorMissing as err:
        raise ValueError(str(err)) from None
    except RuntimeError as err:
        if "could not build" not in str(err):
            raise
        raise ValueError(str(err)) from None  # the folder's Verilog does not compile
    print(result.summary())
    return 0 if result.passed else 1
