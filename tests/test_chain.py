"""Layer chains without simulators: the chain model, Keras chain import and its refusals,
calibration across stages, the PE budget split, the manifest's ``stages`` and hostile chain folders.

The RTL of chains runs in tests/test_sim_chain.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tconv.flow.cli import main
from tconv.hw.chain import _stage_schedule, plan_chain, stage_rates
from tconv.hw.chain_generate import generate_chain
from tconv.hw.folder import DesignFolder, FolderError
from tconv.model import LayerConfig, random_layer
from tconv.model.chain import ChainQ, check_chain_stages
from tconv.sim.design import GeneratedDesign

KERAS_WARNING = "ignore:__array__ implementation doesn't accept a copy keyword"


def random_chain(specs, *, widths=(8, 8, 12), seed=0):
    """A ChainQ of random layers: ``specs`` are LayerConfig kwargs (in_channels of the first only);
    each stage's output format is the next stage's input format."""
    w_in, w_w, w_out = widths
    stages, cin = [], specs[0]["in_channels"]
    fin = f"fixed<{w_in},3,RND,SAT>"
    for i, spec in enumerate(specs):
        cfg = LayerConfig(**{**spec, "in_channels": cin})
        last = i == len(specs) - 1
        act = cfg.activation
        fout = (f"fixed<{w_out},5,RND,SAT>" if last else
                (f"ufixed<{w_in},3,RND,SAT>" if act in ("relu", "relu6") else f"fixed<{w_in},3,RND,SAT>"))
        stages.append(random_layer(cfg, {"input": fin, "weight": f"fixed<{w_w},1,RND,SAT>", "bias": "fixed<12,4>",
                                         "output": fout}, seed=seed + i, kernel_range=(-0.5, 0.5),
                                   bias_range=(-1, 1)))
        fin, cin = fout, cfg.filters
    return ChainQ(stages, [f"up{i}" for i in range(len(specs))])


TWO = [dict(filters=6, kernel_size=4, strides=2, padding="same", activation="relu", in_channels=4),
       dict(filters=3, kernel_size=3, dilation_rate=2, activation="linear")]


# ------------------------------------------------------------------ model
def test_chain_model_is_the_composition_of_the_stages():
    chain = random_chain(TWO)
    rng = np.random.default_rng(1)
    x = rng.integers(chain.input_format.min_code, chain.input_format.max_code + 1, (3, 7, 4))
    mid = chain.stages[0].forward_int(x)
    assert np.array_equal(chain.forward_int(x), chain.stages[1].forward_int(mid))
    assert chain.forward_int(x).shape == (3, chain.output_length(7), 3)
    assert chain.config.output_length(7) == chain.stages[1].config.output_length(chain.stages[0].config.output_length(7))
    assert chain.config.useful_macs(7) == (chain.stages[0].config.useful_macs(7)
                                           + chain.stages[1].config.useful_macs(14))


def test_chain_model_passes_an_empty_frame_on():
    # same padding, even kernel, output_padding 0: a one-step frame has no output
    chain = random_chain([dict(filters=2, kernel_size=2, strides=2, padding="same", output_padding=0,
                               in_channels=2), dict(filters=2, kernel_size=3)])
    out = chain.forward_int(np.zeros((1, 2), dtype=np.int64))
    assert out.shape == (0, 2) and chain.output_length(1) == 0 and chain.config.useful_macs(1) == 0


def test_chain_refuses_stages_that_do_not_connect():
    a = random_chain(TWO).stages
    other = random_layer(LayerConfig(filters=2, kernel_size=3, in_channels=5),
                         {"input": str(a[0].output_format), "weight": "fixed<8,1>", "bias": "fixed<8,2>",
                          "output": "fixed<8,2>"})
    with pytest.raises(ValueError, match=r"^layer 'b' \(Conv1DTranspose\) takes 5 channels but 'a' gives 6"):
        check_chain_stages([a[0], other], ["a", "b"])
    wrong_fmt = random_layer(LayerConfig(filters=2, kernel_size=3, in_channels=6),
                             {"input": "fixed<8,2,RND,SAT>", "weight": "fixed<8,1>", "bias": "fixed<8,2>",
                              "output": "fixed<8,2>"})
    with pytest.raises(ValueError, match="its input format fixed<8,2,RND,SAT> is not 'a''s output format"):
        ChainQ([a[0], wrong_fmt], ["a", "b"])


# ------------------------------------------------------------------ plan
def test_plan_balances_the_stages_within_the_budget():
    chain = random_chain(TWO)
    plan = plan_chain(chain, 16)
    assert plan.pe_count <= 16
    assert plan.rates == (1, 2) == tuple(stage_rates(chain.config.stages))
    # brute force over every split of the budget: none is faster, and none as fast uses fewer PEs
    best = None
    for p0 in range(1, 16):
        for p1 in range(1, 17 - p0):
            per = [_stage_schedule(c, p).cycle_formula()[1] for c, p in zip(chain.config.stages, (p0, p1))]
            key = (max(per[0] * 1, per[1] * 2), p0 + p1)
            best = key if best is None or key < best else best
    assert (plan.cycles_per_chain_step, plan.pe_count) == best
    for sch, per in zip(plan.schedules, plan.per_step):
        assert per == sch.cycle_formula()[1]
        assert sch.built_groups * sch.lanes == sch.pe_count  # no PE that adds nothing
    assert plan.chain_step_cycles[plan.bottleneck] == plan.cycles_per_chain_step


def test_plan_reaches_90_percent_on_a_balanceable_chain():
    # x2 then x2: stage 1 does twice the steps; equal work per step balances with 2:1 arrays
    chain = random_chain([dict(filters=8, kernel_size=4, strides=2, padding="same", in_channels=8),
                          dict(filters=4, kernel_size=4, strides=2, padding="same")])
    plan = plan_chain(chain, 32)
    assert plan.steady_utilization() >= 0.9, plan.report(chain.names)
    assert plan.utilization_note() is None


def test_plan_explains_an_unbalanced_chain():
    # 9 products per step against 3 * 64: power-of-two arrays cannot balance them within 8 PEs
    chain = random_chain([dict(filters=3, kernel_size=3, strides=1, in_channels=1),
                          dict(filters=8, kernel_size=8, strides=4, padding="same")])
    plan = plan_chain(chain, 8)
    note = plan.utilization_note()
    assert plan.steady_utilization() < 0.9 and note and "bottleneck" in note


def test_plan_refuses_a_budget_below_one_pe_per_stage():
    chain = random_chain(TWO + [dict(filters=2, kernel_size=3)])
    with pytest.raises(ValueError, match="at least one PE per stage"):
        plan_chain(chain, 2)
    with pytest.raises(ValueError, match="power of two"):
        plan_chain(chain, 12)


# ------------------------------------------------------------------ folder
@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("chain") / "out"
    generate_chain(random_chain(TWO + [dict(filters=2, kernel_size=3, strides=3, padding="same",
                                            activation="tanh")]), out, pe_count=16)
    return out


def test_manifest_has_stages_with_matching_formats(folder):
    m = json.loads((folder / "manifest.json").read_text())
    stages = m["stages"]
    assert len(stages) == 3
    for st in stages:
        assert {"layer", "formats", "array", "performance"} <= set(st)
    for a, b in zip(stages, stages[1:]):
        assert a["formats"]["output"] == b["formats"]["input"]
        assert a["layer"]["filters"] == b["layer"]["in_channels"]
    assert m["formats"] == {"input": stages[0]["formats"]["input"], "output": stages[-1]["formats"]["output"]}
    assert m["array"]["pe_count"] == sum(st["array"]["pe_count"] for st in stages) <= m["array"]["pe_budget"]
    per_chain = [st["performance"]["cycles_per_chain_step"] for st in stages]
    assert m["performance"]["cycles_per_chain_step"] == max(per_chain)
    assert stages[m["performance"]["bottleneck_stage"]]["performance"]["bottleneck"]
    assert stages[2]["activation"]["kind"] == "table" and (folder / stages[2]["activation"]["table"]).is_file()
    design = GeneratedDesign.load(folder)
    assert isinstance(design.layer, ChainQ) and len(design.layer) == 3
    with np.load(folder / "test_vectors.npz") as v:
        starts = np.concatenate([[0], np.cumsum(v["lengths"])])
        outs = [design.expected_frame(v["inputs"][starts[i]:starts[i + 1]]) for i in range(len(v["lengths"]))]
        assert np.array_equal(np.concatenate(outs), v["expected"])
        assert 1 in v["lengths"]


def _hostile(folder, tmp_path, change):
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in folder.rglob("*"):
        if f.is_file():
            (bad / f.relative_to(folder)).parent.mkdir(parents=True, exist_ok=True)
            (bad / f.relative_to(folder)).write_bytes(f.read_bytes())
    m = json.loads((bad / "manifest.json").read_text())
    change(m)
    (bad / "manifest.json").write_text(json.dumps(m))
    return bad


@pytest.mark.parametrize("change, message", [
    (lambda m: m["stages"][1]["formats"].update(input="fixed<8,2,RND,SAT>"),
     r"stages\[1\]\.formats\.input fixed<8,2,RND,SAT> is not stages\[0\]\.formats\.output"),
    (lambda m: m["stages"][1]["layer"].update(in_channels=5), r"stages\[1\]\.layer\.in_channels is 5"),
    (lambda m: m.update(stages=[]), "stages: must be a list of 1 to"),
    (lambda m: m["stages"].__setitem__(0, "x"), r"stages\[0\]: must be an object"),
    (lambda m: m["stages"][2]["activation"].update(table="../../etc/passwd"), "must be a file inside"),
    (lambda m: m["formats"].update(output="fixed<8,2>"), "formats.output is not stages"),
    (lambda m: m["interface"].update(m_axis_tdata_width=7), "interface.m_axis_tdata_width is 7"),
    (lambda m: m["stages"][0]["array"].update(pe_count=0), r"stages\[0\]: array\.pe_count: must be an integer"),
])
def test_hostile_chain_manifests_are_refused_in_one_line(folder, tmp_path, change, message):
    bad = _hostile(folder, tmp_path, change)
    with pytest.raises(FolderError, match=message) as err:
        GeneratedDesign.load(bad)
    assert "\n" not in str(err.value)


def test_chain_folder_weights_are_checked(folder, tmp_path):
    bad = _hostile(folder, tmp_path, lambda m: None)
    with np.load(bad / "weights.npz") as w:
        arrays = dict(w)
    del arrays["kernel_codes_1"]
    np.savez(bad / "weights.npz", **arrays)
    with pytest.raises(FolderError, match="no array 'kernel_codes_1'"):
        GeneratedDesign.load(bad)
    assert DesignFolder.load(folder).parsed["config"].filters == 2


def test_generate_replaces_its_own_chain_folder(folder):
    before = sorted(p.name for p in folder.rglob("*"))
    generate_chain(random_chain(TWO), folder, pe_count=8)
    m = json.loads((folder / "manifest.json").read_text())
    assert len(m["stages"]) == 2 and "stage2_activation_table.json" not in {p.name for p in folder.iterdir()}
    assert "stage2_activation_table.json" in before


# ------------------------------------------------------------------ Keras
@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras", reason="imports real Keras layers; install it with pip install -e '.[keras]'")


def _decoder(keras, kind: str):
    L = keras.layers
    layers = [L.Conv1DTranspose(6, 4, strides=2, padding="same", activation="relu", name="up1"),
              L.Dropout(0.2, name="drop"),
              L.Conv1DTranspose(4, 3, dilation_rate=2, padding="same", name="up2"),
              L.GaussianNoise(0.1, name="noise"),
              L.Conv1DTranspose(2, 3, strides=3, activation="tanh", name="up3")]
    if kind == "sequential":
        return keras.Sequential([keras.Input((None, 3)), *layers], name="dec")
    x = inp = keras.Input((None, 3))
    for layer in layers:
        x = layer(x)
    return keras.Model(inp, x, name="dec")


@pytest.mark.keras
@pytest.mark.filterwarnings(KERAS_WARNING)
@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_keras_chain_import_calibrates_stage_to_stage(keras, kind):
    from tconv.model.keras_chain import import_keras_chain

    model = _decoder(keras, kind)
    data = np.random.default_rng(0).standard_normal((4, 12, 3))
    imp = import_keras_chain(model, "up1,up2,up3", data=data)
    chain = imp.chain
    assert imp.skipped == [("drop", "Dropout"), ("noise", "GaussianNoise")]
    for a, b in zip(chain.stages, chain.stages[1:]):
        assert a.output_format == b.input_format
    assert chain.stages[0].output_format.width == 8 and chain.stages[0].output_format.signed is False  # relu
    # the chain in fixed point is close to the float model (Dropout and noise off at inference)
    want = np.asarray(model(data, training=False), dtype=np.float64)
    got = chain(data)
    assert np.max(np.abs(got - want)) < 0.1
    # each stage's calibration inputs are what reaches that layer in the model
    assert np.allclose(imp.inputs[1], np.asarray(model.get_layer("up1")(data)), atol=1e-5)


@pytest.mark.keras
@pytest.mark.filterwarnings(KERAS_WARNING)
def test_keras_chain_refusals_name_the_layer_and_its_type(keras):
    from tconv.model.keras_chain import check_keras_chain

    L = keras.layers
    x = inp = keras.Input((None, 3))
    a = L.Conv1DTranspose(4, 3, name="a")(x)
    b = L.Conv1DTranspose(4, 3, name="b")(a)
    c = L.Conv1D(4, 1, name="conv")(b)
    d = L.Conv1DTranspose(4, 3, name="d")(c)
    e = L.Conv1DTranspose(4, 3, name="e")(d)
    f = L.Conv1DTranspose(4, 3, name="f")(d)
    model = keras.Model(inp, [e, f])
    cases = {
        "a,d": r"layer 'conv' \(Conv1D\) sits between 'a' and 'd'",
        "b,d": r"layer 'conv' \(Conv1D\) sits between 'b' and 'd'",
        "a,d,e": r"'conv' \(Conv1D\)",
        "d,e": r"layer 'd' \(Conv1DTranspose\) branches: its output feeds '[ef]' \(Conv1DTranspose\), '[ef]'",
        "b,a": r"not consecutive: 'a' does not take 'b''s output",
        "a,conv": r"layer 'conv' of the model is a Conv1D, not a Conv1DTranspose",
        "a,x": r"no layer named 'x'",
        "a,a": r"listed twice",
    }
    for names, message in cases.items():
        with pytest.raises(ValueError, match=message) as err:
            check_keras_chain(model, names)
        assert "\n" not in str(err.value)
    skip = keras.Model(inp, L.Conv1DTranspose(4, 3, name="z")(b))
    with pytest.raises(ValueError, match=r"not consecutive: the data reaches 'z' from Conv1DTranspose layer 'b' "
                                         r"\(not in the list\)"):
        check_keras_chain(skip, "a,z")
    assert check_keras_chain(skip, "a,b,z")[0] == ["a", "b", "z"]


@pytest.mark.keras
@pytest.mark.filterwarnings(KERAS_WARNING)
def test_cli_generate_layers(keras, tmp_path, capsys):
    model = _decoder(keras, "sequential")
    path = tmp_path / "dec.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((3, 10, 3)))
    out = tmp_path / "out"
    assert main(["generate", "--keras", str(path), "--layers", "up1,up2,up3", "--data", str(tmp_path / "x.npy"),
                 "--pe-count", "32", "-o", str(out), "-q"]) == 0
    text = capsys.readouterr().out
    assert "bottleneck" in text and "cycles per input step" in text
    m = json.loads((out / "manifest.json").read_text())
    assert [s["name"] for s in m["stages"]] == ["up1", "up2", "up3"] and m["array"]["pe_budget"] == 32
    # the Sequential model's chain (Dropout and GaussianNoise skipped) in RTL, frames of one step included
    from conftest import require_simulator

    from tconv.sim.runner import simulate

    for sim in ("icarus", "verilator"):
        require_simulator(sim)
        result = simulate(out, sim, lengths=[1, 6, 1, 3], seed=4, source_pause="random", sink_pause="random")
        assert result.passed and result.beats_out == result.expected_beats_out > 0, result.summary()
    assert main(["generate", "--keras", str(path), "--layers", "up1,up3", "-o", str(tmp_path / "o2"), "-q"]) == 2
    assert "Conv1DTranspose layer 'up2'" in capsys.readouterr().err
    assert main(["generate", "--keras", str(path), "--layers", "up1,up2", "--layer", "up1",
                 "-o", str(tmp_path / "o3")]) == 2
    assert "not both" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


def test_runtime_weights_with_layers_is_refused_in_one_line():
    import argparse

    from tconv.flow.commands.generate import _run_chain

    args = argparse.Namespace(runtime_weights=True, keras="m.keras", layers="a,b")
    with pytest.raises(ValueError, match=r"^--runtime-weights does not apply to a chain \(--layers\)"):
        _run_chain(args)


@pytest.mark.keras
@pytest.mark.filterwarnings(KERAS_WARNING)
def test_cli_analyze_layers_against_the_keras_model(keras, tmp_path, capsys):
    from tconv.model.keras_chain import import_keras_chain

    model = _decoder(keras, "functional")
    path = tmp_path / "dec.keras"
    model.save(path)
    data = np.random.default_rng(2).standard_normal((3, 10, 3))
    np.save(tmp_path / "x.npy", data)
    out = tmp_path / "report"
    assert main(["analyze", "--keras", str(path), "--layers", "up1,up2,up3", "--data", str(tmp_path / "x.npy"),
                 "-o", str(out), "-q"]) == 0
    text = capsys.readouterr().out
    assert "end to end" in text and "up3" in text
    report = json.loads((out / "report.json").read_text())
    assert report["plots"] == ["chain_error.png", "chain_output.png"]
    assert [s["name"] for s in report["stages"]] == ["up1", "up2", "up3"]
    # the end-to-end error is the fixed-point chain against Keras' own model (Dropout, noise off)
    chain = import_keras_chain(keras.saving.load_model(path), "up1,up2,up3", data=data).chain
    want = np.max(np.abs(chain(data) - np.asarray(model(data, training=False), dtype=np.float64)))
    assert report["end_to_end"]["max_abs_error"] == pytest.approx(want, abs=1e-5)
    assert report["stages"][-1]["end_to_end"] == report["end_to_end"]
    assert main(["analyze", "--keras", str(path), "--layers", "up1,up2", "--sweep", "4:8"]) == 2
    assert "--sweep and --vary apply to one layer" in capsys.readouterr().err
