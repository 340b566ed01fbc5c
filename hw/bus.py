"""How codes sit on the AXI4-Stream buses (docs/contract.md, "Verilog interface"): one definition.

Lane ``n`` (channel ``n`` on ``s_axis``, filter ``n`` on ``m_axis``) occupies bits
``[n*W, (n+1)*W)`` of a beat, two's complement when the format is signed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pack_beat", "unpack_beat", "pack_beats", "unpack_beats"]


def pack_beat(codes, width: int) -> int:
    """One beat: ``codes`` (lane 0 first) as ``width``-bit fields, lane 0 in the low bits."""
    mask = (1 << width) - 1
    word = 0
    for lane, code in enumerate(codes):
        word |= (int(code) & mask) << (lane * width)
    return word


def unpack_beat(word: int, lanes: int, width: int, signed: bool) -> list[int]:
    """Inverse of :func:`pack_beat`: ``lanes`` codes, sign-extended when ``signed``."""
    mask = (1 << width) - 1
    out = []
    for lane in range(lanes):
        code = (int(word) >> (lane * width)) & mask
        if signed and code >> (width - 1):
            code -= 1 << width
        out.append(code)
    return out


def pack_beats(codes: np.ndarray, width: int) -> list[int]:
    """Rows of codes ``(steps, lanes)`` to one beat per row (:func:`pack_beat`)."""
    return [pack_beat(row, width) for row in np.asarray(codes, dtype=np.int64).tolist()]


def unpack_beats(words, lanes: int, width: int, signed: bool) -> np.ndarray:
    """Beats back to codes ``(steps, lanes)`` (:func:`unpack_beat`)."""
    out = np.zeros((len(words), lanes), dtype=np.int64)
    for i, word in enumerate(words):
        out[i] = unpack_beat(word, lanes, width, signed)
    return out
