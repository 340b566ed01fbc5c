"""Consecutive Keras ``Conv1DTranspose`` layers as one calibrated :class:`~tconv.model.chain.ChainQ`.

:func:`check_keras_chain` follows the model's layer graph (Sequential or
functional, or one nested model of either) and accepts layers ``A, B, C`` only
when each one's only input is the previous one's output; layers that are the
identity at inference (:data:`IDENTITY_LAYERS`) may sit between them and are
skipped. Everything else is refused in one line naming the layer and its type:
a layer of another kind between two of them (a ``Conv1D``, an ``Add``...), a
Conv1DTranspose that is not in the list (non-consecutive layers), a branch (an
output that feeds two layers or also leaves the model), a shared layer, and
channel counts that do not match.

:func:`import_keras_chain` then calibrates every stage on the same data run
through the model (:func:`tconv.model.calibrate.calibrate`, stage by stage):
stage ``i``'s output format is chosen as a multiplier operand (the policy's
``width``, the input headroom) from stage ``i + 1``'s real inputs and stage
``i``'s exact fixed-point values, and is given to stage ``i + 1`` as its input
format, so the codes cross unchanged. The last stage's output is calibrated as
a single layer's is.

Keras is not imported here: the caller passes the model it loaded.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .calibrate import CalibrationPolicy, calibrate, default_input
from .chain import ChainQ
from .fixed_activations import check_fixed_activation
from .float_model import conv1d_transpose
from .keras_import import _first_line, _is_model, find_layer, is_conv1d_transpose, layer_config, layer_weights
from .quantized import Conv1DTransposeQ

__all__ = ["IDENTITY_LAYERS", "KerasChainImport", "check_keras_chain", "chain_layer_inputs", "import_keras_chain"]

#: Layers that are the identity at inference, skipped between two chain stages.
IDENTITY_LAYERS = ("Dropout", "SpatialDropout1D", "GaussianDropout", "GaussianNoise", "AlphaDropout",
                   "ActivityRegularization", "Identity")
_BATCH = 256


@dataclass
class KerasChainImport:
    """The result of :func:`import_keras_chain`.

    Attributes
    ----------
    chain : ChainQ
        The fixed-point stages with their calibrated formats.
    calibrations : list of Calibration
        One per stage.
    inputs : list of ndarray
        Each stage's float64 calibration inputs (what reached it in the float model).
    names : list of str
        The layers' names (``outer/inner`` inside a nested model).
    keras_layers : list
    model : keras.Model
    skipped : list of (str, str)
        Identity-at-inference layers between the stages: (name, type).
    """

    chain: ChainQ
    calibrations: list
    inputs: list
    names: list
    keras_layers: list
    model: object
    skipped: list

    def layer_inputs(self, data) -> np.ndarray:
        """The first stage's float64 inputs for other model inputs ``data``."""
        return chain_layer_inputs(self.model, self.keras_layers[:1], data)[0]

    def stage_inputs(self, data) -> list[np.ndarray]:
        """Every stage's float64 inputs for model inputs ``data`` (one run of the model)."""
        return chain_layer_inputs(self.model, self.keras_layers, data)

    @property
    def default_data(self) -> bool:
        return self.calibrations[0].default_data


# ------------------------------------------------------------------ graph
def _graph(model):
    """``[(layer, [parent layers])]`` for every node of ``model``'s own graph, and its output layers.

    A Sequential model without a symbolic graph is its layer list in order.
    """
    functional = getattr(model, "_functional", None) if type(model).__name__ == "Sequential" else model
    by_depth = getattr(functional, "_nodes_by_depth", None) if functional is not None else None
    if by_depth is None:
        if type(model).__name__ == "Sequential":
            layers = list(model.layers)
            return [(lay, [prev] if prev is not None else []) for prev, lay in zip([None, *layers], layers)], \
                [layers[-1]] if layers else []
        raise ValueError(f"model {getattr(model, 'name', '?')!r} has no layer graph tconv can follow (a subclassed "
                         f"model); build the decoder as a Sequential or functional model to generate a chain")
    nodes = [(n.operation, [p.operation for p in n.parent_nodes]) for d in sorted(by_depth) for n in by_depth[d]]
    outputs = [t._keras_history[0] for t in getattr(functional, "outputs", [])]
    return nodes, outputs


def _kind(layer) -> str:
    return type(layer).__name__


def check_keras_chain(model, names, *, where: str = "the model"):
    """The layers ``names`` of ``model`` as a chain: ``(paths, layers, skipped)``.

    ``skipped`` lists the identity-at-inference layers between them as ``(name, type)``.

    Raises
    ------
    ValueError
        One line naming the layer and its type (see the module docstring).
    """
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",")]
    names = list(names)
    if not names or any(not isinstance(n, str) or not n for n in names):
        raise ValueError(f"--layers needs a comma-separated list of Conv1DTranspose layer names, got {names!r}")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"layer {dup!r} is listed twice; a chain lists each layer once, in order")
    found = [find_layer(model, n, where=where) for n in names]
    paths = [p for p, _ in found]
    layers = [lay for _, lay in found]
    parents = {p.rsplit("/", 1)[0] if "/" in p else "" for p in paths}
    if len(parents) > 1:
        raise ValueError(f"layers {', '.join(paths)} sit in different (nested) models; a chain's layers are "
                         f"consecutive layers of one model")
    container = model
    for part in filter(None, next(iter(parents)).split("/")):
        container = next(lay for lay in container.layers if lay.name == part)
    nodes, outputs = _graph(container)
    producers: dict[int, list] = {}
    consumers: dict[int, list] = {}
    for op, parent_ops in nodes:
        producers.setdefault(id(op), []).append(parent_ops)
        for p in parent_ops:
            consumers.setdefault(id(p), []).append(op)
    skipped = []
    for i, layer in enumerate(layers):
        calls = producers.get(id(layer), [])
        if len(calls) != 1:
            raise ValueError(f"layer {paths[i]!r} (Conv1DTranspose) is called {len(calls)} times in the model; "
                             f"a chain stage must be called once")
        if i + 1 < len(layers):
            skipped += _check_link(layers[i], layers[i + 1], paths[i], paths[i + 1], producers, consumers,
                                   outputs, set(map(id, layers)))
    return paths, layers, skipped


def _check_link(a, b, name_a, name_b, producers, consumers, outputs, listed) -> list:
    """Walk back from ``b``'s input to ``a`` through identity layers; refuse anything else."""
    skipped = []
    node = b
    while True:
        parents = producers.get(id(node), [[]])[0]
        if len(parents) != 1:
            raise ValueError(f"layer {node.name!r} ({_kind(node)}) has {len(parents)} inputs; a chain passes one "
                             f"stream from {name_a!r} to {name_b!r}")
        prev = parents[0]
        if prev is not a and is_conv1d_transpose(prev):
            why = "listed out of order" if id(prev) in listed else "not in the list"
            raise ValueError(f"layers {name_a!r} and {name_b!r} are not consecutive: the data reaches {name_b!r} "
                             f"from Conv1DTranspose layer {prev.name!r} ({why}), not from {name_a!r}")
        if prev is not a and (not producers.get(id(prev)) or not producers[id(prev)][0]):
            raise ValueError(f"layers {name_a!r} and {name_b!r} are not consecutive: {name_b!r} does not take "
                             f"{name_a!r}'s output (list the layers in the order the data flows)")
        if prev is not a and _kind(prev) not in IDENTITY_LAYERS:
            raise ValueError(f"layer {prev.name!r} ({_kind(prev)}) sits between {name_a!r} and {name_b!r}; only "
                             f"layers that are the identity at inference may ({', '.join(IDENTITY_LAYERS)})")
        feeds = consumers.get(id(prev), [])
        leaves = any(o is prev for o in outputs)
        if len(feeds) > 1 or leaves:
            where = ", ".join(f"{c.name!r} ({_kind(c)})" for c in feeds) + (", the model's output" if leaves else "")
            raise ValueError(f"layer {prev.name!r} ({_kind(prev)}) branches: its output feeds {where}; in a chain "
                             f"each layer's output feeds only the next layer")
        if prev is a:
            return list(reversed(skipped))
        skipped.append((prev.name, _kind(prev)))
        node = prev


# ------------------------------------------------------------ layer inputs
def chain_layer_inputs(model, layers, x, *, batch_size: int = _BATCH) -> list[np.ndarray]:
    """Run ``model`` once on its inputs ``x`` and return what reaches each of ``layers`` (float64)."""
    seen: list[list] = [[] for _ in layers]
    originals = [lay.call for lay in layers]

    def recorder(i):
        def record(inputs, *args, **kwargs):
            seen[i].append(np.array(np.asarray(inputs), dtype=np.float64))
            return originals[i](inputs, *args, **kwargs)
        return record

    batches = [x[i:i + batch_size] for i in range(0, len(x), batch_size)] if isinstance(x, np.ndarray) else [x]
    for i, lay in enumerate(layers):
        lay.call = recorder(i)
    try:
        for chunk in batches:
            model(chunk, training=False)
    except Exception as err:  # Keras and jax raise many kinds for data that does not fit
        raise ValueError(f"running the model on the data failed: {_first_line(err)}") from None
    finally:
        for lay in layers:
            del lay.call
    out = []
    for lay, got in zip(layers, seen):
        if not got:
            raise ValueError(f"running the model did not reach layer {lay.name!r}")
        out.append(np.concatenate(got))
    return out


# ------------------------------------------------------------------ import
def _interior_policy(policy: CalibrationPolicy) -> CalibrationPolicy:
    """A stage output that is the next stage's input: a multiplier operand, calibrated as inputs are."""
    return dataclasses.replace(policy, output_width=policy.width, output_headroom=policy.input_headroom)


def import_keras_chain(model, names, *, data=None, formats=None, width: int = 8,
                       policy: CalibrationPolicy | None = None, data_name: str | None = None,
                       batch: int = 4, length: int = 32, seed: int = 0) -> KerasChainImport:
    """Import consecutive Conv1DTranspose layers ``names`` of ``model`` and calibrate every stage.

    Parameters
    ----------
    model : keras.Model
        Sequential or functional (the layers may sit in one nested model).
    names : list of str, or str "A,B,C"
    data : array_like, optional
        The *model's* inputs; default: a standard-normal batch of the first
        layer's own inputs (``batch`` x ``length``, ``seed``), run through the
        float stages for the later ones.
    formats : mapping, optional
        ``input`` (the chain's input), ``output`` (the last stage's output),
        ``weight`` and ``bias`` (every stage's) used as given.
    width, policy, data_name : as :func:`tconv.model.keras_import.import_keras`.

    Raises
    ------
    ValueError
        One line: a layer that breaks the chain (:func:`check_keras_chain`), an
        activation the datapath does not support, bad data or formats.
    """
    if not _is_model(model):
        raise ValueError(f"a chain is taken from a Keras model (Sequential or functional), got {type(model).__name__}")
    paths, layers, skipped = check_keras_chain(model, names)
    configs = []
    for path, layer in zip(paths, layers):
        cfg = layer_config(layer)
        try:
            check_fixed_activation(cfg.activation)
        except ValueError as err:
            raise ValueError(f"Conv1DTranspose layer {path!r}: {err}") from None
        configs.append(cfg)
    for i in range(1, len(configs)):
        if configs[i].in_channels != configs[i - 1].filters:
            raise ValueError(f"layer {paths[i]!r} (Conv1DTranspose) takes {configs[i].in_channels} channels but "
                             f"{paths[i - 1]!r} gives {configs[i - 1].filters}; consecutive layers must match")
        if configs[i].data_format != configs[0].data_format:
            raise ValueError(f"layer {paths[i]!r} (Conv1DTranspose) is {configs[i].data_format}, {paths[0]!r} is "
                             f"{configs[0].data_format}; a chain uses one data_format")
    weights = [layer_weights(layer) for layer in layers]
    given = dict(formats or {})
    unknown = sorted(set(given) - {"input", "weight", "bias", "output"})
    if unknown:
        raise ValueError(f"formats: unknown key(s) {unknown}; allowed: input, weight, bias, output")
    if policy is None:
        policy = CalibrationPolicy(width=width)

    if data is not None:
        xs = chain_layer_inputs(model, layers, data)
        desc = f"{data_name or 'model inputs'}: run through the model up to each layer"
    else:
        configs[0].check_data_limits(batch, length, what=f"a default calibration batch of {batch} x {length} steps")
        xs = [default_input(configs[0], batch=batch, length=length, seed=seed)]
        for cfg, (kernel, bias) in zip(configs[:-1], weights[:-1]):
            xs.append(conv1d_transpose(xs[-1], kernel, bias, strides=cfg.strides, padding=cfg.padding,
                                       output_padding=cfg.output_padding, dilation_rate=cfg.dilation_rate,
                                       data_format=cfg.data_format, activation=cfg.activation))
        desc = None
    stages, cals = [], []
    for i, (cfg, (kernel, bias), x) in enumerate(zip(configs, weights, xs)):
        last = i == len(configs) - 1
        fixed = {k: given[k] for k in ("weight", "bias") if k in given}
        if i == 0 and "input" in given:
            fixed["input"] = given["input"]
        if i > 0:
            fixed["input"] = stages[-1].output_format
        if last and "output" in given:
            fixed["output"] = given["output"]
        stage_policy = policy if last else _interior_policy(policy)
        try:
            cal = calibrate(cfg, kernel, bias, x if (data is not None or i > 0) else None, formats=fixed,
                            policy=stage_policy, data_name=desc, batch=batch, length=length, seed=seed)
        except ValueError as err:
            raise ValueError(f"Conv1DTranspose layer {paths[i]!r}: {err}") from None
        cals.append(cal)
        stages.append(Conv1DTransposeQ(cfg, kernel, bias, **cal.layer_kwargs()))
    return KerasChainImport(ChainQ(stages, paths), cals, [np.asarray(x, np.float64) for x in xs], paths,
                            layers, model, skipped)

