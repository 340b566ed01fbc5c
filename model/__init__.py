"""Reference models of Keras' ``Conv1DTranspose``: the single source of truth for tconv.

- :func:`conv1d_transpose`: float64 model equal to Keras 3 in every corner.
- :class:`FixedFormat`: ``ap_fixed``-exact fixed-point formats.
- :class:`Conv1DTransposeQ`: the bit-accurate fixed-point layer the RTL implements.
- :func:`analyze` / :func:`sweep`: quantization error against the float layer.
- :func:`calibrate`: formats chosen from data; :func:`import_keras`: a real Keras
  layer (standalone or in a model) as a calibrated :class:`Conv1DTransposeQ`
  (``.layer``) with its :class:`Calibration` (``.calibration``).
- :func:`random_layer`: a layer with random weights (tests, benchmarks, demos).
"""

from .analysis import ErrorReport, analyze, error_bound, random_input, sweep
from .calibrate import Calibration, CalibrationPolicy, calibrate
from .config import LayerConfig
from .fixed_activations import ACTIVATIONS
from .fixedpoint import OVERFLOW_MODES, QUANTIZATION_MODES, FixedFormat
from .float_model import conv1d_transpose
from .keras_import import KerasImport, conv1d_transpose_layers, import_keras
from .quantized import Conv1DTransposeQ, Stages, accumulator_format
from .random_layers import random_layer

__all__ = [
    "ACTIVATIONS", "OVERFLOW_MODES", "QUANTIZATION_MODES",
    "Calibration", "CalibrationPolicy", "Conv1DTransposeQ", "ErrorReport", "FixedFormat", "KerasImport",
    "LayerConfig", "Stages",
    "accumulator_format", "analyze", "calibrate", "conv1d_transpose", "conv1d_transpose_layers",
    "error_bound", "import_keras", "random_input", "random_layer", "sweep",
]
