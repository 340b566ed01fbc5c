"""Float64 numpy versions of every activation a Keras 3.15 layer accepts by name.

Each function follows the formula of Keras' jax backend (``jax.nn`` or
``keras.src.backend.jax.nn``) with Keras' default arguments, including the
order of ``where`` branches, so NaN and infinity come out where Keras puts them.
Axis-wise activations (softmax, log_softmax, sparsemax, glu) work on the last
axis, as a Keras layer applies them to its output: the filters axis for
``channels_last`` and the time axis for ``channels_first``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

__all__ = ["NAMES", "canonical_name", "get"]

Activation = Callable[[np.ndarray], np.ndarray]

# jax.nn.selu's constants, to the digits jax writes them.
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
# Keras' defaults for the activations that take parameters.
#: keras.activations.leaky_relu's default negative_slope (also the fixed-point datapath's, see fixed_activations).
LEAKY_SLOPE = 0.2
_SHRINK_THRESHOLD = 0.5
_SQUAREPLUS_B = 4.0

_erfc = np.frompyfunc(math.erfc, 1, 1)


def linear(x: np.ndarray) -> np.ndarray:
    """Identity."""
    return x


def relu(x: np.ndarray) -> np.ndarray:
    """``max(x, 0)``."""
    return np.maximum(x, 0.0)


def relu6(x: np.ndarray) -> np.ndarray:
    """``min(max(x, 0), 6)``."""
    return np.minimum(np.maximum(x, 0.0), 6.0)


def leaky_relu(x: np.ndarray) -> np.ndarray:
    """``x`` for ``x >= 0``, else ``0.2 * x`` (Keras' default slope)."""
    return np.where(x >= 0, x, LEAKY_SLOPE * x)


def elu(x: np.ndarray) -> np.ndarray:
    """``x`` for ``x > 0``, else ``exp(x) - 1``."""
    return np.where(x > 0, x, np.expm1(np.where(x > 0, 0.0, x)))


def selu(x: np.ndarray) -> np.ndarray:
    """``scale * x`` for ``x > 0``, else ``scale * alpha * (exp(x) - 1)``."""
    return _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.where(x > 0, 0.0, x)))


def celu(x: np.ndarray) -> np.ndarray:
    """``max(x, 0) + expm1(min(x, 0))`` (alpha 1)."""
    return np.maximum(x, 0.0) + np.expm1(np.minimum(x, 0.0))


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))``, without overflow for large ``|x|``."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def hard_sigmoid(x: np.ndarray) -> np.ndarray:
    """``relu6(x + 3) / 6``."""
    return relu6(x + 3.0) / 6.0


def sparse_sigmoid(x: np.ndarray) -> np.ndarray:
    """``0.5 * clip(x + 1, 0, 2)``."""
    return 0.5 * np.clip(x + 1.0, 0.0, 2.0)


def log_sigmoid(x: np.ndarray) -> np.ndarray:
    """``-softplus(-x)``."""
    return -softplus(-x)


def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent."""
    return np.tanh(x)


def tanh_shrink(x: np.ndarray) -> np.ndarray:
    """``x - tanh(x)``."""
    return x - np.tanh(x)


def hard_tanh(x: np.ndarray) -> np.ndarray:
    """``x`` clipped to ``[-1, 1]`` (NaN stays NaN)."""
    return np.where(x > 1, 1.0, np.where(x < -1, -1.0, x))


def softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + exp(x))``."""
    return np.logaddexp(x, 0.0)


def softsign(x: np.ndarray) -> np.ndarray:
    """``x / (|x| + 1)``."""
    return x / (np.abs(x) + 1.0)


def soft_shrink(x: np.ndarray) -> np.ndarray:
    """``x - 0.5`` above 0.5, ``x + 0.5`` below -0.5, else 0."""
    t = _SHRINK_THRESHOLD
    return np.where(x > t, x - t, np.where(x < -t, x + t, 0.0))


def hard_shrink(x: np.ndarray) -> np.ndarray:
    """``x`` where ``|x| > 0.5``, else 0."""
    return np.where(np.abs(x) > _SHRINK_THRESHOLD, x, 0.0)


def sparse_plus(x: np.ndarray) -> np.ndarray:
    """0 for ``x <= -1``, ``x`` for ``x >= 1``, ``(x + 1)**2 / 4`` between."""
    return np.where(x <= -1.0, 0.0, np.where(x >= 1.0, x, (x + 1.0) ** 2 / 4))


def squareplus(x: np.ndarray) -> np.ndarray:
    """``(x + sqrt(x**2 + 4)) / 2``."""
    return (x + np.sqrt(np.square(x) + _SQUAREPLUS_B)) / 2


def silu(x: np.ndarray) -> np.ndarray:
    """``x * sigmoid(x)`` (also called swish)."""
    return x * sigmoid(x)


def hard_silu(x: np.ndarray) -> np.ndarray:
    """``x * hard_sigmoid(x)`` (also called hard_swish)."""
    return x * hard_sigmoid(x)


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU, ``x / 2 * erfc(-x / sqrt(2))``.

    ``keras.activations.gelu`` defaults to ``approximate=False``, unlike
    ``jax.nn.gelu``.
    """
    return 0.5 * x * _erfc(-x * math.sqrt(0.5)).astype(np.float64)


def mish(x: np.ndarray) -> np.ndarray:
    """``x * tanh(softplus(x))``."""
    return x * np.tanh(softplus(x))


def exponential(x: np.ndarray) -> np.ndarray:
    """``exp(x)``."""
    return np.exp(x)


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis."""
    unnormalized = np.exp(x - np.max(x, axis=-1, keepdims=True, initial=-np.inf))
    return unnormalized / np.sum(unnormalized, axis=-1, keepdims=True)


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Log-softmax over the last axis."""
    shifted = x - np.max(x, axis=-1, keepdims=True, initial=-np.inf)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def sparsemax(x: np.ndarray) -> np.ndarray:
    """Sparsemax over the last axis, as Keras 3.15 computes it.

    Keras' threshold is ``(sum of the cumulative sums over the support - 1) / k``
    where Martins & Astudillo use the cumulative sum at ``k`` alone; the two
    differ whenever the support has more than one element, and this follows
    Keras.
    """
    ordered = -np.sort(-x, axis=-1)
    cumsum = np.cumsum(ordered, axis=-1)
    rank = np.arange(1, x.shape[-1] + 1)
    support = ordered - (cumsum - 1) / rank > 0
    k = np.sum(support, axis=-1, keepdims=True)
    # An empty last axis (channels_first, zero output steps) divides by k = 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = (np.sum(np.where(support, cumsum, 0.0), axis=-1, keepdims=True) - 1) / k
    return np.maximum(x - tau, 0.0)


def glu(x: np.ndarray) -> np.ndarray:
    """Gated linear unit ``a * sigmoid(b)`` of the two halves of the last axis.

    Raises
    ------
    ValueError
        If the last axis has odd size (Keras fails with an ``AssertionError``).
    """
    size = x.shape[-1]
    if size % 2:
        raise ValueError(
            "The glu activation splits the last axis of the layer output (filters "
            "for channels_last, output steps for channels_first) into two halves; "
            f"its size must be even, got {size}."
        )
    a, b = np.split(x, 2, axis=-1)
    return a * sigmoid(b)


_FUNCTIONS: dict[str, Activation] = {f.__name__: f for f in (
    celu, elu, exponential, gelu, glu, hard_shrink, hard_sigmoid, hard_silu, hard_tanh,
    leaky_relu, linear, log_sigmoid, log_softmax, mish, relu, relu6, selu, sigmoid, silu,
    soft_shrink, softmax, softplus, softsign, sparse_plus, sparse_sigmoid, sparsemax,
    squareplus, tanh, tanh_shrink,
)}
# Keras' aliases; a layer's get_config() writes the name on the right.
_ALIASES = {"swish": "silu", "hard_swish": "hard_silu"}

NAMES: tuple[str, ...] = tuple(sorted([*_FUNCTIONS, *_ALIASES]))
"""Every activation name accepted (Keras 3.15's names except ``threshold``)."""


def canonical_name(name: str | None) -> str:
    """The name Keras' ``get_config()`` writes for activation ``name``.

    Parameters
    ----------
    name : str or None
        A Keras activation name (case-sensitive, as in Keras) or None, which
        means ``"linear"``.

    Returns
    -------
    str
        ``name`` with aliases resolved (``swish`` -> ``silu``, ``hard_swish`` ->
        ``hard_silu``).

    Raises
    ------
    ValueError
        For any other value. The message starts with Keras' own and lists the
        accepted names.
    """
    if name is None:
        return "linear"
    if isinstance(name, str):
        name = _ALIASES.get(name, name)
        if name in _FUNCTIONS:
            return name
    message = f"Could not interpret activation function identifier: {name}."
    if name == "threshold":
        # Keras accepts the name in the constructor, then the first call fails
        # with a TypeError: threshold(x, threshold, default_value) has no defaults.
        message += (" keras.activations.threshold needs `threshold` and"
                    " `default_value`, so a layer cannot use it by name.")
    raise ValueError(f"{message} Accepted names: {', '.join(NAMES)}, or None for linear.")


def get(name: str | None) -> Activation:
    """The float64 numpy function of activation ``name``.

    Parameters
    ----------
    name : str or None
        See `canonical_name`.

    Returns
    -------
    callable
        Maps a float64 array to a float64 array; axis-wise activations use the
        last axis.

    Raises
    ------
    ValueError
        For unknown names, listing the accepted ones.
    """
    return _FUNCTIONS[canonical_name(name)]
