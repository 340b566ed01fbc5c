"""Table activations in the generated layer, on Icarus and Verilator, bit for bit against the model.

Each design's frames are chosen to drive the table across its whole input:
the test checks (on the model's own accumulators) that the frames reach both
tails and most table entries, so a wrong entry, a wrong tail or a wrong
boundary cannot pass unseen. Tables above ``LUT_TABLE_ENTRIES`` are block RAM,
the others LUT ROMs; both kinds are here.
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from conftest import require_simulator

from tconv.hw.generate import generate
from tconv.hw.postprocess import LUT_TABLE_ENTRIES
from tconv.model import Conv1DTransposeQ, FixedFormat, LayerConfig
from tconv.sim.design import GeneratedDesign
from tconv.sim.runner import random_frames, simulate

SIMULATORS = ["icarus", "verilator"]
FMT = dict(input="fixed<8,3,RND,SAT>", weight="fixed<8,1,RND_CONV,SAT>", bias="fixed<12,4>",
           output="fixed<8,3,RND,SAT>")
# name: (activation, output format, source/sink pauses)
CONFIGS = {
    "sigmoid": ("sigmoid", "fixed<8,3,RND,SAT>", ("none", "none")),
    "tanh-bram": ("tanh", "fixed<8,2,RND_CONV,SAT_SYM>", ("random", "random")),
    "gelu-bram": ("gelu", "fixed<8,3,RND,SAT>", ("bursty", "toggle")),
    "silu-bram": ("silu", "fixed<8,3,RND,SAT>", ("random", "bursty")),
    "elu": ("elu", "ufixed<7,2,RND_ZERO,SAT_ZERO>", ("toggle", "random")),
    "softsign-bram-wrap": ("softsign", "fixed<7,2,TRN,WRAP>", ("none", "random")),
    "gelu-wrap-linear-tail": ("gelu", "fixed<6,2,TRN,WRAP>", ("random", "none")),
}
LENGTHS = [12, 1, 7, 20]


def _make(root, name: str):
    act, out, _ = CONFIGS[name]
    cfg = LayerConfig(filters=3, kernel_size=3, strides=2, padding="same", activation=act, in_channels=4)
    rng = np.random.default_rng(len(name))
    # Filter 0 adds its inputs, filter 1 subtracts them (runs of extreme inputs drive both
    # tails), filter 2 is random (the table's middle).
    kernel = rng.uniform(-1, 1, (3, 3, 4))
    kernel[:, 0, :], kernel[:, 1, :] = 0.99, -0.99
    formats = {k: FixedFormat.parse(v) for k, v in {**FMT, "output": out}.items()}
    layer = Conv1DTransposeQ(cfg, kernel, rng.uniform(-1, 1, 3), input_format=formats["input"],
                             weight_format=formats["weight"], bias_format=formats["bias"],
                             output_format=formats["output"])
    folder = root / name
    generate(layer, folder, pe_count=8)
    return folder


@pytest.fixture(scope="module")
def designs(tmp_path_factory):
    return functools.lru_cache(maxsize=None)(functools.partial(_make, tmp_path_factory.mktemp("act")))


def _inputs(design: GeneratedDesign, lengths, seed: int) -> np.ndarray:
    """Random codes, with runs of two steps whose channels are all at one extreme of the input
    (the largest accumulators of either sign: the tails), random in between."""
    x = random_frames(design, lengths, seed=seed)
    fmt = design.layer.input_format
    rng = np.random.default_rng(seed)
    for start in range(0, len(x) - 1, 5):
        x[start:start + 2] = rng.choice([fmt.min_code, fmt.max_code])
    return x


def _coverage(design: GeneratedDesign, inputs: np.ndarray) -> tuple[float, bool, bool]:
    """Share of table entries the frames' accumulators index, and whether each tail is reached."""
    q, tb = design.layer, design.layer.activation_table
    t = q.stages(inputs[None] if q.config.data_format == "channels_last" else inputs.T[None]).accumulator >> tb.drop
    inside = np.unique(t[(t >= tb.lo) & (t <= tb.hi)])
    return inside.size / tb.size, bool((t < tb.lo).any()), bool((t > tb.hi).any())


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("name", list(CONFIGS))
def test_table_activation_matches_model(designs, name, simulator):
    require_simulator(simulator)
    folder = designs(name)
    design = GeneratedDesign.load(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    tb = design.layer.activation_table
    assert manifest["activation"]["kind"] == "table" and manifest["activation"]["entries"] == tb.size
    assert ("bram" in name) == (tb.size > LUT_TABLE_ENTRIES), (name, tb.size)

    lengths = LENGTHS * 3
    inputs = _inputs(design, lengths, seed=11)
    share, low, high = _coverage(design, inputs)
    assert share > 0.3 and (low or tb.lower is None) and (high or tb.upper is None), (share, low, high)

    src, sink = CONFIGS[name][2]
    res = simulate(folder, simulator, lengths=lengths, inputs=inputs, source_pause=src, sink_pause=sink, seed=5)
    assert res.passed, res.summary()
    assert res.beats_out == res.expected_beats_out

    iso = simulate(folder, simulator, lengths=LENGTHS, inputs=inputs[:sum(LENGTHS)], isolate_frames=True)
    assert iso.passed, iso.summary()
    assert [c for c in iso.cycles if c is not None] == [
        w for c, w in zip(iso.cycles, iso.formula_cycles) if c is not None]


def test_folder_table_must_be_the_models(designs, tmp_path):
    """A design folder whose table file differs from the one the formats give is refused, naming the entry."""
    import shutil

    folder = shutil.copytree(designs("sigmoid"), tmp_path / "edited")
    path = folder / "activation_table.json"
    table = json.loads(path.read_text())
    table["values"][3] += 1
    path.write_text(json.dumps(table))
    with pytest.raises(ValueError, match=r"activation_table.json: not the sigmoid table .*entry 3"):
        GeneratedDesign.load(folder)
    path.unlink()
    with pytest.raises(ValueError, match=r"activation.table: 'activation_table.json' is missing"):
        GeneratedDesign.load(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["activation"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"is a table activation, but the manifest names no table"):
        GeneratedDesign.load(folder)


def test_model_formats_name_the_table_input(designs):
    """The manifest documents the table's input format (drop, frac, range) as the model built it."""
    folder = designs("tanh-bram")
    design = GeneratedDesign.load(folder)
    act = json.loads((folder / "manifest.json").read_text())["activation"]
    tb = design.layer.activation_table
    assert act["input"] == {"drop_lsbs": tb.drop, "frac": tb.in_frac, "rounding": "TRN", "lo": tb.lo, "hi": tb.hi}
    assert act["max_error_lsb"] <= act["bound_lsb"] == FixedFormat.parse(CONFIGS["tanh-bram"][1]).max_rounding_error / \
        FixedFormat.parse(CONFIGS["tanh-bram"][1]).lsb + 0.5
