"""Float64 reference of Keras 3.15's ``Conv1DTranspose`` forward pass."""

from __future__ import annotations

import numpy as np

from . import activations
from .config import LayerConfig
from .geometry import scatter_taps

__all__ = ["conv1d_transpose"]


def _as_real_array(value: object, name: str) -> np.ndarray:
    """``value`` as a numpy array of real numbers (bool refused), unconverted."""
    array = np.asarray(value)
    if array.dtype.kind not in "iuf":
        raise ValueError(
            f"`{name}` must hold real numbers (integer or float); got dtype {array.dtype}."
        )
    return array


def _check_kernel(kernel: np.ndarray) -> None:
    if kernel.ndim != 3 or 0 in kernel.shape:
        raise ValueError(
            "`kernel` must be 3-D with shape (kernel_size, filters, in_channels), all > 0 "
            f"(Keras' layout); got shape {kernel.shape}."
        )


def _check_x(x: np.ndarray, cfg: LayerConfig) -> None:
    """Shape checks of the input against the kernel, in ``cfg.data_format``."""
    layout = ("(batch, length, in_channels)" if cfg.data_format == "channels_last"
              else "(batch, in_channels, length)")
    if x.ndim != 3:
        raise ValueError(
            f"`x` must be 3-D {layout} for data_format='{cfg.data_format}', as Keras "
            f"requires a batch axis (add one with x[None]); got shape {x.shape}."
        )
    channel_axis, length_axis = (2, 1) if cfg.data_format == "channels_last" else (1, 2)
    if x.shape[channel_axis] != cfg.in_channels:
        raise ValueError(
            f"`x` has {x.shape[channel_axis]} channels on axis {channel_axis} {layout} but "
            f"`kernel` has in_channels={cfg.in_channels} (kernel.shape[2]); "
            f"x.shape={x.shape}."
        )
    if x.shape[length_axis] == 0:
        raise ValueError(
            f"`x` must have at least one time step (length >= 1) on axis {length_axis} "
            f"{layout}; got shape {x.shape}."
        )


def _check_bias(bias: np.ndarray, filters: int) -> None:
    if bias.shape != (filters,):
        raise ValueError(
            f"`bias` must have shape (filters,) = ({filters},) to match `kernel`; "
            f"got shape {bias.shape}."
        )


def conv1d_transpose(x, kernel, bias=None, *, strides=1, padding="valid", output_padding=None,
                     dilation_rate=1, data_format="channels_last", activation=None) -> np.ndarray:
    """Keras 3.15 ``Conv1DTranspose`` forward pass in float64.

    ``y[n, o, f] = act(bias[f] + sum of x[n, i, c] * kernel[k, f, c] over
    i * strides + k * dilation_rate - crop_left == o)`` (channels_last; see
    design.md "Float semantics").

    Parameters
    ----------
    x : array_like
        ``(batch, length, in_channels)`` for channels_last or
        ``(batch, in_channels, length)`` for channels_first; ``length >= 1``.
        Integer or float; NaN and infinity propagate as in Keras.
    kernel : array_like
        Keras' layout ``(kernel_size, filters, in_channels)``.
    bias : array_like or None
        ``(filters,)``, or None for a layer with ``use_bias=False``.
    strides, padding, output_padding, dilation_rate, data_format, activation
        As the Keras constructor takes them (1-tuples/lists included); invalid
        values raise Keras' ``ValueError`` (see `LayerConfig`).

    Returns
    -------
    numpy.ndarray
        float64, ``(batch, L_out, filters)`` for channels_last or
        ``(batch, filters, L_out)`` for channels_first, with ``L_out`` from
        `LayerConfig.output_length` (possibly 0). ``glu`` halves the last axis.

    Raises
    ------
    ValueError
        For invalid layer arguments (Keras' messages), arrays of the wrong shape
        or of a non-real dtype, or an empty input length.
    """
    kernel = _as_real_array(kernel, "kernel")
    _check_kernel(kernel)
    kernel_size, filters, in_channels = kernel.shape
    cfg = LayerConfig(filters=filters, kernel_size=kernel_size, strides=strides, padding=padding,
                      output_padding=output_padding, dilation_rate=dilation_rate,
                      data_format=data_format, activation=activation,
                      use_bias=bias is not None, in_channels=in_channels)
    x = _as_real_array(x, "x")
    _check_x(x, cfg)
    if bias is not None:
        bias = _as_real_array(bias, "bias")
        _check_bias(bias, filters)

    # NaN and infinity propagate silently, as in Keras.
    with np.errstate(all="ignore"):
        return _forward(x, kernel, bias, cfg)


def _forward(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None,
             cfg: LayerConfig) -> np.ndarray:
    """The computation of `conv1d_transpose` on validated arguments."""
    channels_first = cfg.data_format == "channels_first"
    x64 = x.astype(np.float64)
    if channels_first:
        x64 = x64.transpose(0, 2, 1)
    y = scatter_taps(x64, kernel.astype(np.float64), cfg.strides, cfg.dilation_rate,
                     cfg.crop_left, cfg.output_length(x64.shape[1]))
    if bias is not None:
        y += bias.astype(np.float64)
    if channels_first:
        # Keras applies the activation in the layer's layout: axis-wise ones
        # (softmax, glu, ...) then run over the time axis.
        y = y.transpose(0, 2, 1)
    return np.ascontiguousarray(activations.get(cfg.activation)(y), dtype=np.float64)
