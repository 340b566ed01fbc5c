"""``tconv bench``'s ``real`` section: layers of public models, not powers of two.

The layers of three public models (docs/benchmarks.md names them) at the bench's PE
count: each is generated in a child process (wall time and the child's own peak
memory, read with ``os.wait4``, so the bench's other work does not count), then one
frame of the model's own sequence length is simulated (source and sink never
stalling) and its MAC utilization measured, beside the steady-state utilization the
schedule gives for long frames and, below the target, the schedule's own reason and
the pe_count that would reach it (`Schedule.utilization_note`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tconv.model import LayerConfig, random_layer

__all__ = ["REAL_LAYERS", "bench_real", "generate_measured", "real_layer"]

#: name: (in_channels, filters, kernel_size, strides, frame length). All ``same`` padding,
#: as in the models: the Keras timeseries anomaly-detection autoencoder's output layer
#: (288 steps), the Keras MelGAN generator's four upsampling layers (a 32-step mel
#: excerpt and what it becomes), a 1-D U-Net decoder for source separation (64 steps).
REAL_LAYERS = {
    "unet-up1": (160, 160, 5, 2, 64),
    "unet-up2": (160, 80, 5, 2, 64),
    "unet-up3": (80, 40, 5, 2, 64),
    "unet-up4": (40, 20, 5, 2, 64),
    "autoencoder-out": (32, 1, 7, 1, 288),
    "melgan-up1": (512, 256, 16, 8, 32),
    "melgan-up2": (256, 128, 16, 8, 64),
    "melgan-up3": (128, 64, 16, 2, 256),
    "melgan-up4": (64, 32, 16, 2, 512),
}


def real_layer(name: str, seed: int = 0):
    """Layer ``name`` of `REAL_LAYERS` in the bench's 8-bit formats, random weights."""
    from .bench import BENCH_FORMATS

    cin, filters, kernel, strides, _ = REAL_LAYERS[name]
    cfg = LayerConfig(filters=filters, kernel_size=kernel, strides=strides, padding="same", in_channels=cin)
    return random_layer(cfg, BENCH_FORMATS, seed=seed, kernel_range=(-1.0, 1.0), bias_range=(-4.0, 4.0))


_CHILD = """
import json, sys, time
from tconv.flow.bench_real import real_layer
from tconv.hw.generate import generate
started = time.perf_counter()
manifest = generate(real_layer(sys.argv[1]), sys.argv[2], pe_count=int(sys.argv[3]))
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def bench_real(work: Path, *, simulator: str, pe_count: int, log, names=None) -> list[dict]:
    """One row per layer of `REAL_LAYERS` (or ``names``): mapping, generate time and memory,
    one frame's cycles and MAC utilization in RTL simulation, steady-state utilization."""
    from tconv.hw.schedule import UTILIZATION_TARGET, Schedule
    from tconv.sim.runner import simulate

    rows = []
    for name in names or REAL_LAYERS:
        cin, filters, kernel, strides, length = REAL_LAYERS[name]
        out = work / f"real-{name}-{pe_count}"
        log(f"[real] {name}: generate {pe_count} PEs")
        gen = generate_measured(name, out, pe_count)
        log(f"[real] {name}: generated in {gen['seconds']} s ({gen['peak_mb']} MB); one frame of {length} "
            f"steps on {simulator}")
        res = simulate(out, simulator, lengths=[length], seed=1)
        sch = Schedule.plan(real_layer(name).config, pe_count)
        util = res.first_frame_macs / (pe_count * res.cycles[0]) if res.cycles[0] else None
        rows.append({
            "name": name, "shape": f"{cin}->{filters} k{kernel} s{strides}", "pe_count": pe_count, "L": length,
            "mapping": f"{sch.lanes}x{sch.filter_groups}x{sch.tap_groups}, {sch.chunks} chunk(s)",
            "cycles": res.cycles[0], "formula_cycles": res.formula_cycles[0],
            "utilization": round(util, 4) if util is not None else None,
            "steady_utilization": round(sch.steady_utilization(), 4), "bit_exact": res.passed,
            "generate_s": gen["seconds"], "generate_peak_mb": gen["peak_mb"],
            "note": sch.utilization_note(UTILIZATION_TARGET) or "",
        })
    return rows


def generate_measured(name: str, out: Path, pe_count: int) -> dict:
    """Generate layer ``name`` into ``out`` in a child process: ``{"seconds", "peak_mb"}``, the
    generate call's wall time and the child's peak resident memory (imports included), from
    ``os.wait4`` so that nothing else the bench ran counts."""
    started = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen([sys.executable, "-c", _CHILD, name, str(out), str(pe_count)],
                                stdout=subprocess.PIPE, stderr=err, text=True)
        stdout = proc.stdout.read()
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().strip()
    if proc.returncode != 0:
        last = stderr.splitlines()[-1] if stderr else f"exit status {proc.returncode}"
        raise RuntimeError(f"generate {name} failed: {last}")
    lines = stdout.strip().splitlines()
    seconds = json.loads(lines[-1])["seconds"] if lines else time.perf_counter() - started
    # ru_maxrss is in kilobytes on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return {"seconds": round(seconds, 2), "peak_mb": round(usage.ru_maxrss * scale / 2**20, 1)}
