"""Run a generated layer in Amaranth's simulator: AXI4-Stream source and sink with gaps.

Used by the tests (and handy for debugging a layer with a VCD): frames of input
codes go in, output codes come out, with optional random ``tvalid`` gaps on the
input and ``tready`` stalls on the output, and every AXI4-Stream rule checked on
the way (output data held while ``tvalid && !tready``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator

from tconv.hw.bus import pack_beat, unpack_beat
from tconv.hw.check import check_layer
from tconv.hw.layer import Conv1DTransposeTop

__all__ = ["SimResult", "simulate"]


@dataclass
class SimResult:
    """What the simulation saw.

    Attributes
    ----------
    frames : list of ndarray
        Output codes ``(L_out, filters)`` per frame, split at ``tlast``.
    in_cycles, out_cycles : list of int
        Cycle of every input / output handshake.
    """

    frames: list
    in_cycles: list
    out_cycles: list

    def frame_cycles(self) -> int:
        """First input handshake to last output handshake, both included."""
        return self.out_cycles[-1] - self.in_cycles[0] + 1


def simulate(layer_q, frames, *, pe_count: int = 8, seed: int = 0, in_gap: float = 0.0,
             out_stall: float = 0.0, max_cycles: int | None = None, vcd: str | None = None,
             top: Conv1DTransposeTop | None = None, garbage_seed: int | None = 0,
             ready_off: tuple[int, int] | None = None) -> SimResult:
    """Feed ``frames`` (each ``(L, in_channels)`` int codes, channels_last) through the layer.

    ``in_gap`` is the probability of an idle cycle before each input beat,
    ``out_stall`` the probability that ``m_axis_tready`` is low in a cycle.
    ``garbage_seed`` fills the scatter banks with random words first (None: zeros).
    ``ready_off = (start, stop)`` holds ``m_axis_tready`` low for those cycles
    (a long sink stall that fills the output FIFO and the scatter slots).
    """
    top = top or Conv1DTransposeTop(layer_q, check_layer(layer_q, pe_count), garbage_seed=garbage_seed)
    cfg = layer_q.config
    xf, of = layer_q.input_format, layer_q.output_format
    beats = []
    expected = 0
    for x in frames:
        x = np.asarray(x)
        for i, step in enumerate(x):
            beats.append((pack_beat(step, xf.width), int(i == len(x) - 1)))
        expected += cfg.output_length(len(x))
    rng = np.random.default_rng(seed)
    if max_cycles is None:
        sch = top.schedule
        per_step = max(sch.cycles_per_step, sch.strides * sch.filters_per_group)
        slow = 1 + 4 * (in_gap + out_stall) / max(1e-9, 1 - max(in_gap, out_stall))
        max_cycles = (ready_off[1] if ready_off else 0) + int(slow * (len(beats) * per_step + 40 * len(frames) * (sch.tail_span + 8)
                                  * sch.filters_per_group) + 500)
    result = SimResult([], [], [])
    outputs = []

    async def bench(ctx):
        ip = 0
        offering = False
        held = None  # (data, last) shown while tvalid && !tready
        cycle = 0
        while len(outputs) < expected or ip < len(beats):
            if cycle >= max_cycles:
                raise AssertionError(f"timeout after {cycle} cycles: {ip}/{len(beats)} inputs taken, "
                                     f"{len(outputs)}/{expected} outputs seen")
            if not offering and ip < len(beats) and rng.random() >= in_gap:
                offering = True
                ctx.set(top.s_axis_tdata, beats[ip][0])
                ctx.set(top.s_axis_tlast, beats[ip][1])
            ctx.set(top.s_axis_tvalid, int(offering))
            ready = int(rng.random() >= out_stall)
            if ready_off and ready_off[0] <= cycle < ready_off[1]:
                ready = 0
            ctx.set(top.m_axis_tready, ready)
            _, _, s_ready, m_valid, m_data, m_last = await ctx.tick().sample(
                top.s_axis_tready, top.m_axis_tvalid, top.m_axis_tdata, top.m_axis_tlast)
            if held is not None:
                assert m_valid, f"cycle {cycle}: m_axis_tvalid dropped before the handshake"
                assert (m_data, m_last) == held, f"cycle {cycle}: m_axis data changed while stalled"
            held = None
            if offering and s_ready:
                result.in_cycles.append(cycle)
                ip += 1
                offering = False
            if m_valid:
                if ready:
                    outputs.append((m_data, m_last))
                    result.out_cycles.append(cycle)
                else:
                    held = (m_data, m_last)
            cycle += 1
        # A few idle cycles: nothing more may come out.
        ctx.set(top.s_axis_tvalid, 0)
        ctx.set(top.m_axis_tready, 1)
        for _ in range(8):
            _, _, m_valid = await ctx.tick().sample(top.m_axis_tvalid)
            assert not m_valid, "extra output beat after the expected ones"

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()

    # Split at tlast and check it sits exactly on each frame's last beat.
    codes = [unpack_beat(d, cfg.filters, of.width, of.signed) for d, _ in outputs]
    pos = 0
    for x in frames:
        n = cfg.output_length(len(x))
        chunk = outputs[pos:pos + n]
        lasts = [last for _, last in chunk]
        assert lasts == [0] * (n - 1) + [1] * (n > 0), f"tlast misplaced in frame {len(result.frames)}: {lasts}"
        result.frames.append(np.array(codes[pos:pos + n], dtype=np.int64).reshape(n, cfg.filters))
        pos += n
    return result
