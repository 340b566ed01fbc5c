"""The analysis report: JSON keys, per-filter errors, overflow counts per stage, plots, atomic files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tconv.flow.cli import main
from tconv.flow.report import build_report, write_report
from tconv.model import Conv1DTransposeQ, LayerConfig

PNG = b"\x89PNG\r\n\x1a\n"


def make_layer(input_format="fixed<8,3,RND,SAT>", output_format="fixed<16,6,RND,SAT>", data_format="channels_last"):
    cfg = LayerConfig(filters=3, kernel_size=4, strides=2, padding="same", activation="relu", in_channels=2,
                      data_format=data_format)
    rng = np.random.default_rng(0)
    return Conv1DTransposeQ(cfg, rng.normal(0, 0.4, (4, 3, 2)), rng.normal(0, 0.2, 3), input_format=input_format,
                            weight_format="fixed<8,1,RND,SAT>", bias_format="fixed<12,3>",
                            output_format=output_format)


def data(shape=(2, 9, 2), scale=1.0):
    return scale * np.random.default_rng(1).standard_normal(shape)


def test_report_dict_has_the_contract_keys():
    layer = make_layer()
    rep = build_report(layer, data(), sweep_widths=[6, 8], progress=False, source={"data": "x"})
    d = json.loads(json.dumps(rep.to_dict()))  # JSON-clean
    for key in ("sqnr_db", "max_abs_error", "rmse", "bound", "bound_lsb", "max_error_lsb", "within_bound",
                "per_filter", "saturation", "sweep", "formats", "overflow", "source"):
        assert key in d, key
    assert d["within_bound"] is True and d["source"] == {"data": "x"}
    assert [r["filter"] for r in d["per_filter"]] == [0, 1, 2]
    assert max(r["max_abs_error"] for r in d["per_filter"]) == d["max_abs_error"]
    assert all(r["max_error_lsb"] * d["output_lsb"] == pytest.approx(r["max_abs_error"]) for r in d["per_filter"])
    assert list(d["saturation"]) == ["input", "weight", "bias", "accumulator", "output"]
    assert d["saturation"]["accumulator"]["overflows"] == 0
    assert [(r["stage"], r["width"]) for r in d["sweep"]] == [(s, w) for s in ("weight", "input", "output")
                                                              for w in (6, 8)]
    assert d["formats"]["accumulator"] == str(layer.accumulator_format)
    text = rep.text()
    assert "per filter" in text and "overflow per stage" in text and "bit-width sweep" in text


@pytest.mark.parametrize("mode,kind", [("SAT", "saturated"), ("WRAP", "wrapped"), ("SAT_ZERO", "zeroed")])
def test_overflow_counts_per_stage_and_kind(mode, kind):
    layer = make_layer(input_format=f"fixed<6,1,RND,{mode}>", output_format=f"fixed<6,-1,RND,{mode}>")
    x = data(scale=3.0)
    rep = build_report(layer, x, progress=False)
    sat = rep.to_dict()["saturation"]
    expected_in = int(layer.input_format.quantize_with_flags(x)[1].sum())
    assert sat["input"]["overflows"] == expected_in > 0 and sat["input"][kind] == expected_in
    assert sat["input"]["values"] == x.size
    assert sat["output"]["overflows"] == rep.error.overflow["output"] > 0
    assert sat["output"][kind] == sat["output"]["overflows"]
    assert sum(sat["output"][k] for k in ("saturated", "wrapped", "zeroed")) == sat["output"]["overflows"]
    assert f"{sat['input']['overflows']} {kind}" in rep.text()


def test_per_filter_errors_channels_first_and_perfect_filters():
    layer = make_layer(data_format="channels_first", output_format="fixed<24,8,RND,SAT>")
    x = data((2, 2, 9))
    rep = build_report(layer, x, progress=False)
    err = np.abs(rep.y_fixed - rep.y_float)
    assert [r["max_abs_error"] for r in rep.per_filter] == pytest.approx(err.max(axis=(0, 2)).tolist())
    # A filter with no error at all reports SQNR "inf" in JSON.
    zero = Conv1DTransposeQ(layer.config, np.zeros((4, 3, 2)), np.zeros(3), input_format="fixed<8,3,RND,SAT>",
                            weight_format="fixed<8,1>", bias_format="fixed<8,3>", output_format="fixed<16,6>")
    d = build_report(zero, x, progress=False).to_dict()
    assert d["sqnr_db"] == "inf" and d["per_filter"][0]["sqnr_db"] == "inf"


def test_write_report_files_plots_and_replacement(tmp_path):
    rep = build_report(make_layer(), data(), sweep_widths=range(5, 9), progress=False)
    written = write_report(rep, tmp_path / "rep")
    names = {p.name for p in written}
    assert names == {"report.json", "sqnr_vs_bits.png", "error_histogram.png", "trace.png"}
    for name in names - {"report.json"}:
        png = (tmp_path / "rep" / name).read_bytes()
        assert png.startswith(PNG) and len(png) < 120_000
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["plots"] == [
        "sqnr_vs_bits.png", "error_histogram.png", "trace.png"]
    # An existing folder: files replaced, other files kept, no temporaries left.
    (tmp_path / "rep" / "notes.txt").write_text("mine")
    rep2 = build_report(make_layer(), data(), progress=False)
    write_report(rep2, tmp_path / "rep", plots=False)
    assert (tmp_path / "rep" / "notes.txt").read_text() == "mine"
    assert "sweep" not in json.loads((tmp_path / "rep" / "report.json").read_text())
    assert not [p for p in tmp_path.rglob(".*")]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        write_report(rep2, tmp_path / "file")


def test_cli_config_form_writes_plots_and_new_keys(tmp_path, capsys):
    cfg = {"layer": {"filters": 2, "kernel_size": 3, "strides": 2, "activation": "leaky_relu", "in_channels": 2},
           "formats": {"input": "fixed<8,3,RND,SAT>", "weight": "fixed<8,1,RND,SAT>", "bias": "fixed<12,3>",
                       "output": "fixed<12,4,RND,SAT>"}}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "w.npz", kernel=rng.normal(0, 0.3, (3, 2, 2)), bias=rng.normal(0, 0.1, 2))
    rc = main(["analyze", str(tmp_path / "c.json"), "--weights", str(tmp_path / "w.npz"), "--sweep", "6:7",
               "-o", str(tmp_path / "rep"), "-q"])
    out = capsys.readouterr().out
    assert rc == 0 and "per filter" in out and "wrote" in out
    d = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert d["source"]["config"].endswith("c.json") and len(d["sweep"]) == 6 and len(d["per_filter"]) == 2
    assert (tmp_path / "rep" / "sqnr_vs_bits.png").read_bytes().startswith(PNG)
    # Keras-only options are refused in the CONFIG.json form.
    rc = main(["analyze", str(tmp_path / "c.json"), "--weights", str(tmp_path / "w.npz"), "--width", "6"])
    assert rc == 2 and "--width only apply with --keras" in capsys.readouterr().err
