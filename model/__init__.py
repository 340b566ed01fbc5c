"""Reference models of Keras' ``Conv1DTranspose``: the single source of truth for tconv.

- :func:`conv1d_transpose`: float64 model equal to Keras 3 in every corner.
- :class:`FixedFormat`: ``ap_fixed``-exact fixed-point formats.
- :class:`Conv1DTransposeQ`: the bit-accurate fixed-point layer the RTL implements.
- :func:`analyze` / :func:`sweep`: quantization error against the float layer.
- :func:`calibrate`: formats chosen from data; :func:`import_keras`: a real Keras
  layer (standalone or in a model) as a calibrated :class:`Conv1DTransposeQ`
  (``.layer``) with its :class:`Calibration` (``.calibration``).
- :func:`random_layer`: a layer with random weights (tests, benchmarks, demos).
- :class:`ChainQ`: consecutive layers (a chain), the composition of their ``forward_int``;
  :func:`import_keras_chain` imports and calibrates one from a Keras model,
  :func:`analyze_chain` its error against the float sub-model.
"""

from .analysis import ErrorReport, analyze, error_bound, random_input, sweep
from .calibrate import Calibration, CalibrationPolicy, calibrate
from .chain import ChainQ
from .chain_analysis import analyze_chain
from .config import LayerConfig
from .fixed_activations import ACTIVATIONS
from .fixedpoint import OVERFLOW_MODES, QUANTIZATION_MODES, FixedFormat
from .float_model import conv1d_transpose
from .keras_chain import KerasChainImport, import_keras_chain
from .keras_import import KerasImport, conv1d_transpose_layers, import_keras
from .quantized import Conv1DTransposeQ, Stages, accumulator_format
from .random_layers import random_layer

__all__ = [
    "ACTIVATIONS", "OVERFLOW_MODES", "QUANTIZATION_MODES",
    "Calibration", "CalibrationPolicy", "ChainQ", "Conv1DTransposeQ", "ErrorReport", "FixedFormat", "KerasChainImport", "KerasImport",
    "LayerConfig", "Stages",
    "accumulator_format", "analyze", "analyze_chain", "calibrate", "conv1d_transpose", "conv1d_transpose_layers",
    "error_bound", "import_keras", "import_keras_chain", "random_input", "random_layer", "sweep",
]
