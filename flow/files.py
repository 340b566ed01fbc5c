"""Reading the user's files: CONFIG.json, the weights ``.npz`` and data ``.npy``.

Every problem becomes a ``ValueError`` naming the file, the field and what is
allowed, so the command line can print it as one line.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tconv.hw.schedule import check_pe_count
from tconv.model import Conv1DTransposeQ, FixedFormat, LayerConfig

__all__ = ["ConfigFile", "ARRAY_KEYS", "load_config", "load_weights", "load_data", "np_load"]

_FORMAT_KEYS = ("input", "weight", "bias", "output")
_TOP_KEYS = {"layer", "formats", "array"}
#: Keys the CONFIG.json "array" object accepts, with their defaults.
ARRAY_KEYS = {"pe_count": 64, "weights": "rom"}
#: What ``array.weights`` may be: baked-in ROMs, or RAMs loaded over ``w_axis`` (Runtime weights).
WEIGHT_STORAGE = ("rom", "runtime")


@dataclass
class ConfigFile:
    """A parsed CONFIG.json: the layer's configuration, its formats and the array options.

    Attributes
    ----------
    config : LayerConfig
    formats : dict
        ``"input"``, ``"weight"``, ``"output"`` and (with use_bias) ``"bias"`` FixedFormats.
    array : dict
        The validated ``"array"`` options, defaults filled in (:data:`ARRAY_KEYS`).
    """

    config: LayerConfig
    formats: dict[str, FixedFormat]
    array: dict = field(default_factory=lambda: dict(ARRAY_KEYS))

    @property
    def pe_count(self) -> int:
        return self.array["pe_count"]

    @property
    def runtime_weights(self) -> bool:
        return self.array["weights"] == "runtime"

    def quantized(self, kernel: np.ndarray, bias: np.ndarray | None) -> Conv1DTransposeQ:
        """The fixed-point layer of this configuration with these float weights."""
        f = self.formats
        return Conv1DTransposeQ(self.config, kernel, bias, input_format=f["input"], weight_format=f["weight"],
                                bias_format=f.get("bias"), output_format=f["output"])


def array_options(array: dict, where: str = "array") -> dict:
    """The ``"array"`` object of CONFIG.json checked, with its defaults filled in."""
    unknown = sorted(set(array) - set(ARRAY_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(ARRAY_KEYS)}")
    opts = {**ARRAY_KEYS, **array}
    check_pe_count(opts["pe_count"], f"{where}.pe_count")
    if opts["weights"] not in WEIGHT_STORAGE:
        raise ValueError(f"{where}.weights: {opts['weights']!r} is not allowed; allowed: "
                         f"{', '.join(repr(w) for w in WEIGHT_STORAGE)}")
    return opts


def _read_json(path: Path) -> object:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot read ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a JSON text file (byte {err.start} is not UTF-8)") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply") from None


def load_config(path: str | os.PathLike) -> ConfigFile:
    """Parse CONFIG.json (design.md, "Command line"); the layer must be within tconv's
    size limits (`LayerConfig.check_limits`)."""
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the top level must be a JSON object with keys 'layer', 'formats' "
                         f"and optionally 'array'")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    for key in ("layer", "formats"):
        if key not in data:
            raise ValueError(f"{path}: missing '{key}'")
        if not isinstance(data[key], dict):
            raise ValueError(f"{path}: '{key}' must be a JSON object, got {type(data[key]).__name__}")
    try:
        layer = LayerConfig.from_dict(data["layer"])
    except ValueError as err:
        raise ValueError(f"{path}: layer: {err}") from None
    if layer.in_channels is None:
        raise ValueError(f"{path}: layer: 'in_channels' is required (a positive integer)")
    try:
        layer.check_limits()
    except ValueError as err:
        raise ValueError(f"{path}: layer: {err}") from None

    fmts = data["formats"]
    unknown = set(fmts) - set(_FORMAT_KEYS)
    if unknown:
        raise ValueError(f"{path}: formats: unknown key(s) {sorted(unknown)}; allowed: {list(_FORMAT_KEYS)}")
    needed = [k for k in _FORMAT_KEYS if k != "bias" or layer.use_bias]
    formats = {}
    for key in needed:
        if key not in fmts:
            raise ValueError(f"{path}: formats: missing '{key}' (e.g. \"fixed<8,3,RND,SAT>\")")
        try:
            formats[key] = FixedFormat.parse(fmts[key])
        except ValueError as err:
            raise ValueError(f"{path}: formats.{key}: {err}") from None

    array = data.get("array", {})
    if not isinstance(array, dict):
        raise ValueError(f"{path}: 'array' must be a JSON object, got {type(array).__name__}")
    try:
        array = array_options(array)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return ConfigFile(layer, formats, array)


#: What each kind of file starts with: a zip archive (.npz) or numpy's .npy magic.
_SIGNATURES = {".npz": (b"PK\x03\x04", b"PK\x05\x06"), ".npy": (b"\x93NUMPY",)}
_NAMES = {".npz": "an .npz archive (a zip file, as numpy.savez writes)", ".npy": "an .npy file (numpy.save)"}


def np_load(path: Path, kind: str):
    """``np.load`` of an ``.npz`` or ``.npy`` file, without pickles.

    Either kind is accepted (the callers say which they need), anything else is
    refused by its first bytes, so a text file is "not an .npz archive" rather than
    numpy's "pickled (object) data". Every way loading can fail becomes a
    ValueError naming the file.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot read ({err.strerror or err})") from None
    if not head.startswith(_SIGNATURES[".npz"] + _SIGNATURES[".npy"]):
        raise ValueError(f"{path}: not a readable {kind} file: not {_NAMES[kind]} (it starts with {head!r})")
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable {kind} file ({err or type(err).__name__})") from None


def _numeric(arr: np.ndarray, what: str) -> np.ndarray:
    if not isinstance(arr, np.ndarray):  # an .npz member that is not an .npy array comes back as bytes
        raise ValueError(f"{what} is not a numpy array (a damaged or foreign .npz member)")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{what} must hold real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def load_weights(path: str | os.PathLike, config: LayerConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """Read ``kernel`` (kernel_size, filters, in_channels) and ``bias`` (filters,) from an ``.npz``."""
    path = Path(path)
    npz = np_load(path, ".npz")
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: holds a single array (.npy), not an .npz archive with 'kernel' and 'bias'")
    try:
        with npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as err:  # a damaged member: zip, zlib or .npy header errors of any kind
        raise ValueError(f"{path}: not a readable .npz file ({type(err).__name__}: {err})") from None
    if "kernel" not in arrays:
        raise ValueError(f"{path}: missing array 'kernel'; the weights file needs 'kernel' "
                         f"(kernel_size, filters, in_channels) and 'bias' (filters,)")
    layer = config
    kernel = _numeric(arrays["kernel"], f"{path}: kernel")
    expected = (layer.kernel_size, layer.filters, layer.in_channels)
    if kernel.shape != expected:
        raise ValueError(f"{path}: kernel has shape {kernel.shape}, expected (kernel_size, filters, "
                         f"in_channels) = {expected}")
    bias = None
    if layer.use_bias:
        if "bias" not in arrays:
            raise ValueError(f"{path}: missing array 'bias' of shape ({layer.filters},) (use_bias is true)")
        bias = _numeric(arrays["bias"], f"{path}: bias")
        if bias.shape != (layer.filters,):
            raise ValueError(f"{path}: bias has shape {bias.shape}, expected (filters,) = ({layer.filters},)")
    for name, arr in (("kernel", kernel), ("bias", bias)):
        if arr is not None and not np.isfinite(arr).all():
            raise ValueError(f"{path}: {name} holds {int((~np.isfinite(arr)).sum())} NaN/inf value(s)")
    return kernel, bias


def load_data(path: str | os.PathLike, config: LayerConfig) -> np.ndarray:
    """Read float input data ``(batch, length, in_channels)`` (or unbatched) from an ``.npy``."""
    path = Path(path)
    x = np_load(path, ".npy")
    if isinstance(x, np.lib.npyio.NpzFile):
        x.close()
        raise ValueError(f"{path}: an .npz archive; the data must be a single array (.npy)")
    x = _numeric(np.asarray(x), f"{path}: data")
    return config.check_float_input(x, f"{path}: data")
