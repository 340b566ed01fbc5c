"""``tconv bench``: the computed comparison columns, the report files, the model section."""

from __future__ import annotations

import pytest

from tconv.flow import bench
from tconv.flow.cli import main
from tconv.flow.commands.bench import BEGIN, END, write_markdown
from tconv.model import LayerConfig


def test_reference_utilizations_of_the_benchmark_layers():
    cfg, length = bench._config("vocoder-up")
    # same padding crops 8 of the 4096 (step, tap) products of the last step's tail.
    assert cfg.useful_pairs(length) == 256 * 16 - 8
    assert bench.zero_insertion_utilization(cfg, length) == pytest.approx(4088 / (2048 * 16))
    assert bench.subkernel_utilization(cfg, length) == pytest.approx(4088 / (2048 * 2))
    cfg, length = bench._config("pointwise")
    assert bench.zero_insertion_utilization(cfg, length) == bench.subkernel_utilization(cfg, length) == 1.0
    dilated = LayerConfig(filters=1, kernel_size=3, dilation_rate=4, in_channels=1)
    # valid: every product is useful; zero insertion pays Keff = 9 taps per output.
    assert bench.zero_insertion_utilization(dilated, 10) == pytest.approx(30 / (18 * 9))


def test_markdown_keeps_the_prose_around_the_tables(tmp_path):
    path = tmp_path / "b.md"
    write_markdown(path, "T1")
    assert path.read_text() == f"{BEGIN}\nT1\n{END}\n"
    path.write_text(f"# Title\n\n{BEGIN}\nold\n{END}\n\n## Notes\nkept\n")
    write_markdown(path, "T2")
    assert path.read_text() == f"# Title\n\n{BEGIN}\nT2\n{END}\n\n## Notes\nkept\n"


def test_markdown_of_some_sections_keeps_the_others(tmp_path):
    """`tconv bench --only sim --markdown F` replaces the simulation table and keeps the rest."""
    path = tmp_path / "b.md"
    path.write_text(f"# T\n{BEGIN}\nMachine: old.\n\n### A\n\na1\n\n### Sim\n\ns1\n\n### C\n\nc1\n{END}\nafter\n")
    write_markdown(path, "Machine: new.\n\n### Sim\n\ns2\n\n### D\n\nd2")
    assert path.read_text() == (f"# T\n{BEGIN}\nMachine: new.\n\n### A\n\na1\n\n### Sim\n\ns2\n\n### C\n\nc1\n\n"
                                f"### D\n\nd2\n{END}\nafter\n")


def test_tables_render_from_results():
    results = {
        "machine": bench.machine(),
        "layers": [{"name": "odd-stride", "pe_count": 64, "L": 64, "cycles": 332, "formula_cycles": 332,
                    "useful_macs": 20352, "utilization": 0.958, "zero_insertion_utilization": 0.331,
                    "subkernel_utilization": 0.828, "cycles_per_step": 5, "bit_exact": True}],
        "fpga": [{"device": "LFE5U-85F", "sources": src, "speed": 8, "pe_count": 64, "layer": "keras-doc",
                  "fmax_mhz": f, "lut4": 1, "ff": 2, "mult18": 64, "ebr": 3, "seed": 1}
                 for src, f in (("ecp5", 200.0), ("portable", 171.0))],
    }
    results["activation"] = [
        {"layer": "keras-doc", "activation": act, "pe_count": 64, "table_entries": n, "cycles": 1970,
         "formula_cycles": 1970, "utilization": 0.9746, "bit_exact": True, "speed": 8, "fmax_mhz": f,
         "lut4": 1, "ff": 2, "mult18": 64, "ebr": e, "seed": 1}
        for act, n, f, e in (("linear", None, 190.0, 17), (bench.TABLE_ACTIVATION, 7808, 185.5, 25))]
    text = bench.to_text(results)
    assert "95.8%" in text and "odd-stride" in text and "LFE5U-85F" in text
    assert "portable" in text and "171.0" in text and "GOPS per DSP" in text
    assert f"Table activation (keras-doc, {bench.TABLE_ACTIVATION} against linear)" in text
    assert "7808" in text and "185.5" in text and "97.5%" in text
    md = bench.to_markdown(results)
    assert md.count("| ---") == 0 and "|---|" in md and "### MAC utilization" in md


def test_model_section():
    pytest.importorskip("keras", reason="pip install -e '.[keras]'")
    pytest.importorskip("apytypes", reason="pip install -e '.[test]'")
    # A small batch: the test checks the section's shape and the apytypes cross-check;
    # the timings themselves belong to `tconv bench`.
    model = bench.bench_model(batch=4, repeats=1, log=lambda *_: None)
    assert model["layer"] == "vocoder-up" and model["batch"] == 4
    assert model["apytypes_bit_exact"] is True
    for key in ("tconv_s", "keras_s", "ratio_vs_keras", "apytypes_s", "speedup_vs_apytypes"):
        assert model[key] > 0
    assert "Reference model speed" in bench.to_text({"machine": bench.machine(), "model": model})


def test_sim_section_times_both_engines_on_one_design(tmp_path):
    """The simulation-speed rows: both engines on the same generated design, bit-exact, cycles per
    second and the ratio computed from the measured cells (a small layer on Icarus; `tconv bench`
    runs vocoder-up at 64 PEs on both simulators)."""
    from conftest import require_simulator

    require_simulator("icarus")
    runs = {("icarus", "compiled"): (3, 6), ("icarus", "cocotb"): (1, 4)}
    rows = bench.bench_sim(tmp_path, log=lambda *_: None, layer="odd-stride", pe_count=8, runs=runs)
    assert [(r["simulator"], r["engine"], r["frames"], r["L"]) for r in rows] == \
           [("icarus", "compiled", 3, 6), ("icarus", "cocotb", 1, 4)]
    assert {(r["layer"], r["pe_count"]) for r in rows} == {("odd-stride", 8)}
    compiled, cocotb = rows
    for r in rows:
        assert r["bit_exact"] is True and r["cycles"] > 0 and r["seconds"] > 0 and r["cpu_seconds"] > 0
        # (the seconds are rounded to milliseconds, the rates to whole cycles)
        assert r["cycles"] / r["cycles_per_s"] == pytest.approx(r["cpu_seconds"], abs=6e-4, rel=1e-3)
        assert r["cycles"] / r["cycles_per_wall_s"] == pytest.approx(r["seconds"], abs=6e-4, rel=1e-3)
    assert compiled["cycles"] > cocotb["cycles"]          # more frames, longer ones
    assert compiled["ratio"] == pytest.approx(compiled["cycles_per_s"] / cocotb["cycles_per_s"], abs=0.1)
    assert "ratio" not in cocotb
    md = bench.to_markdown({"machine": bench.machine(), "sim": rows})
    assert "| compiled / cocotb |" in md and f"| {compiled['ratio']}x |" in md


def test_bench_refuses_unknown_sections(tmp_path, capsys):
    assert main(["bench", "--only", "layers,speed", "--work", str(tmp_path)]) == 2
    assert "unknown bench section(s) ['speed']" in capsys.readouterr().err


def test_real_section_measures_a_real_layer_in_rtl(tmp_path):
    """The ``real`` section's row of the autoencoder's output layer (32 -> 1, kernel 7: 224
    products a step, 87.5% at best on 64 PEs): one frame of 288 steps on Icarus, bit-exact at
    the formula's cycles, the measured utilization computed from the run, the schedule's reason
    and a pe_count that reaches the target, generate's own time and memory."""
    from conftest import require_simulator

    from tconv.flow.bench_real import REAL_LAYERS, bench_real

    require_simulator("icarus")
    (row,) = bench_real(tmp_path, simulator="icarus", pe_count=64, log=lambda *_: None, names=["autoencoder-out"])
    cin, filters, kernel, strides, length = REAL_LAYERS["autoencoder-out"]
    cfg = LayerConfig(filters=filters, kernel_size=kernel, strides=strides, padding="same", in_channels=cin)
    assert row["bit_exact"] is True and row["L"] == length and row["cycles"] == row["formula_cycles"]
    assert row["utilization"] == round(cfg.useful_macs(length) / (64 * row["cycles"]), 4)
    assert row["steady_utilization"] == 0.875 and "pe_count 32 would reach 100.0%" in row["note"]
    assert row["generate_s"] > 0 and 20 < row["generate_peak_mb"] < 4096
    md = bench.to_markdown({"machine": bench.machine(), "real": [row]})
    assert "### Real layers" in md and "| autoencoder-out | 32->1 k7 s1 | 64 |" in md and "- autoencoder-out: " in md


def test_chain_row_is_measured_bit_exact(tmp_path):
    """The chain row of the layers section: the chain design simulated, utilization over the
    multipliers built from the measured cycles (a 16-PE budget here; `tconv bench` runs 64)."""
    from conftest import require_simulator

    require_simulator("icarus")
    row = bench.bench_chain_row(tmp_path, simulator="icarus", pe_count=16, log=lambda *_: None)
    assert row["name"] == "decoder-chain" and row["bit_exact"] is True and row["pe_budget"] == 16
    assert row["pe_count"] <= 16 and len(row["stage_pe_counts"]) == 3
    assert row["utilization"] == round(row["useful_macs"] / (row["pe_count"] * row["cycles"]), 4)
    # one 64-step frame reaches most of the steady-state utilization the plan promises
    assert 0.8 * row["steady_utilization"] < row["utilization"] <= row["steady_utilization"]
    assert "decoder-chain" in bench.to_text({"machine": bench.machine(), "layers": [row]})
