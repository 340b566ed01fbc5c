"""Quantization error of a layer chain against its float sub-model, end to end and per stage.

The float reference is the float sub-model: the stages' float layers
(:func:`tconv.model.conv1d_transpose`, equal to Keras) composed, the layers
that are the identity at inference left out, on the first stage's float inputs.
For every stage :func:`analyze_chain` reports

- ``end_to_end``: the fixed-point chain up to and including that stage (the
  first stage's inputs quantized, codes passed on exactly as in hardware)
  against the float sub-model up to it;
- ``local``: that stage alone on the float sub-model's inputs to it (quantized
  with its input format) against its float layer: the error it adds by itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .analysis import json_number, rms, sqnr_db
from .chain import ChainQ
from .float_model import conv1d_transpose

__all__ = ["ChainErrorReport", "analyze_chain", "float_stages"]


def float_stages(chain: ChainQ, x) -> list[np.ndarray]:
    """The float sub-model's output after every stage for float inputs ``x`` of the first stage."""
    outs = []
    y = np.asarray(x, dtype=np.float64)
    for st in chain.stages:
        c = st.config
        y = conv1d_transpose(y, st.kernel, st.bias if c.use_bias else None, strides=c.strides, padding=c.padding,
                             output_padding=c.output_padding, dilation_rate=c.dilation_rate,
                             data_format=c.data_format, activation=c.activation)
        outs.append(y)
    return outs


def _errors(reference: np.ndarray, got: np.ndarray) -> dict:
    err = got - reference
    return {"max_abs_error": float(np.max(np.abs(err))) if err.size else 0.0, "rmse": rms(err),
            "sqnr_db": sqnr_db(reference, err), "values": int(err.size)}


@dataclass
class ChainErrorReport:
    """Per stage errors (:func:`analyze_chain`); ``stages[i]`` has ``name``, ``output_format``,
    ``end_to_end`` and ``local`` (each ``max_abs_error``, ``rmse``, ``sqnr_db``, ``values``)."""

    stages: list
    input_shape: tuple
    float_out: np.ndarray
    fixed_out: np.ndarray

    @property
    def end_to_end(self) -> dict:
        """The whole chain's error: the last stage's ``end_to_end``."""
        return self.stages[-1]["end_to_end"]

    def to_dict(self) -> dict:
        def clean(d):
            return {k: json_number(v) if isinstance(v, float) else v for k, v in d.items()}
        return {"input_shape": list(self.input_shape), "end_to_end": clean(self.end_to_end),
                "stages": [{**s, "end_to_end": clean(s["end_to_end"]), "local": clean(s["local"])}
                           for s in self.stages]}

    def __str__(self) -> str:
        lines = [f"chain error against the float sub-model ({len(self.stages)} stages, input {self.input_shape})",
                 f"  {'stage':<14} {'output format':<24} {'end-to-end max|e|':>17} {'SQNR dB':>8} "
                 f"{'stage alone max|e|':>18} {'SQNR dB':>8}"]
        for s in self.stages:
            e, loc = s["end_to_end"], s["local"]
            lines.append(f"  {s['name']:<14} {s['output_format']:<24} {e['max_abs_error']:>17.4g} "
                         f"{e['sqnr_db']:>8.2f} {loc['max_abs_error']:>18.4g} {loc['sqnr_db']:>8.2f}")
        e = self.end_to_end
        lines.append(f"  end to end: max |error| {e['max_abs_error']:.4g}, RMSE {e['rmse']:.4g}, "
                     f"SQNR {e['sqnr_db']:.2f} dB")
        return "\n".join(lines)


def analyze_chain(chain: ChainQ, x) -> ChainErrorReport:
    """Errors of ``chain`` against its float sub-model on the first stage's float inputs ``x``
    (``(batch, length, in_channels)`` channels_last)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    refs = float_stages(chain, x)
    fixed = chain.forward_stages(chain.input_format.quantize(x, name="chain input"))
    ins = [x, *refs[:-1]]
    stages = []
    for st, name, ref, codes, xin in zip(chain.stages, chain.names, refs, fixed, ins):
        got = st.output_format.dequantize(codes)
        # refs[i] is stage i's float layer on refs[i - 1]: the reference of the stage alone too
        stages.append({"name": name, "output_format": str(st.output_format), "end_to_end": _errors(ref, got),
                       "local": _errors(ref, st(xin))})
    return ChainErrorReport(stages, tuple(x.shape), refs[-1], chain.output_format.dequantize(fixed[-1]))

