"""The schema of a design folder's ``manifest.json``, checked as data.

A design folder may come from anyone (docs/design-folders.md), so its manifest
is validated before any of it is used: every key a tconv command reads has a
type, a range and, for paths, a safe form. Nothing in a manifest is ever
evaluated as code: the cycle formula is a :class:`CycleFormula` of integer
coefficients, not an expression.

:func:`check_manifest` is the one place that knows the schema; every command
that reads a folder goes through :class:`tconv.hw.folder.DesignFolder`, which
calls it. Errors are ``ValueError``s of one line naming the file and the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from tconv.model import FixedFormat, LayerConfig

from .schedule import MAX_PE_COUNT

__all__ = ["CycleFormula", "ManifestError", "check_manifest", "check_relative_path", "GENERATOR_PACKAGE",
           "MAX_BUS_WIDTH", "MAX_PE_COUNT"]

#: The ``generator.package`` of every manifest tconv writes: how generate knows a folder is its own.
GENERATOR_PACKAGE = "tconv.hw"
#: Widest AXI4-Stream bus a manifest may declare: 65536 channels of 62-bit codes.
MAX_BUS_WIDTH = 65536 * 62
#: Largest coefficient of a cycle formula: far above any real design (2**40 cycles per step).
MAX_COEFFICIENT = 1 << 40
#: Most short-frame exceptions of a cycle formula (a real schedule has a handful).
MAX_SHORT_FRAMES = 4096

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Characters a manifest path may hold: enough for any file tconv writes, and nothing a
#: shell, a Yosys script or a Makefile would read as syntax (no spaces, quotes, ';', '$').
_PATH_CHARS = re.compile(r"[A-Za-z0-9._+\-/]+")
#: The legacy (before 0.2) ``cycles_per_frame_python`` text, read as data: ``a*L + b``,
#: optionally inside ``{L: cycles, ...}.get(L, ...)``. It is parsed, never evaluated.
_LEGACY_LINEAR = re.compile(r"\s*(\d+)\s*\*\s*L\s*([+-])\s*(\d+)\s*")
_LEGACY_TABLE = re.compile(r"\s*\{((?:\s*\d+\s*:\s*\d+\s*,?)*)\}\.get\(\s*L\s*,(.*)\)\s*")


class ManifestError(ValueError):
    """A manifest that does not match the schema; the message names the file and the key."""


@dataclass(frozen=True)
class CycleFormula:
    """Cycles per frame of ``L`` input steps as data: ``per_step * L + offset``,
    except for the short frames listed in ``short_frames`` (``{L: cycles}``).

    The manifest stores it as ``performance.cycles_per_frame``::

        {"per_step": 4, "offset": 13, "short_frames": [[1, 22], [2, 26]]}
    """

    per_step: int
    offset: int
    short_frames: dict[int, int] = field(default_factory=dict)

    def cycles(self, length: int) -> int:
        """Cycles of one frame of ``length`` (>= 1) steps on an idle array."""
        length = int(length)
        if length < 1:
            raise ValueError(f"a frame has at least 1 step, got {length}")
        return self.short_frames.get(length, self.per_step * length + self.offset)

    def to_json(self) -> dict:
        return {"per_step": self.per_step, "offset": self.offset,
                "short_frames": [[n, c] for n, c in sorted(self.short_frames.items())]}

    @classmethod
    def from_json(cls, value: Any, where: str) -> CycleFormula:
        """Parse ``performance.cycles_per_frame``; ``where`` prefixes the error."""
        if not isinstance(value, dict):
            raise ManifestError(f"{where}: must be an object with integer 'per_step', 'offset' and "
                                f"'short_frames' ([[L, cycles], ...]), got {_kind(value)}")
        unknown = sorted(set(value) - {"per_step", "offset", "short_frames"})
        if unknown:
            raise ManifestError(f"{where}: unknown key(s) {unknown}; allowed: per_step, offset, short_frames")
        per_step = _int(value.get("per_step"), f"{where}.per_step", 1, MAX_COEFFICIENT)
        offset = _int(value.get("offset"), f"{where}.offset", -MAX_COEFFICIENT, MAX_COEFFICIENT)
        rows = value.get("short_frames", [])
        if not isinstance(rows, list) or len(rows) > MAX_SHORT_FRAMES:
            raise ManifestError(f"{where}.short_frames: must be a list of at most {MAX_SHORT_FRAMES} "
                                f"[L, cycles] pairs")
        short = {}
        for i, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != 2:
                raise ManifestError(f"{where}.short_frames[{i}]: must be a pair [L, cycles], got {_kind(row)}")
            length = _int(row[0], f"{where}.short_frames[{i}][0]", 1, MAX_SHORT_FRAMES)
            short[length] = _int(row[1], f"{where}.short_frames[{i}][1]", 0, MAX_COEFFICIENT)
        return cls(per_step, offset, short)

    @classmethod
    def from_legacy(cls, text: Any, where: str) -> CycleFormula:
        """Read the ``cycles_per_frame_python`` text of older manifests by pattern, without evaluating it."""
        if not isinstance(text, str) or len(text) > 100_000:
            raise ManifestError(f"{where}: not a cycle formula")
        short = {}
        table = _LEGACY_TABLE.fullmatch(text)
        if table:
            for pair in filter(None, (p.strip() for p in table.group(1).split(","))):
                length, cycles = (int(v) for v in pair.split(":"))
                short[length] = cycles
            text = table.group(2)
        linear = _LEGACY_LINEAR.fullmatch(text)
        if not linear:
            raise ManifestError(f"{where}: not of the form 'a*L + b' (or '{{L: cycles, ...}}.get(L, a*L + b)'); "
                                f"manifests hold formulas as data and tconv never evaluates them")
        offset = int(linear.group(3)) * (-1 if linear.group(2) == "-" else 1)
        return cls.from_json({"per_step": int(linear.group(1)), "offset": offset,
                              "short_frames": [[n, c] for n, c in short.items()]}, where)


def _kind(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else type(value).__name__


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ManifestError(f"{where}: must be an integer from {lo} to {hi}, got {_kind(value)}")
    return value


def check_relative_path(value: Any, where: str) -> str:
    """A manifest path: a relative POSIX path of plain characters with no ``..``; returned as given.

    That it also resolves inside the folder (symlinks followed) is checked by
    :meth:`tconv.hw.folder.DesignFolder.path`, which knows the folder.
    """
    if not isinstance(value, str) or not value:
        raise ManifestError(f"{where}: must be a file name relative to the manifest, got {_kind(value)}")
    if not _PATH_CHARS.fullmatch(value) or len(value) > 255:
        raise ManifestError(f"{where}: {_kind(value)} is not a plain relative path (allowed: letters, digits "
                            f"and . _ + - /, at most 255 characters)")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or value.endswith("/"):
        raise ManifestError(f"{where}: {value!r} must be a file inside the design folder (relative, no '..')")
    return value


def _path_list(value: Any, where: str, *, suffixes=None, allow_empty=False) -> list[str]:
    if not isinstance(value, list) or (not value and not allow_empty) or len(value) > 1000:
        raise ManifestError(f"{where}: must be a list of file names relative to the manifest, got {_kind(value)}")
    paths = [check_relative_path(v, f"{where}[{i}]") for i, v in enumerate(value)]
    for i, p in enumerate(paths):
        if suffixes and not p.endswith(suffixes):
            raise ManifestError(f"{where}[{i}]: {p!r} is not a Verilog file ({', '.join(suffixes)})")
    return paths


def _object(manifest: dict, key: str, where: str) -> dict:
    value = manifest.get(key)
    if not isinstance(value, dict):
        raise ManifestError(f"{where}: '{key}' must be an object, got {_kind(value)}")
    return value


def _format(formats: dict, key: str, where: str) -> FixedFormat:
    try:
        return FixedFormat.parse(formats[key])
    except KeyError:
        raise ManifestError(f"{where}: formats.{key} is missing") from None
    except (TypeError, ValueError) as err:
        raise ManifestError(f"{where}: formats.{key}: {err}") from None


def _activation(manifest: dict, config: LayerConfig, where: str) -> str | None:
    """The optional ``activation`` object: its ``name`` is the layer's, and a table activation
    (``kind`` "table") names its table file; returns that path or None."""
    if "activation" not in manifest:
        return None
    act = _object(manifest, "activation", where)
    if act.get("name") != config.activation:
        raise ManifestError(f"{where}: activation.name is {_kind(act.get('name'))}, but layer.activation "
                            f"is {config.activation!r}")
    kind = act.get("kind")
    if kind not in ("exact", "table"):
        raise ManifestError(f"{where}: activation.kind must be 'exact' or 'table', got {_kind(kind)}")
    return check_relative_path(act.get("table"), f"{where}: activation.table") if kind == "table" else None


def _array(array: dict, where: str) -> dict:
    """``pe_count``, ``cycles_per_step`` and ``ecp5_multiplier`` of the manifest's ``array``."""
    pe = _int(array.get("pe_count"), f"{where}: array.pe_count", 1, MAX_PE_COUNT)
    if pe & (pe - 1):
        raise ManifestError(f"{where}: array.pe_count must be a power of two, got {pe}")
    parsed = {"pe_count": pe}
    per_step = array.get("cycles_per_step")
    parsed["cycles_per_step"] = None if per_step is None else _int(
        per_step, f"{where}: array.cycles_per_step", 1, MAX_COEFFICIENT)
    cell = array.get("multiplier_cell")
    parsed["ecp5_multiplier"] = None
    if cell is not None:
        if not isinstance(cell, dict):
            raise ManifestError(f"{where}: array.multiplier_cell must be an object, got {_kind(cell)}")
        if cell.get("ecp5_verilog") is not None:
            parsed["ecp5_multiplier"] = check_relative_path(cell["ecp5_verilog"],
                                                            f"{where}: array.multiplier_cell.ecp5_verilog")
    return parsed


def _runtime(manifest: dict, iface: dict, where: str) -> dict:
    """``array.weights`` ("rom", the default, or "runtime") and, for runtime weights,
    ``interface.w_axis_tdata_width`` and ``interface.w_axis_beats``."""
    kind = manifest["array"].get("weights", "rom")
    if kind not in ("rom", "runtime"):
        raise ManifestError(f"{where}: array.weights must be 'rom' or 'runtime', got {_kind(kind)}")
    if kind == "rom":
        return {"runtime_weights": False, "w_axis_tdata_width": None, "w_axis_beats": None}
    return {"runtime_weights": True,
            "w_axis_tdata_width": _int(iface.get("w_axis_tdata_width"), f"{where}: interface.w_axis_tdata_width",
                                       1, MAX_BUS_WIDTH),
            "w_axis_beats": _int(iface.get("w_axis_beats"), f"{where}: interface.w_axis_beats", 1, MAX_COEFFICIENT)}


def check_manifest(manifest: Any, where: str) -> dict:
    """Check a parsed manifest against the schema; ``where`` (the file) prefixes every error.

    Returns a dict of the parsed values every reader needs: ``top``, ``verilog``,
    ``verilator_waivers``, ``ecp5_multiplier``, ``weights``, ``test_vectors``,
    ``activation_table`` (a table activation's table file, or None),
    ``files`` (paths, not yet resolved), ``config`` (:class:`LayerConfig`),
    ``formats`` ({stage: FixedFormat}), ``pe_count``, ``cycles_per_step``,
    ``cycle_formula`` (:class:`CycleFormula` or None), ``runtime_weights`` and, with
    runtime weights, ``w_axis_tdata_width`` and ``w_axis_beats`` (else None).
    Raises :class:`ManifestError`. A chain's manifest (with ``stages``) is checked by
    :func:`tconv.hw.chain_manifest.check_chain_manifest`, which adds ``stages``.
    """
    if not isinstance(manifest, dict):
        raise ManifestError(f"{where}: not a tconv manifest (a JSON object expected, got {_kind(manifest)})")
    top = manifest.get("top")
    if not isinstance(top, str) or not _IDENT.fullmatch(top) or len(top) > 200:
        raise ManifestError(f"{where}: top: must be a Verilog module name (letters, digits, '_'), got {_kind(top)}")
    if "stages" in manifest:  # a layer chain (docs/contract.md, "Layer chains")
        from .chain_manifest import check_chain_manifest
        # A chain's weights are baked in (runtime weights are refused with --layers).
        return {**check_chain_manifest(manifest, where),
                "runtime_weights": False, "w_axis_tdata_width": None, "w_axis_beats": None}
    parsed: dict[str, Any] = {"top": top}
    parsed["verilog"] = _path_list(manifest.get("verilog"), f"{where}: verilog", suffixes=(".v", ".sv"))
    if "verilog_ecp5" in manifest:
        parsed["verilog_ecp5"] = _path_list(manifest["verilog_ecp5"], f"{where}: verilog_ecp5",
                                            suffixes=(".v", ".sv"))
    waivers = manifest.get("verilator_waivers")
    parsed["verilator_waivers"] = None if waivers is None else check_relative_path(
        waivers, f"{where}: verilator_waivers")
    for key, default in (("weights", "weights.npz"), ("test_vectors", None)):
        value = manifest.get(key, default)
        parsed[key] = None if value is None else check_relative_path(value, f"{where}: {key}")
    parsed["files"] = (_path_list(manifest["files"], f"{where}: files", allow_empty=True)
                       if "files" in manifest else None)

    try:
        config = LayerConfig.from_dict(_object(manifest, "layer", where))
    except ManifestError:
        raise
    except (TypeError, ValueError) as err:
        raise ManifestError(f"{where}: layer: {err}") from None
    if config.in_channels is None:
        raise ManifestError(f"{where}: layer.in_channels is missing")
    parsed["config"] = config
    parsed["activation_table"] = _activation(manifest, config, where)

    formats = _object(manifest, "formats", where)
    stages = ["input", "weight", "output"] + (["bias"] if config.use_bias else [])
    parsed["formats"] = {k: _format(formats, k, where) for k in stages}

    iface = _object(manifest, "interface", where)
    expected = {"s_axis_tdata_width": config.in_channels * parsed["formats"]["input"].width,
                "m_axis_tdata_width": config.filters * parsed["formats"]["output"].width}
    for key, want in expected.items():
        got = _int(iface.get(key), f"{where}: interface.{key}", 1, MAX_BUS_WIDTH)
        if got != want:
            raise ManifestError(f"{where}: interface.{key} is {got}, but the layer and formats give {want}")

    parsed.update(_array(_object(manifest, "array", where), where))
    parsed.update(_runtime(manifest, iface, where))

    perf = manifest.get("performance", {})
    if not isinstance(perf, dict):
        raise ManifestError(f"{where}: 'performance' must be an object, got {_kind(perf)}")
    if "cycles_per_frame" in perf:
        parsed["cycle_formula"] = CycleFormula.from_json(perf["cycles_per_frame"],
                                                         f"{where}: performance.cycles_per_frame")
    elif "cycles_per_frame_python" in perf:
        parsed["cycle_formula"] = CycleFormula.from_legacy(perf["cycles_per_frame_python"],
                                                           f"{where}: performance.cycles_per_frame_python")
    else:
        parsed["cycle_formula"] = None
    return parsed
