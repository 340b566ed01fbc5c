"""Choosing fixed-point formats from data: weights from their values, inputs and outputs
from a calibration set.

Headroom policy (:class:`CalibrationPolicy`, the defaults in brackets):

- every format's *width* is fixed by the policy: inputs and weights ``width`` bits
  [8], the bias and the output ``2 * width`` [16];
- its *integer bits* are the fewest for which every calibration value, multiplied
  by the stage's headroom factor, quantizes without overflow (checked exactly with
  the format's own rounding, so a value that rounds up past the top counts);
  headroom factors are [1] for weights and bias (they are known exactly), [1] for
  inputs (the 8-bit precision is worth more than the range; inputs beyond the
  calibration set saturate) and [2], one extra integer bit, for the 16-bit output;
- the output range covers both the float layer's outputs on the calibration inputs
  and the fixed-point datapath's exact values before the final rounding, so the
  chosen output format never saturates on the calibration set;
- the bias has at most ``Fa = Fx + Fw`` fractional bits (the accumulator's, as
  the datapath requires): where ``2 * width`` bits would give it more, it gets
  exactly ``Fa`` and the fewest bits that hold it on that grid;
- inputs whose calibration values are all >= 0 get an unsigned format
  (``ufixed``: one more bit of precision), as does the output of ``relu`` and
  ``relu6`` layers; weights and bias stay signed;
- a table activation's output (sigmoid, tanh, gelu, ...: see
  `tconv.model.activation_tables`) keeps fewer fractional bits when the table
  within one output LSB would need more than ``CALIBRATED_TABLE_ENTRIES``
  entries (a 16-bit tanh output needs about 85,000); the result notes it, and a
  given ``output_width`` or output format is used as it is;
- every calibrated format rounds to nearest (``RND``, ties up: one adder in
  hardware) and saturates (``SAT``) [``rounding``, ``overflow``].

Formats given explicitly (all or some of ``input``, ``weight``, ``bias``,
``output``) are used as they are; the rest are calibrated around them.
Without a calibration set, the inputs are a standard-normal batch
(:func:`default_input`), and the result says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .activation_tables import MAX_TABLE_ENTRIES, build_table
from .config import LayerConfig
from .fixed_activations import TABLE_ACTIVATIONS
from .fixedpoint import MAX_WIDTH, FixedFormat
from .float_model import conv1d_transpose
from .quantized import Conv1DTransposeQ

__all__ = ["CalibrationPolicy", "Calibration", "StageCalibration", "calibrate", "choose_format",
           "default_input", "STAGES"]

#: Largest table a calibrated output format leads to: a table activation's output is narrowed
#: (fewer fractional bits) until its table fits (4096 entries: a few block RAMs per filter group).
CALIBRATED_TABLE_ENTRIES = 4096
#: The formats a layer has, in the order they are chosen (bias needs ``Fa``, output needs the bias).
STAGES = ("weight", "input", "bias", "output")
_UNSIGNED_ACTIVATIONS = ("relu", "relu6")


@dataclass(frozen=True)
class CalibrationPolicy:
    """How calibration turns value ranges into formats (module docstring: the policy).

    Parameters
    ----------
    width : int
        Total bits of the input and weight formats (the multiplier operands), 2 to 18.
    output_width, bias_width : int, optional
        Total bits of the output and bias formats; ``2 * width`` when omitted.
    input_headroom, weight_headroom, bias_headroom, output_headroom : float
        Factor (>= 1) applied to the largest calibration magnitude before choosing
        integer bits; 2 buys one integer bit.
    rounding, overflow : str
        Quantization and overflow modes of every calibrated format.
    unsigned : bool
        Allow ``ufixed`` for non-negative inputs and relu/relu6 outputs.
    """

    width: int = 8
    output_width: int | None = None
    bias_width: int | None = None
    input_headroom: float = 1.0
    weight_headroom: float = 1.0
    bias_headroom: float = 1.0
    output_headroom: float = 2.0
    rounding: str = "RND"
    overflow: str = "SAT"
    unsigned: bool = True

    def __post_init__(self):
        for name in ("width", "output_width", "bias_width"):
            value = getattr(self, name)
            if value is None and name != "width":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 2 <= value <= MAX_WIDTH:
                raise ValueError(f"calibration {name} must be an integer from 2 to {MAX_WIDTH} bits, got {value!r}")
            object.__setattr__(self, name, int(value))
        for stage in ("input", "weight", "bias", "output"):
            value = getattr(self, f"{stage}_headroom")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 1:
                raise ValueError(f"calibration {stage}_headroom must be a finite number >= 1 (a factor on the "
                                 f"largest value; 2 buys one integer bit), got {value!r}")
        # Validates the modes with FixedFormat's own messages.
        fmt = FixedFormat(8, 1, rounding=self.rounding, overflow=self.overflow)
        object.__setattr__(self, "rounding", fmt.rounding)
        object.__setattr__(self, "overflow", fmt.overflow)

    def stage_width(self, stage: str) -> int:
        if stage == "output":
            return self.output_width or min(2 * self.width, MAX_WIDTH)
        if stage == "bias":
            return self.bias_width or min(2 * self.width, MAX_WIDTH)
        return self.width

    def headroom(self, stage: str) -> float:
        return float(getattr(self, f"{stage}_headroom"))

    def to_dict(self) -> dict:
        return {"width": self.width, "input_width": self.width, "weight_width": self.width,
                "bias_width": self.stage_width("bias"), "output_width": self.stage_width("output"),
                "headroom": {s: self.headroom(s) for s in ("input", "weight", "bias", "output")},
                "rounding": self.rounding, "overflow": self.overflow, "unsigned": self.unsigned}


@dataclass
class StageCalibration:
    """What one format was chosen from.

    Attributes
    ----------
    format : FixedFormat
    source : str
        ``"calibrated"`` or ``"given"``.
    min, max : float
        Range of the values the format holds on the calibration set (weights and
        bias: all their values).
    count : int
        Number of those values.
    overflows : int
        How many of them overflow the format (0 for calibrated formats).
    headroom : float or None
        Headroom factor used (calibrated formats only).
    note : str
    """

    format: FixedFormat
    source: str
    min: float
    max: float
    count: int
    overflows: int
    headroom: float | None = None
    note: str = ""

    def to_dict(self) -> dict:
        return {"format": str(self.format), "source": self.source, "min": self.min, "max": self.max,
                "count": self.count, "overflows": self.overflows, "headroom": self.headroom, "note": self.note}


@dataclass
class Calibration:
    """The chosen formats and why.

    Attributes
    ----------
    stages : dict of str to StageCalibration
        ``weight``, ``input``, ``bias`` (absent without a bias) and ``output``.
    policy : CalibrationPolicy
    data : str
        Where the calibration inputs came from.
    default_data : bool
        True when no calibration set was given and :func:`default_input` was used.
    """

    stages: dict
    policy: CalibrationPolicy
    data: str
    default_data: bool = False
    notes: list = field(default_factory=list)

    @property
    def formats(self) -> dict[str, FixedFormat]:
        """``{"input": ..., "weight": ..., "bias": ..., "output": ...}`` (no ``bias`` without one)."""
        return {k: self.stages[k].format for k in ("input", "weight", "bias", "output") if k in self.stages}

    def layer_kwargs(self) -> dict:
        """Keyword arguments of :class:`Conv1DTransposeQ` for these formats."""
        f = self.formats
        return dict(input_format=f["input"], weight_format=f["weight"], bias_format=f.get("bias"),
                    output_format=f["output"])

    def to_dict(self) -> dict:
        return {"data": self.data, "default_data": self.default_data, "policy": self.policy.to_dict(),
                "formats": {k: str(v) for k, v in self.formats.items()},
                "stages": {k: s.to_dict() for k, s in self.stages.items()}, "notes": list(self.notes)}

    def __str__(self) -> str:
        p = self.policy
        head = (f"calibration: {p.width}-bit inputs and weights, {p.stage_width('output')}-bit output, "
                f"bias at most {p.stage_width('bias')} bits (fewer on the accumulator's grid), "
                f"{p.rounding}/{p.overflow}")
        lines = [head, f"  data: {self.data}",
                 f"  {'stage':<7} {'format':<24} {'min':>10} {'max':>10} {'headroom':>8}  chosen from"]
        for name in ("input", "weight", "bias", "output"):
            s = self.stages.get(name)
            if s is None:
                continue
            room = f"x{s.headroom:g}" if s.headroom is not None else "-"
            why = f"{s.count} values" if s.source == "calibrated" else "given"
            if s.overflows:
                why += f", {s.overflows} overflow"
            if s.note:
                why += f"; {s.note}"
            lines.append(f"  {name:<7} {str(s.format):<24} {s.min:>10.4g} {s.max:>10.4g} {room:>8}  {why}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def choose_format(values, width: int, *, headroom: float = 1.0, signed: bool = True, rounding: str = "RND",
                  overflow: str = "SAT") -> FixedFormat:
    """The ``width``-bit format with the fewest integer bits holding every ``value * headroom``.

    "Holding" is decided by quantizing the two extremes with the format's own
    rounding, so it is exact. All-zero (or empty) ``values`` get the format whose
    range is [-1, 1) (signed) or [0, 2) (unsigned).

    Raises
    ------
    ValueError
        If ``values`` holds NaN/inf, or negative values for an unsigned format.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size and not np.isfinite(v).all():
        raise ValueError(f"calibration values hold {int((~np.isfinite(v)).sum())} NaN/inf value(s)")
    lo = float(v.min()) * headroom if v.size else 0.0
    hi = float(v.max()) * headroom if v.size else 0.0
    if not signed and lo < 0:
        raise ValueError(f"an unsigned format cannot hold negative values (min {lo:g})")
    peak = max(abs(lo), abs(hi))
    if peak == 0:
        return FixedFormat(width, 1, signed, rounding, overflow)
    # A first guess from the magnitude, then the exact check decides.
    integer = math.floor(math.log2(peak)) + (1 if signed else 0) - 1
    extremes = np.array([lo, hi])
    while True:
        fmt = FixedFormat(width, integer, signed, rounding, overflow)
        if not fmt.quantize_with_flags(extremes)[1].any():
            return fmt
        integer += 1


def default_input(config: LayerConfig, *, batch: int = 4, length: int = 32, seed: int = 0) -> np.ndarray:
    """The calibration inputs used when none are given: a standard-normal batch.

    ``(batch, length, in_channels)`` (``(batch, in_channels, length)`` for
    channels_first), mean 0, standard deviation 1, from ``numpy.random.default_rng(seed)``.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, length, config.in_channels))
    return x.transpose(0, 2, 1) if config.data_format == "channels_first" else x


def _given(formats) -> dict[str, FixedFormat]:
    if formats is None:
        return {}
    if not isinstance(formats, Mapping):
        raise ValueError(f"formats must be a mapping like {{'input': 'fixed<8,3,RND,SAT>'}}, "
                         f"got {type(formats).__name__}")
    unknown = sorted(set(formats) - set(STAGES))
    if unknown:
        raise ValueError(f"formats: unknown key(s) {unknown}; allowed: input, weight, bias, output")
    out = {}
    for key, value in formats.items():
        if value is None:
            continue
        try:
            out[key] = FixedFormat.parse(value)
        except ValueError as err:
            raise ValueError(f"formats.{key}: {err}") from None
    return out


def _stage(fmt: FixedFormat, values: np.ndarray, source: str, headroom=None, note="") -> StageCalibration:
    flags = fmt.quantize_with_flags(values)[1] if values.size else np.zeros(0, bool)
    return StageCalibration(fmt, source, float(values.min()) if values.size else 0.0,
                            float(values.max()) if values.size else 0.0, int(values.size), int(flags.sum()),
                            headroom, note)


def _fit_table(name: str, acc: FixedFormat, fmt: FixedFormat) -> tuple[FixedFormat, str]:
    """The widest output format with ``fmt``'s integer bits whose ``name`` table has at most
    `CALIBRATED_TABLE_ENTRIES` entries, and a note when it is narrower than ``fmt``."""
    for width in range(fmt.width, 1, -1):
        trial = FixedFormat(width, fmt.integer, fmt.signed, fmt.rounding, fmt.overflow)
        try:
            build_table(name, acc, trial, max_entries=CALIBRATED_TABLE_ENTRIES)
        except ValueError:
            continue
        if width == fmt.width:
            return fmt, ""
        return trial, (f"the {name} table within 1 LSB of {fmt} would need more than "
                       f"{CALIBRATED_TABLE_ENTRIES} entries")
    return fmt, ""  # generate then names the table size it would need


def calibrate(config: LayerConfig, kernel, bias=None, x=None, *, formats=None, width: int = 8,
              policy: CalibrationPolicy | None = None, data_name: str | None = None, batch: int = 4,
              length: int = 32, seed: int = 0) -> Calibration:
    """Choose the layer's input, weight, bias and output formats (module docstring: the policy).

    Parameters
    ----------
    config : LayerConfig
        The layer, ``in_channels`` included.
    kernel : array_like
        Float kernel ``(kernel_size, filters, in_channels)``.
    bias : array_like, optional
        Float bias ``(filters,)`` (when ``config.use_bias``).
    x : array_like, optional
        Calibration inputs *of this layer*, in its data_format, ``(batch, length,
        in_channels)`` for channels_last. Default: :func:`default_input` with
        ``batch``, ``length`` and ``seed``.
    formats : mapping, optional
        Formats to use as given (any of ``input``, ``weight``, ``bias``, ``output``);
        the others are calibrated.
    width : int
        Shorthand for ``CalibrationPolicy(width=width)`` when ``policy`` is omitted.
    policy : CalibrationPolicy, optional
    data_name : str, optional
        Description of ``x`` for the report (e.g. the file it came from).

    Returns
    -------
    Calibration
        ``.formats`` holds the choice; ``str()`` is a table of it.

    Raises
    ------
    ValueError
        For a bad policy, format, or calibration data (shape, none, too much, NaN/inf).
    """
    if policy is None:
        policy = CalibrationPolicy(width=width)
    if not isinstance(policy, CalibrationPolicy):
        raise ValueError(f"policy must be a CalibrationPolicy, got {type(policy).__name__}")
    given = _given(formats)
    if not config.use_bias:
        given.pop("bias", None)
    kernel = np.asarray(kernel, dtype=np.float64)
    bias_arr = np.asarray(bias, dtype=np.float64) if (config.use_bias and bias is not None) else None
    if config.use_bias and bias_arr is None:
        bias_arr = np.zeros(config.filters)
    if config.in_channels is None:
        config = LayerConfig.from_dict({**config.to_dict(), "in_channels": kernel.shape[2]})

    default_data = x is None
    if default_data:
        config.check_data_limits(batch, length, what=f"a default calibration batch of {batch} x {length} steps")
        x = default_input(config, batch=batch, length=length, seed=seed)
        shape = "x".join(str(n) for n in x.shape)
        data_name = (f"no calibration data given: a standard-normal batch ({shape}, seed {seed}) "
                     f"of the layer's own inputs")
    x = config.check_float_input(x, "calibration input")
    if data_name is None:
        data_name = f"{x.shape[0]} sequence(s) of the layer's inputs, shape {x.shape}"

    rnd, ovf = policy.rounding, policy.overflow
    stages: dict[str, StageCalibration] = {}
    notes: list[str] = []

    # Weights: from their own values.
    if "weight" in given:
        stages["weight"] = _stage(given["weight"], kernel.ravel(), "given")
    else:
        h = policy.headroom("weight")
        stages["weight"] = _stage(choose_format(kernel, policy.width, headroom=h, rounding=rnd, overflow=ovf),
                                  kernel.ravel(), "calibrated", h)

    # Inputs: from the calibration set; unsigned when it is never negative.
    if "input" in given:
        stages["input"] = _stage(given["input"], x.ravel(), "given")
    else:
        h = policy.headroom("input")
        # An unsigned operand needs one more multiplier bit (a zero sign bit), so
        # 18-bit inputs, the widest an 18x18 multiplier takes, stay signed.
        unsigned = policy.unsigned and policy.width < 18 and x.size > 0 and float(x.min()) >= 0
        fmt = choose_format(x, policy.width, headroom=h, signed=not unsigned, rounding=rnd, overflow=ovf)
        stages["input"] = _stage(fmt, x.ravel(), "calibrated", h, "never negative: unsigned" if unsigned else "")

    # Bias: its integer bits from its values, at most the accumulator's fractional bits.
    acc_frac = stages["input"].format.frac + stages["weight"].format.frac
    if config.use_bias:
        if "bias" in given:
            stages["bias"] = _stage(given["bias"], bias_arr, "given")
        else:
            h = policy.headroom("bias")
            wide = choose_format(bias_arr, policy.stage_width("bias"), headroom=h, rounding=rnd, overflow=ovf)
            note = ""
            if not bias_arr.any():
                # Nothing to hold: the narrowest format on the accumulator's grid, whatever
                # the widths (a wide format would only cost adder bits).
                wide = FixedFormat(2, 2 - acc_frac, True, rnd, ovf)
                note = "all zero: the narrowest format on the accumulator's grid"
            elif wide.frac > acc_frac:
                # The accumulator has no bits below 2^-Fa: put the bias on that grid
                # and take the fewest bits that hold it there (coarser rounding can
                # push a value past the top, so each width is checked).
                for bits in range(2, wide.width + 1):
                    wide = FixedFormat(bits, bits - acc_frac, True, rnd, ovf)
                    if not wide.quantize_with_flags(bias_arr * h)[1].any():
                        break
                note = f"fractional bits capped at Fa = {acc_frac} (the accumulator's): {wide.width} bits hold it"
                if not wide.quantize(bias_arr).any():
                    note = f"bias below the accumulator's LSB 2^-{acc_frac}"
                    notes.append(f"the bias (max |b| {np.abs(bias_arr).max():.3g}) rounds to zero on the "
                                 f"accumulator's grid 2^-{acc_frac}; wider inputs or weights would keep it")
            stages["bias"] = _stage(wide, bias_arr, "calibrated", h, note)

    # Output: float outputs and the datapath's exact pre-rounding values.
    float_out = conv1d_transpose(x, kernel, bias_arr if config.use_bias else None, strides=config.strides,
                                 padding=config.padding, output_padding=config.output_padding,
                                 dilation_rate=config.dilation_rate, data_format=config.data_format,
                                 activation=config.activation)
    if "output" in given:
        stages["output"] = _stage(given["output"], float_out.ravel(), "given")
    else:
        probe = Conv1DTransposeQ(config, kernel, bias_arr if config.use_bias else None,
                                 input_format=stages["input"].format, weight_format=stages["weight"].format,
                                 bias_format=stages["bias"].format if config.use_bias else None,
                                 output_format=FixedFormat(2, 1))
        st = probe.stages(stages["input"].format.quantize(x, name="calibration inputs"))
        exact = np.ldexp(st.activated.astype(np.float64), -st.activated_frac)
        both = np.concatenate([float_out.ravel(), exact.ravel()])
        unsigned = policy.unsigned and config.activation in _UNSIGNED_ACTIVATIONS
        h = policy.headroom("output")
        fmt = choose_format(both, policy.stage_width("output"), headroom=h, signed=not unsigned,
                            rounding=rnd, overflow=ovf)
        note = f"{config.activation} output: unsigned" if unsigned else ""
        if config.activation in TABLE_ACTIVATIONS and policy.output_width is None:
            fmt, narrowed = _fit_table(config.activation, probe.accumulator_format, fmt)
            if narrowed:
                note = ", ".join(filter(None, [note, narrowed]))
                notes.append(f"the output is {fmt.width} bits, not {policy.stage_width('output')}: {narrowed} "
                             f"(pass output_width / --format output=... for a wider one, up to "
                             f"{MAX_TABLE_ENTRIES} table entries)")
        stages["output"] = _stage(fmt, float_out.ravel(), "calibrated", h, note)
        stages["output"].min = float(min(stages["output"].min, both.min()))
        stages["output"].max = float(max(stages["output"].max, both.max()))
    if default_data:
        notes.append("pass calibration data (the inputs your model sees) for formats that fit your signals")
    return Calibration({k: stages[k] for k in ("input", "weight", "bias", "output") if k in stages},
                       policy, data_name, default_data, notes)
