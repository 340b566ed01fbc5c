"""The quantization-error report of ``tconv analyze``: a text table, ``report.json`` and PNG plots.

:func:`build_report` runs the float layer and the bit-accurate model on the same
input and collects everything; :meth:`Report.text` is the terminal table,
:meth:`Report.to_dict` the JSON, :func:`render_plots` the PNGs (matplotlib's Agg
canvas, never the global pyplot state) and :func:`write_report` puts them in a
folder without leaving anything half-written.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tconv.hw.files import current_umask, write_atomic
from tconv.model import Conv1DTransposeQ, ErrorReport, analyze, conv1d_transpose, error_bound, sweep
from tconv.model.analysis import check_sweep, json_number, rms, sqnr_db

__all__ = ["Report", "build_report", "overflow_warning", "quantization_warning", "render_plots", "write_report",
           "PLOTS"]

#: The PNG files a report folder holds (the sweep plot only when a sweep ran).
PLOTS = ("sqnr_vs_bits.png", "error_histogram.png", "trace.png")
_EFFECT = {"WRAP": "wrapped", "SAT": "saturated", "SAT_SYM": "saturated", "SAT_ZERO": "zeroed"}
_MAX_FILTER_ROWS = 16


_num = json_number  # JSON has no infinity or NaN: "inf", "-inf" and "nan", as the text prints them


def overflow_warning(stages: dict) -> str | None:
    """One line saying which quantized values overflowed their formats, or None if none did.

    ``stages`` maps what was quantized (``"weight"``, ``"bias"``, ``"calibration
    input"``, ...) to ``{"overflows": n, "values": m, "format": FixedFormat}``
    (:meth:`Conv1DTransposeQ.quantization_overflows` gives the weights' and bias');
    e.g. ``quantizing saturated 33 of 48 weight values (fixed<8,1,RND,SAT>) and
    wrapped 2 of 4 bias values (fixed<12,4>)``.
    """
    parts = [f"{_EFFECT[s['format'].overflow]} {s['overflows']} of {s['values']} {name} values ({s['format']})"
             for name, s in stages.items() if s["overflows"]]
    if not parts:
        return None
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"quantizing {listed}"


def quantization_warning(layer: Conv1DTransposeQ, calibration=None) -> str | None:
    """:func:`overflow_warning` for ``layer``'s weights and bias and, with its
    ``calibration``, the calibration inputs and outputs in formats that were given
    (calibrated formats never overflow on the calibration data)."""
    stages = layer.quantization_overflows()
    if calibration is not None:
        for name in ("input", "output"):
            st = calibration.stages[name]
            stages[f"calibration {name}"] = {"overflows": st.overflows, "values": st.count, "format": st.format}
    return overflow_warning(stages)


@dataclass
class Report:
    """Everything ``tconv analyze`` reports on one layer and one input set.

    Attributes
    ----------
    layer : Conv1DTransposeQ
    error : ErrorReport
        Overall error, bound and overflow counts (:func:`tconv.model.analyze`).
    x, y_float, y_fixed, bound : ndarray
        Float input, float output, fixed-point output (dequantized) and per-output
        analytic bound, in the layer's data_format.
    per_filter : list of dict
        ``filter``, ``max_abs_error``, ``max_error_lsb``, ``rmse``, ``sqnr_db``.
    saturation : dict
        Per stage: ``format``, ``overflow_mode``, ``values``, ``overflows`` and how
        many were ``saturated``, ``wrapped`` or ``zeroed``.
    sweep : list of dict or None
        Rows of :func:`tconv.model.sweep`.
    calibration : tconv.model.Calibration or None
    source : dict
        Where layer and data came from (free-form, goes into the JSON).
    """

    layer: Conv1DTransposeQ
    error: ErrorReport
    x: np.ndarray
    y_float: np.ndarray
    y_fixed: np.ndarray
    bound: np.ndarray
    per_filter: list
    saturation: dict
    sweep: list | None = None
    calibration: object = None
    source: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ json
    def formats(self) -> dict:
        q = self.layer
        f = {"input": str(q.input_format), "weight": str(q.weight_format)}
        if q.bias_format is not None:
            f["bias"] = str(q.bias_format)
        f["accumulator"] = str(q.accumulator_format)
        f["output"] = str(q.output_format)
        return f

    def to_dict(self) -> dict:
        """The ``report.json`` object; infinities and NaN are the strings ``"inf"``, ``"-inf"``
        and ``"nan"``, as :meth:`text` prints them."""
        d = self.error.to_dict()
        d["output_lsb"] = self.layer.output_format.lsb
        d["formats"] = self.formats()
        d["per_filter"] = [{k: _num(v) if isinstance(v, float) else v for k, v in row.items()}
                           for row in self.per_filter]
        d["saturation"] = self.saturation
        if self.sweep is not None:
            d["sweep"] = [{**r, **{k: _num(r[k]) for k in ("sqnr_db", "max_abs_error", "bound")}}
                          for r in self.sweep]
        if self.calibration is not None:
            d["calibration"] = self.calibration.to_dict()
        if self.source:
            d["source"] = dict(self.source)
        return d

    # ------------------------------------------------------------------ text
    def text(self) -> str:
        """The terminal table: summary, per-filter errors, overflows per stage, sweep."""
        lines = [str(self.error), f"  {'accumulator':<16}  {self.layer.accumulator_format} (derived: "
                                  f"{self.layer.terms} products per output)"]
        rows = self.per_filter
        shown = rows
        if len(rows) > _MAX_FILTER_ROWS:
            shown = sorted(rows, key=lambda r: -r["max_abs_error"])[:_MAX_FILTER_ROWS // 2]
        title = "per filter" if shown is rows else f"per filter (the {len(shown)} worst of {len(rows)})"
        lines += ["", title,
                  f"  {'filter':>6} {'max |err|':>11} {'LSB':>7} {'RMSE':>11} {'SQNR dB':>8}"]
        for r in shown:
            lines.append(f"  {r['filter']:>6} {r['max_abs_error']:>11.4g} {r['max_error_lsb']:>7.3g} "
                         f"{r['rmse']:>11.4g} {r['sqnr_db']:>8.2f}")
        lines += ["", "overflow per stage (values outside the format's range)",
                  f"  {'stage':<12} {'format':<24} {'mode':<9} {'values':>8} {'overflowed':>10}"]
        for stage, s in self.saturation.items():
            effect = f"  ({s['overflows']} {_EFFECT.get(s['overflow_mode'], '')})" if s["overflows"] else ""
            lines.append(f"  {stage:<12} {s['format']:<24} {s['overflow_mode']:<9} {s['values']:>8} "
                         f"{s['overflows']:>10}{effect}")
        if self.sweep:
            lines += ["", "bit-width sweep (one format varied, its integer bits kept; the others as chosen)",
                      f"  {'stage':<7} {'format':<24} {'SQNR dB':>8} {'max |err|':>11} {'bound':>11}"]
            for r in self.sweep:
                if r.get("skipped"):
                    lines.append(f"  {r['stage']:<7} {r['format']:<24} skipped: the {self.layer.config.activation} "
                                 "table would exceed its size limit")
                    continue
                lines.append(f"  {r['stage']:<7} {r['format']:<24} {r['sqnr_db']:>8.2f} "
                             f"{r['max_abs_error']:>11.4g} {r['bound']:>11.4g}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()


def build_report(layer: Conv1DTransposeQ, x, *, sweep_widths=None, vary=("weight", "input", "output"),
                 progress: bool = True, calibration=None, source: dict | None = None) -> Report:
    """Run the float and the fixed-point layer on ``x`` and collect the report.

    Parameters
    ----------
    layer : Conv1DTransposeQ
    x : array_like
        Float input in the layer's data_format, ``(batch, length, in_channels)``
        for channels_last (unbatched accepted).
    sweep_widths : iterable of int, optional
        Also sweep these widths of each format in ``vary`` (tqdm bar on stderr
        unless ``progress`` is false).
    calibration : tconv.model.Calibration, optional
        Included in the report when given.
    source : dict, optional
        Provenance for the JSON (model file, layer name, data file).

    Raises
    ------
    ValueError
        For bad input (:meth:`LayerConfig.check_float_input`: wrong shape, no
        data, too much, NaN/inf) or a sweep that cannot run
        (:func:`tconv.model.analysis.check_sweep`), before anything is computed.
    """
    x = layer.config.check_float_input(x, "analysis input")
    if sweep_widths is not None:  # a sweep that cannot run is refused before anything else runs
        sweep_widths, vary = check_sweep(layer, sweep_widths, vary)
    error = analyze(layer, x)
    # Weights near float64's limit overflow the float reference: the numbers say so
    # (inf, nan), numpy's warnings are not printed.
    with np.errstate(over="ignore", invalid="ignore"):
        return _build(layer, x, error, sweep_widths, vary, progress, calibration, source)


def _build(layer, x, error, sweep_widths, vary, progress, calibration, source) -> Report:
    """The rest of :func:`build_report`, on checked input."""
    cfg = layer.config
    y_float = conv1d_transpose(x, layer.kernel, layer.bias if cfg.use_bias else None, strides=cfg.strides,
                               padding=cfg.padding, output_padding=cfg.output_padding,
                               dilation_rate=cfg.dilation_rate, data_format=cfg.data_format,
                               activation=cfg.activation)
    codes, in_over = layer.input_format.quantize_with_flags(x, name="input")
    st = layer.stages(codes)
    y_fixed = layer.output_format.dequantize(st.output)
    bound = error_bound(layer, x)

    # Per filter, with the filter axis last.
    axis = 1 if cfg.data_format == "channels_first" else 2
    err = np.moveaxis(y_fixed - y_float, axis, -1).reshape(-1, cfg.filters)
    ref = np.moveaxis(y_float, axis, -1).reshape(-1, cfg.filters)
    lsb = layer.output_format.lsb
    per_filter = []
    for f in range(cfg.filters):
        e = err[:, f]
        n = e.size
        per_filter.append({
            "filter": f,
            "max_abs_error": float(np.abs(e).max()) if n else 0.0,
            "max_error_lsb": float(np.abs(e).max() / lsb) if n else 0.0,
            "rmse": rms(e),
            "sqnr_db": sqnr_db(ref[:, f], e),
        })

    def stage(fmt, values, overflows, mode=None):
        mode = mode or fmt.overflow
        return {"format": str(fmt), "overflow_mode": mode, "values": int(values), "overflows": int(overflows),
                "saturated": int(overflows) if mode in ("SAT", "SAT_SYM") else 0,
                "wrapped": int(overflows) if mode == "WRAP" else 0,
                "zeroed": int(overflows) if mode == "SAT_ZERO" else 0}

    saturation = {"input": stage(layer.input_format, x.size, in_over.sum()),
                  "weight": stage(layer.weight_format, layer.kernel.size, layer.weight_overflow)}
    if layer.bias_format is not None:
        saturation["bias"] = stage(layer.bias_format, cfg.filters, layer.bias_overflow)
    # Exact by construction: the accumulator is derived wide enough for any sum.
    saturation["accumulator"] = stage(layer.accumulator_format, st.accumulator.size, 0, mode="exact")
    saturation["output"] = stage(layer.output_format, st.output.size, st.output_overflow.sum())

    rows = None
    if sweep_widths is not None:
        rows = sweep(layer, x, widths=list(sweep_widths), vary=tuple(vary), progress=progress)
    return Report(layer, error, x, y_float, y_fixed, bound, per_filter, saturation, rows, calibration,
                  dict(source or {}))


# ------------------------------------------------------------------ plots
def _figure(width=7.0, height=3.2):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=90, layout="constrained")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _sweep_plot(report: Report) -> bytes:
    fig = _figure()
    ax_sqnr, ax_err = fig.subplots(1, 2)
    chosen = {"input": report.layer.input_format, "weight": report.layer.weight_format,
              "bias": report.layer.bias_format, "output": report.layer.output_format}
    for stage in dict.fromkeys(r["stage"] for r in report.sweep):
        rows = [r for r in report.sweep if r["stage"] == stage]
        w = [r["width"] for r in rows]
        sqnr = [r["sqnr_db"] if math.isfinite(r["sqnr_db"]) else np.nan for r in rows]
        err = [r["max_abs_error"] if r["max_abs_error"] > 0 else np.nan for r in rows]
        (line,) = ax_sqnr.plot(w, sqnr, marker=".", label=stage)
        ax_err.plot(w, err, marker=".", color=line.get_color(), label=stage)
        fmt = chosen.get(stage)
        if fmt is not None and fmt.width in w:
            i = w.index(fmt.width)
            ax_sqnr.plot([w[i]], [sqnr[i]], marker="o", markersize=8, mfc="none", color=line.get_color())
    ax_sqnr.set(xlabel="width of the varied format (bits)", ylabel="SQNR (dB)", title="SQNR vs bits")
    ax_err.set(xlabel="width of the varied format (bits)", ylabel="max |error|", title="max error vs bits",
               yscale="log")
    from matplotlib.ticker import MaxNLocator

    for ax in (ax_sqnr, ax_err):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_sqnr.legend(title="varied", fontsize="small")
    ax_sqnr.grid(alpha=0.3)
    ax_err.grid(alpha=0.3)
    fig.suptitle("one format varied at a time (circle: chosen width)", fontsize="small")
    return _png(fig)


def _histogram_plot(report: Report) -> bytes:
    fig = _figure(6.0, 3.2)
    ax = fig.subplots()
    lsb = report.layer.output_format.lsb
    err = ((report.y_fixed - report.y_float) / lsb).ravel()
    ax.hist(err, bins=min(80, max(10, int(np.sqrt(err.size)))), color="tab:blue", alpha=0.8)
    b = report.error.bound_lsb
    for v in (-b, b):
        ax.axvline(v, color="tab:red", linestyle="--", linewidth=1)
    ax.set(xlabel=f"fixed - float (output LSB = {lsb:.3g})", ylabel="outputs",
           title=f"error histogram: max {report.error.max_error_lsb:.3g} LSB, bound {b:.3g} LSB (dashed)")
    ax.title.set_fontsize("small")
    return _png(fig)


def _trace_plot(report: Report) -> bytes:
    cfg = report.layer.config
    axis = 1 if cfg.data_format == "channels_first" else 2
    yf = np.moveaxis(report.y_float, axis, -1)[0]
    yq = np.moveaxis(report.y_fixed, axis, -1)[0]
    bound = np.moveaxis(report.bound, axis, -1)[0]
    # The filter with the largest error in the first sequence shows the most.
    f = int(np.argmax(np.abs(yq - yf).max(axis=0))) if yf.size else 0
    n = min(yf.shape[0], 256)
    t = np.arange(n)
    fig = _figure(7.0, 4.0)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    top.plot(t, yf[:n, f], color="tab:blue", linewidth=1.5, label="float (Keras)")
    top.plot(t, yq[:n, f], color="tab:orange", linewidth=0, marker=".", markersize=4, label="fixed point")
    top.set(ylabel="output", title=f"filter {f}, sequence 0: float vs fixed point")
    top.title.set_fontsize("small")
    top.legend(fontsize="small")
    top.grid(alpha=0.3)
    bottom.fill_between(t, -bound[:n, f], bound[:n, f], color="tab:red", alpha=0.15, label="bound")
    bottom.plot(t, yq[:n, f] - yf[:n, f], color="tab:red", linewidth=1, label="error")
    bottom.set(xlabel="output step", ylabel="error")
    bottom.legend(fontsize="small", loc="upper right")
    bottom.grid(alpha=0.3)
    return _png(fig)


def render_plots(report: Report) -> dict[str, bytes]:
    """PNG bytes by file name: ``error_histogram.png``, ``trace.png`` and, with a sweep, ``sqnr_vs_bits.png``."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ValueError("plots need matplotlib: pip install -e '.[plot]' (or pass --no-plots)") from None
    plots = {}
    if report.sweep:
        plots["sqnr_vs_bits.png"] = _sweep_plot(report)
    plots["error_histogram.png"] = _histogram_plot(report)
    plots["trace.png"] = _trace_plot(report)
    return plots


# ------------------------------------------------------------------ files
def write_report(report: Report, folder, *, plots: bool = True) -> list[Path]:
    """Write ``report.json`` (and the plots) into ``folder``; returns the paths written.

    Everything is rendered in memory first. A new folder appears whole (built
    beside it and renamed); in an existing folder each file is replaced
    atomically, other files are left alone.
    """
    files = {}
    if plots:
        files.update(render_plots(report))
    obj = report.to_dict()
    obj["plots"] = [name for name in PLOTS if name in files]
    files = {"report.json": (json.dumps(obj, indent=2) + "\n").encode(), **files}
    return write_files(files, folder)


def write_files(files: dict[str, bytes], folder) -> list[Path]:
    """Write ``files`` ({name: bytes}) into ``folder`` as `write_report` does: a new folder appears
    whole, in an existing one each file is replaced atomically; returns the paths written."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a folder; choose another -o")
    folder.parent.mkdir(parents=True, exist_ok=True)
    if not folder.exists():
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it private
            for name, data in files.items():
                (tmp / name).write_bytes(data)
            tmp.rename(folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    else:
        for name, data in files.items():
            write_atomic(folder / name, data)
    return [folder / name for name in files]
