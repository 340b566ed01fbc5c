"""The schema of a layer chain's ``manifest.json`` (one with ``stages``), checked as data.

`tconv.hw.manifest.check_manifest` hands a manifest with ``stages`` here. The
top-level keys a reader needs are those of a single layer's manifest (``top``,
``verilog``, ``interface``, ...) except ``layer``; ``formats`` has the chain's
``input`` and ``output``. Each stage has its own ``layer``, ``formats``,
``array`` and (optionally) ``activation``; stage ``i``'s output format must be
stage ``i + 1``'s input format and its ``filters`` stage ``i + 1``'s
``in_channels``. Errors are one line naming the file and the key.
"""

from __future__ import annotations

from typing import Any

from tconv.model import LayerConfig
from tconv.model.chain import ChainConfig

from .manifest import (
    MAX_BUS_WIDTH,
    MAX_PE_COUNT,
    CycleFormula,
    ManifestError,
    _activation,
    _format,
    _int,
    _kind,
    _object,
    _path_list,
    check_relative_path,
)

__all__ = ["check_chain_manifest", "MAX_STAGES"]

#: Most stages a chain manifest may declare.
MAX_STAGES = 64


def _stage(entry: Any, i: int, where: str) -> dict:
    at = f"{where}: stages[{i}]"
    if not isinstance(entry, dict):
        raise ManifestError(f"{at}: must be an object with layer, formats and array, got {_kind(entry)}")
    try:
        config = LayerConfig.from_dict(_object(entry, "layer", at))
    except ManifestError:
        raise
    except (TypeError, ValueError) as err:
        raise ManifestError(f"{at}.layer: {err}") from None
    if config.in_channels is None:
        raise ManifestError(f"{at}.layer.in_channels is missing")
    formats = _object(entry, "formats", at)
    keys = ["input", "weight", "output"] + (["bias"] if config.use_bias else [])
    name = entry.get("name", f"stage{i}")
    if not isinstance(name, str) or len(name) > 300:
        raise ManifestError(f"{at}.name: must be a string, got {_kind(name)}")
    array = _object(entry, "array", at)
    # a stage's array may have any PE count (the budget split needs no power of two)
    pe = _int(array.get("pe_count"), f"{at}: array.pe_count", 1, MAX_PE_COUNT)
    return {"config": config, "name": name, "formats": {k: _format(formats, k, at) for k in keys},
            "activation_table": _activation(entry, config, at), "pe_count": pe}


def check_chain_manifest(manifest: dict, where: str) -> dict:
    """Check a chain manifest; the parsed values of `tconv.hw.manifest.check_manifest` plus ``stages``
    (each with ``config``, ``name``, ``formats``, ``activation_table``, ``pe_count``, ...).

    ``config`` is the :class:`tconv.model.chain.ChainConfig`, ``pe_count`` the multipliers built
    (the chain's MAC utilization counts them), ``cycles_per_step`` the cycles per chain input step
    and ``cycle_formula`` the chain cycle model (``performance.chain_cycles.cycles_per_frame``).
    """
    top = manifest.get("top")
    parsed: dict[str, Any] = {"top": top}
    parsed["verilog"] = _path_list(manifest.get("verilog"), f"{where}: verilog", suffixes=(".v", ".sv"))
    if "verilog_ecp5" in manifest:
        parsed["verilog_ecp5"] = _path_list(manifest["verilog_ecp5"], f"{where}: verilog_ecp5", suffixes=(".v", ".sv"))
    waivers = manifest.get("verilator_waivers")
    parsed["verilator_waivers"] = None if waivers is None else check_relative_path(waivers, f"{where}: verilator_waivers")
    for key, default in (("weights", "weights.npz"), ("test_vectors", None)):
        value = manifest.get(key, default)
        parsed[key] = None if value is None else check_relative_path(value, f"{where}: {key}")
    parsed["files"] = (_path_list(manifest["files"], f"{where}: files", allow_empty=True)
                       if "files" in manifest else None)
    parsed["activation_table"] = None

    entries = manifest["stages"]
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_STAGES:
        raise ManifestError(f"{where}: stages: must be a list of 1 to {MAX_STAGES} stage objects, got {_kind(entries)}")
    stages = [_stage(e, i, where) for i, e in enumerate(entries)]
    for i, (a, b) in enumerate(zip(stages, stages[1:])):
        if a["config"].filters != b["config"].in_channels:
            raise ManifestError(f"{where}: stages[{i + 1}].layer.in_channels is {b['config'].in_channels}, but "
                                f"stages[{i}].layer.filters is {a['config'].filters}")
        if a["formats"]["output"] != b["formats"]["input"]:
            raise ManifestError(f"{where}: stages[{i + 1}].formats.input {b['formats']['input']} is not "
                                f"stages[{i}].formats.output {a['formats']['output']}")
        if a["config"].data_format != b["config"].data_format:
            raise ManifestError(f"{where}: stages[{i + 1}].layer.data_format differs from stages[{i}]'s")
    parsed["stages"] = stages
    parsed["stage_tables"] = [s["activation_table"] for s in stages]
    parsed["config"] = ChainConfig(tuple(s["config"] for s in stages))

    formats = _object(manifest, "formats", where)
    parsed["formats"] = {k: _format(formats, k, where) for k in ("input", "output")}
    for key, stage, fmt in (("input", 0, "input"), ("output", len(stages) - 1, "output")):
        if parsed["formats"][key] != stages[stage]["formats"][fmt]:
            raise ManifestError(f"{where}: formats.{key} is not stages[{stage}].formats.{fmt}")
    iface = _object(manifest, "interface", where)
    expected = {"s_axis_tdata_width": parsed["config"].in_channels * parsed["formats"]["input"].width,
                "m_axis_tdata_width": parsed["config"].filters * parsed["formats"]["output"].width}
    for key, want in expected.items():
        got = _int(iface.get(key), f"{where}: interface.{key}", 1, MAX_BUS_WIDTH)
        if got != want:
            raise ManifestError(f"{where}: interface.{key} is {got}, but the stages and formats give {want}")

    array = _object(manifest, "array", where)
    arrays = sum(s["pe_count"] for s in stages)
    built = _int(array.get("multipliers_built", arrays), f"{where}: array.multipliers_built", 1, arrays)
    parsed["pe_count"] = min(built, MAX_PE_COUNT)
    cell = array.get("multiplier_cell")
    parsed["ecp5_multiplier"] = None
    if isinstance(cell, dict) and cell.get("ecp5_verilog") is not None:
        parsed["ecp5_multiplier"] = check_relative_path(cell["ecp5_verilog"], f"{where}: array.multiplier_cell.ecp5_verilog")
    perf = manifest.get("performance", {})
    if not isinstance(perf, dict):
        raise ManifestError(f"{where}: 'performance' must be an object, got {_kind(perf)}")
    per = perf.get("cycles_per_chain_step")
    parsed["cycles_per_step"] = None if per is None else _int(per, f"{where}: performance.cycles_per_chain_step",
                                                                1, 1 << 40)
    model = perf.get("chain_cycles")
    parsed["cycle_formula"] = None
    if isinstance(model, dict) and "cycles_per_frame" in model:
        parsed["cycle_formula"] = CycleFormula.from_json(model["cycles_per_frame"],
                                                         f"{where}: performance.chain_cycles.cycles_per_frame")
    return parsed
