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
``weight_sets`` (runtime-weights designs) ``[[beats, gate], ...]``: each set's beats sent
                on w_axis in order, once ``gate`` input beats were accepted, ``tlast`` on
                its last beat (:class:`WeightDriver`, the compiled testbench's rule)
``weight_pause``  the back-pressure pattern of w_axis_tvalid (seeded with ``seed + 1``)

The results JSON also holds ``sim_seconds`` and ``sim_cpu_seconds``: wall and CPU
time (of the simulator's process, cocotb inside it) from the clock's start to the
last cycle (the model's expected outputs are computed before, the weight sets' after).

The scoreboard compares every output word with the model and reports the first
mismatch by frame, output step and filter; a monitor counts the clock cycles of
each frame from its first input beat accepted to its last output beat sent. In a
runtime-weights design each frame is compared with the model of the weight set the
contract's rule gives on the handshake cycles seen (`tconv.sim.design.expected_with_sets`,
as the compiled engine does), listed in ``weight_sets_used`` (-1: the generation's weights).
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

from tconv.sim.design import ISOLATE_GAP, GeneratedDesign, expected_with_sets, frame_mismatch
from tconv.sim.patterns import pause_pattern

CLOCK_NS = 10


class BeatMonitor:
    """Counts cycles and records the cycle of every accepted input and sent output beat."""

    def __init__(self, dut):
        self.dut = dut
        self.cycle = 0
        self.in_beats: list[tuple[int, bool]] = []   # (cycle, tlast)
        self.out_beats: list[tuple[int, bool]] = []
        self.w_beats: list[tuple[int, bool]] = []   # runtime-weights designs: w_axis handshakes
        self.weights = hasattr(dut, "w_axis_tready")

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
            if self.weights:
                assert dut.w_axis_tready.value.is_resolvable, f"w_axis_tready is X/Z at cycle {self.cycle}"
                if int(dut.w_axis_tvalid.value) and int(dut.w_axis_tready.value):
                    self.w_beats.append((self.cycle, bool(int(dut.w_axis_tlast.value))))


class WeightDriver:
    """Sends weight sets on w_axis as the compiled testbench does (sim/tb_compiled.v, +w=):
    beat by beat in order, a set's beats once ``gate`` input beats were accepted, ``tlast``
    on each set's last beat, w_axis_tvalid low in the cycles ``pause`` says (one draw per
    cycle), and a beat offered stays, unchanged, until it is taken."""

    def __init__(self, dut, weight_sets, pause):
        self.dut = dut
        self.beats = [(int(b), n == len(beats) - 1, int(gate))
                      for beats, gate in weight_sets for n, b in enumerate(beats)]
        self.pause = pause

    async def run(self):
        dut, pos, in_count, offered = self.dut, 0, 0, False
        while True:
            await RisingEdge(dut.clk)
            if int(dut.s_axis_tvalid.value) and int(dut.s_axis_tready.value):
                in_count += 1
            ready = int(dut.w_axis_tready.value)
            if offered and ready:
                pos += 1
            stall = next(self.pause)
            if offered and not ready:
                continue  # AXI4-Stream: hold the beat
            offered = pos < len(self.beats) and in_count >= self.beats[pos][2] and not stall
            if offered:
                data, last, _ = self.beats[pos]
                dut.w_axis_tdata.value = data
                dut.w_axis_tlast.value = int(last)
            dut.w_axis_tvalid.value = int(offered)


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

    weight_sets = [(list(b), int(g)) for b, g in job.get("weight_sets") or []]
    dut.rst.value = 1
    if design.runtime_weights:  # w_axis idle until the driver offers a beat
        dut.w_axis_tvalid.value = 0
        dut.w_axis_tlast.value = 0
        dut.w_axis_tdata.value = 0
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    cocotb.start_soon(monitor.run())
    if weight_sets:  # its pattern seeded as the compiled testbench's (tconv.sim.compiled)
        pause = pause_pattern(job.get("weight_pause", "none"), random.Random(job.get("seed", 0) + 1))
        cocotb.start_soon(WeightDriver(dut, weight_sets, pause).run())

    isolate = bool(job.get("isolate_frames", False))
    if not isolate:
        for frame in frames:
            await source.send(AxiStreamFrame(tdata=design.pack_inputs(frame)))

    # Generous timeout: the formula's cycles (or a crude bound) times the stall factor.
    per_step = design.cycles_per_step or 1
    bound = sum(design.frame_cycles(n) or (n * per_step + 200) for n in lengths)
    timeout_ns = (bound * 20 + 5000) * CLOCK_NS
    received = []
    for index, want in enumerate(expected):
        if isolate:
            # Each frame meets an idle array (the previous one's drain waited out): its cycle
            # count is the manifest formula's.
            await ClockCycles(dut.clk, design.isolation_gap(lengths[index - 1]) if index else ISOLATE_GAP)
            await source.send(AxiStreamFrame(tdata=design.pack_inputs(frames[index])))
        if want.shape[0] == 0:
            received.append(want)  # a frame with no output emits no beat at all
            continue
        rx = await with_timeout(sink.recv(), timeout_ns, "ns")
        received.append(design.unpack_outputs(rx.tdata))
        if received[-1].shape != want.shape:
            break  # the frames after it are out of step
    # Nothing more may come out.
    await ClockCycles(dut.clk, 50)
    sim_seconds, sim_cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    extra = sink.count()
    out_lengths = [w.shape[0] for w in expected]
    used = None
    if design.runtime_weights:  # which set each frame used decides what it is compared with
        used, expected = expected_with_sets(design, frames, expected, lengths, [c for c, _ in monitor.in_beats],
                                            [c for c, _ in monitor.w_beats], weight_sets)
    mismatches = []
    for index, (got, want) in enumerate(zip(received, expected)):
        mismatch = frame_mismatch(index, got, want)
        if mismatch:
            mismatches.append(mismatch)
    result = {
        "frames": len(frames), "beats_in": len(monitor.in_beats), "beats_out": len(monitor.out_beats),
        "expected_beats_out": int(sum(out_lengths)), "extra_beats": int(extra),
        "mismatches": mismatches, "cycles": frame_cycles(monitor, lengths, out_lengths),
        "lengths": lengths, "total_cycles": monitor.cycle, "sim_seconds": sim_seconds,
        "sim_cpu_seconds": sim_cpu_seconds, "weight_sets_used": used,
    }
    Path(job["results"]).write_text(json.dumps(result, indent=2))

    assert not mismatches, f"RTL differs from the model: {mismatches[0]}"
    assert extra == 0, f"{extra} output beat(s) after the last expected one"
    assert len(monitor.in_beats) == len(inputs), "not every input beat was accepted"
    assert len(monitor.out_beats) == sum(out_lengths), "output beat count differs from the model's L_out"
