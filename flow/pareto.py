"""The Pareto front of a ``tconv explore`` sweep, its constraints, its table and its plot.

A row (one point of the grid, :mod:`tconv.flow.explore`) is judged on three
objectives: SQNR (``sqnr_db``, higher is better), resource cost
(``resource_cost``, lower is better) and throughput (`throughput_key`, higher is
better). With ``--synth`` the cost is the placed design's LUT4 count plus its
MULT18X18D and EBR blocks, each weighted by how scarce it is on the device
(:data:`LUT4_PER_BLOCK`), and the throughput is input steps per second at the
placed Fmax; without synthesis the cost is the number of multipliers the array
builds and the throughput is input steps per clock cycle (``1 / cycles_per_step``).
A row is on the front when no other row is at least as good in all three and
better in one. Rows with an ``error`` take no part.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

__all__ = ["LUT4_PER_BLOCK", "Constraints", "OBJECTIVES", "best_row", "dominates", "front_table", "pareto_flags",
           "render_plot", "resource_cost", "throughput_key"]

#: Objectives: row key and +1 to maximize, -1 to minimize ("throughput" is `throughput_key`'s).
OBJECTIVES = (("sqnr_db", +1), ("resource_cost", -1), ("throughput", +1))

#: LUT4s one MULT18X18D and one EBR count as in ``resource_cost`` with ``--synth``: the device's
#: LUT4s divided by its multipliers (EBRs), i.e. the same share of the chip (Lattice's ECP5 family
#: data sheet: LFE5U-25F 24,288 LUT4 / 28 MULT18X18D / 56 EBR; 45F 43,848 / 72 / 108;
#: 85F 83,640 / 156 / 208).
LUT4_PER_BLOCK = {
    "ecp5-25k": {"mult18": 24288 // 28, "ebr": 24288 // 56},
    "ecp5-45k": {"mult18": 43848 // 72, "ebr": 43848 // 108},
    "ecp5-85k": {"mult18": 83640 // 156, "ebr": 83640 // 208},
}


def resource_cost(row: dict, device: str | None) -> float:
    """The row's resource cost: LUT4-equivalents after synthesis (``device`` given), else multipliers built."""
    if device is None:
        return float(row["multipliers"])
    w = LUT4_PER_BLOCK[device]
    return float(row["lut4"] + w["mult18"] * row["mult18"] + w["ebr"] * row["ebr"])


def throughput_key(row: dict) -> str:
    """``throughput_steps_per_s`` for a synthesized row, ``throughput_steps_per_cycle`` without synthesis."""
    return "throughput_steps_per_s" if "fmax_mhz" in row else "throughput_steps_per_cycle"


def _value(row: dict, key: str, sense: int) -> float:
    """The objective as a number to maximize (an undefined SQNR, ``nan``, is the worst)."""
    v = row[throughput_key(row) if key == "throughput" else key]
    v = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}.get(v, v) if isinstance(v, str) else float(v)
    return -math.inf if math.isnan(v) else sense * v


def dominates(a: dict, b: dict) -> bool:
    """``a`` is at least as good as ``b`` in every objective and better in one."""
    va = [_value(a, k, s) for k, s in OBJECTIVES]
    vb = [_value(b, k, s) for k, s in OBJECTIVES]
    return all(x >= y for x, y in zip(va, vb)) and any(x > y for x, y in zip(va, vb))


def pareto_flags(rows: list[dict]) -> list[bool]:
    """For each row, whether it is on the Pareto front of ``rows`` (rows with ``error``: False)."""
    ok = [r for r in rows if "error" not in r]
    return ["error" not in r and not any(dominates(o, r) for o in ok if o is not r) for r in rows]


@dataclass(frozen=True)
class Constraints:
    """``--min-sqnr``, ``--max-dsp``, ``--min-fmax``: the points a design may be picked from.

    ``max_dsp`` bounds MULT18X18D after synthesis, the multipliers the array
    builds without it (one MULT18X18D each); ``min_fmax`` needs synthesis.
    """

    min_sqnr: float | None = None
    max_dsp: int | None = None
    min_fmax: float | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.min_sqnr, self.max_dsp, self.min_fmax))

    def met(self, row: dict) -> bool:
        if "error" in row:
            return False
        if self.min_sqnr is not None and not _value(row, "sqnr_db", +1) >= self.min_sqnr:
            return False
        if self.max_dsp is not None and row.get("mult18", row["multipliers"]) > self.max_dsp:
            return False
        return self.min_fmax is None or row["fmax_mhz"] >= self.min_fmax

    def describe(self) -> str:
        parts = []
        if self.min_sqnr is not None:
            parts.append(f"SQNR >= {self.min_sqnr:g} dB")
        if self.max_dsp is not None:
            parts.append(f"MULT18X18D <= {self.max_dsp}")
        if self.min_fmax is not None:
            parts.append(f"Fmax >= {self.min_fmax:g} MHz")
        return ", ".join(parts)


def best_row(rows: list[dict], constraints: Constraints) -> dict | None:
    """The point to pick: among the rows that meet ``constraints``, the highest throughput, then
    the lowest resource cost, then the highest SQNR, then the narrowest widths and fewest PEs.
    (It is on the Pareto front of those rows.) None when no row meets them."""
    ok = [r for r in rows if constraints.met(r)]
    if not ok:
        return None
    return min(ok, key=lambda r: (-_value(r, "throughput", +1), r["resource_cost"], -_value(r, "sqnr_db", +1),
                                  r["width_input"], r["width_weight"], r["pe_count"], r.get("speed") or 0))


# ------------------------------------------------------------------ the table
def _fmt(row: dict, key: str) -> str:
    v = row.get(key)
    if v is None:
        return "-"
    if key == "sqnr_db":
        return v if isinstance(v, str) else f"{v:.2f}"
    if key == "max_abs_error":
        return v if isinstance(v, str) else f"{v:.4g}"
    if key == "mac_utilization":
        return f"{v:.1%}"
    if key == "throughput_steps_per_s":
        return f"{v / 1e6:.3f}"
    if key == "throughput_steps_per_cycle":
        return f"{v:.4g}"
    if key in ("fmax_mhz", "gops"):
        return f"{v:.1f}"
    if key == "resource_cost":
        return f"{v:.0f}"
    return str(v)


def _columns(synth: bool) -> list[tuple[str, str]]:
    cols = [("width", "bits in/w"), ("pe_count", "PEs")]
    if synth:
        cols.append(("speed", "speed"))
    cols += [("sqnr_db", "SQNR dB"), ("max_abs_error", "max |err|"), ("cycles_per_step", "cycles/step"),
             ("mac_utilization", "MAC util")]
    if synth:
        cols += [("fmax_mhz", "Fmax MHz"), ("lut4", "LUT4"), ("ff", "FF"), ("mult18", "MULT18"), ("ebr", "EBR"),
                 ("resource_cost", "cost"), ("throughput_steps_per_s", "Msteps/s"), ("gops", "GOPS")]
    else:
        cols += [("multipliers", "multipliers"), ("throughput_steps_per_cycle", "steps/cycle")]
    return cols


def front_table(rows: list[dict], *, synth: bool) -> str:
    """A text table of ``rows`` (the front, say), one line each."""
    cols = _columns(synth)
    table = [[title for _, title in cols]]
    for r in rows:
        cells = []
        for key, _ in cols:
            cells.append(f"{r['width_input']}/{r['width_weight']}" if key == "width" else _fmt(r, key))
        table.append(cells)
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in table)


# ------------------------------------------------------------------ the plot
def _label(r: dict) -> str:
    bits = str(r["width_input"]) if r["width_input"] == r["width_weight"] else f"{r['width_input']}/{r['width_weight']}"
    return f"{bits}b {r['pe_count']}PE" + (f" s{r['speed']}" if r.get("speed") is not None else "")


def render_plot(rows: list[dict], *, synth: bool, best: dict | None = None) -> bytes:
    """``pareto.png``: SQNR against resource cost and against throughput, the front highlighted
    (matplotlib's Agg canvas, never the global pyplot state)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ValueError("the plot needs matplotlib: pip install -e '.[explore]' (or run make setup)") from None
    ok = [r for r in rows if "error" not in r and math.isfinite(_value(r, "sqnr_db", +1))]
    fig = Figure(figsize=(10.0, 4.2), dpi=80, layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    if synth:
        cost_label = "resource cost (LUT4 + MULT18X18D and EBR in LUT4-equivalents)"
        tput_key, tput_label, scale = "throughput_steps_per_s", "throughput (million input steps / s)", 1e-6
    else:
        cost_label = "multipliers built"
        tput_key, tput_label, scale = "throughput_steps_per_cycle", "throughput (input steps / clock cycle)", 1.0
    for ax, key, label, k in ((axes[0], "resource_cost", cost_label, 1.0), (axes[1], tput_key, tput_label, scale)):
        rest = [r for r in ok if not r["pareto"]]
        front = sorted((r for r in ok if r["pareto"]), key=lambda r: r[key])
        ax.scatter([r[key] * k for r in rest], [r["sqnr_db"] for r in rest], color="0.6", s=22,
                   label="dominated", zorder=2)
        ax.scatter([r[key] * k for r in front], [r["sqnr_db"] for r in front], color="tab:red", s=40,
                   label="Pareto front", zorder=3)
        for r in front:
            ax.annotate(_label(r), (r[key] * k, r["sqnr_db"]), textcoords="offset points", xytext=(4, 3),
                        fontsize="x-small", color="tab:red")
        if best is not None and best in ok:
            ax.scatter([best[key] * k], [best["sqnr_db"]], facecolors="none", edgecolors="black", s=140,
                       linewidths=1.5, label="best", zorder=4)
        values = [r[key] * k for r in ok if r[key] > 0]
        if values and max(values) / min(values) > 20:
            ax.set_xscale("log")
        ax.margins(x=0.12, y=0.08)
        ax.set_xlabel(label, fontsize="small")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("SQNR (dB)")
    axes[0].legend(fontsize="small", loc="lower right")
    n_front = sum(1 for r in ok if r["pareto"])
    fig.suptitle(f"tconv explore: {len(ok)} points, {n_front} on the Pareto front "
                 f"(max SQNR, min cost, max throughput)", fontsize="medium")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
