"""cocotb testbench of a generated layer: AXI4-Stream in, AXI4-Stream out, scoreboard against the model.

Run by :mod:`tconv.sim.runner` (never imported outside a simulator). The job is
described by a JSON file named in ``TCONV_TB_JOB``:

``design``      the generated folder (manifest.json, weights.npz, Verilog)
``vectors``     an ``.npz`` with ``inputs`` (steps, in_channels) codes of all
                frames back to back and ``lengths`` (frames,)
``results``     where to write the results JSON
``source_pause`` / ``sink_pause``  back-pressure patterns (see :func:`pause_pattern`)
``seed``        for the random patterns
``isolate_frames``  send each frame only once the previous one has come out
                (so every frame's cycle count can be checked); default: back to back

The results JSON also holds ``sim_seconds`` and ``sim_cpu_seconds``: wall and CPU
time (of the simulator's process, cocotb inside it) from the clock's start to the
end of the checks (the model's expected outputs are computed before).

The scoreboard compares every output word with the model and reports the first
mismatch by frame, output step and filter; a monitor counts the clock cycles of
each frame from its first input beat accepted to its last output beat sent.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

from tconv.sim.design import ISOLATE_GAP, GeneratedDesign, frame_mismatch
from tconv.sim.patterns import pause_pattern

CLOCK_NS = 10


class BeatMonitor:
    """Counts cycles and records the cycle of every accepted input and sent output beat."""

    def __init__(self, dut):
        self.dut = dut
        self.cycle = 0
        self.in_beats: list[tuple[int, bool]] = []   # (cycle, tlast)
        self.out_beats: list[tuple[int, bool]] = []

    async def run(self):
        dut = self.dut
        while True:
            await RisingEdge(dut.clk)
            self.cycle += 1
            if int(dut.rst.value):
                continue
            for name in ("s_axis_tready", "m_axis_tvalid"):
                assert getattr(dut, name).value.is_resolvable, \
                    f"{name} is X/Z at cycle {self.cycle} after reset"
            m_valid = int(dut.m_axis_tvalid.value)
            if m_valid:
                # AXI4-Stream: while tvalid is high, tdata and tlast are meaningful.
                assert dut.m_axis_tdata.value.is_resolvable and dut.m_axis_tlast.value.is_resolvable, (
                    f"m_axis_tdata/tlast hold X/Z at cycle {self.cycle} while m_axis_tvalid is high: "
                    f"{dut.m_axis_tdata.value}")
            if int(dut.s_axis_tvalid.value) and int(dut.s_axis_tready.value):
                self.in_beats.append((self.cycle, bool(int(dut.s_axis_tlast.value))))
            if m_valid and int(dut.m_axis_tready.value):
                self.out_beats.append((self.cycle, bool(int(dut.m_axis_tlast.value))))


def frame_cycles(monitor: BeatMonitor, lengths, out_lengths) -> list[int | None]:
    """Per frame: cycles from its first input accepted to its last output sent (inclusive)."""
    cycles = []
    in_pos = out_pos = 0
    for length, out_len in zip(lengths, out_lengths):
        first_in = monitor.in_beats[in_pos][0] if in_pos < len(monitor.in_beats) else None
        in_pos += length
        out_pos += out_len
        if out_len == 0 or first_in is None or out_pos > len(monitor.out_beats):
            cycles.append(None)
            continue
        cycles.append(monitor.out_beats[out_pos - 1][0] - first_in + 1)
    return cycles


@cocotb.test()
async def layer_matches_model(dut):
    job = json.loads(Path(os.environ["TCONV_TB_JOB"]).read_text())
    design = GeneratedDesign.load(job["design"])
    with np.load(job["vectors"]) as v:
        inputs, lengths = v["inputs"], [int(n) for n in v["lengths"]]
    starts = np.concatenate([[0], np.cumsum(lengths)])
    frames = [inputs[starts[i]:starts[i + 1]] for i in range(len(lengths))]
    expected = [design.expected_frame(f) for f in frames]
    rng = random.Random(job.get("seed", 0))
    started, cpu = time.perf_counter(), time.process_time()  # the simulation proper, after the model

    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk, dut.rst, byte_lanes=1)
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk, dut.rst, byte_lanes=1)
    source.set_pause_generator(pause_pattern(job.get("source_pause", "none"), rng))
    sink.set_pause_generator(pause_pattern(job.get("sink_pause", "none"), rng))
    monitor = BeatMonitor(dut)

    dut.rst.value = 1
    if design.runtime_weights:  # no weight set is sent: the generation's weights stay active
        dut.w_axis_tvalid.value = 0
        dut.w_axis_tlast.value = 0
        dut.w_axis_tdata.value = 0
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    cocotb.start_soon(monitor.run())

    isolate = bool(job.get("isolate_frames", False))
    if not isolate:
        for frame in frames:
            await source.send(AxiStreamFrame(tdata=design.pack_inputs(frame)))

    # Generous timeout: the formula's cycles (or a crude bound) times the stall factor.
    per_step = design.cycles_per_step or 1
    bound = sum(design.frame_cycles(n) or (n * per_step + 200) for n in lengths)
    timeout_ns = (bound * 20 + 5000) * CLOCK_NS
    mismatches, received = [], 0
    for index, want in enumerate(expected):
        if isolate:
            # Each frame meets an idle array (the previous one's drain waited out): its cycle
            # count is the manifest formula's.
            await ClockCycles(dut.clk, design.isolation_gap(lengths[index - 1]) if index else ISOLATE_GAP)
            await source.send(AxiStreamFrame(tdata=design.pack_inputs(frames[index])))
        if want.shape[0] == 0:
            continue  # a frame with no output emits no beat at all
        rx = await with_timeout(sink.recv(), timeout_ns, "ns")
        got = design.unpack_outputs(rx.tdata)
        received += got.shape[0]
        mismatch = frame_mismatch(index, got, want)
        if mismatch:
            mismatches.append(mismatch)
            if "problem" in mismatch:
                break
    # Nothing more may come out.
    await ClockCycles(dut.clk, 50)
    extra = sink.count()
    out_lengths = [w.shape[0] for w in expected]
    result = {
        "frames": len(frames), "beats_in": len(monitor.in_beats), "beats_out": len(monitor.out_beats),
        "expected_beats_out": int(sum(out_lengths)), "extra_beats": int(extra),
        "mismatches": mismatches, "cycles": frame_cycles(monitor, lengths, out_lengths),
        "lengths": lengths, "total_cycles": monitor.cycle, "sim_seconds": time.perf_counter() - started,
        "sim_cpu_seconds": time.process_time() - cpu,
    }
    Path(job["results"]).write_text(json.dumps(result, indent=2))

    assert not mismatches, f"RTL differs from the model: {mismatches[0]}"
    assert extra == 0, f"{extra} output beat(s) after the last expected one"
    assert len(monitor.in_beats) == len(inputs), "not every input beat was accepted"
    assert len(monitor.out_beats) == sum(out_lengths), "output beat count differs from the model's L_out"
