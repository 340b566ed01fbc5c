"""Random layer configurations through generate and both simulators, bit for bit against the model.

The hand-picked configurations of ``test_sim.py`` cover the design's corners;
these are drawn at random (seeded, the same every run) over everything the
hardware accepts: kernel, strides or dilation, padding, output_padding,
data_format, channels and filters (more channels than PEs included), PE count,
activation, and every quantization and overflow mode of the four formats,
including negative and oversized integer bits. Each design runs three frames
back to back under random back-pressure on both ports. Verilog-backend
problems that the Amaranth simulator cannot show (a construct one simulator
refuses) surface here. ``make test`` runs a few seeds, with activation tables of
at most 4096 entries; ``pytest --long`` many, with any table.
"""

from __future__ import annotations

import functools
import random

import numpy as np
import pytest
from conftest import long_run, require_simulator

from tconv.hw.generate import generate
from tconv.model import ACTIVATIONS, OVERFLOW_MODES, QUANTIZATION_MODES, Conv1DTransposeQ, FixedFormat, LayerConfig
from tconv.model.activation_tables import MAX_TABLE_ENTRIES, TableTooLarge
from tconv.model.fixed_activations import EXACT_ACTIVATIONS, TABLE_ACTIVATIONS
from tconv.sim.design import GeneratedDesign
from tconv.sim.runner import random_frames, simulate

SEEDS = range(100, 140) if long_run() else range(20)


def _fmt(rng: random.Random, kind: str, width: int, integer: int) -> FixedFormat:
    return FixedFormat(width, integer, signed=kind == "fixed", rounding=rng.choice(QUANTIZATION_MODES),
                       overflow=rng.choice(OVERFLOW_MODES))


#: Tables of up to this many entries in ``make test``: a 32768-entry table (one copy per filter
#: group) takes Verilator minutes to compile; ``--long`` lifts the cap (tables up to MAX_TABLE_ENTRIES).
TABLE_ENTRIES = None if long_run() else 4096


def random_design(seed: int, max_table_entries: int | None = TABLE_ENTRIES) -> tuple[Conv1DTransposeQ, int, list[int]]:
    """A layer the hardware accepts (with float weights), its PE count and three frame lengths;
    a table activation gets an output format coarse enough for at most ``max_table_entries``
    entries (None: any table the model builds)."""
    if max_table_entries is None:
        max_table_entries = MAX_TABLE_ENTRIES
    rng = random.Random(seed)
    while True:
        kernel_size = rng.choice([1, 2, 3, 4, 5, 7, 8, 16])
        strides = rng.choice([1, 1, 2, 3, 4, 5, 8])
        dilation = 1 if strides > 1 else rng.choice([1, 2, 3, 5])
        in_channels = rng.choice([1, 2, 3, 5, 8, 16, 33, 100])
        filters = rng.choice([1, 2, 3, 4, 7, 16, 33])
        if kernel_size * filters * in_channels <= 4000:
            break
    cfg = LayerConfig(
        filters=filters, kernel_size=kernel_size, strides=strides, dilation_rate=dilation,
        padding=rng.choice(["valid", "same"]), output_padding=rng.choice([None, None, *range(strides)]),
        data_format=rng.choice(["channels_last", "channels_first"]), activation=rng.choice(ACTIVATIONS),
        use_bias=rng.random() < 0.8, in_channels=in_channels)
    wx, ww = rng.randint(2, 12), rng.randint(2, 12)
    formats = {"input": _fmt(rng, rng.choice(["fixed", "ufixed"]), wx, rng.randint(-2, wx + 2)),
               "weight": _fmt(rng, "fixed", ww, rng.randint(-1, 3))}
    acc_frac = formats["input"].frac + formats["weight"].frac
    wo = rng.randint(2, 20)
    # An output whose every bit lies below the accumulator's LSB is refused
    # (tconv.hw.generate); keep its LSB at or above 2**-(acc_frac + 6) and its top above the LSB.
    lowest = max(-2, wo - acc_frac - 6, 1 - acc_frac)
    formats["output"] = _fmt(rng, rng.choice(["fixed", "ufixed"]), wo, rng.randint(lowest, max(wo, lowest)))
    if cfg.use_bias:
        wb = rng.randint(4, 16)
        formats["bias"] = FixedFormat(wb, wb - rng.randint(acc_frac - 8, acc_frac))  # bias frac <= acc frac
    pe_count = rng.choice([1, 2, 4, 8, 16, 32, 64, 128])
    nrng = np.random.default_rng(seed)
    kernel = nrng.normal(0, 0.5, (kernel_size, filters, in_channels))
    bias = nrng.normal(0, 1, filters) if cfg.use_bias else None
    lengths = [rng.choice([1, 2, 3, 5, 9, 17]) for _ in range(3)]
    while True:
        try:
            layer = Conv1DTransposeQ(cfg, kernel, bias, input_format=formats["input"],
                                     weight_format=formats["weight"], bias_format=formats.get("bias"),
                                     output_format=formats["output"])
            table = layer.activation_table
            if table is not None and table.size > max_table_entries:
                raise TableTooLarge(f"{table.size} entries")
            return layer, pe_count, lengths
        except TableTooLarge:  # a table activation's output too fine for a table: one bit fewer
            out = formats["output"]
            formats["output"] = FixedFormat(out.width - 1, out.integer, out.signed, out.rounding, out.overflow)


def _generate(root, seed: int):
    layer, pe_count, lengths = random_design(seed)
    generate(layer, root / f"seed{seed}", pe_count=pe_count)
    return root / f"seed{seed}", lengths


@pytest.fixture(scope="module")
def designs(tmp_path_factory):
    """``designs(seed)``: (folder, frame lengths), each design generated once per module."""
    return functools.lru_cache(maxsize=None)(functools.partial(_generate, tmp_path_factory.mktemp("random_designs")))


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("seed", SEEDS)
def test_random_layer_matches_model(designs, seed, simulator):
    require_simulator(simulator)
    folder, lengths = designs(seed)
    design = GeneratedDesign.load(folder)
    res = simulate(folder, simulator, lengths=lengths, inputs=random_frames(design, lengths, seed=seed),
                   source_pause="random", sink_pause="random", seed=seed)
    assert res.passed, f"{design.manifest['layer']} {design.manifest['formats']} " \
                       f"pe_count={design.manifest['array']['pe_count']}: {res.summary()}"
    assert res.beats_in == sum(lengths) and res.beats_out == res.expected_beats_out


def test_random_designs_vary():
    """The generator really spreads over the space (so the few seeds of make test are not all alike)."""
    drawn = [random_design(seed)[:2] for seed in range(40)]
    configs = [layer.config for layer, _ in drawn]
    activations = {c.activation for c in configs}
    assert len({c.strides for c in configs}) >= 4 and len(activations) >= 12
    assert activations & set(TABLE_ACTIVATIONS) and activations & set(EXACT_ACTIVATIONS)
    assert {c.padding for c in configs} == {"valid", "same"}
    assert len({pe for _, pe in drawn}) >= 6
    assert any(layer.config.in_channels > pe for layer, pe in drawn)


RUNTIME_SEEDS = range(200, 230) if long_run() else range(200, 203)


def _generate_runtime(root, seed: int):
    layer, pe_count, lengths = random_design(seed)
    generate(layer, root / f"rt{seed}", pe_count=pe_count, runtime_weights=True)
    return root / f"rt{seed}", lengths


@pytest.fixture(scope="module")
def runtime_designs(tmp_path_factory):
    """``runtime_designs(seed)``: a random layer generated with runtime weights, and frame lengths."""
    return functools.lru_cache(maxsize=None)(
        functools.partial(_generate_runtime, tmp_path_factory.mktemp("random_runtime_designs")))


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("seed", RUNTIME_SEEDS)
def test_random_layer_runtime_weights(runtime_designs, seed, simulator):
    """Random layers with runtime weights: two random sets sent at random points of a frame
    train under random stalls on all three ports; each frame matches the model with the set
    the contract's rule gives."""
    require_simulator(simulator)
    folder, lengths = runtime_designs(seed)
    lengths = lengths + [1, 2, 1, 3]
    design = GeneratedDesign.load(folder)
    q, rng = design.layer, np.random.default_rng(seed)
    sets = []
    for _ in range(2):
        kc = rng.integers(q.weight_format.min_code, q.weight_format.max_code, q.kernel_codes.shape, endpoint=True)
        bc = (rng.integers(q.bias_format.min_code, q.bias_format.max_code, q.config.filters, endpoint=True)
              if q.config.use_bias else None)
        sets.append((design.pack_weights(kc, bc), int(rng.integers(0, sum(lengths)))))
    res = simulate(folder, simulator, lengths=lengths, inputs=random_frames(design, lengths, seed=seed),
                   source_pause="random", sink_pause="random", seed=seed, weight_sets=sets,
                   weight_pause=random.Random(seed).choice(["none", "random", "bursty"]))
    assert res.passed, f"{design.manifest['layer']} {design.manifest['formats']} " \
                       f"pe_count={design.manifest['array']['pe_count']}: {res.summary()}"
