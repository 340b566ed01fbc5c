"""``tconv analyze --keras MODEL --layers A,B,C``: the chain's error report, its JSON and plots.

:func:`tconv.model.chain_analysis.analyze_chain` computes the errors; this module
adds the calibration of every stage, renders ``chain_error.png`` (SQNR and max
|error| per stage, end to end and the stage alone) and ``chain_output.png``
(float against fixed-point output of the first example's first filter), and writes
them with ``report.json`` like a layer's report (:func:`tconv.flow.report.write_files`).
"""

from __future__ import annotations

import json

import numpy as np

from tconv.model.chain_analysis import ChainErrorReport

from .report import _figure, _png, write_files

__all__ = ["chain_report_dict", "render_chain_plots", "write_chain_report", "CHAIN_PLOTS"]

CHAIN_PLOTS = ("chain_error.png", "chain_output.png")


def chain_report_dict(report: ChainErrorReport, calibrations, source: dict) -> dict:
    """The JSON report: the errors, every stage's calibration and where the data came from."""
    obj = report.to_dict()
    for stage, cal in zip(obj["stages"], calibrations):
        stage["calibration"] = cal.to_dict()
    return {"source": source, **obj}


def render_chain_plots(report: ChainErrorReport) -> dict[str, bytes]:
    """The two PNGs, rendered in memory (matplotlib's Agg canvas)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ValueError("plots need matplotlib: pip install -e '.[plot]' (or pass --no-plots)") from None
    names = [s["name"] for s in report.stages]
    fig = _figure()
    ax_sqnr, ax_err = fig.subplots(1, 2)
    pos = np.arange(len(names))
    for offset, key, label in ((-0.2, "end_to_end", "chain up to the stage"), (0.2, "local", "stage alone")):
        sq = [s[key]["sqnr_db"] if np.isfinite(s[key]["sqnr_db"]) else 0.0 for s in report.stages]
        ax_sqnr.bar(pos + offset, sq, width=0.4, label=label)
        ax_err.bar(pos + offset, [s[key]["max_abs_error"] for s in report.stages], width=0.4, label=label)
    for ax, title in ((ax_sqnr, "SQNR (dB)"), (ax_err, "max |error|")):
        ax.set_xticks(pos, names)
        ax.set_title(title)
    ax_sqnr.legend(fontsize="small")
    plots = {"chain_error.png": _png(fig)}
    fig = _figure()
    ax = fig.subplots()
    ax.plot(report.float_out[0, :, 0], label="float sub-model")
    ax.plot(report.fixed_out[0, :, 0], label="fixed-point chain", linestyle="--")
    ax.set_title("output of the last stage, example 0, filter 0")
    ax.set_xlabel("output step")
    ax.legend(fontsize="small")
    plots["chain_output.png"] = _png(fig)
    return plots


def write_chain_report(report: ChainErrorReport, calibrations, source: dict, folder, *, plots: bool = True):
    """Write ``report.json`` (and the plots) into ``folder``; returns the paths written."""
    files = render_chain_plots(report) if plots else {}
    obj = chain_report_dict(report, calibrations, source)
    obj["plots"] = [n for n in CHAIN_PLOTS if n in files]
    return write_files({"report.json": (json.dumps(obj, indent=2) + "\n").encode(), **files}, folder)
