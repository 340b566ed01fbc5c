"""``tconv bench``: the accelerator against its limits and its peers, in one run.

Sections (docs/contract.md, "Performance"):

``layers``  MAC utilization of the five benchmark layers, cycles measured in RTL
            simulation (one frame, source and sink never stalling; useful MACs are
            the products that land inside the cropped output), beside the
            utilization a zero-insertion design and a stride-phase (sub-kernel)
            design would reach on the same layer; and a chain row (:data:`BENCH_CHAIN`,
            three layers as one design, the PE budget split over them, utilization over
            the multipliers built).
``real``    the same on layers of public models whose channel, filter and tap counts
            are not powers of two (`tconv.flow.bench_real`), with generate's time and
            peak memory and the schedule's steady-state utilization.
``fpga``    Fmax and resources on ECP5-85F (speed grades 6 and 8) for 16, 64 and
            128 PEs, through `tconv.flow.synth`: a plain synth_ecp5 + nextpnr-ecp5 run
            over the design's ``verilog_ecp5`` and, beside it, over its portable
            ``verilog`` (what Yosys' own inference makes of it).
``model``   the bit-exact model against Keras' float layer (jax, CPU, warmed up)
            and against apytypes doing the same fixed-point computation.
``sim``     simulated clock cycles per second on Verilator and Icarus, of the compiled
            and the cocotb testbench engine on the same design (vocoder-up, 64 PEs).
``weights`` runtime against ROM weights: utilization of a frame train with a weight set
            loaded in its middle, Fmax and resources (`tconv.flow.bench_weights`).

Timings are taken in one process, so their ratios are comparable; absolute
seconds depend on the machine and are reported, not asserted.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import time
from pathlib import Path

import numpy as np

from tconv.model import Conv1DTransposeQ, LayerConfig, random_layer

__all__ = ["BENCH_CHAIN", "BENCH_LAYERS", "BENCH_FORMATS", "bench_chain", "SECTIONS", "SIM_RUNS", "bench_layer", "run_bench", "to_markdown", "to_text",
           "zero_insertion_utilization", "subkernel_utilization", "apytypes_forward"]

#: docs/contract.md's benchmark layers (channels_last, batch 1).
BENCH_LAYERS = {
    "keras-doc": dict(L=10, in_channels=128, filters=32, kernel_size=3, strides=2, dilation_rate=1, padding="valid"),
    "vocoder-up": dict(L=256, in_channels=64, filters=32, kernel_size=16, strides=8, dilation_rate=1, padding="same"),
    "dilated": dict(L=128, in_channels=16, filters=16, kernel_size=3, strides=1, dilation_rate=4, padding="same"),
    "odd-stride": dict(L=64, in_channels=8, filters=8, kernel_size=5, strides=3, dilation_rate=1, padding="same"),
    "pointwise": dict(L=64, in_channels=32, filters=32, kernel_size=1, strides=1, dilation_rate=1, padding="valid"),
}
#: The default 8-bit configuration of docs/contract.md.
BENCH_FORMATS = dict(input="fixed<8,3,RND,SAT>", weight="fixed<8,1,RND,SAT>", bias="fixed<16,6>",
                     output="fixed<16,6,RND,SAT>")
SECTIONS = ("layers", "real", "fpga", "model", "sim", "activation", "weights")
FPGA_LAYER = "keras-doc"
#: The table activation the ``activation`` section measures on FPGA_LAYER at 64 PEs, side by
#: side with the same layer's linear form (with BENCH_FORMATS' 16-bit output its table is
#: block RAM).
TABLE_ACTIVATION = "tanh"


def _config(name: str, activation: str = "linear") -> tuple[LayerConfig, int]:
    spec = dict(BENCH_LAYERS[name])
    length = spec.pop("L")
    return LayerConfig(**spec, activation=activation), length


def bench_layer(name: str, seed: int = 0, activation: str = "linear") -> Conv1DTransposeQ:
    """Benchmark layer ``name`` in :data:`BENCH_FORMATS`, weights uniform in [-1, 1], bias in [-4, 4]."""
    cfg, _ = _config(name, activation)
    return random_layer(cfg, BENCH_FORMATS, seed=seed, kernel_range=(-1.0, 1.0), bias_range=(-4.0, 4.0))


def zero_insertion_utilization(cfg: LayerConfig, length: int) -> float:
    """Useful share of the MACs of a zero-insertion design: the input upsampled with
    ``strides - 1`` zeros and convolved densely with the dilated kernel, so each
    output position costs ``Keff`` taps (zeros included)."""
    return cfg.useful_pairs(length) / (cfg.output_length(length) * cfg.keff)


def subkernel_utilization(cfg: LayerConfig, length: int) -> float:
    """Useful share of the MACs of a stride-phase (sub-kernel) design: each output
    phase convolves the input with its sub-kernel, padded to ``ceil(kernel_size /
    strides)`` taps; dilation is an address stride, so no zero tap is computed."""
    return cfg.useful_pairs(length) / (cfg.output_length(length) * math.ceil(cfg.kernel_size / cfg.strides))


def bench_layers(work: Path, *, simulator: str, pe_count: int, log) -> list[dict]:
    from tconv.hw.generate import generate
    from tconv.sim.runner import simulate

    rows = []
    for name in BENCH_LAYERS:
        cfg, length = _config(name)
        log(f"[layers] {name}: generate {pe_count} PEs, simulate one frame of {length} steps on {simulator}")
        out = work / f"layer-{name}-{pe_count}"
        manifest = generate(bench_layer(name), out, pe_count=pe_count)
        res = simulate(out, simulator, lengths=[length], seed=1)
        macs = res.first_frame_macs
        cycles = res.cycles[0]
        rows.append({
            "name": name, "pe_count": pe_count, "L": length, "cycles": cycles,
            "formula_cycles": res.formula_cycles[0], "useful_macs": macs,
            "utilization": round(macs / (pe_count * cycles), 4) if cycles else None,
            "zero_insertion_utilization": round(zero_insertion_utilization(cfg, length), 4),
            "subkernel_utilization": round(subkernel_utilization(cfg, length), 4),
            "cycles_per_step": manifest["performance"]["cycles_per_step"], "bit_exact": res.passed,
        })
    rows.append(bench_chain_row(work, simulator=simulator, pe_count=pe_count, log=log))
    return rows


#: The chain row of the ``layers`` section: a three-stage decoder (x8 in all), each stage's output
#: format the next one's input format, the PE budget split over the stages (`tconv.hw.chain`).
BENCH_CHAIN = {"name": "decoder-chain", "L": 64, "stages": [
    dict(in_channels=32, filters=32, kernel_size=4, strides=2, padding="same", activation="relu"),
    dict(in_channels=32, filters=16, kernel_size=4, strides=2, padding="same", activation="relu"),
    dict(in_channels=16, filters=8, kernel_size=4, strides=2, padding="same")]}


def bench_chain(seed: int = 0):
    """:data:`BENCH_CHAIN` as a `tconv.model.chain.ChainQ` with random weights (8-bit operands
    between the stages, the last output in BENCH_FORMATS' output format)."""
    from tconv.model.chain import ChainQ

    stages, fin = [], BENCH_FORMATS["input"]
    for i, spec in enumerate(BENCH_CHAIN["stages"]):
        last = i == len(BENCH_CHAIN["stages"]) - 1
        fout = BENCH_FORMATS["output"] if last else "ufixed<8,3,RND,SAT>"
        stages.append(random_layer(LayerConfig(**spec), {**BENCH_FORMATS, "input": fin, "output": fout},
                                   seed=seed + i, kernel_range=(-0.25, 0.25), bias_range=(-1.0, 1.0)))
        fin = fout
    return ChainQ(stages, [f"up{i + 1}" for i in range(len(stages))])


def bench_chain_row(work: Path, *, simulator: str, pe_count: int, log) -> dict:
    """The chain row: one frame through the chain design, MAC utilization over the multipliers built."""
    from tconv.hw.chain_generate import generate_chain
    from tconv.sim.runner import simulate

    name, length = BENCH_CHAIN["name"], BENCH_CHAIN["L"]
    log(f"[layers] {name}: generate a {pe_count}-PE budget chain, simulate one frame of {length} steps on "
        f"{simulator}")
    out = work / f"chain-{name}-{pe_count}"
    manifest = generate_chain(bench_chain(), out, pe_count=pe_count)
    res = simulate(out, simulator, lengths=[length], seed=1)
    built, cycles = manifest["array"]["multipliers_built"], res.cycles[0]
    return {"name": name, "pe_count": built, "pe_budget": pe_count, "L": length, "cycles": cycles,
            "formula_cycles": res.formula_cycles[0], "useful_macs": res.first_frame_macs,
            "utilization": round(res.first_frame_macs / (built * cycles), 4) if cycles else None,
            "zero_insertion_utilization": None, "subkernel_utilization": None,
            "stage_pe_counts": manifest["array"]["stage_pe_counts"],
            "bottleneck": manifest["performance"]["bottleneck_layer"],
            "steady_utilization": manifest["performance"]["steady_state_mac_utilization"],
            "cycles_per_step": manifest["performance"]["cycles_per_chain_step"], "bit_exact": res.passed}


def bench_fpga(work: Path, *, pe_counts, speeds, seeds, log, sources=("ecp5", "portable")) -> list[dict]:
    """FPGA_LAYER at each PE count: place and route of each source list (`tconv.flow.synth`),
    one row per speed grade and nextpnr seed."""
    from tconv.hw.generate import generate

    from .synth import synthesize

    rows = []
    for pe in pe_counts:
        out = work / f"fpga-{FPGA_LAYER}-{pe}"
        generate(bench_layer(FPGA_LAYER), out, pe_count=pe)
        for src in sources:
            for r in synthesize(out, speeds=speeds, seeds=seeds, sources=src,
                                log=lambda msg, pe=pe, src=src: log(f"[fpga] {pe} PEs, {src}: {msg}")):
                rows.append({"device": r.device, "sources": src, "speed": r.speed, "pe_count": pe,
                             "layer": FPGA_LAYER, "fmax_mhz": r.fmax_mhz, "lut4": r.lut4, "ff": r.ff,
                             "mult18": r.mult18, "ebr": r.ebr, "seed": r.seed})
    return rows


def bench_activation(work: Path, *, simulator: str, speeds, seed: int, log, pe_count: int = 64) -> list[dict]:
    """FPGA_LAYER with TABLE_ACTIVATION and linear, side by side in one run: one frame's cycles
    and utilization in RTL simulation, and Fmax and resources per speed grade."""
    from tconv.hw.generate import generate
    from tconv.sim.runner import simulate

    from .synth import synthesize

    rows = []
    for activation in ("linear", TABLE_ACTIVATION):
        cfg, length = _config(FPGA_LAYER, activation)
        out = work / f"activation-{FPGA_LAYER}-{activation}-{pe_count}"
        log(f"[activation] {FPGA_LAYER} {activation}: generate {pe_count} PEs, simulate on {simulator}, synthesize")
        layer = bench_layer(FPGA_LAYER, activation=activation)
        generate(layer, out, pe_count=pe_count)
        res = simulate(out, simulator, lengths=[length], seed=1)
        cycles = res.cycles[0]
        base = {"layer": FPGA_LAYER, "activation": activation, "pe_count": pe_count,
                "table_entries": layer.activation_table.size if layer.activation_table else None,
                "cycles": cycles, "formula_cycles": res.formula_cycles[0],
                "utilization": round(res.first_frame_macs / (pe_count * cycles), 4) if cycles else None,
                "bit_exact": res.passed}
        for r in synthesize(out, speeds=speeds, seed=seed, log=lambda msg: log(f"[activation] {msg}")):
            rows.append({**base, "speed": r.speed, "fmax_mhz": r.fmax_mhz, "lut4": r.lut4, "ff": r.ff,
                         "mult18": r.mult18, "ebr": r.ebr, "seed": seed})
    return rows


def _best_time(fn, repeats: int) -> float:
    fn()  # warm-up: jax compiles, BLAS threads start
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def apytypes_forward(q: Conv1DTransposeQ, codes: np.ndarray):
    """The same fixed-point layer computed with apytypes' exact fixed-point arrays."""
    import apytypes as apy

    cfg = q.config
    xf, wf, of = q.input_format, q.weight_format, q.output_format
    n, length, cin = codes.shape
    # from_float of the dequantized codes is exact (every code is representable).
    x = apy.APyFixedArray.from_float(xf.dequantize(codes.reshape(n * length, cin)),
                                     int_bits=xf.integer, frac_bits=xf.frac)
    out_len = cfg.output_length(length)
    full = max((length - 1) * cfg.strides + cfg.keff, cfg.crop_left + out_len)
    acc = q.accumulator_format
    y = apy.zeros((n, full, cfg.filters), int_bits=acc.integer, frac_bits=acc.frac)
    for k in range(cfg.kernel_size):
        w = apy.APyFixedArray.from_float(wf.dequantize(q.kernel_codes[k].T), int_bits=wf.integer,
                                         frac_bits=wf.frac)
        part = (x @ w).reshape((n, length, cfg.filters)).cast(int_bits=acc.integer, frac_bits=acc.frac)
        start = k * cfg.dilation_rate
        sl = slice(start, start + (length - 1) * cfg.strides + 1, cfg.strides)
        y[:, sl, :] = (y[:, sl, :] + part).cast(int_bits=acc.integer, frac_bits=acc.frac)
    y = y[:, cfg.crop_left:cfg.crop_left + out_len, :]
    if cfg.use_bias:
        bf = q.bias_format
        b = apy.APyFixedArray.from_float(bf.dequantize(q.bias_codes), int_bits=bf.integer, frac_bits=bf.frac)
        y = y + b
    modes = {"TRN": "TO_NEG", "TRN_ZERO": "TO_ZERO", "RND": "TIES_POS", "RND_ZERO": "TIES_ZERO",
             "RND_MIN_INF": "TIES_NEG", "RND_INF": "TIES_AWAY", "RND_CONV": "TIES_EVEN"}
    return y.cast(int_bits=of.integer, frac_bits=of.frac,
                  quantization=getattr(apy.QuantizationMode, modes[of.rounding]),
                  overflow=getattr(apy.OverflowMode, "SAT" if of.overflow == "SAT" else "WRAP"))


def _have_threadpoolctl() -> bool:
    try:
        import threadpoolctl  # noqa: F401
    except ImportError:
        return False
    return True


def _one_blas_thread():
    """A context with numpy's BLAS on one thread (nothing when threadpoolctl is missing).

    On this 2-core machine two OpenBLAS threads and the thread pool jax keeps
    for Keras fight over the cores: the same forward_int then takes 26 ms in one
    process and 60 ms in the next. With one thread it is steady (and the
    comparison with the single-threaded apytypes is like for like); Keras keeps
    all its threads, so the ratio against it is, if anything, pessimistic.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def bench_model(*, batch: int = 64, repeats: int = 5, log) -> dict:
    """vocoder-up, batch 64: tconv's forward_int (one BLAS thread) vs Keras (jax) and vs apytypes."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    name = "vocoder-up"
    q = bench_layer(name)
    cfg, length = _config(name)
    kernel, bias = q.kernel, q.bias
    rng = np.random.default_rng(0)
    x = rng.uniform(-3.5, 3.5, (batch, length, cfg.in_channels)).astype("float32")
    codes = q.input_format.quantize(x)
    layer = keras.layers.Conv1DTranspose(cfg.filters, cfg.kernel_size, cfg.strides, padding=cfg.padding)
    layer(x[:1])
    layer.set_weights([kernel.astype("float32"), bias.astype("float32")])
    log(f"[model] {name}, batch {batch}: Keras (jax) float layer ...")
    keras_s = _best_time(lambda: np.asarray(layer(x)), repeats)
    log("[model] tconv forward_int (one BLAS thread) ...")
    with _one_blas_thread():
        tconv_s = _best_time(lambda: q.forward_int(codes), repeats)
    log("[model] apytypes, same fixed-point computation ...")
    apy_out = apytypes_forward(q, codes)
    # Same integers out, or the comparison would be meaningless.
    apy_codes = np.asarray(apy_out.to_bits(), dtype=np.int64)
    of = q.output_format
    apy_codes = np.where(apy_codes >= 1 << (of.width - 1), apy_codes - (1 << of.width), apy_codes)
    same = bool(np.array_equal(apy_codes, q.forward_int(codes)))
    apy_s = _best_time(lambda: apytypes_forward(q, codes), max(1, repeats // 2))
    return {"layer": name, "batch": batch, "tconv_s": round(tconv_s, 5), "keras_s": round(keras_s, 5),
            "ratio_vs_keras": round(tconv_s / keras_s, 3), "apytypes_s": round(apy_s, 5),
            "speedup_vs_apytypes": round(apy_s / tconv_s, 2), "apytypes_bit_exact": same,
            "tconv_blas_threads": 1 if _have_threadpoolctl() else None}


#: ``tconv bench``'s simulation-speed runs on vocoder-up at 64 PEs: (simulator, engine) -> (frames, L).
#: Each engine runs long enough to time (Verilator's compiled engine some 2 million cycles);
#: the cocotb engine is slow, so shorter frames. Cycles per second do not depend on L here:
#: the array is busy in every cycle of a vocoder-up frame whatever its length.
SIM_RUNS = {("verilator", "compiled"): (16, 256), ("verilator", "cocotb"): (1, 32),
            ("icarus", "compiled"): (1, 64), ("icarus", "cocotb"): (1, 16)}


def bench_sim(work: Path, *, log, layer: str = "vocoder-up", pe_count: int = 64, runs=None) -> list[dict]:
    """Simulated clock cycles per second of both testbench engines on the same design, per simulator.

    Each run is built first (outside the timing; the build cache keeps it), then simulated
    once, frames back to back, no stalls, and checked bit for bit against the model. The
    time is the simulation's own (``SimResult.extra["sim_cpu_seconds"]``, and
    ``"sim_seconds"`` for the wall clock): for the compiled engine the simulator process
    from start to exit, for the cocotb engine the simulator's process (cocotb runs inside
    it) from the testbench's clock start to the end of its checks (cocotb's and the
    simulator's start-up excluded, which favours cocotb). Writing the input files, the
    model's outputs and the comparison afterwards are Python's and not counted.
    ``cycles_per_s`` is per CPU second: on a shared machine the wall clock also counts
    the time other processes hold the core (both are single-threaded, so on an idle
    machine the two agree). ``ratio`` (compiled rows): the compiled engine's cycles per
    second over the cocotb engine's on the same simulator.
    """
    from tconv.hw.generate import generate
    from tconv.sim.runner import simulate

    runs = dict(SIM_RUNS if runs is None else runs)
    out = work / f"sim-{layer}-{pe_count}"
    generate(bench_layer(layer), out, pe_count=pe_count)
    rows = []
    for (simulator, engine), (frames, length) in runs.items():
        log(f"[sim] {layer}, {pe_count} PEs: {simulator}, {engine} engine: build")
        simulate(out, simulator, lengths=[1], engine=engine)  # build outside the timing
        log(f"[sim] {simulator}, {engine} engine: {frames} frame(s) of {length} steps")
        res = simulate(out, simulator, lengths=[length] * frames, seed=2, engine=engine)
        wall, cpu = float(res.extra["sim_seconds"]), float(res.extra["sim_cpu_seconds"])
        rows.append({"simulator": simulator, "engine": engine, "layer": layer, "pe_count": pe_count,
                     "frames": frames, "L": length, "cycles": res.total_cycles, "seconds": round(wall, 3),
                     "cpu_seconds": round(cpu, 3), "cycles_per_s": round(res.total_cycles / cpu),
                     "cycles_per_wall_s": round(res.total_cycles / wall), "bit_exact": res.passed})
    for row in rows:
        other = next((r for r in rows if r["simulator"] == row["simulator"] and r["engine"] == "cocotb"), None)
        if row["engine"] == "compiled" and other is not None:
            row["ratio"] = round(row["cycles_per_s"] / other["cycles_per_s"], 1)
    return rows


def machine() -> dict:
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()}


def run_bench(work_dir, *, sections=SECTIONS, pe_count: int = 64, fpga_pe_counts=(16, 64, 128),
              speeds=(6, 8), seeds=(1,), simulator: str = "verilator", log=print) -> dict:
    """Run the chosen sections; returns the JSON-able results (``tconv bench --json``).

    ``seeds``: nextpnr seeds; the ``fpga`` section places each design once per seed,
    the ``activation`` and ``weights`` sections use the first."""
    seeds = tuple(seeds)
    if not seeds:
        raise ValueError("give at least one nextpnr seed")
    seed = seeds[0]
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        raise ValueError(f"unknown bench section(s) {bad}; choose from {', '.join(SECTIONS)}")
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": machine()}
    if "layers" in sections:
        results["layers"] = bench_layers(work, simulator=simulator, pe_count=pe_count, log=log)
    if "real" in sections:
        from .bench_real import bench_real
        results["real"] = bench_real(work, simulator=simulator, pe_count=pe_count, log=log)
    if "fpga" in sections:
        results["fpga"] = bench_fpga(work, pe_counts=fpga_pe_counts, speeds=speeds, seeds=seeds, log=log)
    if "model" in sections:
        results["model"] = bench_model(log=log)
    if "sim" in sections:
        results["sim"] = bench_sim(work, log=log)
    if "activation" in sections:
        results["activation"] = bench_activation(work, simulator=simulator, speeds=speeds, seed=seed, log=log)
    if "weights" in sections:
        from .bench_weights import bench_weights

        results["weights"] = bench_weights(work, simulator=simulator, speeds=speeds, seed=seed, log=log,
                                           pe_count=pe_count)
    return results


def _table(rows: list[dict], cols: list[tuple[str, str]]) -> list[list[str]]:
    out = [[title for _, title in cols]]
    for r in rows:
        out.append(["-" if r.get(k) is None else (f"{r[k]:.1%}" if "utilization" in k else
                                                   f"{r[k]}x" if k == "ratio" else str(r[k]))
                    for k, _ in cols])
    return out


_LAYER_COLS = [("name", "layer"), ("pe_count", "PEs"), ("L", "L"), ("cycles", "cycles"),
               ("formula_cycles", "formula"), ("useful_macs", "useful MACs"), ("utilization", "utilization"),
               ("zero_insertion_utilization", "zero-insertion"), ("subkernel_utilization", "sub-kernel"),
               ("bit_exact", "bit-exact")]
_REAL_COLS = [("name", "layer"), ("shape", "shape"), ("pe_count", "PEs"), ("mapping", "lanes x filter x tap groups"),
              ("L", "L"), ("cycles", "cycles"), ("formula_cycles", "formula"), ("utilization", "utilization"),
              ("steady_utilization", "steady-state utilization"), ("bit_exact", "bit-exact"),
              ("generate_s", "generate s"), ("generate_peak_mb", "generate peak MB")]
_FPGA_COLS = [("device", "device"), ("sources", "sources"), ("speed", "speed"), ("seed", "seed"), ("pe_count", "PEs"),
              ("fmax_mhz", "Fmax MHz"), ("gops", "GOPS"), ("gops_per_dsp", "GOPS per DSP"), ("lut4", "LUT4"),
              ("ff", "FF"), ("mult18", "MULT18X18D"), ("ebr", "EBR")]
_ACTIVATION_COLS = [("activation", "activation"), ("table_entries", "table entries"), ("pe_count", "PEs"),
                    ("cycles", "cycles"), ("formula_cycles", "formula"), ("utilization", "utilization"),
                    ("bit_exact", "bit-exact"), ("speed", "speed"), ("fmax_mhz", "Fmax MHz"), ("lut4", "LUT4"),
                    ("ff", "FF"), ("mult18", "MULT18X18D"), ("ebr", "EBR")]
_SIM_COLS = [("simulator", "simulator"), ("engine", "engine"), ("layer", "layer"), ("pe_count", "PEs"),
             ("frames", "frames"), ("L", "L"), ("cycles", "cycles"), ("cpu_seconds", "CPU s"),
             ("cycles_per_s", "cycles per CPU s"), ("ratio", "compiled / cocotb"), ("seconds", "wall s"),
             ("cycles_per_wall_s", "cycles per wall s"), ("bit_exact", "bit-exact")]


def _with_gops(results: dict) -> list[dict]:
    """Effective GOPS = 2 x useful MACs of a FPGA_LAYER frame x Fmax / the frame's cycles at the
    row's PE count (the schedule's cycle model, which the RTL meets to the cycle: the layers
    section and the RTL tests hold every simulation to it), and GOPS per MULT18X18D. So the
    fpga section needs no simulation of its own."""
    from tconv.hw.schedule import Schedule

    cfg, length = _config(FPGA_LAYER)
    macs = cfg.useful_macs(length)
    rows = []
    for r in results.get("fpga", []):
        cycles = Schedule.plan(cfg, r["pe_count"]).frame_cycles(length)
        gops = round(2 * macs * r["fmax_mhz"] / cycles / 1000, 1)
        per_dsp = round(gops / r["mult18"], 3) if r.get("mult18") else None
        rows.append({**r, "gops": gops, "gops_per_dsp": per_dsp})
    return rows


def _markdown_table(table: list[list[str]]) -> str:
    lines = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
    lines += ["| " + " | ".join(row) + " |" for row in table[1:]]
    return "\n".join(lines)


def _text_table(table: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in table)


def _model_rows(results: dict) -> list[list[str]]:
    m = results["model"]
    return [["measure", "value"],
            ["layer, batch", f"{m['layer']}, {m['batch']}"],
            ["tconv forward_int" + (" (1 BLAS thread)" if m.get("tconv_blas_threads") == 1 else ""),
             f"{m['tconv_s'] * 1e3:.1f} ms"],
            ["Keras float (jax, CPU)", f"{m['keras_s'] * 1e3:.1f} ms"],
            ["tconv / Keras", f"{m['ratio_vs_keras']:.2f}x"],
            ["apytypes, same fixed point", f"{m['apytypes_s'] * 1e3:.1f} ms (bit-exact: {m['apytypes_bit_exact']})"],
            ["speed-up over apytypes", f"{m['speedup_vs_apytypes']:.1f}x"]]


def _render(results: dict, fmt) -> str:
    parts = []
    if "layers" in results:
        parts.append(("MAC utilization (one frame, no stalls)", fmt(_table(results["layers"], _LAYER_COLS))))
    if "real" in results:
        notes = [f"- {r['name']}: {r['note']}" for r in results["real"] if r.get("note")]
        parts.append(("Real layers (one frame of the model's length, no stalls)",
                      fmt(_table(results["real"], _REAL_COLS)) + ("\n\n" + "\n".join(notes) if notes else "")))
    if "fpga" in results:
        parts.append((f"ECP5 {FPGA_LAYER} layer, out of context", fmt(_table(_with_gops(results), _FPGA_COLS))))
    if "model" in results:
        parts.append(("Reference model speed", fmt(_model_rows(results))))
    if "sim" in results:
        parts.append(("Simulation speed", fmt(_table(results["sim"], _SIM_COLS))))
    if "activation" in results:
        parts.append((f"Table activation ({FPGA_LAYER}, {TABLE_ACTIVATION} against linear)",
                      fmt(_table(results["activation"], _ACTIVATION_COLS))))
    if "weights" in results:
        from .bench_weights import WEIGHTS_COLS, WEIGHTS_FPGA_COLS

        parts.append(("Runtime weights: a set loaded during a frame train (no stalls)",
                      fmt(_table(results["weights"]["utilization"], WEIGHTS_COLS))))
        if results["weights"]["fpga"]:
            parts.append((f"Runtime weights against ROM ({FPGA_LAYER}), out of context; two banks per weight "
                          "memory (twice the words: more block RAM only where a deeper memory needs more blocks)",
                          fmt(_table(results["weights"]["fpga"], WEIGHTS_FPGA_COLS))))
    return parts


def to_text(results: dict) -> str:
    return "\n\n".join(f"{title}\n{body}" for title, body in _render(results, _text_table))


def to_markdown(results: dict) -> str:
    m = results["machine"]
    head = (f"Machine: {m['processor']}, {m['cpus']} CPUs, {m['platform']}, Python {m['python']}.\n")
    return head + "\n" + "\n\n".join(f"### {title}\n\n{body}" for title, body in _render(results, _markdown_table))
