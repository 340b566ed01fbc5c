"""Geometry of a 1-D transposed convolution: lengths, crops and the scatter kernel.

Every other part of tconv (float model, fixed-point model, hardware schedule,
manifest) takes its lengths from here, so the Keras table of design.md lives in
one place.

An input step ``i`` and a kernel tap ``k`` reach the *uncropped* output position
``i * strides + k * dilation_rate``; the layer's output position is that minus
``crop_left``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "effective_kernel",
    "output_length",
    "crop_left",
    "taps_per_output",
    "scatter_taps",
]


def effective_kernel(kernel_size: int, dilation_rate: int) -> int:
    """Span of the dilated kernel: ``(kernel_size - 1) * dilation_rate + 1``."""
    return (kernel_size - 1) * dilation_rate + 1


def output_length(length: int, kernel_size: int, strides: int, padding: str,
                  output_padding: int | None, dilation_rate: int) -> int:
    """Output length of Keras 3's Conv1DTranspose for an input of ``length`` steps."""
    keff = effective_kernel(kernel_size, dilation_rate)
    padding = padding.lower()
    if padding == "valid":
        if output_padding is None:
            return (length - 1) * strides + max(keff, strides)
        return (length - 1) * strides + keff + output_padding
    if output_padding is None:
        return length * strides
    return (length - 1) * strides + keff % 2 + output_padding


def crop_left(kernel_size: int, strides: int, padding: str,
              output_padding: int | None, dilation_rate: int) -> int:
    """Number of leading uncropped positions Keras drops (``same`` padding)."""
    keff = effective_kernel(kernel_size, dilation_rate)
    if padding.lower() == "valid":
        return 0
    if output_padding is None:
        return max((keff - strides) // 2, 0)
    return max(keff // 2 - (output_padding + 1) // 2, 0)


def taps_per_output(kernel_size: int, strides: int, dilation_rate: int) -> int:
    """Most kernel taps that reach any one output position.

    Taps ``k`` and ``k'`` reach the same position from different input steps only
    when ``(k - k') * dilation_rate`` is a multiple of ``strides``; the answer is
    the size of the largest such class (``kernel_size`` when ``strides == 1``).
    """
    counts: dict[int, int] = {}
    for k in range(kernel_size):
        r = (k * dilation_rate) % strides
        counts[r] = counts.get(r, 0) + 1
    return max(counts.values())


def scatter_taps(x: np.ndarray, kernel: np.ndarray, strides: int, dilation_rate: int,
                 crop: int, out_len: int, dtype=None, contiguous: bool = True) -> np.ndarray:
    """Transposed convolution without bias or activation, channels_last.

    ``x`` is ``(batch, length, in_channels)``, ``kernel`` is Keras'
    ``(kernel_size, filters, in_channels)``. Returns ``(batch, out_len, filters)``
    in ``dtype`` (default: the result dtype of ``x @ kernel``). With ``contiguous=False``
    the result may be a view (for a caller that converts it anyway). One matrix
    product computes every (step, tap, filter) partial sum; the taps are then
    added at their positions, so no inserted zero is ever multiplied.
    """
    batch, length, _ = x.shape
    kernel_size, filters, in_channels = kernel.shape
    # (batch*length, C) @ (C, K*F) -> (batch, length, K, F)
    w2 = kernel.transpose(2, 0, 1).reshape(in_channels, kernel_size * filters)
    if dtype is not None:
        x, w2 = x.astype(dtype, copy=False), w2.astype(dtype, copy=False)
    prod = (x.reshape(batch * length, in_channels) @ w2).reshape(batch, length, kernel_size, filters)
    if dilation_rate == 1 and strides > 1:
        y = _add_phases(prod, strides)
    else:
        # Tap k lands at i*strides + k*dilation_rate.
        span = (length - 1) * strides + 1
        y = np.zeros(((length - 1) * strides + effective_kernel(kernel_size, dilation_rate), batch, filters),
                     dtype=prod.dtype)
        prod_t = prod.transpose(2, 1, 0, 3)  # (K, length, batch, F): whole time rows per add
        for k in range(kernel_size):
            start = k * dilation_rate
            y[start:start + span:strides] += prod_t[k]
        y = y.transpose(1, 0, 2)
    full = y.shape[1]
    if crop + out_len > full:  # positions no tap reaches (output_padding) hold zero
        y = np.concatenate([y, np.zeros((batch, crop + out_len - full, filters), dtype=y.dtype)], axis=1)
    y = y[:, crop:crop + out_len, :]
    return np.ascontiguousarray(y) if contiguous else y


def _add_phases(prod: np.ndarray, strides: int) -> np.ndarray:
    """Sum taps at ``i*strides + k`` (dilation 1) as a few shifted block adds.

    Tap ``k = q*strides + r`` of step ``i`` lands at ``(i + q)*strides + r``: in
    the output viewed as ``(batch, steps, strides, filters)`` it is a block add of
    all steps at once, one per ``q``, on contiguous memory.
    """
    batch, length, kernel_size, filters = prod.shape
    groups = -(-kernel_size // strides)
    y = np.empty((batch, length + groups - 1, strides, filters), dtype=prod.dtype)
    # y is written, not zero-filled and added to: the first two groups' sum in
    # one pass where they overlap, each group alone where it does not; further
    # groups are added.
    g0 = prod[:, :, :strides, :]
    if groups == 1:
        y[:, :, :kernel_size] = g0
        y[:, :, kernel_size:] = 0
    else:
        g1 = prod[:, :, strides:2 * strides, :]
        w1 = g1.shape[2]
        y[:, 0] = g0[:, 0]
        np.add(g0[:, 1:, :w1], g1[:, :-1], out=y[:, 1:length, :w1])
        y[:, 1:length, w1:] = g0[:, 1:, w1:]
        y[:, length, :w1] = g1[:, -1]
        y[:, length, w1:] = 0
        y[:, length + 1:] = 0
    for q in range(2, groups):
        taps = prod[:, :, q * strides:(q + 1) * strides, :]
        y[:, q:q + length, :taps.shape[2], :] += taps
    y = y.reshape(batch, (length + groups - 1) * strides, filters)
    return y[:, :(length - 1) * strides + kernel_size]
