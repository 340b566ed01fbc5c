"""A generated design folder as the testbenches see it: manifest, model and bus packing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tconv.model import Conv1DTransposeQ, FixedFormat, LayerConfig

__all__ = ["GeneratedDesign", "pack_words", "unpack_words"]


def pack_words(codes: np.ndarray, width: int) -> list[int]:
    """Rows of codes ``(steps, lanes)`` to bus words: lane 0 in the least significant bits,
    two's complement for negative codes."""
    mask = (1 << width) - 1
    words = []
    for row in np.asarray(codes, dtype=np.int64):
        word = 0
        for lane, code in enumerate(row.tolist()):
            word |= (code & mask) << (lane * width)
        words.append(word)
    return words


def unpack_words(words, lanes: int, width: int, signed: bool) -> np.ndarray:
    """Bus words back to codes ``(steps, lanes)``, sign-extending when ``signed``."""
    mask = (1 << width) - 1
    out = np.zeros((len(words), lanes), dtype=np.int64)
    for i, word in enumerate(words):
        word = int(word)
        for lane in range(lanes):
            code = (word >> (lane * width)) & mask
            if signed and code >> (width - 1):
                code -= 1 << width
            out[i, lane] = code
    return out


@dataclass
class GeneratedDesign:
    """What ``tconv generate`` wrote: the Verilog, the manifest and the layer it computes.

    Attributes
    ----------
    folder : Path
    manifest : dict
    layer : Conv1DTransposeQ
        The golden model, rebuilt from the baked-in weight and bias codes.
    """

    folder: Path
    manifest: dict
    layer: Conv1DTransposeQ

    @classmethod
    def load(cls, folder) -> GeneratedDesign:
        folder = Path(folder)
        path = folder / "manifest.json"
        if not path.is_file():
            raise ValueError(f"{folder}: no manifest.json; is this a folder written by `tconv generate`?")
        manifest = json.loads(path.read_text())
        weights_path = folder / manifest.get("weights", "weights.npz")
        if not weights_path.is_file():
            raise ValueError(f"{folder}: missing {weights_path.name}, the baked-in weight codes")
        fmts = manifest["formats"]
        config = LayerConfig.from_dict(manifest["layer"])
        with np.load(weights_path) as w:
            kernel_codes, bias_codes = w["kernel_codes"], w["bias_codes"]
        weight_fmt = FixedFormat.parse(fmts["weight"])
        bias_fmt = FixedFormat.parse(fmts["bias"]) if config.use_bias else None
        # Codes dequantize exactly and quantize back to themselves in any mode.
        layer = Conv1DTransposeQ(
            config, weight_fmt.dequantize(kernel_codes),
            bias_fmt.dequantize(bias_codes) if bias_fmt else None,
            input_format=fmts["input"], weight_format=weight_fmt, bias_format=bias_fmt,
            output_format=fmts["output"])
        assert np.array_equal(layer.kernel_codes, kernel_codes)
        return cls(folder, manifest, layer)

    @property
    def top(self) -> str:
        return self.manifest["top"]

    @property
    def verilog(self) -> list[Path]:
        return [self.folder / v for v in self.manifest["verilog"]]

    @property
    def waivers(self) -> Path | None:
        name = self.manifest.get("verilator_waivers")
        return self.folder / name if name else None

    def pack_inputs(self, codes: np.ndarray) -> list[int]:
        """One frame of input codes ``(L, in_channels)`` to ``s_axis_tdata`` words."""
        return pack_words(codes, self.layer.input_format.width)

    def unpack_outputs(self, words) -> np.ndarray:
        """``m_axis_tdata`` words to output codes ``(L_out, filters)``."""
        fmt = self.layer.output_format
        return unpack_words(words, self.layer.config.filters, fmt.width, fmt.signed)

    def expected_frame(self, codes: np.ndarray) -> np.ndarray:
        """The model's output codes for one frame, channels_last ``(L_out, filters)``."""
        if self.layer.config.data_format == "channels_first":
            return self.layer.forward_int(np.asarray(codes).T).T
        return self.layer.forward_int(codes)

    def frame_cycles(self, length: int) -> int | None:
        """Cycles per frame of ``length`` steps by the manifest's formula (None if it has none)."""
        expr = self.manifest.get("performance", {}).get("cycles_per_frame_python")
        if not expr:
            return None
        # The manifest's own arithmetic in L, evaluated without builtins.
        return int(eval(expr, {"__builtins__": {}}, {"L": int(length)}))

