"""``tconv bench --only weights``: runtime weights against ROM weights, in one run.

Utilization: each benchmark layer as a ROM design and as a runtime-weights design, a
train of :data:`TRAIN_FRAMES` frames back to back (source and sink never stalling),
and on the runtime design a weight set loaded from the middle of the second frame on
(w_axis never stalling); utilization = useful MACs of the train / (PEs x cycles from
the first input to the last output handshake). FPGA: the FPGA layer at 64 PEs, ROM and
runtime, placed and routed as ``tconv synth`` does (the runtime design's weight and bias
memories have two banks: twice the words, so more block RAM only where the deeper memory
needs more blocks; keras-doc's 192-word weight memory becomes 512 words, still one
DP16KD row of 512 x 36).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["TRAIN_FRAMES", "bench_weights", "WEIGHTS_COLS", "WEIGHTS_FPGA_COLS"]

TRAIN_FRAMES = 4

WEIGHTS_COLS = [("name", "layer"), ("pe_count", "PEs"), ("L", "L"), ("frames", "frames"),
                ("rom_cycles", "ROM cycles"), ("rom_utilization", "ROM utilization"),
                ("runtime_cycles", "runtime cycles (load during frame 2)"), ("runtime_utilization", "runtime utilization"),
                ("set_used_from", "set used from frame"), ("bit_exact", "bit-exact")]
WEIGHTS_FPGA_COLS = [("weights", "weights"), ("pe_count", "PEs"), ("speed", "speed"), ("fmax_mhz", "Fmax MHz"),
                     ("lut4", "LUT4"), ("ff", "FF"), ("mult18", "MULT18X18D"), ("ebr", "EBR")]


def _train(out: Path, simulator: str, length: int, pe_count: int, load: bool) -> dict:
    from tconv.sim.design import GeneratedDesign
    from tconv.sim.runner import simulate

    design = GeneratedDesign.load(out)
    lengths = [length] * TRAIN_FRAMES
    sets = None
    if load:
        q, rng = design.layer, np.random.default_rng(1)
        kc = rng.integers(q.weight_format.min_code, q.weight_format.max_code, q.kernel_codes.shape, endpoint=True)
        bc = q.bias_codes[::-1].copy() if q.config.use_bias else None
        sets = [(design.pack_weights(kc, bc), length + length // 2)]
    res = simulate(out, simulator, lengths=lengths, seed=1, weight_sets=sets)
    span = res.extra["train_cycles"]
    macs = sum(design.layer.config.useful_macs(n) for n in lengths)
    used = res.extra.get("weight_sets_used") or []
    return {"cycles": span, "utilization": round(macs / (pe_count * span), 4) if span else None,
            "passed": res.passed, "set_used_from": used.index(0) + 1 if 0 in used else None}


def bench_weights(work: Path, *, simulator: str, speeds, seed: int, log, pe_count: int = 64,
                  layers=None, fpga: bool = True) -> dict:
    """``{"utilization": rows, "fpga": rows}``: see the module docstring."""
    from tconv.hw.generate import generate

    from .bench import BENCH_LAYERS, FPGA_LAYER, _config, bench_layer
    from .synth import synthesize

    rows, fpga_rows = [], []
    for name in layers or BENCH_LAYERS:
        _, length = _config(name)
        log(f"[weights] {name}: ROM and runtime designs, {TRAIN_FRAMES} frames of {length} steps on {simulator}")
        runs = {}
        for kind in ("rom", "runtime"):
            out = work / f"weights-{name}-{kind}-{pe_count}"
            generate(bench_layer(name), out, pe_count=pe_count, runtime_weights=kind == "runtime")
            runs[kind] = _train(out, simulator, length, pe_count, load=kind == "runtime")
        rows.append({"name": name, "pe_count": pe_count, "L": length, "frames": TRAIN_FRAMES,
                     "rom_cycles": runs["rom"]["cycles"], "rom_utilization": runs["rom"]["utilization"],
                     "runtime_cycles": runs["runtime"]["cycles"],
                     "runtime_utilization": runs["runtime"]["utilization"],
                     "set_used_from": runs["runtime"]["set_used_from"],
                     "bit_exact": runs["rom"]["passed"] and runs["runtime"]["passed"]})
    if fpga:
        for kind in ("rom", "runtime"):
            out = work / f"weights-{FPGA_LAYER}-{kind}-{pe_count}"
            if not (out / "manifest.json").is_file():
                generate(bench_layer(FPGA_LAYER), out, pe_count=pe_count, runtime_weights=kind == "runtime")
            for r in synthesize(out, speeds=speeds, seed=seed, log=lambda msg, k=kind: log(f"[weights] {k}: {msg}")):
                fpga_rows.append({"layer": FPGA_LAYER, "weights": kind, "pe_count": pe_count, "speed": r.speed,
                                  "fmax_mhz": r.fmax_mhz, "lut4": r.lut4, "ff": r.ff, "mult18": r.mult18,
                                  "ebr": r.ebr, "seed": seed})
    return {"utilization": rows, "fpga": fpga_rows}
