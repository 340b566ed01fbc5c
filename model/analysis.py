"""Quantization-error analysis: the fixed-point layer against the float (Keras-equal) layer.

:func:`analyze` runs both on the same float input and measures the error; it
also computes an analytic, per-output worst-case bound that holds whenever no
stage overflows:

    |y_fixed - y_float| <= L_act * sum_terms(ex*|w_q| + |x|*ew) + L_act*eb
                           + |s - s_q| * |pre-activation| (leaky_relu only)
                           + eo + float64 rounding slack

with ``ex, ew, eb, eo`` the largest rounding errors of the input, weight, bias
and output formats (one LSB for TRN modes, half an LSB for RND modes), ``w_q``
the quantized weights, ``x`` the float input, and ``L_act`` the activation's
Lipschitz constant (1 for the supported ones). :func:`sweep` repeats the
analysis over a range of widths for one format at a time.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from .fixedpoint import FixedFormat
from .float_model import conv1d_transpose
from .geometry import scatter_taps
from .quantized import LEAKY_SLOPE_FRAC, Conv1DTransposeQ

__all__ = ["ErrorReport", "analyze", "error_bound", "random_input", "sweep"]


@dataclass
class ErrorReport:
    """Error of the fixed-point layer against the float layer on one input set.

    Errors are in the output's real units unless named ``*_lsb`` (units of one
    output LSB). ``bound`` is the largest per-output analytic bound;
    ``within_bound`` says whether every output whose requantization did not
    overflow stayed within its own bound, and ``bound_applies`` whether no input,
    weight or bias overflowed (the bound assumes none did).
    """

    layer: str
    n_outputs: int
    max_abs_error: float
    rmse: float
    sqnr_db: float
    max_error_lsb: float
    bound: float
    bound_lsb: float
    within_bound: bool
    bound_applies: bool
    overflow: dict = field(default_factory=dict)
    per_filter_max_abs_error: list = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        # JSON has no infinity: an error-free run has SQNR "inf".
        d["sqnr_db"] = d["sqnr_db"] if np.isfinite(d["sqnr_db"]) else "inf"
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def __str__(self) -> str:
        rows = [
            ("outputs compared", f"{self.n_outputs}"),
            ("max |error|", f"{self.max_abs_error:.6g}  ({self.max_error_lsb:.3g} output LSB)"),
            ("analytic bound", f"{self.bound:.6g}  ({self.bound_lsb:.3g} output LSB)"),
            ("within bound", "yes" if self.within_bound else "NO"),
            ("RMSE", f"{self.rmse:.6g}"),
            ("SQNR", f"{self.sqnr_db:.2f} dB"),
            ("overflows", ", ".join(f"{k} {v}" for k, v in self.overflow.items())),
        ]
        if not self.bound_applies:
            rows.append(("note", "inputs, weights or bias overflowed: the bound assumes they do not"))
        width = max(len(k) for k, _ in rows)
        return "\n".join([self.layer] + [f"  {k:<{width}}  {v}" for k, v in rows])


def random_input(layer: Conv1DTransposeQ, *, batch: int = 4, length: int = 32, seed: int = 0,
                 fill: float = 0.9) -> np.ndarray:
    """Uniform random float input covering ``fill`` of the input format's range."""
    rng = np.random.default_rng(seed)
    fmt = layer.input_format
    shape = (batch, length, layer.config.in_channels)
    x = rng.uniform(fmt.min_value * fill, fmt.max_value * fill, size=shape)
    return x.transpose(0, 2, 1) if layer.config.data_format == "channels_first" else x


def _float_reference(layer: Conv1DTransposeQ, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float layer output and its pre-activation (both in the layer's data_format)."""
    cfg = layer.config
    kwargs = dict(strides=cfg.strides, padding=cfg.padding, output_padding=cfg.output_padding,
                  dilation_rate=cfg.dilation_rate, data_format=cfg.data_format)
    bias = layer.bias if cfg.use_bias else None
    pre = conv1d_transpose(x, layer.kernel, bias, activation=None, **kwargs)
    out = conv1d_transpose(x, layer.kernel, bias, activation=cfg.activation, **kwargs)
    return out, pre


def error_bound(layer: Conv1DTransposeQ, x: np.ndarray, pre_activation: np.ndarray | None = None) -> np.ndarray:
    """Per-output analytic bound on |fixed - float| for float input ``x`` (no overflow assumed)."""
    cfg = layer.config
    xl = np.asarray(x, dtype=np.float64)
    if cfg.data_format == "channels_first":
        xl = xl.transpose(0, 2, 1)
    out_len = cfg.output_length(xl.shape[1])

    def conv(a, w):
        return scatter_taps(a, w, cfg.strides, cfg.dilation_rate, cfg.crop_left, out_len)

    ex = layer.input_format.max_rounding_error
    ew = layer.weight_format.max_rounding_error
    wq_abs = np.abs(layer.weight_format.dequantize(layer.kernel_codes))
    pre = conv(np.full_like(xl, ex), wq_abs) + conv(np.abs(xl), np.full_like(wq_abs, ew))
    if cfg.use_bias:
        pre = pre + layer.bias_format.max_rounding_error
    # float64 rounding of the reference itself, far below any LSB but not zero.
    slack = 1e-12 * (conv(np.abs(xl), np.abs(layer.kernel)) + np.abs(layer.bias)) + 1e-300
    bound = pre + slack
    if cfg.activation == "leaky_relu":
        if pre_activation is None:
            pre_activation = _float_reference(layer, x)[1]
        pa = pre_activation.transpose(0, 2, 1) if cfg.data_format == "channels_first" else pre_activation
        slope_q = layer.leaky_slope_code / (1 << LEAKY_SLOPE_FRAC)
        bound = bound + abs(0.2 - slope_q) * np.abs(pa)
    bound = bound + layer.output_format.max_rounding_error
    return bound.transpose(0, 2, 1) if cfg.data_format == "channels_first" else bound


def analyze(layer: Conv1DTransposeQ, x=None, *, batch: int = 4, length: int = 32, seed: int = 0) -> ErrorReport:
    """Compare the fixed-point layer with the float layer on ``x`` (random if omitted).

    ``x`` is float input in the layer's data_format, ``(batch, length, channels)``
    for channels_last.
    """
    if x is None:
        x = random_input(layer, batch=batch, length=length, seed=seed)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    y_float, pre = _float_reference(layer, x)
    codes, in_over = layer.input_format.quantize_with_flags(x, name="input")
    st = layer.stages(codes)
    y_fixed = layer.output_format.dequantize(st.output)
    err = y_fixed - y_float
    bound = error_bound(layer, x, pre)
    abs_err = np.abs(err)
    lsb = layer.output_format.lsb
    ok = (abs_err <= bound) | st.output_overflow
    filt_axis = 1 if layer.config.data_format == "channels_first" else 2
    per_filter = np.moveaxis(abs_err, filt_axis, -1).reshape(-1, layer.config.filters)
    noise = float(np.sum(err ** 2))
    signal = float(np.sum(y_float ** 2))
    n = int(err.size)
    return ErrorReport(
        layer=repr(layer),
        n_outputs=n,
        max_abs_error=float(abs_err.max()) if n else 0.0,
        rmse=float(np.sqrt(noise / n)) if n else 0.0,
        sqnr_db=float(10 * np.log10(signal / noise)) if noise > 0 else float("inf"),
        max_error_lsb=float(abs_err.max() / lsb) if n else 0.0,
        bound=float(bound.max()) if n else 0.0,
        bound_lsb=float(bound.max() / lsb) if n else 0.0,
        within_bound=bool(ok.all()),
        bound_applies=not (in_over.any() or layer.weight_overflow or layer.bias_overflow),
        overflow={"input": int(in_over.sum()), "weight": layer.weight_overflow,
                  "bias": layer.bias_overflow, "accumulator": 0,
                  "output": int(st.output_overflow.sum())},
        per_filter_max_abs_error=per_filter.max(axis=0).tolist() if n else [0.0] * layer.config.filters,
    )


_STAGES = ("input", "weight", "bias", "output")


def _bias_within(formats: dict) -> FixedFormat | None:
    """The bias format, its finest bits dropped if narrower inputs or weights
    leave the accumulator fewer fractional bits than the bias has."""
    bias = formats["bias_format"]
    acc_frac = formats["input_format"].frac + formats["weight_format"].frac
    if bias is None or bias.frac <= acc_frac:
        return bias
    width = bias.width - (bias.frac - acc_frac)
    integer = bias.integer if width >= 1 else 1 - acc_frac  # keep at least one bit
    return FixedFormat(max(width, 1), integer, bias.signed, bias.rounding, bias.overflow)


def sweep(layer: Conv1DTransposeQ, x=None, *, widths=range(4, 17), vary=("weight", "input", "output"),
          progress: bool = True, **random_kwargs) -> list[dict]:
    """SQNR and max error as one format's width changes, the others fixed.

    Each varied format keeps its integer bits (so its range) and modes; only its
    precision changes; where that leaves the accumulator fewer fractional bits
    than the bias format has, the bias loses its finest bits too (reported as
    ``bias_format``). Returns one row per (stage, width) with ``stage``,
    ``width``, ``format``, ``sqnr_db``, ``max_abs_error``, ``bound`` and ``bias_format``.
    """
    from tqdm.auto import tqdm

    bad = [s for s in vary if s not in _STAGES or (s == "bias" and layer.bias_format is None)]
    if bad:
        raise ValueError(f"cannot vary {bad}; choose from {', '.join(_STAGES)} (bias only with use_bias)")
    if x is None:
        x = random_input(layer, **random_kwargs)
    base = {"input": layer.input_format, "weight": layer.weight_format,
            "bias": layer.bias_format, "output": layer.output_format}
    jobs = [(s, w) for s in vary for w in widths]
    rows = []
    for stage, width in tqdm(jobs, desc="bit-width sweep", disable=not progress, leave=False):
        old = base[stage]
        fmt = FixedFormat(width, old.integer, old.signed, old.rounding, old.overflow)
        formats = {f"{k}_format": (fmt if k == stage else v) for k, v in base.items()}
        formats["bias_format"] = _bias_within(formats)
        trial = Conv1DTransposeQ(layer.config, layer.kernel, layer.bias if layer.config.use_bias else None,
                                 **formats)
        rep = analyze(trial, x)
        rows.append({"stage": stage, "width": width, "format": str(fmt), "sqnr_db": rep.sqnr_db,
                     "max_abs_error": rep.max_abs_error, "bound": rep.bound,
                     "bias_format": str(formats["bias_format"]) if formats["bias_format"] else None})
    return rows
