"""A generated design folder as the testbenches see it: manifest, model and bus packing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tconv.hw.bus import pack_beats, unpack_beats
from tconv.hw.folder import DesignFolder, FolderError
from tconv.model import Conv1DTransposeQ
from tconv.model.chain import ChainQ

#: Idle cycles an isolated frame waits beyond the array's own drain (`GeneratedDesign.isolation_gap`).
ISOLATE_GAP = 20

__all__ = ["GeneratedDesign", "frame_mismatch", "expected_with_sets"]


def frame_mismatch(index: int, got: np.ndarray, want: np.ndarray) -> dict | None:
    """How frame ``index``'s output codes ``got`` differ from the model's ``want``
    (``(steps, filters)`` each): a ``problem`` when the beat counts differ, else the first
    wrong code by step and filter and how many beats are wrong; None when they are equal."""
    if got.shape != want.shape:
        return {"frame": index, "problem": f"{got.shape[0]} beats received, {want.shape[0]} expected"}
    bad = np.argwhere(got != want)
    if not bad.size:
        return None
    step, filt = (int(i) for i in bad[0])
    return {"frame": index, "step": step, "filter": filt, "expected": int(want[step, filt]),
            "got": int(got[step, filt]), "wrong_words": int(len(np.unique(bad[:, 0])))}


@dataclass
class GeneratedDesign:
    """What ``tconv generate`` wrote: the Verilog, the manifest and the layer it computes.

    Loaded through :class:`tconv.hw.folder.DesignFolder`, which checks the
    manifest against its schema and every path it names (docs/design-folders.md).

    Attributes
    ----------
    folder : Path
    manifest : dict
    layer : Conv1DTransposeQ or ChainQ
        The golden model, rebuilt from the baked-in weight and bias codes (a chain's
        stages in order for a layer chain).
    files : DesignFolder
        The checked folder: its paths, the Verilog (checked before use), the cycle formula.
    """

    folder: Path
    manifest: dict
    layer: Conv1DTransposeQ
    files: DesignFolder

    @classmethod
    def load(cls, folder) -> GeneratedDesign:
        """Read a design folder; a ``ValueError`` of one line naming the file and the key when it is broken.

        For a layer chain (a manifest with ``stages``) ``layer`` is a
        :class:`tconv.model.chain.ChainQ`: the stages' golden models in order.
        """
        files = DesignFolder.load(folder)
        parsed = files.parsed
        weights_path = files.weights
        try:
            with np.load(weights_path, allow_pickle=False) as w:
                arrays = {k: np.asarray(w[k]) for k in w.files if k.startswith(("kernel_codes", "bias_codes"))}
        except Exception as err:  # random bytes, a bare .npy, damaged members, pickles
            raise FolderError(f"{weights_path}: not a readable .npz file ({type(err).__name__}: {err})") from None
        if "stages" not in parsed:
            layer = _layer(weights_path, arrays, "", parsed["config"], parsed["formats"])
            _check_activation_table(files, layer, parsed["activation_table"], "activation")
            return cls(files.folder, files.manifest, layer, files)
        stages = []
        for i, st in enumerate(parsed["stages"]):
            q = _layer(weights_path, arrays, f"_{i}", st["config"], st["formats"])
            _check_activation_table(files, q, st["activation_table"], f"stages[{i}].activation")
            stages.append(q)
        return cls(files.folder, files.manifest, ChainQ(stages, [st["name"] for st in parsed["stages"]]), files)

    @property
    def top(self) -> str:
        return self.files.top

    @property
    def verilog(self) -> list[Path]:
        """The Verilog files, checked to stay inside the folder and to hold no host-reaching constructs."""
        return self.files.verilog

    @property
    def waivers(self) -> Path | None:
        return self.files.waivers

    @property
    def pe_count(self) -> int:
        return self.files.parsed["pe_count"]

    @property
    def cycles_per_step(self) -> int | None:
        return self.files.parsed["cycles_per_step"]

    def pack_inputs(self, codes: np.ndarray) -> list[int]:
        """One frame of input codes ``(L, in_channels)`` to ``s_axis_tdata`` words."""
        return pack_beats(codes, self.layer.input_format.width)

    def unpack_outputs(self, words) -> np.ndarray:
        """``m_axis_tdata`` words to output codes ``(L_out, filters)``."""
        fmt = self.layer.output_format
        return unpack_beats(words, self.layer.config.filters, fmt.width, fmt.signed)

    def expected_frame(self, codes: np.ndarray, layer: Conv1DTransposeQ | None = None) -> np.ndarray:
        """The model's output codes for one frame, channels_last ``(L_out, filters)`` (``layer``:
        the same layer with other codes, e.g. a loaded weight set)."""
        layer = self.layer if layer is None else layer
        if layer.config.data_format == "channels_first":
            return layer.forward_int(np.asarray(codes).T).T
        return layer.forward_int(codes)

    @property
    def runtime_weights(self) -> bool:
        """Whether the design loads weight sets over w_axis (docs/contract.md, "Runtime weights")."""
        return self.files.parsed["runtime_weights"]

    def weights_layout(self):
        """The w_axis layout of a runtime-weights design (`tconv.hw.weight_stream.StreamLayout`),
        checked against the manifest's ``interface.w_axis_beats`` and ``w_axis_tdata_width``."""
        from tconv.hw.schedule import Schedule
        from tconv.hw.weight_stream import stream_layout

        if not self.runtime_weights:
            raise ValueError(f"{self.folder}: not a runtime-weights design (array.weights is 'rom'); "
                             "generate it with --runtime-weights")
        layout = stream_layout(self.layer, Schedule.plan(self.layer.config, self.pe_count))
        parsed = self.files.parsed
        if (layout.beats, layout.beat_width) != (parsed["w_axis_beats"], parsed["w_axis_tdata_width"]):
            raise FolderError(f"{self.folder / 'manifest.json'}: interface.w_axis_beats/w_axis_tdata_width are "
                              f"{parsed['w_axis_beats']}/{parsed['w_axis_tdata_width']}, but the layer and "
                              f"array give {layout.beats}/{layout.beat_width}")
        return layout

    def pack_weights(self, kernel_codes, bias_codes=None) -> list[int]:
        """The w_axis beats of a weight set given as codes (``kernel_codes`` (kernel_size, filters,
        in_channels) in the weight format, ``bias_codes`` (filters,) in the bias format)."""
        from tconv.hw.weight_stream import pack_set

        return pack_set(self.layer, self.weights_layout(), kernel_codes, bias_codes)

    def quantize_weights(self, kernel, bias=None) -> Conv1DTransposeQ:
        """Float weights quantized by the design's formats: the layer with those codes (its
        ``quantization_overflows`` say what saturated)."""
        lay = self.layer
        return Conv1DTransposeQ(lay.config, kernel, bias if lay.config.use_bias else None,
                                input_format=lay.input_format, weight_format=lay.weight_format,
                                bias_format=lay.bias_format, output_format=lay.output_format)

    def isolation_gap(self, length: int) -> int:
        """Idle cycles to leave after the last output beat of a ``length``-step frame before
        the next frame's first beat, so that the next frame meets an idle array and its cycle
        count is the formula's: `ISOLATE_GAP` beyond the cycles the array still works after
        the last beat (`tconv.hw.schedule.Schedule.drain_cycles`: ``same`` cropping lets the
        last output leave before the array finishes its last step)."""
        from tconv.hw.chain import _stage_schedule  # a chain stage's array may be any size
        from tconv.hw.schedule import Schedule

        if not isinstance(self.layer, ChainQ):
            return ISOLATE_GAP + Schedule.plan(self.layer.config, self.pe_count).drain_cycles(length)
        # A chain: every stage's drain starts before the chain's last output, so their sum
        # is enough (a bound, not the exact idle cycle).
        gap = ISOLATE_GAP
        for stage, entry in zip(self.layer.stages, self.manifest["stages"]):
            gap += _stage_schedule(stage.config, entry["array"]["pe_count"]).drain_cycles(max(length, 1))
            length = stage.config.output_length(length)
        return gap

    def frame_cycles(self, length: int) -> int | None:
        """Cycles per frame of ``length`` steps by the manifest's formula (None if it has none).

        The formula is data (:class:`tconv.hw.manifest.CycleFormula`): plain integer arithmetic.
        """
        formula = self.files.cycle_formula
        return None if formula is None else formula.cycles(length)


def expected_with_sets(design, frames, expected, lengths, in_cycles, w_cycles, weight_sets, reset_set=None):
    """Which weight set each frame of a runtime-weights design used, and the model's output with it.

    Both testbench engines call this after a run: ``in_cycles`` and ``w_cycles`` are the
    cycles of every s_axis and w_axis handshake seen, ``weight_sets`` the ``[(beats, gate)]``
    sent in order, ``expected`` the model's output per frame with the generation's weights.
    The set of each frame is the contract's rule (`tconv.hw.weight_stream.weight_switch`)
    on those cycles: a set counts when it had exactly ``w_axis_beats`` beats and was not
    cut by rst (``reset_set``); a frame using none keeps -1. Returns ``(used, expected)``.
    """
    from tconv.hw.weight_stream import unpack_set, weight_switch, with_codes

    layout = design.weights_layout()
    ends, valid, pos = [], [], 0
    for beats, _ in weight_sets:
        pos += len(beats)
        ends.append(w_cycles[pos - 1] if pos <= len(w_cycles) else None)
        valid.append(len(beats) == layout.beats and len(valid) != reset_set)
    starts = [in_cycles[i] if i < len(in_cycles) else 1 << 62 for i in np.concatenate([[0], np.cumsum(lengths)[:-1]])]
    used = weight_switch(ends, starts, valid)
    models = {j: with_codes(design.layer, *unpack_set(design.layer, layout, weight_sets[j][0]))
              for j in set(used) if j >= 0}
    return used, [want if j < 0 else design.expected_frame(f, layer=models[j])
                  for f, want, j in zip(frames, expected, used)]


def _layer(weights_path, arrays: dict, suffix: str, config, fmts) -> Conv1DTransposeQ:
    """The golden model of one layer from its baked-in codes (``kernel_codes<suffix>``, ``bias_codes<suffix>``)."""
    try:
        kernel_codes, bias_codes = arrays[f"kernel_codes{suffix}"], arrays[f"bias_codes{suffix}"]
    except KeyError as err:
        raise FolderError(f"{weights_path}: no array {err} (the baked-in weight codes)") from None
    weight_fmt, bias_fmt = fmts["weight"], fmts.get("bias")
    want = (config.kernel_size, config.filters, config.in_channels)
    if kernel_codes.shape != want or kernel_codes.dtype.kind not in "iu":
        raise FolderError(f"{weights_path}: kernel_codes{suffix} must be integers of shape {want}, got "
                          f"{kernel_codes.dtype} {kernel_codes.shape}")
    if bias_fmt is not None and (bias_codes.shape != (config.filters,) or bias_codes.dtype.kind not in "iu"):
        raise FolderError(f"{weights_path}: bias_codes{suffix} must be integers of shape ({config.filters},), got "
                          f"{bias_codes.dtype} {bias_codes.shape}")
    for name, codes, fmt in (("kernel_codes", kernel_codes, weight_fmt), ("bias_codes", bias_codes, bias_fmt)):
        if fmt is not None and codes.size and (codes.min() < fmt.min_code or codes.max() > fmt.max_code):
            raise FolderError(f"{weights_path}: {name}{suffix} are not all codes of {fmt} "
                              f"({fmt.min_code} to {fmt.max_code})")
    # Codes dequantize exactly and quantize back to themselves in any mode.
    with np.errstate(all="ignore"):
        layer = Conv1DTransposeQ(
            config, weight_fmt.dequantize(kernel_codes), bias_fmt.dequantize(bias_codes) if bias_fmt else None,
            input_format=fmts["input"], weight_format=weight_fmt, bias_format=bias_fmt,
            output_format=fmts["output"])
    if not np.array_equal(layer.kernel_codes, kernel_codes):
        raise FolderError(f"{weights_path}: kernel_codes{suffix} do not survive the weight format {weight_fmt}")
    return layer


def _check_activation_table(files: DesignFolder, layer: Conv1DTransposeQ, rel: str | None, key: str) -> None:
    """The folder's activation table is the one the model builds from the formats (model and RTL use one table)."""
    where = f"{files.folder / 'manifest.json'}: {key}"
    want = layer.activation_table
    if want is None:
        if rel is not None:
            raise FolderError(f"{where}: {layer.config.activation!r} is exact, but the manifest names a table")
        return
    if rel is None:
        raise FolderError(f"{where}: {layer.config.activation!r} is a table activation, but the manifest names "
                          "no table (activation.kind 'table', activation.table)")
    got = files.table(rel, f"{key}.table")
    if got != want.to_json():
        path = files.path(rel, f"{key}.table")
        values = got.get("values")
        detail = ""
        if isinstance(values, list) and len(values) == want.size:
            i = next((i for i, (a, b) in enumerate(zip(values, want.entries)) if a != b), None)
            detail = f" (entry {i} is {values[i]!r}, the model's is {want.entries[i]})" if i is not None else ""
        raise FolderError(f"{path}: not the {want.name} table the formats give{detail}; regenerate the design")
