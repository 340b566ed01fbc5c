"""Quantization-error analysis: the fixed-point layer against the float (Keras-equal) layer.

:func:`analyze` runs both on the same float input and measures the error; it
also computes an analytic, per-output worst-case bound that holds whenever no
stage overflows:

    |y_fixed - y_float| <= L_act * (sum_terms(ex*|w_q| + |x|*ew) + eb)
                           + |s - s_q| * |pre-activation| (leaky_relu only)
                           + J (hard_shrink's jump, where the pre-activation is that near it)
                           + e_table (half an output LSB, table activations only)
                           + eo + float64 rounding slack

with ``ex, ew, eb, eo`` the largest rounding errors of the input, weight, bias
and output formats (one LSB for TRN modes, half an LSB for RND modes), ``w_q``
the quantized weights, ``x`` the float input, and ``L_act`` the activation's
Lipschitz constant (`lipschitz`; exponential's is taken locally, ``exp`` at the
top of the pre-activation's error interval). :func:`sweep` repeats the
analysis over a range of widths for one format at a time.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from .activation_tables import TableTooLarge
from .activations import _SELU_ALPHA, _SELU_SCALE, _SHRINK_THRESHOLD
from .fixed_activations import FIXED_ACTIVATIONS, LEAKY_SLOPE, LEAKY_SLOPE_CODE, LEAKY_SLOPE_FRAC
from .fixedpoint import MAX_WIDTH, FixedFormat
from .float_model import conv1d_transpose
from .geometry import scatter_taps
from .quantized import Conv1DTransposeQ

__all__ = ["ErrorReport", "LIPSCHITZ", "analyze", "check_sweep", "error_bound", "lipschitz", "json_number", "random_input", "rms",
           "sqnr_db", "sweep", "sweep_stages"]


@dataclass
class ErrorReport:
    """Error of the fixed-point layer against the float layer on one input set.

    Errors are in the output's real units unless named ``*_lsb`` (units of one
    output LSB). ``bound`` is the largest per-output analytic bound;
    ``within_bound`` says whether every output whose requantization did not
    overflow stayed within its own bound, and ``bound_applies`` whether no input,
    weight or bias overflowed (the bound assumes none did).

    ``sqnr_db`` is ``inf`` when the fixed-point output equals the float one,
    ``-inf`` when the float output is all zero but the error is not, and ``nan``
    when it is undefined because the float reference itself is not finite
    (float64 overflowed, e.g. on weights near 1e300). ``str()`` prints these as
    ``inf``, ``-inf`` and ``nan``; :meth:`to_dict` (JSON has neither) as the
    strings ``"inf"``, ``"-inf"`` and ``"nan"``: the text and the JSON agree.
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
        # JSON has no infinity or NaN: they become the strings str() prints.
        for key in ("max_abs_error", "rmse", "sqnr_db", "max_error_lsb", "bound", "bound_lsb"):
            d[key] = json_number(d[key])
        d["per_filter_max_abs_error"] = [json_number(v) for v in d["per_filter_max_abs_error"]]
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


def json_number(value: float) -> float | str:
    """``value`` for JSON: finite floats as they are, infinities and NaN as ``"inf"``,
    ``"-inf"`` and ``"nan"`` (what ``str()`` of the float prints)."""
    value = float(value)
    return value if np.isfinite(value) else str(value)


def sqnr_db(reference, error) -> float:
    """``10 log10(sum reference**2 / sum error**2)``, without overflow for huge values.

    ``inf`` for no error, ``-inf`` for an all-zero reference with some error,
    ``nan`` when either array holds infinity or NaN (undefined). Both sums are
    taken on values scaled by their largest magnitude, so values up to float64's
    limit give the true ratio instead of ``inf / inf``.
    """
    ref, err = np.abs(np.asarray(reference, dtype=np.float64)), np.abs(np.asarray(error, dtype=np.float64))
    if not (np.isfinite(ref).all() and np.isfinite(err).all()):
        return float("nan")
    e_max = float(err.max()) if err.size else 0.0
    if e_max == 0:
        return float("inf")
    r_max = float(ref.max())
    if r_max == 0:
        return float("-inf")
    ratio = float(np.sum((ref / r_max) ** 2) / np.sum((err / e_max) ** 2))
    return float(10 * np.log10(ratio) + 20 * (np.log10(r_max) - np.log10(e_max)))


def rms(values) -> float:
    """Root mean square, without overflow for values near float64's limit (0 for none)."""
    a = np.abs(np.asarray(values, dtype=np.float64))
    if not a.size:
        return 0.0
    top = float(a.max())
    if top == 0 or not np.isfinite(top):
        return top
    return top * float(np.sqrt(np.mean((a / top) ** 2)))


def _check_layer(layer) -> None:
    if not isinstance(layer, Conv1DTransposeQ):
        raise TypeError(f"expected the fixed-point layer, a tconv.model.Conv1DTransposeQ, got "
                        f"{type(layer).__name__} {layer!r:.60}")


def random_input(layer: Conv1DTransposeQ, *, batch: int = 4, length: int = 32, seed: int = 0,
                 fill: float = 0.9) -> np.ndarray:
    """Uniform random float input covering ``fill`` of the input format's range.

    Raises ``ValueError`` for a ``batch`` or ``length`` below 1, or beyond the data
    size limits (:meth:`LayerConfig.check_data_limits`).
    """
    _check_layer(layer)
    for name, value in (("batch", batch), ("length", length)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"random input: {name} must be an integer >= 1, got {value!r}")
    layer.config.check_data_limits(batch, length, what=f"random input of {batch} x {length} steps")
    rng = np.random.default_rng(seed)
    fmt = layer.input_format
    shape = (batch, length, layer.config.in_channels)
    x = rng.uniform(fmt.min_value * fill, fmt.max_value * fill, size=shape)
    return x.transpose(0, 2, 1) if layer.config.data_format == "channels_first" else x


#: Upper bounds of each activation's largest slope |f'| (exponential's is local, see `lipschitz`):
#: gelu's is Phi(sqrt 2) + sqrt(2) phi(sqrt 2) = 1.1289..., silu's 1.0998..., mish's 1.0885...,
#: selu's scale * alpha, hard_silu's 1.5 at x = 3.
LIPSCHITZ = {name: 1.0 for name in FIXED_ACTIVATIONS} | {
    "sigmoid": 0.25, "hard_sigmoid": 1 / 6, "sparse_sigmoid": 0.5, "hard_silu": 1.5, "gelu": 1.129,
    "silu": 1.1, "mish": 1.089, "selu": _SELU_SCALE * _SELU_ALPHA * (1 + 1e-12),
}


def lipschitz(name: str, pre_activation, delta) -> np.ndarray:
    """Largest |f'| of activation ``name`` within ``delta`` of ``pre_activation`` (elementwise)."""
    if name == "exponential":
        with np.errstate(over="ignore"):
            return np.exp(np.asarray(pre_activation) + delta)
    return np.full(np.shape(delta), LIPSCHITZ[name])


def _float_reference(layer: Conv1DTransposeQ, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float layer output and its pre-activation (both in the layer's data_format)."""
    cfg = layer.config
    kwargs = dict(strides=cfg.strides, padding=cfg.padding, output_padding=cfg.output_padding,
                  dilation_rate=cfg.dilation_rate, data_format=cfg.data_format)
    bias = layer.bias if cfg.use_bias else None
    pre = conv1d_transpose(x, layer.kernel, bias, activation=None, **kwargs)
    out = conv1d_transpose(x, layer.kernel, bias, activation=cfg.activation, **kwargs)
    return out, pre


def error_bound(layer: Conv1DTransposeQ, x: np.ndarray, pre_activation: np.ndarray | None = None,
                *, shared: _Shared | None = None) -> np.ndarray:
    """Per-output analytic bound on |fixed - float| for float input ``x`` (no overflow assumed).

    ``shared`` (the sweep's) keeps the convolutions that do not depend on the trial's
    formats; the rounding errors are powers of two, so scaling a convolution of ones by
    one is exact and the bound is the same to the last bit."""
    cfg = layer.config
    shared = shared if shared is not None else _Shared(layer, x)
    ex = layer.input_format.max_rounding_error
    ew = layer.weight_format.max_rounding_error
    pre = ex * shared.ones_by_abs_weights(layer) + ew * shared.abs_input_by_ones()
    if cfg.use_bias:
        pre = pre + layer.bias_format.max_rounding_error
    # float64 rounding of the reference itself, far below any LSB but not zero.
    slack = 1e-12 * (shared.abs_input_by_abs_kernel() + np.abs(layer.bias)) + 1e-300
    name = cfg.activation
    pa = None
    if name in ("leaky_relu", "exponential", "hard_shrink"):
        if pre_activation is None:
            pre_activation = _float_reference(layer, x)[1]
        pa = pre_activation.transpose(0, 2, 1) if cfg.data_format == "channels_first" else pre_activation
    bound = lipschitz(name, pa, pre + slack) * (pre + slack) + slack
    if name == "leaky_relu":
        slope_q = LEAKY_SLOPE_CODE / (1 << LEAKY_SLOPE_FRAC)
        bound = bound + abs(LEAKY_SLOPE - slope_q) * np.abs(pa)
    if name == "hard_shrink":
        # x jumps to 0 at |x| = 0.5: the fixed and float values may lie on either side.
        bound = bound + np.where(np.abs(np.abs(pa) - _SHRINK_THRESHOLD) <= pre + slack, _SHRINK_THRESHOLD, 0.0)
    if layer.activation_table is not None:
        bound = bound + 0.5 * layer.output_format.lsb
    bound = bound + layer.output_format.max_rounding_error
    return bound.transpose(0, 2, 1) if cfg.data_format == "channels_first" else bound


def analyze(layer: Conv1DTransposeQ, x=None, *, batch: int = 4, length: int = 32, seed: int = 0) -> ErrorReport:
    """Compare the fixed-point layer with the float layer on ``x`` (random if omitted).

    ``x`` is float input in the layer's data_format, ``(batch, length, channels)``
    for channels_last, or one sequence without the batch axis.

    Raises
    ------
    TypeError
        If ``layer`` is not a :class:`Conv1DTransposeQ`.
    ValueError
        For input of the wrong shape, without data (no sequence or no step), beyond
        the data size limits, or holding NaN/inf.
    """
    _check_layer(layer)
    if x is None:
        x = random_input(layer, batch=batch, length=length, seed=seed)
    x = layer.config.check_float_input(x, "analysis input")
    # Huge weights may overflow float64 in the reference; the report then says so
    # (nan SQNR, inf errors) instead of numpy warnings.
    with np.errstate(over="ignore", invalid="ignore"):
        return _analyze(layer, x)


class _Shared:
    """What the trials of one sweep share, computed once each: the float reference, the
    bound's convolutions that depend only on the input (or only on the weight format), and
    the exact accumulators by (input, weight, bias) format: a trial of another output width
    requantizes the same accumulator."""

    def __init__(self, layer: Conv1DTransposeQ, x: np.ndarray):
        cfg = layer.config
        self.layer, self.x = layer, x
        xl = np.asarray(x, dtype=np.float64)
        self.xl = xl.transpose(0, 2, 1) if cfg.data_format == "channels_first" else xl
        self.out_len = cfg.output_length(self.xl.shape[1])
        self._cache: dict = {}

    def _once(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def _conv(self, a, w):
        cfg = self.layer.config
        return scatter_taps(a, w, cfg.strides, cfg.dilation_rate, cfg.crop_left, self.out_len)

    def reference(self):
        return self._once("reference", lambda: _float_reference(self.layer, self.x))

    def abs_input_by_ones(self):
        return self._once("x1", lambda: self._conv(np.abs(self.xl), np.ones_like(self.layer.kernel)))

    def abs_input_by_abs_kernel(self):
        return self._once("xk", lambda: self._conv(np.abs(self.xl), np.abs(self.layer.kernel)))

    def ones_by_abs_weights(self, trial: Conv1DTransposeQ):
        wf = trial.weight_format
        return self._once(("1w", str(wf)), lambda: self._conv(
            np.ones_like(self.xl), np.abs(wf.dequantize(trial.kernel_codes))))

    def input_codes(self, trial: Conv1DTransposeQ):
        return self._once(("codes", str(trial.input_format)),
                          lambda: trial.input_format.quantize_with_flags(self.x, name="input"))

    def stages(self, trial: Conv1DTransposeQ, codes):
        key = ("acc", str(trial.input_format), str(trial.weight_format), str(trial.bias_format))
        if key in self._cache:
            return trial.stages(codes, accumulator=self._cache[key])
        st = trial.stages(codes)
        self._cache[key] = st.accumulator
        return st


def _analyze(layer: Conv1DTransposeQ, x: np.ndarray, shared: _Shared | None = None) -> ErrorReport:
    """:func:`analyze` on checked, batched input (``shared``: a sweep's, see `_Shared`)."""
    shared = shared if shared is not None else _Shared(layer, x)
    y_float, pre = shared.reference()
    codes, in_over = shared.input_codes(layer)
    st = shared.stages(layer, codes)
    y_fixed = layer.output_format.dequantize(st.output)
    err = y_fixed - y_float
    bound = error_bound(layer, x, pre, shared=shared)
    abs_err = np.abs(err)
    lsb = layer.output_format.lsb
    ok = (abs_err <= bound) | st.output_overflow
    filt_axis = 1 if layer.config.data_format == "channels_first" else 2
    per_filter = np.moveaxis(abs_err, filt_axis, -1).reshape(-1, layer.config.filters)
    n = int(err.size)
    return ErrorReport(
        layer=repr(layer),
        n_outputs=n,
        max_abs_error=float(abs_err.max()) if n else 0.0,
        rmse=rms(err),
        sqnr_db=sqnr_db(y_float, err),
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


def sweep_stages(layer: Conv1DTransposeQ, vary) -> tuple[str, ...]:
    """``vary`` as a tuple of stage names, in order, each once.

    ``vary`` is one stage name (a string) or an iterable of them; the stages are
    ``input``, ``weight``, ``bias`` (only when the layer has a bias) and ``output``.

    Raises
    ------
    ValueError
        For no stage or an unknown one, listing the allowed stages.
    """
    _check_layer(layer)
    allowed = [st for st in _STAGES if st != "bias" or layer.bias_format is not None]
    hint = f"the stages a sweep can vary are {', '.join(allowed)}" + (
        "" if "bias" in allowed else " (bias only with use_bias)")
    names = (vary,) if isinstance(vary, str) else vary
    try:
        names = tuple(names)
    except TypeError:
        raise ValueError(f"vary must be a stage name or a list of them, got {vary!r}; {hint}") from None
    bad = [name for name in names if name not in allowed]
    if bad or not names:
        raise ValueError(f"cannot vary {', '.join(map(repr, bad)) or 'no stage'}: {hint}")
    return tuple(dict.fromkeys(names))


def _trial_formats(layer: Conv1DTransposeQ, stage: str, width: int) -> dict:
    """The format keyword arguments of ``layer`` with ``stage``'s format ``width`` bits wide."""
    base = {"input": layer.input_format, "weight": layer.weight_format,
            "bias": layer.bias_format, "output": layer.output_format}
    old = base[stage]
    fmt = FixedFormat(width, old.integer, old.signed, old.rounding, old.overflow)
    formats = {f"{k}_format": (fmt if k == stage else v) for k, v in base.items()}
    formats["bias_format"] = _bias_within(formats)
    return formats


def check_sweep(layer: Conv1DTransposeQ, widths, vary) -> tuple[list[int], tuple[str, ...]]:
    """Check a sweep before it runs; returns its ``(widths, stages)``.

    Every width must be an integer from 1 to ``MAX_WIDTH`` and, for every varied
    stage, give a layer the fixed-point model can compute (e.g. wide inputs can
    need an accumulator wider than ``MAX_WIDTH``). The check builds each trial
    layer on a one-filter stand-in with zero weights, which has the same
    accumulator, so it costs little. Widths are kept in order, each once.

    Raises
    ------
    ValueError
        Naming the stage and the width that cannot be swept, why, and the widest
        width that can; or listing the allowed stages (:func:`sweep_stages`).
    """
    stages = sweep_stages(layer, vary)
    widths = list(widths) if not isinstance(widths, (int, np.integer)) else [widths]
    bad = [w for w in widths if isinstance(w, bool) or not isinstance(w, (int, np.integer))
           or not 1 <= w <= MAX_WIDTH]
    if bad or not widths:
        raise ValueError(f"sweep widths must be integers from 1 to {MAX_WIDTH} (the widest format the "
                         f"fixed-point model supports), got {bad[0] if bad else 'none'!r}")
    widths = [int(w) for w in dict.fromkeys(widths)]
    cfg = dataclasses.replace(layer.config, filters=1)
    kernel = np.zeros((cfg.kernel_size, 1, cfg.in_channels))
    bias = np.zeros(1) if cfg.use_bias else None

    def problem(stage: str, width: int) -> str | None:
        try:
            Conv1DTransposeQ(cfg, kernel, bias, **_trial_formats(layer, stage, width))
        except TableTooLarge:
            return None  # a row of its own: `sweep` reports the width as skipped
        except ValueError as err:
            return str(err)
        return None

    for stage in stages:
        for width in widths:
            why = problem(stage, width)
            if why:
                ok = [w for w in range(1, MAX_WIDTH + 1) if problem(stage, w) is None]
                hint = (f"this layer can sweep {stage} widths from {ok[0]} to {ok[-1]}" if ok
                        else f"no width of {stage} works with the other formats")
                raise ValueError(f"cannot sweep {stage} to {width} bits: {why}; {hint}")
    return widths, stages


def sweep(layer: Conv1DTransposeQ, x=None, *, widths=range(4, 17), vary=("weight", "input", "output"),
          progress: bool = True, **random_kwargs) -> list[dict]:
    """SQNR and max error as one format's width changes, the others fixed.

    Each varied format keeps its integer bits (so its range) and modes; only its
    precision changes; where that leaves the accumulator fewer fractional bits
    than the bias format has, the bias loses its finest bits too (reported as
    ``bias_format``). ``vary`` is one stage name or several (:func:`sweep_stages`);
    the whole sweep is checked before it runs (:func:`check_sweep`). Returns one row
    per (stage, width) with ``stage``, ``width``, ``format``, ``sqnr_db``,
    ``max_abs_error``, ``bound`` and ``bias_format``; a width whose activation
    table would be too large (`tconv.model.activation_tables.TableTooLarge`) is a
    row with NaN values and ``skipped`` (the reason).
    """
    from tqdm.auto import tqdm

    widths, stages = check_sweep(layer, widths, vary)
    if x is None:
        x = random_input(layer, **random_kwargs)
    x = layer.config.check_float_input(x, "sweep input")
    jobs = [(st, w) for st in stages for w in widths]
    shared = _Shared(layer, x)  # the float reference, input-only convolutions, accumulators
    rows = []
    for stage, width in tqdm(jobs, desc="bit-width sweep", disable=not progress, leave=False):
        formats = _trial_formats(layer, stage, width)
        row = {"stage": stage, "width": width, "format": str(formats[f"{stage}_format"]),
               "bias_format": str(formats["bias_format"]) if formats["bias_format"] else None}
        try:
            trial = Conv1DTransposeQ(layer.config, layer.kernel, layer.bias if layer.config.use_bias else None,
                                     **formats)
        except TableTooLarge as err:
            nan = float("nan")
            rows.append({**row, "sqnr_db": nan, "max_abs_error": nan, "bound": nan, "skipped": str(err)})
            continue
        with np.errstate(over="ignore", invalid="ignore"):  # as analyze(): the report says so
            rep = _analyze(trial, x, shared)
        rows.append({**row, "sqnr_db": rep.sqnr_db, "max_abs_error": rep.max_abs_error, "bound": rep.bound})
    return rows
