"""Weight sets of a runtime-weights design: the ``w_axis`` beat layout, packing and the switch rule.

A weight set is ``beats`` beats of ``beat_width`` bits (docs/contract.md,
"Runtime weights"). The layout is the design's own and follows the order the
schedule reads the weights, so the load path only steers each beat to one
RAM write port:

- weight beats first, ``b = t * len(groups) + n`` for item ``t`` of a step
  (`Schedule.item`: ``kl`` outer, ``fl``, chunk ``c`` inner) and the ``n``-th
  built group ``(gf, gk)``: lane ``r`` in bits ``[r*Ww, (r+1)*Ww)`` holds
  ``kernel[k, f, ch]`` with ``k = gk + tap_groups*kl``, ``f = gf +
  filter_groups*fl``, ``ch = c*lanes + r`` (zero where k, f or ch is outside
  the layer);
- then, with a bias, one beat per filter row and built filter group,
  ``b = weight_beats + fl * len(filter groups) + gf``: the bias code of filter
  ``gf + filter_groups*fl`` in bits ``[0, Wb)`` (zero past ``filters``);
- codes are two's complement in their field, unused bits zero.

`weight_switch` is the contract's rule of which set each frame uses, the model
the testbenches check the hardware against.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from .schedule import Schedule

__all__ = ["StreamLayout", "stream_layout", "pack_set", "unpack_set", "set_fields", "with_codes",
           "weight_switch", "read_hex_set", "hex_text"]


@dataclass(frozen=True)
class StreamLayout:
    """Where every code of a weight set sits on ``w_axis`` (see the module docstring)."""

    beat_width: int
    weight_width: int
    bias_width: int          # 0 without a bias
    lanes: int
    cycles_per_step: int
    groups: tuple            # built groups (gf, gk) in beat order
    filter_groups: tuple     # built filter groups, in bias beat order
    filters_per_group: int
    schedule: Schedule

    @property
    def weight_beats(self) -> int:
        return self.cycles_per_step * len(self.groups)

    @property
    def bias_beats(self) -> int:
        return self.filters_per_group * len(self.filter_groups) if self.bias_width else 0

    @property
    def beats(self) -> int:
        return self.weight_beats + self.bias_beats

    def describe(self) -> dict:
        """The manifest's ``weights_stream``: everything a driver in any language needs."""
        sch = self.schedule
        return {
            "beats": self.beats,
            "beat_width": self.beat_width,
            "weight_beats": self.weight_beats,
            "bias_beats": self.bias_beats,
            "weight_width": self.weight_width,
            "bias_width": self.bias_width,
            "lanes": self.lanes,
            "cycles_per_step": self.cycles_per_step,
            "chunks": sch.chunks,
            "filters_per_group": sch.filters_per_group,
            "filter_groups": sch.filter_groups,
            "tap_groups": sch.tap_groups,
            "groups": [list(g) for g in self.groups],
            "bias_filter_groups": list(self.filter_groups),
            "order": ("weight beat b = t*len(groups) + n for item t = (kl*filters_per_group + fl)*chunks + c "
                      "and the n-th [gf, gk] of groups; lane r in bits [r*weight_width, (r+1)*weight_width) "
                      "holds kernel[k, f, ch], k = gk + tap_groups*kl, f = gf + filter_groups*fl, "
                      "ch = c*lanes + r, zero when k, f or ch is outside the layer. Then bias beat "
                      "weight_beats + fl*len(bias_filter_groups) + gf: bias[gf + filter_groups*fl] in bits "
                      "[0, bias_width), zero past filters. Codes two's complement, unused bits zero; tlast on "
                      "beat beats-1 only."),
        }


def stream_layout(layer_q, sch: Schedule) -> StreamLayout:
    """The ``w_axis`` layout of ``layer_q`` on schedule ``sch``."""
    gks = [gk for gk in range(sch.tap_groups) if sch.taps_in_group(gk) > 0]
    gfs = list(range(min(sch.filter_groups, sch.filters)))
    groups = tuple((gf, gk) for gk in gks for gf in gfs)
    ww = layer_q.weight_format.width
    wb = layer_q.bias_format.width if layer_q.config.use_bias else 0
    return StreamLayout(beat_width=max(sch.lanes * ww, wb), weight_width=ww, bias_width=wb, lanes=sch.lanes,
                        cycles_per_step=sch.cycles_per_step, groups=groups, filter_groups=tuple(gfs),
                        filters_per_group=sch.filters_per_group, schedule=sch)


def _check_codes(name, codes, shape, fmt):
    codes = np.asarray(codes)
    if codes.shape != shape:
        raise ValueError(f"{name} codes have shape {codes.shape}, expected {shape}")
    if codes.dtype.kind not in "iu":
        raise ValueError(f"{name} codes must be integers, got dtype {codes.dtype}")
    bad = (codes < fmt.min_code) | (codes > fmt.max_code)
    if bad.any():
        raise ValueError(f"{name} codes: {int(bad.sum())} outside the format {fmt} "
                         f"({fmt.min_code}..{fmt.max_code})")
    return codes.astype(np.int64)


def pack_set(layer_q, layout: StreamLayout, kernel_codes, bias_codes=None) -> list[int]:
    """The ``layout.beats`` beats (ints) of a set: ``kernel_codes`` (kernel_size, filters,
    in_channels) in the weight format, ``bias_codes`` (filters,) in the bias format."""
    cfg, sch = layer_q.config, layout.schedule
    kc = _check_codes("kernel", kernel_codes, (cfg.kernel_size, cfg.filters, cfg.in_channels),
                      layer_q.weight_format)
    ww, mw = layout.weight_width, (1 << layout.weight_width) - 1
    beats = []
    for t in range(layout.cycles_per_step):
        for gf, gk in layout.groups:
            k, f, channels = sch.work(sch.group_of(gf, gk), t)
            word = 0
            if k < cfg.kernel_size and f < cfg.filters:
                for r, ch in enumerate(channels):
                    word |= (int(kc[k, f, ch]) & mw) << (r * ww)
            beats.append(word)
    if layout.bias_width:
        bc = _check_codes("bias", np.zeros(cfg.filters, np.int64) if bias_codes is None else bias_codes,
                          (cfg.filters,), layer_q.bias_format)
        mb = (1 << layout.bias_width) - 1
        for fl in range(layout.filters_per_group):
            for gf in layout.filter_groups:
                f = gf + sch.filter_groups * fl
                beats.append(int(bc[f]) & mb if f < cfg.filters else 0)
    return beats


def _signed(value: int, width: int, signed: bool) -> int:
    return value - (1 << width) if signed and value >> (width - 1) & 1 else value


def unpack_set(layer_q, layout: StreamLayout, beats) -> tuple[np.ndarray, np.ndarray]:
    """``(kernel_codes, bias_codes)`` of a set's beats (the inverse of `pack_set`)."""
    beats = [int(b) for b in beats]
    if len(beats) != layout.beats:
        raise ValueError(f"a weight set has {layout.beats} beats, got {len(beats)}")
    if any(b < 0 or b >> layout.beat_width for b in beats):
        raise ValueError(f"a beat does not fit {layout.beat_width} bits")
    cfg, sch = layer_q.config, layout.schedule
    kc = np.zeros((cfg.kernel_size, cfg.filters, cfg.in_channels), np.int64)
    bc = np.zeros(cfg.filters, np.int64)
    ww, wf = layout.weight_width, layer_q.weight_format
    b = 0
    for t in range(layout.cycles_per_step):
        for gf, gk in layout.groups:
            k, f, channels = sch.work(sch.group_of(gf, gk), t)
            if k < cfg.kernel_size and f < cfg.filters:
                for r, ch in enumerate(channels):
                    kc[k, f, ch] = _signed(beats[b] >> (r * ww) & ((1 << ww) - 1), ww, wf.signed)
            b += 1
    if layout.bias_width:
        for fl in range(layout.filters_per_group):
            for gf in layout.filter_groups:
                f = gf + sch.filter_groups * fl
                if f < cfg.filters:
                    bc[f] = _signed(beats[b] & ((1 << layout.bias_width) - 1), layout.bias_width,
                                    layer_q.bias_format.signed)
                b += 1
    return kc, bc


def set_fields(layer_q, layout: StreamLayout, beats) -> np.ndarray:
    """The codes of a set's beats field by field, ``(beats, lanes)`` int64 (W.npy of ``tconv
    pack-weights``): a weight beat's lane ``r`` in column ``r``, a bias beat's code in column 0
    (the rest zero); two's complement fields read as signed for signed formats."""
    out = np.zeros((len(beats), layout.lanes), np.int64)
    ww, wb = layout.weight_width, layout.bias_width
    for b, beat in enumerate(beats):
        if b < layout.weight_beats:
            for r in range(layout.lanes):
                out[b, r] = _signed(beat >> (r * ww) & ((1 << ww) - 1), ww, layer_q.weight_format.signed)
        else:
            out[b, 0] = _signed(beat & ((1 << wb) - 1), wb, layer_q.bias_format.signed)
    return out


def with_codes(layer_q, kernel_codes, bias_codes=None):
    """A copy of ``layer_q`` computing with other codes (same formats): the model of a loaded set."""
    out = copy.copy(layer_q)
    cfg = layer_q.config
    out.kernel_codes = _check_codes("kernel", kernel_codes, (cfg.kernel_size, cfg.filters, cfg.in_channels),
                                    layer_q.weight_format)
    if cfg.use_bias:
        out.bias_codes = _check_codes("bias", bias_codes, (cfg.filters,), layer_q.bias_format)
    out.kernel = layer_q.weight_format.dequantize(out.kernel_codes)
    if cfg.use_bias:
        out.bias = layer_q.bias_format.dequantize(out.bias_codes)
    return out


def weight_switch(set_ends, frame_starts, valid=None) -> list[int]:
    """Which set each frame uses, by the contract's rule.

    ``set_ends[j]``: the cycle the last beat of set ``j`` was accepted (sets in
    the order sent; None for a set never completed); ``valid[j]``: whether it
    had exactly the right length with ``tlast`` only at its end (default: all).
    ``frame_starts[i]``: the cycle frame ``i``'s first input step was accepted.
    Frame ``i`` uses the last valid set whose end is strictly before its start,
    or -1 (the weights given at generation). Set and frame accepts are in order.
    """
    valid = [True] * len(set_ends) if valid is None else list(valid)
    done = sorted((end, j) for j, end in enumerate(set_ends) if end is not None and valid[j])
    out = []
    for start in frame_starts:
        use = -1
        for end, j in done:
            if end < start:
                use = j
        out.append(use)
    return out


def hex_text(beats, beat_width: int) -> str:
    """W.hex: one beat a line, hexadecimal, most significant digit first, all lines as wide."""
    digits = max(1, -(-beat_width // 4))
    return "".join(f"{b:0{digits}x}\n" for b in beats)


def read_hex_set(path, beat_width: int) -> list[int]:
    """The beats of a W.hex file (blank lines ignored), each checked to fit ``beat_width`` bits."""
    beats = []
    try:
        text = open(path).read()
    except OSError as err:
        raise ValueError(f"{path}: cannot read ({err.strerror or err})") from None
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            value = int(line, 16)
        except ValueError:
            raise ValueError(f"{path}: line {n}: not a hexadecimal beat: {line[:40]!r}") from None
        if value < 0 or value >> beat_width:
            raise ValueError(f"{path}: line {n}: beat wider than w_axis_tdata ({beat_width} bits)")
        beats.append(value)
    if not beats:
        raise ValueError(f"{path}: no beats")
    return beats
