"""The activations of the fixed-point datapath: one definition for the model, the error bound and the RTL.

Each acts on the exact accumulator (integer codes with ``acc_frac`` fractional
bits) and gives an exact integer result with `activation_frac` fractional bits,
which the output format then requantizes. leaky_relu multiplies by Keras' slope
quantized to `LEAKY_SLOPE_FRAC` bits (`LEAKY_SLOPE_CODE`); relu6 shifts a
negative-frac accumulator up so that 6 is representable.
"""

from __future__ import annotations

import numpy as np

from .activations import LEAKY_SLOPE

__all__ = ["ACTIVATIONS", "LEAKY_SLOPE", "LEAKY_SLOPE_FRAC", "LEAKY_SLOPE_CODE", "activation_frac",
           "activation_extra_bits", "activate_codes"]

#: Activations the fixed-point datapath (and the hardware) computes exactly.
ACTIVATIONS = ("linear", "relu", "relu6", "leaky_relu")
#: Fractional bits of Keras' leaky_relu slope in the fixed-point datapath.
LEAKY_SLOPE_FRAC = 16
#: The slope as the datapath multiplies by it: ``LEAKY_SLOPE`` with ``LEAKY_SLOPE_FRAC`` fractional bits.
LEAKY_SLOPE_CODE = round(LEAKY_SLOPE * (1 << LEAKY_SLOPE_FRAC))


def activation_frac(name: str, acc_frac: int) -> int:
    """Fractional bits of activation ``name``'s exact result on an accumulator with ``acc_frac``."""
    if name == "leaky_relu":
        return acc_frac + LEAKY_SLOPE_FRAC
    if name == "relu6":
        return max(acc_frac, 0)
    return acc_frac


def activation_extra_bits(name: str, acc_frac: int) -> int:
    """Bits the result may need beyond the accumulator's width (the slope's, or relu6's shift)."""
    if name == "leaky_relu":
        return LEAKY_SLOPE_FRAC
    if name == "relu6":
        return max(-acc_frac, 0)
    return 0


def activate_codes(name: str, acc: np.ndarray, acc_frac: int) -> np.ndarray:
    """Activation ``name`` on exact accumulator codes; a new int64 array with `activation_frac` bits."""
    if name == "linear":
        return acc.copy()
    if name == "relu":
        return np.maximum(acc, 0)
    if name == "relu6":
        if acc_frac < 0:
            acc = acc << np.int64(-acc_frac)  # make 6 representable
        return np.clip(acc, 0, 6 << max(acc_frac, 0))
    if name == "leaky_relu":
        return np.where(acc >= 0, acc << np.int64(LEAKY_SLOPE_FRAC), acc * np.int64(LEAKY_SLOPE_CODE))
    raise ValueError(f"activation {name!r} has no exact fixed-point form; supported: {', '.join(ACTIVATIONS)}")
