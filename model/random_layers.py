"""Random layers for tests, benchmarks and demos: one way to make "a layer with random weights"."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .config import LayerConfig
from .fixedpoint import FixedFormat
from .quantized import Conv1DTransposeQ

__all__ = ["random_layer"]


def random_layer(config: LayerConfig, formats: Mapping[str, FixedFormat | str], *, seed: int = 0,
                 kernel_range: tuple[float, float] | None = None,
                 bias_range: tuple[float, float] = (-4.0, 4.0)) -> Conv1DTransposeQ:
    """A :class:`Conv1DTransposeQ` of ``config`` with uniformly random float weights.

    Parameters
    ----------
    config : LayerConfig
        With ``in_channels`` set.
    formats : mapping
        ``input``, ``weight``, ``output`` and (with use_bias) ``bias``, as
        FixedFormats or their strings (``"fixed<8,3,RND,SAT>"``); a ``bias``
        format of a layer without bias is ignored.
    seed : int
        Seed of ``numpy.random.default_rng``.
    kernel_range : (lo, hi), optional
        Range of the kernel values (default: the weight format's whole range).
    bias_range : (lo, hi)
        Range of the bias values.
    """
    if config.in_channels is None:
        raise ValueError("random_layer needs a LayerConfig with in_channels set")
    fmts = {k: FixedFormat.parse(v) if isinstance(v, str) else v for k, v in formats.items()}
    wf = fmts["weight"]
    lo, hi = kernel_range if kernel_range is not None else (wf.min_value, wf.max_value)
    rng = np.random.default_rng(seed)
    kernel = rng.uniform(lo, hi, (config.kernel_size, config.filters, config.in_channels))
    bias = rng.uniform(*bias_range, config.filters) if config.use_bias else None
    return Conv1DTransposeQ(config, kernel, bias, input_format=fmts["input"], weight_format=wf,
                            bias_format=fmts.get("bias") if config.use_bias else None,
                            output_format=fmts["output"])
