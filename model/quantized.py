"""The bit-accurate fixed-point Conv1DTranspose: the golden model of the RTL.

Datapath (design.md, "Fixed-point semantics"), all on exact integers:

1. inputs, weights and bias are quantized to their formats (integer codes);
2. products and sums are exact in a signed accumulator with ``Fa = Fx + Fw``
   fractional bits, wide enough that no sum can overflow (width derived from the
   formats and the number of terms per output, see :func:`accumulator_format`);
3. the bias code is shifted left onto the accumulator's binary point;
4. the activation acts on the exact accumulator value: exactly for the
   piecewise-linear ones, by a table within one output LSB for the others
   (``FIXED_ACTIVATIONS``, see `tconv.model.activation_tables`);
5. the result is requantized to the output format with its own modes (a table
   gives output integers, so only the overflow mode is left).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .activation_tables import ActivationTable, build_table
from .config import LayerConfig
from .fixed_activations import (
    ACTIVATIONS,
    TABLE_ACTIVATIONS,
    activate_codes,
    activation_extra_bits,
    activation_frac,
    check_fixed_activation,
)
from .fixedpoint import MAX_WIDTH, FixedFormat
from .geometry import scatter_taps, taps_per_output

__all__ = ["Conv1DTransposeQ", "ACTIVATIONS", "accumulator_format", "Stages"]

# BLAS sums integers exactly in floating point while every partial sum stays
# within the significand: 2**24 for float32, 2**53 for float64.
_EXACT_LIMITS = ((np.float32, 1 << 24), (np.float64, 1 << 53))


def _signed_width(lo: int, hi: int) -> int:
    """Fewest two's-complement bits holding every integer in [lo, hi]."""
    width = 1
    while not (-(1 << (width - 1)) <= lo and hi <= (1 << (width - 1)) - 1):
        width += 1
    return width


def accumulator_format(input_format: FixedFormat, weight_format: FixedFormat,
                       bias_format: FixedFormat | None, terms: int) -> FixedFormat:
    """The narrowest signed accumulator that holds any sum of ``terms`` products plus the bias.

    The range is computed exactly from the code ranges, not estimated: every
    product lies between the extreme products of the two code ranges, and the
    aligned bias between the extreme bias codes.
    """
    frac = input_format.frac + weight_format.frac
    corners = [a * b for a in (input_format.min_code, input_format.max_code)
               for b in (weight_format.min_code, weight_format.max_code)]
    lo, hi = terms * min(corners), terms * max(corners)
    if bias_format is not None:
        shift = frac - bias_format.frac
        lo += bias_format.min_code << shift
        hi += bias_format.max_code << shift
    width = _signed_width(lo, hi)
    if width > MAX_WIDTH:
        raise ValueError(f"the accumulator needs {width} bits for {terms} products of {input_format} "
                         f"by {weight_format}, more than the {MAX_WIDTH} the fixed-point model supports; "
                         "narrow the input or weight formats")
    return FixedFormat(width, width - frac, signed=True)


@dataclass
class Stages:
    """Every stage of one fixed-point forward pass, for analysis and debugging.

    Attributes
    ----------
    accumulator : ndarray
        Exact sums including the aligned bias, accumulator codes (``Fa`` fractional bits).
    activated : ndarray
        Activation output as exact integers with ``activated_frac`` fractional bits.
    activated_frac : int
    output : ndarray
        Output codes.
    output_overflow : ndarray of bool
        Where requantization overflowed (saturated, zeroed or wrapped).
    """

    accumulator: np.ndarray
    activated: np.ndarray
    activated_frac: int
    output: np.ndarray
    output_overflow: np.ndarray


class Conv1DTransposeQ:
    """A Keras ``Conv1DTranspose`` layer in fixed point, bit-exact with the generated RTL.

    Parameters
    ----------
    config : LayerConfig or dict
        The layer (a Keras ``get_config()`` dict plus ``in_channels`` is accepted).
        ``in_channels`` may be omitted: the kernel gives it.
    kernel : array_like
        Float weights in Keras' layout ``(kernel_size, filters, in_channels)``.
    bias : array_like, optional
        Float bias ``(filters,)``; zeros if omitted. Must be omitted when
        ``config.use_bias`` is false.
    input_format, weight_format, output_format : str or FixedFormat
    bias_format : str or FixedFormat, optional
        Needed when the layer uses a bias; at most ``Fa`` fractional bits.

    Attributes
    ----------
    kernel_codes : ndarray of int64, ``(kernel_size, filters, in_channels)``
    bias_codes : ndarray of int64, ``(filters,)`` (in the bias format)
    accumulator_format : FixedFormat
        Derived: ``Fa = Fx + Fw`` fractional bits, width from :func:`accumulator_format`.
    bias_shift : int
        Left shift aligning a bias code to the accumulator, ``Fa - Fb``.
    weight_overflow, bias_overflow : int
        How many weights/biases overflowed their format when quantized.
    """

    def __init__(self, config, kernel, bias=None, *, input_format, weight_format,
                 bias_format=None, output_format):
        if isinstance(config, dict):
            config = LayerConfig.from_dict(config)
        if not isinstance(config, LayerConfig):
            raise ValueError(f"config must be a LayerConfig or a layer dict, got {type(config).__name__}")
        self.input_format = _format(input_format, "input")
        self.weight_format = _format(weight_format, "weight")
        self.output_format = _format(output_format, "output")
        kernel = _float_array(kernel, "kernel")
        if kernel.ndim != 3:
            raise ValueError(f"kernel must have shape (kernel_size, filters, in_channels), "
                             f"got {kernel.ndim} dimension(s) {kernel.shape}")
        expected = (config.kernel_size, config.filters, config.in_channels or kernel.shape[2])
        if kernel.shape != expected:
            raise ValueError(f"kernel has shape {kernel.shape}, but the layer needs "
                             f"(kernel_size, filters, in_channels) = {expected}")
        if config.in_channels is None:
            config = dataclasses.replace(config, in_channels=kernel.shape[2])
        self.config = config
        check_fixed_activation(config.activation)

        self.kernel = kernel
        self.kernel_codes, wflags = self.weight_format.quantize_with_flags(kernel, name="kernel")
        self.weight_overflow = int(wflags.sum())
        self.bias_format = None
        if config.use_bias:
            if bias_format is None:
                raise ValueError("bias_format is required when the layer uses a bias (use_bias=True)")
            self.bias_format = _format(bias_format, "bias")
            bias = np.zeros(config.filters) if bias is None else _float_array(bias, "bias")
            if bias.shape != (config.filters,):
                raise ValueError(f"bias has shape {bias.shape}, but the layer needs (filters,) = "
                                 f"({config.filters},)")
            self.bias = bias
            self.bias_codes, bflags = self.bias_format.quantize_with_flags(bias, name="bias")
            self.bias_overflow = int(bflags.sum())
        else:
            if bias is not None:
                raise ValueError("a bias was given but the layer has use_bias=False")
            self.bias = np.zeros(config.filters)
            self.bias_codes = np.zeros(config.filters, dtype=np.int64)
            self.bias_overflow = 0

        self.terms = config.in_channels * taps_per_output(config.kernel_size, config.strides,
                                                          config.dilation_rate)
        acc_frac = self.input_format.frac + self.weight_format.frac
        if self.bias_format is not None and self.bias_format.frac > acc_frac:
            raise ValueError(
                f"bias format {self.bias_format} has {self.bias_format.frac} fractional bits, more than "
                f"the accumulator's {acc_frac} (input {self.input_format.frac} + weight "
                f"{self.weight_format.frac}); use a bias format with at most {acc_frac} fractional bits")
        self.accumulator_format = accumulator_format(self.input_format, self.weight_format,
                                                     self.bias_format, self.terms)
        self.bias_shift = acc_frac - (self.bias_format.frac if self.bias_format else acc_frac)
        #: The activation's table (`ActivationTable`), None for an exact activation.
        self.activation_table: ActivationTable | None = None
        if config.activation in TABLE_ACTIVATIONS:
            self.activation_table = build_table(config.activation, self.accumulator_format, self.output_format)
        else:
            # Exact integer stages must fit int64 with a bit to spare.
            extra = activation_extra_bits(config.activation, acc_frac, self.accumulator_format.width)
            if self.accumulator_format.width + extra > MAX_WIDTH:
                raise ValueError(
                    f"the accumulator needs {self.accumulator_format.width} bits"
                    + (f" (+{extra} for {config.activation})" if extra else "")
                    + f", more than the {MAX_WIDTH} the fixed-point model supports; narrow the input or "
                    "weight formats")

    def quantization_overflows(self) -> dict[str, dict]:
        """How many of this layer's own weights and bias overflowed their formats.

        Returns ``{"weight": {...}, "bias": {...}}`` (no ``"bias"`` without
        use_bias), each with ``overflows`` (values outside the format's range:
        saturated, wrapped or zeroed by its overflow mode), ``values`` (how many
        were quantized) and ``format`` (the FixedFormat).
        """
        counts = {"weight": {"overflows": self.weight_overflow, "values": int(self.kernel.size),
                             "format": self.weight_format}}
        if self.bias_format is not None:
            counts["bias"] = {"overflows": self.bias_overflow, "values": int(self.bias.size),
                              "format": self.bias_format}
        return counts

    # ----------------------------------------------------------------- shape
    @property
    def activation_frac(self) -> int:
        """Fractional bits of the activation's result (input of the requantizer): a table's are the output's."""
        if self.activation_table is not None:
            return self.activation_table.out_frac
        return activation_frac(self.config.activation, self.accumulator_format.frac)

    def output_length(self, length: int) -> int:
        return self.config.output_length(length)

    # ------------------------------------------------------------- datapath
    @property
    def sum_bound(self) -> int:
        """Largest magnitude any partial sum of products can reach (bias excluded)."""
        i, w = self.input_format, self.weight_format
        return self.terms * max(abs(a * b) for a in (i.min_code, i.max_code) for b in (w.min_code, w.max_code))

    def accumulate(self, codes: np.ndarray) -> np.ndarray:
        """Exact accumulator values (bias included) for channels_last input codes ``(batch, L, C)``."""
        cfg = self.config
        out_len = cfg.output_length(codes.shape[1])
        # Every partial sum, in any order, is bounded by sum_bound: the narrowest
        # float type whose significand holds it gives exact integers, fast.
        bias = self.bias_codes << self.bias_shift if cfg.use_bias else None
        bias_max = int(np.abs(bias).max()) if bias is not None and bias.size else 0
        dtype, limit = next(((t, lim) for t, lim in _EXACT_LIMITS if self.sum_bound <= lim), (np.int64, 0))
        acc = scatter_taps(codes, self.kernel_codes, cfg.strides, cfg.dilation_rate, cfg.crop_left,
                           out_len, dtype=dtype, contiguous=False)
        # The bias too is added in the float type when the sums stay exact there.
        in_float = bias is not None and self.sum_bound + bias_max <= limit
        if in_float:
            acc += bias.astype(dtype)
        acc = acc.astype(np.int64)  # a new contiguous array (``acc`` may be a view)
        if bias is not None and not in_float:
            acc += bias
        return acc

    def activate(self, acc: np.ndarray) -> np.ndarray:
        """The activation on exact accumulator values; result has ``activation_frac`` fractional bits."""
        if self.config.activation == "linear":
            return acc  # no copy: callers own `acc` (see forward_int)
        if self.activation_table is not None:
            return self.activation_table.lookup(acc)
        return activate_codes(self.config.activation, acc, self.accumulator_format.frac)

    def stages(self, codes, *, accumulator=None) -> Stages:
        """Run the datapath on input codes and keep every stage.

        ``accumulator``: these codes' exact accumulator values as an earlier call returned
        them (``Stages.accumulator``, same layout), to activate and requantize them again
        without recomputing the sums (an analysis sweep over output formats does).
        """
        x, back = self._prepare(codes)
        if accumulator is None:
            acc = self.accumulate(x)
        else:
            acc = np.asarray(accumulator, dtype=np.int64)
            acc = acc[None] if acc.ndim == 2 else acc
            if self.config.data_format == "channels_first":
                acc = acc.transpose(0, 2, 1)
            if acc.shape != (x.shape[0], self.config.output_length(x.shape[1]), self.config.filters):
                raise ValueError(f"accumulator of shape {acc.shape} is not that of these codes")
        act = self.activate(acc)
        out, over = self.output_format.requantize_with_flags(act, self.activation_frac)
        return Stages(back(acc), back(act), self.activation_frac, back(out), back(over))

    def _prepare(self, codes):
        """Checked channels_last batched codes, and the function that restores the caller's layout."""
        x = self.input_format.check_codes(codes, name="input codes")
        if x.ndim not in (2, 3):
            layout = "length, in_channels" if self.config.data_format == "channels_last" else "in_channels, length"
            raise ValueError(f"input must have shape (batch, {layout}) or ({layout}), got {x.shape}")
        unbatched = x.ndim == 2
        x = self._channels_last(x[None] if unbatched else x)

        def back(y):
            if self.config.data_format == "channels_first":
                y = y.transpose(0, 2, 1)
            return y[0] if unbatched else y

        return x, back

    def forward_int(self, codes) -> np.ndarray:
        """Input codes to output codes: the exact integer datapath the RTL implements.

        ``codes`` is ``(batch, length, in_channels)`` (or ``(batch, in_channels,
        length)`` for channels_first), or the same without the batch axis; the
        result has the matching layout with ``filters`` channels.
        """
        x, back = self._prepare(codes)
        act = self.activate(self.accumulate(x))
        # `act` is a fresh array of this call (accumulate allocates it and the
        # activations return new arrays), so it may be requantized in place.
        return back(self.output_format.requantize_owned(act, self.activation_frac))

    def __call__(self, x) -> np.ndarray:
        """Float input to float output through the fixed-point datapath."""
        return self.output_format.dequantize(self.forward_int(self.input_format.quantize(x, name="input")))

    # --------------------------------------------------------------- layout
    def _channels_last(self, x: np.ndarray) -> np.ndarray:
        if self.config.data_format == "channels_first":
            x = x.transpose(0, 2, 1)
        if x.shape[2] != self.config.in_channels:
            raise ValueError(f"input has {x.shape[2]} channels but the layer has in_channels="
                             f"{self.config.in_channels} ({self.config.data_format})")
        if x.shape[1] < 1:
            raise ValueError("input length must be at least 1")
        return x

    def __repr__(self) -> str:
        c = self.config
        return (f"Conv1DTransposeQ(filters={c.filters}, kernel_size={c.kernel_size}, strides={c.strides}, "
                f"padding={c.padding!r}, dilation_rate={c.dilation_rate}, activation={c.activation!r}, "
                f"input={self.input_format}, weight={self.weight_format}, bias={self.bias_format}, "
                f"accumulator={self.accumulator_format}, output={self.output_format})")


def _format(value, name: str) -> FixedFormat:
    try:
        return FixedFormat.parse(value)
    except ValueError as err:
        raise ValueError(f"{name} format: {err}") from None


def _float_array(value, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array, got {type(value).__name__}") from None
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or infinite values; weights must be finite")
    return arr

