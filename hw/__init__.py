"""Amaranth HDL of the transposed-convolution accelerator (see docs/architecture.md).

- :func:`generate`: a quantized layer to ``<top>.v``, ``<top>.vlt`` and ``manifest.json``.
- :class:`Conv1DTransposeTop`: the generated module (flat AXI4-Stream ports).
- :class:`Schedule`: the mapping onto the array, buffer sizes and the cycle model.
- :func:`generate_chain`: consecutive layers (a :class:`tconv.model.ChainQ`) as one design,
  :func:`plan_chain` the PE budget split, :class:`Conv1DTransposeChainTop` its module.
"""

from .chain import ChainPlan, Conv1DTransposeChainTop, plan_chain
from .chain_generate import generate_chain
from .check import check_layer
from .generate import generate, manifest_frame_cycles
from .layer import Conv1DTransposeCore, Conv1DTransposeTop
from .schedule import Schedule

__all__ = ["generate", "manifest_frame_cycles", "Conv1DTransposeCore", "Conv1DTransposeTop",
           "check_layer", "Schedule", "generate_chain", "plan_chain", "ChainPlan", "Conv1DTransposeChainTop"]
