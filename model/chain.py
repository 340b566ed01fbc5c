"""Consecutive ``Conv1DTranspose`` layers in fixed point: the golden model of a layer chain.

A chain is a list of :class:`~tconv.model.Conv1DTransposeQ` stages where each
stage's only input is the previous stage's output. Its integer datapath is the
composition of the stages' ``forward_int``; for that to be what hardware
computes stream to stream, stage ``i``'s output format must be stage ``i + 1``'s
input format *exactly* (the codes pass unchanged) and its ``filters`` must be
stage ``i + 1``'s ``in_channels`` (docs/contract.md, "Layer chains").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import LayerConfig
from .quantized import Conv1DTransposeQ

__all__ = ["ChainConfig", "ChainQ", "check_chain_stages"]


@dataclass(frozen=True)
class ChainConfig:
    """The shape of a chain as its ports see it, plus every stage's :class:`LayerConfig`.

    It answers the questions the testbenches ask of a layer's config
    (``in_channels``, ``filters``, ``data_format``, ``output_length``,
    ``useful_macs``) for the whole chain.
    """

    stages: tuple[LayerConfig, ...]

    @property
    def in_channels(self) -> int:
        return self.stages[0].in_channels

    @property
    def filters(self) -> int:
        return self.stages[-1].filters

    @property
    def data_format(self) -> str:
        return self.stages[0].data_format

    @property
    def activation(self) -> str:
        """The last stage's activation (what the chain's output went through last)."""
        return self.stages[-1].activation

    def stage_lengths(self, length: int) -> list[int]:
        """Input length of every stage for a chain input of ``length`` steps, then the output length."""
        lengths = [int(length)]
        for cfg in self.stages:
            lengths.append(cfg.output_length(lengths[-1]) if lengths[-1] > 0 else 0)
        return lengths

    def output_length(self, length: int) -> int:
        return self.stage_lengths(length)[-1]

    def useful_macs(self, length: int) -> int:
        """Useful MACs of every stage for one chain frame of ``length`` steps (a stage whose
        input frame is empty does none)."""
        lengths = self.stage_lengths(length)
        return sum(cfg.useful_macs(n) for cfg, n in zip(self.stages, lengths) if n > 0)

    def to_dict(self) -> dict:
        return {"stages": [cfg.to_dict() for cfg in self.stages]}


def check_chain_stages(stages, names=None) -> None:
    """Refuse stages that do not connect: one line naming the stage and what differs.

    Stage ``i``'s ``filters`` must be stage ``i + 1``'s ``in_channels``, its output
    format stage ``i + 1``'s input format exactly, and every stage must use one
    ``data_format``.
    """
    if not stages:
        raise ValueError("a layer chain needs at least one Conv1DTranspose layer")
    names = list(names) if names is not None else [f"stage {i}" for i in range(len(stages))]
    for i, st in enumerate(stages):
        if not isinstance(st, Conv1DTransposeQ):
            raise ValueError(f"{names[i]}: a chain stage must be a Conv1DTransposeQ, got {type(st).__name__}")
    for i, (a, b) in enumerate(zip(stages, stages[1:])):
        if a.config.filters != b.config.in_channels:
            raise ValueError(f"layer {names[i + 1]!r} (Conv1DTranspose) takes {b.config.in_channels} channels but "
                             f"{names[i]!r} gives {a.config.filters} filters; consecutive layers must match")
        if a.output_format != b.input_format:
            raise ValueError(f"layer {names[i + 1]!r}: its input format {b.input_format} is not {names[i]!r}'s "
                             f"output format {a.output_format}; in a chain they must be the same")
        if a.config.data_format != b.config.data_format:
            raise ValueError(f"layer {names[i + 1]!r} is {b.config.data_format} but {names[i]!r} is "
                             f"{a.config.data_format}; a chain uses one data_format")


class ChainQ:
    """Consecutive fixed-point layers, bit-exact with the generated chain design.

    Parameters
    ----------
    stages : sequence of Conv1DTransposeQ
        In order; checked by :func:`check_chain_stages`.
    names : sequence of str, optional
        The layers' names (Keras' when imported), for messages and the manifest.

    Attributes
    ----------
    stages : list of Conv1DTransposeQ
    names : list of str
    config : ChainConfig
    input_format, output_format : FixedFormat
        The first stage's input and the last stage's output.
    """

    #: A chain has no activation table of its own (each stage may have one).
    activation_table = None

    def __init__(self, stages, names=None):
        stages = list(stages)
        check_chain_stages(stages, names)
        self.stages = stages
        self.names = list(names) if names is not None else [f"stage{i}" for i in range(len(stages))]
        self.config = ChainConfig(tuple(st.config for st in stages))
        self.input_format = stages[0].input_format
        self.output_format = stages[-1].output_format

    def output_length(self, length: int) -> int:
        return self.config.output_length(length)

    def forward_stages(self, codes) -> list[np.ndarray]:
        """Every stage's output codes for input codes ``codes`` (the layout of ``forward_int``)."""
        outs = []
        x = codes
        for st in self.stages:
            axis = -1 if st.config.data_format == "channels_first" else -2
            if np.shape(x)[axis] == 0:  # an earlier stage gave no output: this one gets no frame
                shape = list(np.shape(x))
                shape[-2 if axis == -1 else -1] = st.config.filters
                x = np.zeros(shape, dtype=np.int64)
            else:
                x = st.forward_int(x)
            outs.append(x)
        return outs

    def forward_int(self, codes) -> np.ndarray:
        """Input codes to the last stage's output codes: the composition of the stages' ``forward_int``."""
        return self.forward_stages(codes)[-1]

    def __call__(self, x) -> np.ndarray:
        """Float input to float output through the fixed-point chain."""
        return self.output_format.dequantize(self.forward_int(self.input_format.quantize(x, name="input")))

    def __len__(self) -> int:
        return len(self.stages)

    def __repr__(self) -> str:
        return f"ChainQ({', '.join(f'{n}={s!r}' for n, s in zip(self.names, self.stages))})"
