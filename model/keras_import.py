"""A real ``keras.layers.Conv1DTranspose`` as a calibrated :class:`Conv1DTransposeQ`.

The layer may stand alone or sit in a Sequential, functional or subclassed
model, nested models included (its name is then ``outer/inner`` or just
``inner`` when that is unambiguous). Its config and float32 weights are read
exactly (``get_config()`` through :meth:`LayerConfig.from_dict`; the weights
widen to float64 without rounding). When the layer sits inside a model, the
calibration data are the *model's* inputs and the layer's own inputs are
obtained by running the model on them and recording what reaches the layer.

Keras is imported only by the caller: every function takes Keras objects the
caller already has, so ``tconv.model`` itself never needs Keras.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .calibrate import Calibration, CalibrationPolicy, calibrate, default_input
from .config import LayerConfig
from .fixed_activations import FIXED_ACTIVATIONS, check_fixed_activation
from .quantized import Conv1DTransposeQ

__all__ = ["KerasImport", "conv1d_transpose_layers", "find_layer", "import_keras",
           "is_conv1d_transpose", "layer_config", "layer_inputs", "layer_weights"]

_BATCH = 256  # model inputs per forward call when running a model up to a layer


@dataclass
class KerasImport:
    """The result of :func:`import_keras`.

    Attributes
    ----------
    layer : Conv1DTransposeQ
        The fixed-point layer with the calibrated (or given) formats.
    calibration : Calibration
        The formats and what they were chosen from.
    inputs : ndarray
        The layer's own float64 inputs used for calibration, in its data_format.
    name : str
        The layer's name (``outer/inner`` inside a nested model).
    keras_layer : keras.layers.Conv1DTranspose
    model : keras.Model or None
        The model it was found in (None for a standalone layer).
    """

    layer: Conv1DTransposeQ
    calibration: Calibration
    inputs: np.ndarray
    name: str
    keras_layer: object
    model: object = None

    def layer_inputs(self, data) -> np.ndarray:
        """The layer's own float64 inputs for other data: the model's inputs (run through
        the model up to the layer), or the layer's own inputs for a standalone layer."""
        if self.model is None:
            return np.asarray(data, dtype=np.float64)
        return layer_inputs(self.model, self.keras_layer, data)


# ------------------------------------------------------------------ layers
def is_conv1d_transpose(obj) -> bool:
    """Whether ``obj`` is a ``keras.layers.Conv1DTranspose`` (or a subclass)."""
    keras = _keras_of(obj)
    return keras is not None and isinstance(obj, keras.layers.Conv1DTranspose)


def _keras_of(obj):
    """The keras module if ``obj`` comes from Keras 3 (without importing Keras otherwise)."""
    if not type(obj).__module__.startswith("keras") and not any(
            c.__module__.startswith("keras") for c in type(obj).__mro__):
        return None
    import keras
    return keras


def _is_model(obj) -> bool:
    keras = _keras_of(obj)
    return keras is not None and isinstance(obj, keras.Model)


def _walk(model, prefix=""):
    """``(path, layer)`` of every layer of ``model``, nested models' layers included."""
    for layer in getattr(model, "layers", []):
        path = f"{prefix}{layer.name}"
        yield path, layer
        if _is_model(layer):
            yield from _walk(layer, path + "/")


def conv1d_transpose_layers(model) -> list[str]:
    """Names (``outer/inner`` in nested models) of the Conv1DTranspose layers of ``model``."""
    return [path for path, layer in _walk(model) if is_conv1d_transpose(layer)]


def _listing(model) -> str:
    names = conv1d_transpose_layers(model)
    if not names:
        return "it has no Conv1DTranspose layer"
    return f"its Conv1DTranspose layer{'s' if len(names) > 1 else ''}: {', '.join(names)}"


def find_layer(model, name: str | None = None, *, where: str = "the model"):
    """The Conv1DTranspose layer ``name`` of ``model``, as ``(path, layer)``.

    ``name`` is a layer name or a ``outer/inner`` path into nested models; it may
    be omitted when the model has exactly one Conv1DTranspose layer.

    Raises
    ------
    ValueError
        One line naming the problem (no such layer, another layer type, an
        ambiguous or missing name) and listing the Conv1DTranspose layers present.
    """
    layers = list(_walk(model))
    if name is None:
        found = [(p, lay) for p, lay in layers if is_conv1d_transpose(lay)]
        if len(found) == 1:
            return found[0]
        if not found:
            raise ValueError(f"{where} has no Conv1DTranspose layer (layers: "
                             f"{', '.join(p for p, _ in layers) or 'none'})")
        raise ValueError(f"{where} has {len(found)} Conv1DTranspose layers; name one: "
                         f"{', '.join(p for p, _ in found)}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"the layer name must be a non-empty string, got {name!r}")
    matches = [(p, lay) for p, lay in layers if p == name]
    if not matches:
        matches = [(p, lay) for p, lay in layers if p.rsplit("/", 1)[-1] == name]
    if not matches:
        raise ValueError(f"{where} has no layer named {name!r}; {_listing(model)}")
    if len(matches) > 1:
        raise ValueError(f"{where} has {len(matches)} layers named {name!r} ({', '.join(p for p, _ in matches)}); "
                         f"give the full path; {_listing(model)}")
    path, layer = matches[0]
    if not is_conv1d_transpose(layer):
        raise ValueError(f"layer {path!r} of {where} is a {type(layer).__name__}, not a Conv1DTranspose; "
                         f"{_listing(model)}")
    return path, layer


def _check_built(layer) -> None:
    if not getattr(layer, "built", False) or getattr(layer, "kernel", None) is None:
        raise ValueError(f"Conv1DTranspose layer {layer.name!r} is not built, so it has no weights yet; "
                         f"call it on data or build it first")


def layer_config(layer) -> LayerConfig:
    """The :class:`LayerConfig` of a built Keras Conv1DTranspose layer (``in_channels`` included).

    Raises ``ValueError`` for a config tconv cannot take, a layer beyond tconv's size
    limits (:meth:`LayerConfig.check_limits`) among them.
    """
    if not is_conv1d_transpose(layer):
        raise ValueError(f"expected a keras.layers.Conv1DTranspose, got {type(layer).__name__}")
    _check_built(layer)
    config = dict(layer.get_config())
    activation = config.get("activation")
    if not isinstance(activation, str) and activation is not None:
        # A custom function serialises to a dict; name what the datapath can do.
        raise ValueError(f"Conv1DTranspose layer {layer.name!r} has a custom activation function; "
                         f"the fixed-point model supports: {', '.join(FIXED_ACTIVATIONS)}")
    in_channels = int(layer.kernel.shape[2])
    try:
        return LayerConfig.from_dict({**config, "in_channels": in_channels}).check_limits()
    except ValueError as err:
        raise ValueError(f"Conv1DTranspose layer {layer.name!r}: {err}") from None


def layer_weights(layer) -> tuple[np.ndarray, np.ndarray | None]:
    """``(kernel, bias)`` of a built layer as float64 (exact: float32 widens without rounding).

    ``kernel`` is ``(kernel_size, filters, in_channels)``; ``bias`` is None without one.
    """
    _check_built(layer)
    # np.asarray, not keras.ops.convert_to_numpy: the latter warns under numpy 2 on jax.
    kernel = np.array(np.asarray(layer.kernel), dtype=np.float64)
    bias = np.array(np.asarray(layer.bias), dtype=np.float64) if layer.use_bias else None
    return kernel, bias


# ------------------------------------------------------------ layer inputs
def layer_inputs(model, layer, x, *, batch_size: int = _BATCH) -> np.ndarray:
    """Run ``model`` on its inputs ``x`` and return what reaches ``layer``, as float64.

    The layer's ``call`` is wrapped for the duration of the run to record its
    input, which works for every kind of model (Sequential, functional,
    subclassed, nested); the model runs eagerly in batches of ``batch_size``. A
    layer called several times per run (shared) contributes every call.

    Raises
    ------
    ValueError
        If the model fails on ``x`` (Keras' first line), or never calls the layer.
    """
    seen: list[np.ndarray] = []
    original = layer.call

    def record(inputs, *args, **kwargs):
        seen.append(np.array(np.asarray(inputs), dtype=np.float64))
        return original(inputs, *args, **kwargs)

    batches = [x[i:i + batch_size] for i in range(0, len(x), batch_size)] if isinstance(x, np.ndarray) else [x]
    layer.call = record
    try:
        for chunk in batches:
            model(chunk, training=False)
    except Exception as err:  # Keras and jax raise many kinds for data that does not fit
        raise ValueError(f"running the model on the data failed: {_first_line(err)}") from None
    finally:
        del layer.call  # back to the class's method
    if not seen:
        raise ValueError(f"running the model did not reach layer {layer.name!r}")
    shapes = {a.shape[1:] for a in seen}
    if len(shapes) > 1:
        raise ValueError(f"layer {layer.name!r} saw inputs of different shapes {sorted(shapes)}; "
                         f"calibrate it with data of one shape")
    return np.concatenate(seen)


def _first_line(err: BaseException) -> str:
    text = " ".join(str(err).split("\n")[:1]).strip() or type(err).__name__
    return text[:300]


# ------------------------------------------------------------------ import
def import_keras(obj, *, name: str | None = None, data=None, formats=None, width: int = 8,
                 policy: CalibrationPolicy | None = None, data_name: str | None = None,
                 batch: int = 4, length: int = 32, seed: int = 0) -> KerasImport:
    """Import a Keras Conv1DTranspose layer and calibrate its formats.

    Parameters
    ----------
    obj : keras.layers.Conv1DTranspose or keras.Model
        The layer itself, or a model holding it (then ``name`` picks it, and may be
        omitted when the model has only one).
    name : str, optional
        Layer name in ``obj`` (``outer/inner`` for nested models).
    data : array_like, optional
        Calibration data: the *model's* inputs when ``obj`` is a model (the
        model runs up to the layer to get the layer's inputs), the layer's own
        inputs when ``obj`` is the layer. Default: a standard-normal batch of the
        layer's inputs (``batch`` x ``length``, ``seed``; see
        :func:`tconv.model.calibrate.default_input`).
    formats : mapping, optional
        Formats to use as given (any of input, weight, bias, output); the others are calibrated.
    width : int
        Input and weight width for calibration (bias and output get ``2 * width``).
    policy : CalibrationPolicy, optional
        Full control of the calibration (overrides ``width``).
    data_name : str, optional
        How to name ``data`` in the report (e.g. its file).

    Returns
    -------
    KerasImport

    Raises
    ------
    ValueError
        For a name that does not exist or a layer of another type (listing the
        Conv1DTranspose layers present), an unbuilt layer, an activation the
        fixed-point datapath does not support, or bad data or formats.
    """
    if _is_model(obj):
        path, layer = find_layer(obj, name)
        model = obj
    elif is_conv1d_transpose(obj):
        if name is not None and name != obj.name:
            raise ValueError(f"name {name!r} given, but the layer passed is {obj.name!r}")
        path, layer, model = obj.name, obj, None
    else:
        raise ValueError(f"expected a keras.layers.Conv1DTranspose or a Keras model holding one, "
                         f"got {type(obj).__name__}")
    config = layer_config(layer)
    try:
        check_fixed_activation(config.activation)
    except ValueError as err:
        raise ValueError(f"Conv1DTranspose layer {path!r}: {err}") from None
    kernel, bias = layer_weights(layer)

    x = None
    if data is not None:
        if model is not None:
            x = layer_inputs(model, layer, data)
            desc = (f"{data_name or 'model inputs'}: {_count(data)} run through the model up to {path!r}, "
                    f"giving its inputs {x.shape}")
        else:
            x = np.asarray(data, dtype=np.float64)
            desc = f"{data_name or 'layer inputs'}: shape {x.shape}"
    else:
        desc = None
    cal = calibrate(config, kernel, bias, x, formats=formats, width=width, policy=policy, data_name=desc,
                    batch=batch, length=length, seed=seed)
    if x is None:
        x = default_input(config, batch=batch, length=length, seed=seed)
    q = Conv1DTransposeQ(config, kernel, bias, **cal.layer_kwargs())
    return KerasImport(q, cal, x if x.ndim == 3 else x[None], path, layer, model)


def _count(data) -> str:
    if isinstance(data, np.ndarray):
        return f"{data.shape[0]} example(s) {data.shape}"
    return "the inputs"
