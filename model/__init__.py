"""Reference models of Keras' ``Conv1DTranspose``: the single source of truth for tconv.

- :func:`conv1d_transpose`: float64 model equal to Keras 3 in every corner.
- :class:`FixedFormat`: ``ap_fixed``-exact fixed-point formats.
- :class:`Conv1DTransposeQ`: the bit-accurate fixed-point layer the RTL implements.
- :func:`analyze` / :func:`sweep`: quantization error against the float layer.
"""

from .analysis import ErrorReport, analyze, error_bound, random_input, sweep
from .config import LayerConfig
from .fixedpoint import OVERFLOW_MODES, QUANTIZATION_MODES, FixedFormat
from .float_model import conv1d_transpose
from .quantized import ACTIVATIONS, Conv1DTransposeQ, Stages, accumulator_format

__all__ = [
    "ACTIVATIONS", "OVERFLOW_MODES", "QUANTIZATION_MODES",
    "Conv1DTransposeQ", "ErrorReport", "FixedFormat", "LayerConfig", "Stages",
    "accumulator_format", "analyze", "conv1d_transpose", "error_bound", "random_input", "sweep",
]
