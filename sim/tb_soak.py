"""Constrained-random soak of a generated layer: thousands of frames, hostile neighbours, resets.

Run through :func:`tconv.sim.runner.simulate` with ``test_module="tconv.sim.tb_soak"``
(see ``tests/test_soak.py``); the frames come in as for ``tb_layer``
(``vectors``: ``inputs`` and ``lengths``), and ``job["soak"]`` adds:

``phases``  list of ``[source_pattern, sink_pattern]``: the frames are split into
            that many consecutive runs, each under its own pair of patterns
            (:func:`pause_pattern`: tb_layer's ``none``, ``random``, ``bursty``,
            ``toggle``, ``long`` plus ``stall``, ready low for 50-600 cycles at
            a time, and ``trickle``, ready one cycle in eight);
``resets``  ``{"input": n, "output": m}``: resets asserted in the middle of a
            frame on the input port (after 1..L-1 of its steps were accepted)
            and on the output port (after 1..L_out-1 of its beats were sent);
``kinds``   per frame a label of its data (``random``, ``min``, ``max``,
            ``extreme``), only counted.

What a reset means (the layer's contract, checked here): ``rst`` high for one
or more cycles drops everything in flight -- steps accepted, partial sums,
frames waiting to be emitted, beats in the output FIFO. Beats sent before the
reset stay sent (they are checked as a prefix of their frame's output). While
``rst`` is high the source holds ``s_axis_tvalid`` low (AXI4-Stream) and
abandons the rest of the frame it was sending; after it the first beat accepted
starts a new frame, no output beat may appear before that frame's first step
is accepted, and every following frame must be bit-exact and complete.

One coroutine drives both ports and checks every cycle: each output word and
``tlast`` against the model, ``m_axis_tdata``/``tlast`` held and
``m_axis_tvalid`` kept while ``!tready``, no X/Z on valid/ready (or on data
while valid), no beat without a frame to belong to, and a watchdog on the
handshakes. The results JSON has ``tb_layer``'s keys plus the soak counts.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
from collections import deque
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge

from tconv.hw.bus import pack_beats
from tconv.sim.design import GeneratedDesign
from tconv.sim.tb_layer import pause_pattern as layer_pause_pattern

CLOCK_NS = 10

#: Default phases: every pair of adversarial patterns the soak cycles through.
PHASES = [
    ("none", "none"), ("random", "random"), ("bursty", "bursty"), ("none", "toggle"),
    ("toggle", "none"), ("toggle", "toggle"), ("random", "long"), ("none", "stall"),
    ("bursty", "trickle"), ("random", "toggle"),
]
KINDS = ("random", "min", "max", "extreme")


def pause_pattern(name: str, rng: random.Random):
    """Infinite pause generator (True = stall this cycle): tb_layer's patterns plus ``stall``
    (runs of 50-600 stalled cycles) and ``trickle`` (ready one cycle in eight)."""
    if name == "stall":
        def stalls():
            while True:
                yield from [False] * rng.randint(1, 30)
                yield from [True] * rng.randint(50, 600)
        return stalls()
    if name == "trickle":
        return itertools.cycle([False] + [True] * 7)
    return layer_pause_pattern(name, rng)


def soak_frames(design: GeneratedDesign, frames: int, seed: int = 0, max_length: int = 48):
    """Frame lengths, input codes (back to back) and data kinds for a soak.

    Lengths: a quarter are 1, the rest mostly 2..8 with some up to
    ``max_length``. Kinds: mostly random codes, the rest all-min, all-max, or
    min/max mixed (saturating every product and sum).
    """
    rng = np.random.default_rng(seed)
    r = rng.random(frames)
    lengths = np.where(r < 0.25, 1, np.where(r < 0.8, rng.integers(2, 9, frames),
                                             rng.integers(9, max_length + 1, frames)))
    kinds = rng.choice(KINDS, size=frames, p=[0.7, 0.1, 0.1, 0.1])
    fmt = design.layer.input_format
    cin = design.layer.config.in_channels
    parts = []
    for n, kind in zip(lengths, kinds):
        if kind == "random":
            parts.append(rng.integers(fmt.min_code, fmt.max_code + 1, (n, cin)))
        elif kind == "min":
            parts.append(np.full((n, cin), fmt.min_code))
        elif kind == "max":
            parts.append(np.full((n, cin), fmt.max_code))
        else:
            parts.append(rng.choice(np.array([fmt.min_code, fmt.max_code]), size=(n, cin)))
    return [int(n) for n in lengths], np.concatenate(parts).astype(np.int64), [str(k) for k in kinds]


def _expected_words(design: GeneratedDesign, frames: list[np.ndarray]) -> list[list[int]]:
    """The model's output of every frame as packed m_axis_tdata words (frames of one length batched)."""
    out: list = [None] * len(frames)
    by_len: dict[int, list[int]] = {}
    for i, f in enumerate(frames):
        by_len.setdefault(f.shape[0], []).append(i)
    cfg = design.layer.config
    width = design.layer.output_format.width
    for idx in by_len.values():
        batch = np.stack([frames[i] for i in idx])
        if cfg.data_format == "channels_first":
            y = design.layer.forward_int(batch.transpose(0, 2, 1)).transpose(0, 2, 1)
        else:
            y = design.layer.forward_int(batch)
        for j, i in enumerate(idx):
            out[i] = pack_beats(y[j], width)
    return out


class _Frame:
    __slots__ = ("index", "words", "pos", "complete_in", "first_in", "last_out")

    def __init__(self, index, words, first_in):
        self.index, self.words, self.pos = index, words, 0
        self.complete_in, self.first_in, self.last_out = False, first_in, None


@cocotb.test()
async def soak(dut):
    job = json.loads(Path(os.environ["TCONV_TB_JOB"]).read_text())
    soak_job = job.get("soak", {})
    design = GeneratedDesign.load(job["design"])
    with np.load(job["vectors"]) as v:
        inputs, lengths = v["inputs"], [int(n) for n in v["lengths"]]
    starts = np.concatenate([[0], np.cumsum(lengths)])
    frames = [inputs[starts[i]:starts[i + 1]] for i in range(len(lengths))]
    n_frames = len(frames)
    in_words = [design.pack_inputs(f) for f in frames]
    expected = _expected_words(design, frames)
    out_lengths = [len(w) for w in expected]
    rng = random.Random(job.get("seed", 0))
    wall = time.monotonic()

    # Phases: consecutive runs of frames, each with its own source/sink patterns.
    phases = [tuple(p) for p in soak_job.get("phases", PHASES)]
    phase_of = [min(i * len(phases) // max(n_frames, 1), len(phases) - 1) for i in range(n_frames)]
    # Resets: frames (spread out, of the right shape) whose input or output is cut by rst.
    plan: dict[int, tuple[str, int]] = {}
    want = soak_job.get("resets", {})
    for kind, ok in (("input", lambda i: lengths[i] >= 2), ("output", lambda i: out_lengths[i] >= 2)):
        candidates = [i for i in range(2, n_frames - 2) if ok(i) and not any(abs(i - j) < 3 for j in plan)]
        rng.shuffle(candidates)
        for i in candidates:
            if sum(1 for k, _ in plan.values() if k == kind) >= int(want.get(kind, 0)):
                break
            if any(abs(i - j) < 3 for j in plan):
                continue
            limit = lengths[i] if kind == "input" else out_lengths[i]
            plan[i] = (kind, rng.randint(1, limit - 1))

    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    s_valid, s_data, s_last, m_ready = dut.s_axis_tvalid, dut.s_axis_tdata, dut.s_axis_tlast, dut.m_axis_tready
    s_ready, m_valid, m_data, m_last = dut.s_axis_tready, dut.m_axis_tvalid, dut.m_axis_tdata, dut.m_axis_tlast
    dut.rst.value = 1
    s_valid.value = 0
    s_data.value = 0
    s_last.value = 0
    m_ready.value = 0
    for _ in range(4):
        await RisingEdge(dut.clk)
    dut.rst.value = 0

    stats = {"beats_in": 0, "beats_out": 0, "extra_beats": 0, "frames_checked": 0, "frames_empty_output": 0,
             "frames_dropped_by_reset": 0, "frames_cut_on_input": 0, "beats_dropped_by_reset": 0,
             "resets_mid_input": 0, "resets_mid_output": 0, "reset_cycles": 0, "longest_ready_low": 0,
             "longest_input_wait": 0, "expected_beats_out": 0, "sink_stall_cycles": 0, "input_wait_cycles": 0,
             "source_idle_cycles": 0}
    mismatches: list[dict] = []
    cycles_per_frame: list = [None] * n_frames

    def fail(problem: dict):
        if len(mismatches) < 20:
            mismatches.append(problem)

    cycle = 0
    frame_i, beat_i = 0, 0            # frame being sent, beats of it accepted
    presenting, cur_word, cur_last = False, 0, False
    ready_now = False
    reset_left = 0
    fresh = False                     # after a reset, until the first step is accepted
    inflight: deque[_Frame] = deque()
    phase_idx = -1
    src_pause = sink_pause = None
    last_progress = 0
    ready_low_run = wait_run = 0
    held = None                       # (data, last) of an output beat offered and not taken
    watchdog = int(soak_job.get("watchdog", 20000))
    phase_stats = [{"source": p[0], "sink": p[1], "frames": 0, "beats_in": 0, "beats_out": 0, "cycles": 0}
                   for p in phases]
    drain = None                      # cycles left of the final idle check

    def drop_everything():
        nonlocal frame_i, beat_i, presenting
        for fr in inflight:
            stats["frames_dropped_by_reset"] += 1
            stats["beats_dropped_by_reset"] += len(fr.words) - fr.pos
            stats["expected_beats_out"] += fr.pos      # its beats sent before the reset were checked
        inflight.clear()
        if beat_i > 0:                                 # the source abandons the frame it was sending
            stats["frames_cut_on_input"] += 1
            frame_i += 1
            beat_i = 0
        presenting = False

    def replan():
        """A planned reset whose frame went by untouched (cut by an earlier reset) moves to a later frame."""
        head = inflight[0].index if inflight else frame_i
        for i, (kind, _) in list(plan.items()):
            if (kind == "input" and i < frame_i) or (kind == "output" and i < head):
                del plan[i]
                sizes = lengths if kind == "input" else out_lengths
                for k in range(frame_i + 1, n_frames - 1):
                    if k not in plan and sizes[k] >= 2:
                        plan[k] = (kind, rng.randint(1, sizes[k] - 1))
                        break

    def retire_done():
        """Head frames whose input is complete and whose every beat went out are done
        (frames with L_out = 0 as soon as their input is complete)."""
        while inflight and inflight[0].complete_in and inflight[0].pos >= len(inflight[0].words):
            fr = inflight.popleft()
            if fr.words:
                stats["frames_checked"] += 1
                stats["expected_beats_out"] += len(fr.words)
                cycles_per_frame[fr.index] = fr.last_out - fr.first_in + 1
            else:
                stats["frames_empty_output"] += 1

    while True:
        await RisingEdge(dut.clk)
        cycle += 1
        cur_phase = phase_of[min(frame_i, n_frames - 1)] if n_frames else 0
        if cur_phase != phase_idx:
            phase_idx = cur_phase
            src_pause = pause_pattern(phases[phase_idx][0], rng)
            sink_pause = pause_pattern(phases[phase_idx][1], rng)
        phase_stats[phase_idx]["cycles"] += 1

        if reset_left > 0:                             # in reset: nothing is sampled
            stats["reset_cycles"] += 1
            reset_left -= 1
            if reset_left == 0:
                dut.rst.value = 0
                fresh = True
                held = None
            m_ready.value = ready_now = rng.random() < 0.5
            continue

        # ---- sample the cycle that just ended ----
        sr, mv = s_ready.value, m_valid.value
        if not (sr.is_resolvable and mv.is_resolvable):
            fail({"cycle": cycle, "problem": f"s_axis_tready={sr} m_axis_tvalid={mv}: X/Z out of reset"})
            break
        in_hs = presenting and int(sr)
        mv = int(mv)
        out_hs = mv and ready_now
        if mv:
            md, ml = m_data.value, m_last.value
            if not (md.is_resolvable and ml.is_resolvable):
                fail({"cycle": cycle, "problem": f"m_axis_tdata/tlast X/Z while m_axis_tvalid: {md}"})
                break
            md, ml = int(md), int(ml)
            if held is not None and held != (md, ml):
                fail({"cycle": cycle, "problem": "m_axis_tdata/tlast changed while tvalid && !tready",
                      "before": list(held), "after": [md, ml]})
            if fresh:
                fail({"cycle": cycle, "problem": "output beat after a reset before any input step"})
        elif held is not None:
            fail({"cycle": cycle, "problem": "m_axis_tvalid withdrawn before the handshake"})
        held = (md, ml) if mv and not ready_now else None
        if mv and not ready_now:
            stats["sink_stall_cycles"] += 1        # a beat offered, the sink not ready
        if presenting and not int(sr):
            stats["input_wait_cycles"] += 1        # a step offered, the layer not ready
        elif not presenting and frame_i < n_frames:
            stats["source_idle_cycles"] += 1       # the source pausing between steps

        if in_hs:
            stats["beats_in"] += 1
            phase_stats[phase_idx]["beats_in"] += 1
            last_progress = cycle
            fresh = False
            if beat_i == 0:
                inflight.append(_Frame(frame_i, expected[frame_i], cycle))
                phase_stats[phase_idx]["frames"] += 1
            beat_i += 1
            presenting = False
            if cur_last:
                inflight[-1].complete_in = True
                frame_i += 1
                beat_i = 0
        if presenting and not int(sr):
            wait_run += 1
            stats["longest_input_wait"] = max(stats["longest_input_wait"], wait_run)
        else:
            wait_run = 0
        if out_hs:
            stats["beats_out"] += 1
            phase_stats[phase_idx]["beats_out"] += 1
            last_progress = cycle
            retire_done()
            if not inflight or inflight[0].pos >= len(inflight[0].words):
                stats["extra_beats"] += 1
                fail({"cycle": cycle, "problem": "output beat with no frame pending (duplicated or stale)",
                      "word": md})
            else:
                fr = inflight[0]
                want_word, want_last = fr.words[fr.pos], fr.pos == len(fr.words) - 1
                if md != want_word or bool(ml) != want_last:
                    fail({"frame": fr.index, "step": fr.pos, "expected": want_word, "got": md,
                          "expected_tlast": want_last, "got_tlast": bool(ml), "cycle": cycle})
                fr.pos += 1
                fr.last_out = cycle
        retire_done()
        if not ready_now:
            ready_low_run += 1
            stats["longest_ready_low"] = max(stats["longest_ready_low"], ready_low_run)
        else:
            ready_low_run = 0
        if mismatches and len(mismatches) >= 20:
            break
        if cycle - last_progress > watchdog:
            fail({"cycle": cycle, "problem": f"no handshake for {watchdog} cycles (deadlock?)",
                  "frame": frame_i, "inflight": [fr.index for fr in inflight]})
            break

        # ---- planned resets: in the middle of a frame on either port ----
        if plan and (in_hs or out_hs):
            replan()
        trigger = None
        if frame_i in plan and plan[frame_i][0] == "input" and beat_i >= plan[frame_i][1]:
            trigger = "input"                          # 1..L-1 of its steps accepted, not its last
        elif inflight and inflight[0].index in plan and plan[inflight[0].index][0] == "output" \
                and plan[inflight[0].index][1] <= inflight[0].pos < len(inflight[0].words):
            trigger = "output"                         # 1..L_out-1 of its beats sent, not its last
        if trigger:
            del plan[frame_i if trigger == "input" else inflight[0].index]
            stats["resets_mid_" + trigger] += 1
            drop_everything()
            reset_left = rng.randint(1, 3)
            dut.rst.value = 1
            s_valid.value = 0
            held = None
            continue

        # ---- drive the next cycle ----
        if drain is None and frame_i >= n_frames and not inflight:
            drain = 50                                 # everything done: nothing more may come out
        if drain is not None:
            if drain == 0:
                break
            drain -= 1
            s_valid.value = 0
            m_ready.value = ready_now = True
            continue
        if not presenting and frame_i < n_frames and not next(src_pause):
            cur_word = in_words[frame_i][beat_i]
            cur_last = beat_i == lengths[frame_i] - 1
            s_data.value = cur_word
            s_last.value = int(cur_last)
            s_valid.value = 1
            presenting = True
        elif not presenting:
            s_valid.value = 0
        m_ready.value = ready_now = not next(sink_pause)

    stats["expected_beats_out"] += sum(len(fr.words) for fr in inflight)  # frames never finished
    seconds = time.monotonic() - wall
    result = {
        "frames": n_frames, "beats_in": stats["beats_in"], "beats_out": stats["beats_out"],
        "expected_beats_out": stats["expected_beats_out"], "extra_beats": stats["extra_beats"],
        "mismatches": mismatches, "cycles": cycles_per_frame, "lengths": lengths, "total_cycles": cycle,
        "soak": {**{k: v for k, v in stats.items() if k not in ("beats_in", "beats_out", "extra_beats",
                                                                 "expected_beats_out")},
                 "frames_length_1": sum(1 for n in lengths if n == 1),
                 "kinds": {k: soak_job.get("kinds", []).count(k) for k in KINDS},
                 "resets_planned_not_reached": len(plan), "phases": phase_stats,
                 "wall_seconds": round(seconds, 2), "cycles_per_second": round(cycle / max(seconds, 1e-9))},
    }
    Path(job["results"]).write_text(json.dumps(result, indent=1))

    assert not mismatches, f"soak failed: {mismatches[0]}"
    assert stats["beats_out"] == stats["expected_beats_out"], \
        f"{stats['beats_out']} output beats, {stats['expected_beats_out']} expected"
    assert frame_i >= n_frames, f"only {frame_i} of {n_frames} frames were sent"
