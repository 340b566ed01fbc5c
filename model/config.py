"""The arguments of one Keras ``Conv1DTranspose`` layer, validated as Keras does.

`LayerConfig` checks its fields in the order of Keras 3.15's constructor
(``BaseConvTranspose.__init__``) and raises Keras' own ``ValueError`` messages,
so a configuration Keras refuses is refused here with the same words. Where
Keras lets a nonsensical value through and fails later (a float ``filters``, a
tuple ``padding``, a non-bool ``use_bias``, the ``threshold`` activation) this
module refuses it at once with a message of its own that names the argument.
"""

from __future__ import annotations

import difflib
import json
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import geometry
from .activations import canonical_name

__all__ = ["LayerConfig", "MAX_KERNEL_SIZE", "MAX_STRIDES", "MAX_DILATION_RATE", "MAX_CHANNELS", "MAX_VALUES",
           "MIN_FRAME"]

# Size limits of tconv's flows (CONFIG.json, the Keras import, analyze, generate).
# Keras accepts any size; tconv refuses, in one line and before allocating anything,
# sizes whose memory or time would be absurd. Each is far above real models (MelGAN:
# 512 channels, kernel 16, stride 8; WaveGlow's upsampler: kernel 1024, stride 256).

#: Largest ``kernel_size``: 4x WaveGlow's 1024-tap upsampler.
MAX_KERNEL_SIZE = 4096
#: Largest ``strides``: 4x the largest single-layer upsampling in use (256, a hop
#: length); ``tconv generate``'s time grows with it (about 5 s at 1024, a minute at 4096).
MAX_STRIDES = 1024
#: Largest ``dilation_rate``: 2x WaveNet's largest dilation (512).
MAX_DILATION_RATE = 1024
#: Largest ``in_channels`` and ``filters``: 128x MelGAN's 512.
MAX_CHANNELS = 65536
#: Most values any one array of the model may hold: the weights (``kernel_size *
#: filters * in_channels``), and for a batch of data its inputs, partial products
#: (``batch * length * kernel_size * filters``) and outputs. 2**26 values are
#: 512 MiB of float64; ``tconv analyze`` peaks at about 6x its largest array.
MAX_VALUES = 2 ** 26
#: Input steps of the shortest frame every layer must be able to process within
#: MAX_VALUES (``tconv generate``'s test vectors hold frames of up to 8 steps).
MIN_FRAME = 16

# Keys of Conv1DTranspose.get_config() (and Layer keyword arguments) that do not
# change what the layer computes at inference.
_IGNORED_KERAS_KEYS = frozenset({
    "name", "trainable", "dtype", "autocast", "input_dim", "input_shape",
    "kernel_initializer", "bias_initializer", "kernel_regularizer", "bias_regularizer",
    "activity_regularizer", "kernel_constraint", "bias_constraint",
})
# Keys that change what a layer computes unless they hold their neutral value: only
# that value is accepted (Keras 3.15's Conv1DTranspose takes neither, but other Keras
# convolutions and versions write them), with why any other is refused.
_NEUTRAL_KERAS_KEYS = {
    "groups": (1, "a grouped convolution connects each filter to only some input channels, and "
                  "Conv1DTranspose has no groups"),
    "lora_rank": (None, "a LoRA layer adds a low-rank update to its kernel; merge it into the kernel "
                        "(layer.kernel) first"),
}


def _is_int(value: Any) -> bool:
    """An integer (numpy ones included) that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _standardize_int(value: Any, name: str, allow_zero: bool = False) -> int:
    """Keras' ``standardize_tuple(value, 1, name, allow_zero)``, returning an int.

    Keras keeps tuple elements that ``int()`` accepts as they are (``3.5``,
    ``"3"``, ``True``) and fails on them later; here they are refused with
    Keras' message for non-integer elements.
    """
    error_msg = (
        f"The `{name}` argument must be a tuple of 1 integers. "
        f"Received {name}={value}"
    )
    # As in Keras, a bare number must be a Python int (numpy integers are refused);
    # bools, which Keras takes for 0 and 1, are refused too.
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        try:
            value_tuple = tuple(value)
        except TypeError:
            raise ValueError(error_msg) from None
        if len(value_tuple) != 1:
            raise ValueError(error_msg)
        (element,) = value_tuple
        if not _is_int(element):
            # Keras' wording, missing separator included.
            raise ValueError(f"{error_msg}including element {element} of type {type(element)}")
        number = int(element)
    if number < 0 or (number == 0 and not allow_zero):
        req_msg = ">= 0" if allow_zero else "> 0"
        raise ValueError(
            f"{error_msg}, including values {{{number}}} that do not satisfy `value {req_msg}`"
        )
    return number


def _standardize_padding(value: Any) -> str:
    """Keras' ``standardize_padding`` without its list/tuple pass-through."""
    allowed_values = {"valid", "same"}  # Keras prints this set; same literal, same order.
    if not isinstance(value, str):
        raise ValueError(
            f"The `padding` argument must be one of {allowed_values}. Received: padding={value!r}"
        )
    padding = value.lower()
    if padding not in allowed_values:
        raise ValueError(
            "The `padding` argument must be a list/tuple or one of "
            f"{allowed_values}. "
            f"Received: {padding}"
        )
    return padding


def _standardize_data_format(value: Any) -> str:
    """Keras' ``standardize_data_format``; None means Keras' default, channels_last."""
    if value is None:
        return "channels_last"
    data_format = str(value).lower()
    if data_format not in {"channels_first", "channels_last"}:
        raise ValueError(
            "The `data_format` argument must be one of "
            "{'channels_first', 'channels_last'}. "
            f"Received: data_format={data_format}"
        )
    return data_format



@dataclass(frozen=True)
class LayerConfig:
    """Arguments of a Keras ``Conv1DTranspose`` layer plus its input channel count.

    Fields are spelled and ordered as Keras spells them; ``__post_init__``
    validates them in Keras' order with Keras' messages and normalises them:
    1-tuples/lists to ints, ``padding`` and ``data_format`` to lower case, the
    activation to the name Keras' ``get_config()`` writes (``"linear"`` for
    None).

    Parameters
    ----------
    filters : int
        Output channels, > 0.
    kernel_size : int
        Kernel taps, > 0.
    strides : int
        Upsampling factor, > 0.
    padding : {"valid", "same"}
        Case-insensitive.
    output_padding : int or None
        Extra output steps, ``0 <= output_padding < strides``; None lets Keras
        infer the length.
    dilation_rate : int
        Tap spacing, > 0; only 1 when ``strides > 1``.
    data_format : {"channels_last", "channels_first"}
        Layout of the input and output.
    activation : str or None
        A Keras activation name (see `tconv.model.activations.NAMES`).
    use_bias : bool
        Whether a bias is added.
    in_channels : int or None
        Input channels, > 0, or None while unknown.

    Raises
    ------
    ValueError
        For the first invalid field, in Keras' order.
    """

    filters: int
    kernel_size: int
    strides: int = 1
    padding: str = "valid"
    output_padding: int | None = None
    dilation_rate: int = 1
    data_format: str = "channels_last"
    activation: str = "linear"
    use_bias: bool = True
    in_channels: int | None = None

    def __post_init__(self) -> None:
        self._set("kernel_size", _standardize_int(self.kernel_size, "kernel_size"))
        self._set("strides", _standardize_int(self.strides, "strides"))
        self._set("dilation_rate", _standardize_int(self.dilation_rate, "dilation_rate"))
        self._set("padding", _standardize_padding(self.padding))
        if self.output_padding is not None:
            self._set("output_padding", _standardize_int(self.output_padding, "output_padding",
                                                         allow_zero=True))
        self._set("data_format", _standardize_data_format(self.data_format))
        self._set("activation", canonical_name(self.activation))
        self._check_use_bias()
        self._check_filters()
        self._check_output_padding_vs_strides()
        self._check_strides_vs_dilation()
        self._check_in_channels()

    def _set(self, name: str, value: Any) -> None:
        # The dataclass is frozen; normalising in __post_init__ is the one write.
        object.__setattr__(self, name, value)

    def _check_use_bias(self) -> None:
        if not isinstance(self.use_bias, bool):
            raise ValueError(
                f"The `use_bias` argument must be a bool. Received use_bias={self.use_bias!r}"
            )

    def _check_filters(self) -> None:
        if not _is_int(self.filters):
            raise ValueError(
                "Invalid value for argument `filters`. Expected a strictly positive "
                f"integer. Received filters={self.filters!r}."
            )
        if self.filters <= 0:
            raise ValueError(
                "Invalid value for argument `filters`. Expected a strictly "
                f"positive value. Received filters={self.filters}."
            )
        self._set("filters", int(self.filters))

    def _check_output_padding_vs_strides(self) -> None:
        if self.output_padding is not None and self.output_padding >= self.strides:
            raise ValueError(
                "`output_padding` must be strictly less than "
                f"`strides` for all dimensions. At dimension 0, "
                f"`output_padding` is {self.output_padding} but `strides` is {self.strides}. "
                f"Received: output_padding={(self.output_padding,)}, "
                f"strides={(self.strides,)}"
            )

    def _check_strides_vs_dilation(self) -> None:
        if self.strides > 1 and self.dilation_rate > 1:
            raise ValueError(
                "`strides > 1` not supported in conjunction with "
                f"`dilation_rate > 1`. Received: strides={(self.strides,)} and "
                f"dilation_rate={(self.dilation_rate,)}"
            )

    def _check_in_channels(self) -> None:
        if self.in_channels is None:
            return
        if not _is_int(self.in_channels) or self.in_channels <= 0:
            raise ValueError(
                "The `in_channels` argument must be a strictly positive integer or None. "
                f"Received in_channels={self.in_channels!r}"
            )
        self._set("in_channels", int(self.in_channels))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LayerConfig:
        """Build from a Keras ``get_config()`` dict or a CONFIG.json ``"layer"`` dict.

        Parameters
        ----------
        d : Mapping
            ``filters`` and ``kernel_size`` are required; the other fields are
            optional; 1-element lists/tuples are accepted wherever Keras accepts
            them; Keras keys that do not change inference (``name``,
            ``trainable``, ``dtype``, initializers, regularizers, constraints)
            are ignored; ``groups`` must be 1 and ``lora_rank`` null (other
            values change what the layer computes).

        Returns
        -------
        LayerConfig

        Raises
        ------
        ValueError
            If ``d`` is not a mapping, lacks a required key, has a key that
            looks like a misspelt field (``stride``), ``groups`` other than 1,
            ``lora_rank`` other than null, or holds an invalid value.
            Other keys are ignored, as Keras writes many that do not change
            inference.
        """
        if not isinstance(d, Mapping):
            raise ValueError(f"The layer config must be a dict. Received: {d!r}")
        fields = list(cls.__dataclass_fields__)
        # design.md: other Keras keys are ignored (a newer Keras may write more),
        # but a near-miss of a field name is a typo that would silently change
        # the layer, so it is refused.
        typos = sorted(
            f"{k} (did you mean {close[0]}?)" for k in map(str, d)
            if k not in fields and k not in _IGNORED_KERAS_KEYS
            and (close := difflib.get_close_matches(k, fields, n=1, cutoff=0.75))
        )
        if typos:
            raise ValueError(
                f"Unknown key(s) in the layer config: {', '.join(typos)}. "
                f"Accepted keys: {', '.join(fields)}."
            )
        for key, (neutral, why) in _NEUTRAL_KERAS_KEYS.items():
            value = d.get(key, neutral)
            if value is not neutral and not (_is_int(value) and value == neutral):
                raise ValueError(f"The layer config has {key}={value!r}: {why}; only {key}: "
                                 f"{json.dumps(neutral)} is accepted.")
        missing = [k for k in ("filters", "kernel_size") if k not in d]
        if missing:
            raise ValueError(f"The layer config lacks required key(s): {', '.join(missing)}.")
        return cls(**{k: d[k] for k in fields if k in d})

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``"layer"`` dict (design.md), JSON-serialisable."""
        return {
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "output_padding": self.output_padding,
            "dilation_rate": self.dilation_rate,
            "data_format": self.data_format,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "in_channels": self.in_channels,
        }

    @property
    def keff(self) -> int:
        """Span of the dilated kernel, ``(kernel_size - 1) * dilation_rate + 1``."""
        return geometry.effective_kernel(self.kernel_size, self.dilation_rate)

    @property
    def crop_left(self) -> int:
        """Leading uncropped output positions Keras drops."""
        return geometry.crop_left(self.kernel_size, self.strides, self.padding,
                                  self.output_padding, self.dilation_rate)

    def output_length(self, length: int) -> int:
        """Output steps for an input of ``length`` steps (>= 1)."""
        return geometry.output_length(length, self.kernel_size, self.strides, self.padding,
                                      self.output_padding, self.dilation_rate)

    def useful_pairs(self, length: int) -> int:
        """(step, tap) pairs of a ``length``-step frame whose product lands inside the
        cropped output window (products that ``same`` padding crops away are work, not
        useful work)."""
        pos = (np.arange(length)[:, None] * self.strides
               + np.arange(self.kernel_size)[None, :] * self.dilation_rate - self.crop_left)
        return int(((pos >= 0) & (pos < self.output_length(length))).sum())

    def useful_macs(self, length: int) -> int:
        """Useful multiply-accumulates of one ``length``-step frame: `useful_pairs`, each
        ``filters x in_channels`` MACs (the numerator of docs/contract.md's MAC utilization)."""
        if self.in_channels is None:
            raise ValueError("useful_macs needs in_channels")
        return self.useful_pairs(length) * self.filters * self.in_channels

    def check_limits(self) -> LayerConfig:
        """Refuse a layer too large for tconv's flows (the ``MAX_*`` limits of this module).

        Checks ``kernel_size``, ``strides``, ``dilation_rate``, ``in_channels`` and
        ``filters`` one by one, the weight count, and that a frame of
        ``MIN_FRAME`` steps fits ``MAX_VALUES``. Costs nothing: no array is made.
        Returns the config, for chaining.

        Raises
        ------
        ValueError
            Naming the first field over its limit, the limit and why it exists.
        """
        for name, limit, why in (
                ("kernel_size", MAX_KERNEL_SIZE, "4x the longest kernels in use"),
                ("strides", MAX_STRIDES, "4x the largest upsampling factors in use; the hardware's "
                                         "generation time grows with it"),
                ("dilation_rate", MAX_DILATION_RATE, "2x the largest dilations in use"),
                ("in_channels", MAX_CHANNELS, "128x the channels of large audio models"),
                ("filters", MAX_CHANNELS, "128x the channels of large audio models")):
            value = getattr(self, name)
            if value is not None and value > limit:
                raise ValueError(f"{name}={value} is more than tconv allows ({name} <= {limit}, {why}); "
                                 f"larger layers would take absurd memory or time")
        if self.in_channels is not None:
            weights = self.kernel_size * self.filters * self.in_channels
            if weights > MAX_VALUES:
                raise ValueError(
                    f"the layer has {weights} weights (kernel_size {self.kernel_size} x filters {self.filters} "
                    f"x in_channels {self.in_channels}), more than tconv allows ({MAX_VALUES} = 2**26, "
                    f"512 MiB of float64)")
            self.check_data_limits(1, MIN_FRAME, what=f"a frame of {MIN_FRAME} steps")
        return self

    def check_data_limits(self, batch: int, length: int, *, what: str | None = None) -> None:
        """Refuse data of ``batch`` sequences of ``length`` steps whose arrays would exceed ``MAX_VALUES``.

        The arrays are the model's: the inputs ``batch * length * in_channels``,
        the partial products ``batch * length * kernel_size * filters`` and the
        outputs ``batch * output_length(length) * filters``. ``what`` names the
        data in the message (default ``"data of B x L steps"``); costs nothing.

        Raises
        ------
        ValueError
            Naming the largest array, its size and the limit.
        """
        what = what or f"data of {batch} x {length} steps"
        sizes = (("input values", batch * length * (self.in_channels or 1)),
                 ("partial products (batch x length x kernel_size x filters)",
                  batch * length * self.kernel_size * self.filters),
                 (f"output values ({self.output_length(length)} steps x {self.filters} filters each)",
                  batch * self.output_length(length) * self.filters))
        name, size = max(sizes, key=lambda item: item[1])
        if size > MAX_VALUES:
            raise ValueError(f"{what} would need {size} {name} for this layer, more than tconv allows "
                             f"({MAX_VALUES} = 2**26 values, 512 MiB of float64, per array): use less data "
                             f"or shorter sequences")

    def check_float_input(self, x, name: str = "input") -> np.ndarray:
        """Float data for this layer as a batch: ``(batch, length, in_channels)``
        (``(batch, in_channels, length)`` for channels_first), or one sequence
        without the batch axis. Returns a float64 array with the batch axis.

        Raises ``ValueError`` naming ``name`` for a wrong shape, no data (zero
        sequences or steps), more data than `check_data_limits` allows, or
        NaN/inf values.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 2:
            x = x[None]
        channel_axis = 2 if self.data_format == "channels_last" else 1
        if x.ndim != 3 or x.shape[channel_axis] != self.in_channels:
            layout = "(batch, length, in_channels)" if channel_axis == 2 else "(batch, in_channels, length)"
            raise ValueError(f"{name} has shape {x.shape}, expected {layout} with in_channels={self.in_channels}")
        if x.size == 0:
            raise ValueError(f"{name} has shape {x.shape}: no data (at least one sequence of at least one step "
                             f"is needed)")
        self.check_data_limits(x.shape[0], x.shape[3 - channel_axis], what=f"{name} of shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError(f"{name} holds {int((~np.isfinite(x)).sum())} NaN/inf value(s)")
        return x
