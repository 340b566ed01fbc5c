"""The ``--keras model.keras --layer NAME`` form of ``tconv analyze`` and ``tconv generate``.

Loads a saved Keras 3 model, finds the Conv1DTranspose layer, runs the model on
the user's data (the *model's* inputs) up to that layer, calibrates the formats
(:mod:`tconv.model.calibrate`) and returns the one fixed-point layer
(a :class:`~tconv.model.Conv1DTransposeQ`, inside a ``KerasImport`` with its
calibration), exactly what CONFIG.json and ``--weights`` give, so everything
downstream is shared.
Every problem is a one-line ``ValueError``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

from tconv.model.calibrate import STAGES
from tconv.model.keras_import import KerasImport, find_layer, import_keras, layer_config

from .files import np_load

__all__ = ["add_keras_arguments", "check_form", "load_keras_layer", "keras_module", "load_keras_model",
           "load_model_inputs", "note_default_data", "parse_formats", "load_test_inputs"]


def keras_module():
    """Keras, on the jax backend (CPU) unless the environment chose otherwise."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    try:
        import keras
    except ImportError:
        raise ValueError("--keras needs Keras 3 with a backend: pip install -e '.[keras]' "
                         "(or run make setup)") from None
    return keras


def _first_line(err: BaseException) -> str:
    lines = [s.strip() for s in str(err).splitlines() if s.strip()]
    return (lines[0] if lines else type(err).__name__)[:300]


def load_keras_model(path):
    """A model saved with ``model.save("model.keras")`` (loaded without its optimizer)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.suffix != ".keras":
        raise ValueError(f"{path}: expected a Keras 3 model file ending in .keras "
                         f"(saved with model.save('model.keras'))")
    _check_keras_archive(path)
    keras = keras_module()
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as err:  # Keras raises many kinds for a bad archive or unknown objects
        raise ValueError(f"{path}: cannot load the Keras model: {_first_line(err)}") from None


def _check_keras_archive(path: Path) -> None:
    """Refuse a file that is not a Keras 3 archive (a zip holding config.json) before Keras
    reads it: Keras says "File not found" for a truncated or foreign file."""
    why = None
    try:
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                why = "a zip archive without the config.json every Keras 3 model archive holds"
    except zipfile.BadZipFile:
        why = "not a zip archive, or a truncated one"
    except OSError as err:
        raise ValueError(f"{path}: cannot read ({err.strerror or err})") from None
    if why:
        raise ValueError(f"{path}: not a readable .keras archive ({why}); save the model with "
                         f"model.save('model.keras')")


def load_model_inputs(path) -> np.ndarray:
    """The model's inputs from an ``.npy`` (a batch, first axis the examples)."""
    path = Path(path)
    x = np_load(path, ".npy")
    if isinstance(x, np.lib.npyio.NpzFile):
        x.close()
        raise ValueError(f"{path}: an .npz archive; the model's inputs must be a single array (.npy)")
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{path}: data must hold numbers, got dtype {x.dtype}")
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"{path}: data must be a batch of model inputs (examples first), got shape {x.shape}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ValueError(f"{path}: data holds {int((~np.isfinite(x)).sum())} NaN/inf value(s)")
    return x


def _batched(model, x: np.ndarray) -> np.ndarray:
    """Add the batch axis to a single example when the model's input shape says it lacks one."""
    inputs = getattr(model, "inputs", None)
    try:
        if inputs and len(inputs) == 1 and x.ndim == len(inputs[0].shape) - 1:
            return x[None]
    except (AttributeError, TypeError, ValueError):  # subclassed models may have no usable inputs
        pass
    return x


# ------------------------------------------------------------------ options
def add_keras_arguments(p: argparse.ArgumentParser, *, analyze: bool) -> None:
    """The ``--keras`` options shared by ``analyze`` and ``generate``."""
    g = p.add_argument_group("Keras model (instead of CONFIG.json and --weights)")
    g.add_argument("--keras", metavar="MODEL.keras", help="a saved Keras 3 model holding the Conv1DTranspose layer")
    g.add_argument("--layer", metavar="NAME", help="its name (outer/inner inside nested models); may be omitted "
                   "when the model has one Conv1DTranspose layer")
    g.add_argument("--layers", metavar="A,B,C", help="consecutive Conv1DTranspose layers as one design (a "
                   "chain: each takes the previous one's output; Dropout and other layers that are the identity "
                   "at inference may sit between them)")
    g.add_argument("--width", type=int, default=8, help="calibration: bits of the input and weight formats; "
                   "bias and output get twice as many (default 8)")
    g.add_argument("--formats", metavar="FORMATS.json", help="formats to use instead of calibrating them: a JSON "
                   "object with any of input, weight, bias, output (a CONFIG.json's \"formats\" works too)")
    g.add_argument("--format", action="append", default=[], metavar="STAGE=FMT",
                   help="one format to use as given, e.g. --format 'output=fixed<16,6,RND,SAT>' (repeatable)")
    if analyze:
        g.add_argument("--test-data", metavar="X.npy", help="model inputs to measure the error on (default: "
                       "the calibration data)")
    else:
        g.add_argument("--pe-count", type=int, default=64, help="multipliers in the array, a power of two "
                       "(default 64); with --layers the budget of the whole chain, split over its stages")


def check_form(args, command: str) -> str:
    """``"config"`` or ``"keras"``: which form the command line uses; refuses mixtures."""
    if getattr(args, "layers", None) and args.layer:
        raise ValueError("give --layer NAME (one layer) or --layers A,B,C (a chain), not both")
    keras_only = [opt for opt, used in (("--layer", args.layer), ("--layers", getattr(args, "layers", None)), ("--formats", args.formats),
                                        ("--format", args.format), ("--width", args.width != 8),
                                        ("--test-data", getattr(args, "test_data", None)),
                                        ("--pe-count", getattr(args, "pe_count", 64) != 64)) if used]
    if args.keras:
        if args.config or args.weights:
            raise ValueError(f"give either CONFIG.json --weights W.npz or --keras MODEL.keras, not both "
                             f"(tconv {command} --help)")
        return "keras"
    if not args.config:
        raise ValueError(f"nothing to {command}: give CONFIG.json --weights W.npz, or --keras MODEL.keras "
                         f"--layer NAME")
    if not args.weights:
        raise ValueError("CONFIG.json needs --weights W.npz (the float kernel and bias)")
    if keras_only:
        raise ValueError(f"{', '.join(keras_only)} only apply with --keras MODEL.keras")
    return "config"


def parse_formats(formats_file: str | None, items: list[str]) -> dict:
    """Explicit formats from ``--formats FILE.json`` and ``--format STAGE=FMT`` (the latter win)."""
    formats = {}
    if formats_file:
        path = Path(formats_file)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ValueError(f"{path}: no such file") from None
        except OSError as err:
            raise ValueError(f"{path}: cannot read ({err.strerror})") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
        if isinstance(data, dict) and isinstance(data.get("formats"), dict):
            data = data["formats"]
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object like {{\"input\": \"fixed<8,3,RND,SAT>\"}}")
        unknown = sorted(set(data) - set(STAGES))
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {unknown}; allowed: input, weight, bias, output")
        formats.update(data)
    for item in items:
        stage, sep, fmt = item.partition("=")
        stage = stage.strip()
        if not sep or stage not in STAGES or not fmt.strip():
            raise ValueError(f"--format {item!r}: expected STAGE=FORMAT with STAGE one of input, weight, bias, "
                             f"output, e.g. --format 'input=fixed<8,3,RND,SAT>'")
        formats[stage] = fmt.strip()
    return formats


def note_default_data(calibration) -> None:
    """Say on stderr, even with -q, when the formats come from the default standard-normal batch."""
    if calibration.default_data:
        print("tconv: note: no --data given: formats calibrated on a standard-normal batch of the layer's "
              "inputs; pass --data X.npy (the model's inputs) for formats that fit your signals", file=sys.stderr)


# ------------------------------------------------------------------ layer
def load_keras_layer(model_path, layer_name: str | None = None, *, data_path=None, width: int = 8,
                     formats: dict | None = None, batch: int = 4, length: int = 32,
                     seed: int = 0) -> KerasImport:
    """Load ``model_path``, pick ``layer_name``, calibrate on ``data_path`` (model inputs).

    Returns the :class:`~tconv.model.keras_import.KerasImport`: ``.layer`` is the
    one :class:`~tconv.model.Conv1DTransposeQ` everything downstream uses.
    Without ``data_path`` the calibration inputs are a standard-normal batch
    (``batch`` x ``length``, ``seed``) of the layer's own inputs.
    """
    model = load_keras_model(model_path)
    name = Path(model_path).name
    if layer_name is None:
        try:
            find_layer(model, None, where=name)
        except ValueError as err:
            raise ValueError(f"{err} (choose with --layer NAME)") from None
    else:
        find_layer(model, layer_name, where=name)  # the one-line error before any data is read
    x = None
    if data_path is not None:
        x = _batched(model, load_model_inputs(data_path))
    else:  # the default calibration batch, refused by its options' names before it is made
        layer_config(find_layer(model, layer_name)[1]).check_data_limits(
            batch, length, what=f"--batch {batch} x --length {length}")
    return import_keras(model, name=layer_name, data=x, formats=formats, width=width,
                        data_name=str(data_path) if data_path else None, batch=batch, length=length, seed=seed)


def load_test_inputs(imported: KerasImport, data_path) -> np.ndarray:
    """The layer's own inputs for the model inputs in ``data_path`` (e.g. ``--test-data``)."""
    return imported.layer_inputs(_batched(imported.model, load_model_inputs(data_path)))
