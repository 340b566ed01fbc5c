"""The activations of the fixed-point datapath: one definition for the model, the error bound and the RTL.

Each acts on the exact accumulator (integer codes with ``acc_frac`` fractional
bits). The piecewise-linear ones (`EXACT_ACTIVATIONS`) give an exact integer
result with `activation_frac` fractional bits, which the output format then
requantizes: leaky_relu multiplies by Keras' slope quantized to
`LEAKY_SLOPE_FRAC` bits (`LEAKY_SLOPE_CODE`); relu6, hard_tanh, hard_shrink,
soft_shrink and sparse_sigmoid shift a coarse accumulator up so that their
constants (6, 1, 0.5) are representable, and sparse_sigmoid's halving is one
more fractional bit. Every other elementwise activation (`TABLE_ACTIVATIONS`,
hard_sigmoid and hard_silu among them: their division by 6 has no exact
binary form) is a table from the accumulator to output values
(`tconv.model.activation_tables`). Activations that mix the outputs of a step
(`NOT_ELEMENTWISE`) have no fixed-point form.
"""

from __future__ import annotations

import numpy as np

from .activations import LEAKY_SLOPE

__all__ = ["ACTIVATIONS", "EXACT_ACTIVATIONS", "TABLE_ACTIVATIONS", "FIXED_ACTIVATIONS", "NOT_ELEMENTWISE",
           "LEAKY_SLOPE", "LEAKY_SLOPE_FRAC", "LEAKY_SLOPE_CODE", "activation_frac", "activation_extra_bits",
           "activate_codes", "check_fixed_activation"]

#: Piecewise-linear activations computed exactly on the accumulator.
EXACT_ACTIVATIONS = ("linear", "relu", "relu6", "leaky_relu", "hard_tanh", "hard_shrink", "soft_shrink",
                     "sparse_sigmoid")
#: Elementwise activations computed by a table (within one output LSB, see activation_tables).
TABLE_ACTIVATIONS = ("sigmoid", "tanh", "hard_sigmoid", "hard_silu", "gelu", "silu", "mish", "softplus",
                     "softsign", "elu", "selu", "celu", "log_sigmoid", "exponential", "squareplus",
                     "sparse_plus", "tanh_shrink")
#: Every activation the fixed-point model computes.
FIXED_ACTIVATIONS = EXACT_ACTIVATIONS + TABLE_ACTIVATIONS
#: Keras activations that are not elementwise: refused in fixed point.
NOT_ELEMENTWISE = ("softmax", "log_softmax", "glu", "sparsemax")
#: Activations the generated hardware builds: every one the fixed-point model computes
#: (`tconv.hw.postprocess.PostProcess` in each output row).
ACTIVATIONS = FIXED_ACTIVATIONS
#: Fractional bits of Keras' leaky_relu slope in the fixed-point datapath.
LEAKY_SLOPE_FRAC = 16
#: The slope as the datapath multiplies by it: ``LEAKY_SLOPE`` with ``LEAKY_SLOPE_FRAC`` fractional bits.
LEAKY_SLOPE_CODE = round(LEAKY_SLOPE * (1 << LEAKY_SLOPE_FRAC))

# Fractional bits an exact activation needs at least, so that its constants are codes.
_MIN_FRAC = {"relu6": 0, "hard_tanh": 0, "hard_shrink": 1, "soft_shrink": 1, "sparse_sigmoid": 0}


def check_fixed_activation(name: str) -> None:
    """Raise ``ValueError`` unless the fixed-point model computes activation ``name``."""
    if name in FIXED_ACTIVATIONS:
        return
    why = ("is not elementwise (it mixes the outputs of a step), so it has no fixed-point form"
           if name in NOT_ELEMENTWISE else "has no fixed-point form")
    raise ValueError(f"activation {name!r} {why}; the fixed-point model supports: "
                     f"{', '.join(FIXED_ACTIVATIONS)}")


def _shift(name: str, acc_frac: int) -> int:
    """Left shift applied to the accumulator before an exact activation."""
    return max(_MIN_FRAC.get(name, acc_frac) - acc_frac, 0)


def activation_frac(name: str, acc_frac: int) -> int:
    """Fractional bits of exact activation ``name``'s result on an accumulator with ``acc_frac``.

    A table activation's result has the output format's fractional bits (its
    table's ``out_frac``); asking here for one raises ``ValueError``.
    """
    if name in TABLE_ACTIVATIONS:
        raise ValueError(f"activation {name!r} is a table: its result has the output format's "
                         "fractional bits (ActivationTable.out_frac)")
    check_fixed_activation(name)
    if name == "leaky_relu":
        return acc_frac + LEAKY_SLOPE_FRAC
    frac = acc_frac + _shift(name, acc_frac)
    return frac + 1 if name == "sparse_sigmoid" else frac


def activation_extra_bits(name: str, acc_frac: int, acc_width: int) -> int:
    """Bits the exact result may need beyond the accumulator's ``acc_width`` (the slope's, or a shift)."""
    if name == "leaky_relu":
        return LEAKY_SLOPE_FRAC
    shift = _shift(name, acc_frac)
    if name == "sparse_sigmoid":
        # clip(x + 1, 0, 2) reaches 2 = 2**(G + 1) in G + 1 fractional bits: G + 3 bits signed.
        g = acc_frac + shift
        return shift + max(0, g + 3 - (acc_width + shift))
    return shift


def activate_codes(name: str, acc: np.ndarray, acc_frac: int) -> np.ndarray:
    """Exact activation ``name`` on accumulator codes; a new int64 array with `activation_frac` bits."""
    check_fixed_activation(name)
    if name in TABLE_ACTIVATIONS:
        raise ValueError(f"activation {name!r} is a table: use ActivationTable.lookup")
    if name == "linear":
        return acc.copy()
    if name == "relu":
        return np.maximum(acc, 0)
    if name == "leaky_relu":
        return np.where(acc >= 0, acc << np.int64(LEAKY_SLOPE_FRAC), acc * np.int64(LEAKY_SLOPE_CODE))
    shift = _shift(name, acc_frac)
    g = acc_frac + shift  # fractional bits after the shift
    a = acc << np.int64(shift) if shift else acc

    def const(value: int) -> np.int64:
        # Constants past every int64 accumulator value act as that cap (|acc| < 2**61).
        return np.int64(min(value, 1 << 62))

    one = const(1 << g)
    if name == "relu6":
        return np.clip(a, 0, const(6 << g))
    if name == "hard_tanh":
        return np.clip(a, -one, one)
    half = const(1 << (g - 1)) if g >= 1 else None
    if name == "hard_shrink":
        return np.where(np.abs(a) > half, a, 0)
    if name == "soft_shrink":
        return np.where(a > half, a - half, np.where(a < -half, a + half, 0))
    # sparse_sigmoid: 0.5 * clip(x + 1, 0, 2), the halving as one more fractional bit.
    return np.clip(a + one, 0, const(2 << g))
