"""The MAC array's schedule: how one layer's work maps onto ``pe_count`` PEs, and its timing.

Pure python, no Amaranth: the RTL (`tconv.hw.layer`) takes every parameter of
its structure from a `Schedule`, the manifest quotes it and the tests check the
RTL's cycle counts against :meth:`Schedule.frame_cycles`. docs/architecture.md
explains the names.

Mapping
-------
The ``pe_count`` PEs form ``groups`` groups of ``lanes`` PEs. A group multiplies
one *chunk* of ``lanes`` input channels of the current input step by the
matching weights of one (tap, filter) pair per cycle and adds the products in a
pipelined adder tree. The groups are a ``filter_groups`` x ``tap_groups`` grid:
group ``(gf, gk)`` owns filters ``f = gf + filter_groups * fl`` and taps
``k = gk + tap_groups * kl``. Within a step it walks ``kl`` (outer), ``fl``,
then the channel chunk ``c`` (inner), one *item* per cycle, so an input step
takes ``cycles_per_step = taps_per_group * filters_per_group * chunks`` cycles
with every lane busy whenever the layer's sizes divide evenly.

Positions
---------
Output positions are counted *uncropped* (``i * strides + k * dilation_rate``
for step ``i`` and tap ``k``) in one global coordinate that runs on across
frames: a frame starts at its ``base`` and the next frame's base is this frame's
``base + (L - 1) * strides + tail_span``. Positions live in ``slots`` accumulator
slots (position modulo ``slots``) until the emitter has read them out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tconv.model import geometry

from .ram import LUT_RAM_DEPTH

__all__ = ["Schedule", "next_pow2", "MAX_PE_COUNT", "check_pe_count", "pipeline_latencies", "postprocess_stages", "LUT_ROM_WORDS", "WIDE_GROUP_LANES",
           "plan_mapping", "UTILIZATION_TARGET"]

#: Largest ``array.pe_count`` tconv builds or accepts in a manifest.
MAX_PE_COUNT = 65536

#: Steady-state MAC utilization below which `tconv generate` notes what the layer
#: reaches and which pe_count would do better (`Schedule.utilization_note`).
UTILIZATION_TARGET = 0.95


def check_pe_count(pe_count, where: str = "array.pe_count") -> int:
    """``pe_count`` if it is a power of two from 1 to `MAX_PE_COUNT`, else a ValueError naming ``where``."""
    if isinstance(pe_count, bool) or not isinstance(pe_count, int) or not 1 <= pe_count <= MAX_PE_COUNT \
            or pe_count & (pe_count - 1):
        raise ValueError(f"{where} must be a power of two from 1 to {MAX_PE_COUNT} (1, 2, 4, ... 64 ...), "
                         f"got {pe_count!r}")
    return pe_count


def next_pow2(n: int) -> int:
    """Smallest power of two >= ``n`` (``n >= 1``)."""
    return 1 << (max(int(n), 1) - 1).bit_length()


def _log2(n: int) -> int:
    return (n - 1).bit_length()


def tree_stages(operands: int) -> int:
    """Register stages of an adder tree over ``operands`` inputs (every level registered)."""
    return _log2(operands)


#: Weight ROMs of at most this many words are built from LUTs (one LUT4 per
#: bit), with a registered output that serves as the multipliers' operand
#: register; larger ones are block RAM, followed by an operand register.
LUT_ROM_WORDS = 16


@dataclass(frozen=True)
class Latencies:
    """Pipeline depths in cycles (see docs/architecture.md, "Pipeline").

    Attributes
    ----------
    issue_to_write : int
        From the cycle an item is issued to the cycle its sum is written into
        its scatter bank (the write lands at the end of that cycle).
    operand, product : int
        Registers in front of and behind each multiplier.
    tree : int
        Register stages of a group's adder tree.
    merge : int
        Register stages that add the tap-group partials and the bias.
    bank_read : int
        Fabric registers behind a scatter bank's registered read data before the
        merge: 1 when the banks are block RAM (more than ``LUT_RAM_DEPTH`` words), else 0.
    emit_to_out : int
        From the cycle the emitter reads the last row of a position to the
        cycle its output beat can be taken on ``m_axis``.
    """

    issue_to_write: int
    operand: int
    product: int
    tree: int
    chunk: int
    merge: int
    emit_to_out: int
    bank_read: int = 0


#: From this many PEs on, each product passes one more register (in the fabric)
#: before the adder tree, and each operand one more before the multiplier: the DSP
#: blocks then span the whole chip (128 of the LFE5U-85F's 156), and a DSP's output
#: otherwise crosses it to its first adder, a weight ROM's output to its DSP blocks.
WIDE_ARRAY_PES = 128
#: From this many lanes per group on, too: a group's DSP blocks then span a long stretch
#: of a DSP row, and a product's route to its first adder limited the 64-PE layer.
WIDE_GROUP_LANES = 16


def postprocess_stages(activation: str) -> int:
    """Register stages of `tconv.hw.postprocess.PostProcess` for ``activation``: rounding and
    overflow (2), behind an activation stage (1) for every activation but ``linear``, whose
    activation is the identity and gets no register."""
    return 2 if activation == "linear" else 3


def pipeline_latencies(lanes: int, chunks: int, tap_groups: int, rom_words: int,
                       pe_count: int = 64, activation: str = "linear", bank_words: int = 0) -> Latencies:
    tree = tree_stages(lanes)
    chunk = 1 if chunks > 1 else 0
    luts = rom_words <= LUT_ROM_WORDS
    # Two registers in front of each multiplier (the last one inside the DSP block), three
    # on wide arrays; one behind it (the DSP's output register), two on wide arrays or
    # groups. On a wide array a weight ROM's output register otherwise drove its DSP
    # blocks' inputs across the chip (4.5 ns of routing at 128 PEs).
    wide = pe_count >= WIDE_ARRAY_PES
    operand, product = 2 + wide, 1 + (wide or lanes >= WIDE_GROUP_LANES)
    # block-RAM weight ROM read (1, none for a LUT ROM), operand registers,
    # product registers, tree, chunk accumulator, the scatter bank's add (its
    # sum is registered before the write). At least 5: the scatter read is
    # issued four cycles before the write (ScatterBank.LEAD) from a registered
    # address, and the frame descriptor's path to the emitter needs at least three.
    issue_to_write = max((0 if luts else 1) + operand + product + tree + chunk + 1, 5)
    merge = tree_stages(tap_groups + 1)  # tap-group partials + bias
    # A block-RAM bank's read data passes a fabric register before the merge: from the
    # RAM's output register (slow clock-to-out, in an EBR row) straight into the merge's
    # mask and carry chain was the 64-PE layer's speed-6 critical path.
    bank_read = int(bank_words > LUT_RAM_DEPTH)
    # read (1), read-data register (1), bank_read, merge, activation (1; none for linear),
    # rounding (1), overflow (1), the output FIFO's output register (1: m_axis
    # comes from flip-flops)
    emit_to_out = 2 + bank_read + merge + postprocess_stages(activation) + 1
    return Latencies(issue_to_write, operand, product, tree, chunk, merge, emit_to_out, bank_read)


def _splits(n: int, most: int) -> list[tuple[int, int]]:
    """``(parts, per_part)`` for every distinct ``per_part = ceil(n / parts)``, ``parts <= most``,
    each with the fewest parts that give it."""
    out = {}
    for parts in range(1, min(n, most) + 1):
        out.setdefault(-(-n // parts), parts)
    return [(parts, per) for per, parts in out.items()]


def plan_mapping(in_channels: int, filters: int, kernel_size: int, strides: int,
                 pe_count: int) -> tuple[int, int, int, int]:
    """``(lanes, filter_groups, tap_groups, cycles_per_step)`` of the fastest mapping.

    Every count is any integer (not only a power of two) with
    ``lanes * filter_groups * tap_groups <= pe_count``; ``lanes`` is the
    smallest that gives its chunk count, so the groups get every PE left.
    The key is the steady-state cycles per step, ``max(T, strides *
    filters_per_group)`` (the emitter spends ``filters_per_group`` cycles on each
    of a step's ``strides`` positions), then ``T``; ties keep fewer chunks (wider
    groups: fewer banks), fewer tap groups (fewer merges), fewer filter rows per
    group (faster emission) and fewer PEs.
    """
    C, F, K, P = in_channels, filters, kernel_size, pe_count
    best = None
    for chunks, lanes in _splits(C, C):
        if lanes > P:
            continue
        groups = P // lanes
        for gf, fg in _splits(F, groups):
            for gk, kg in _splits(K, groups // gf):
                t = kg * fg * chunks
                key = (max(t, strides * fg), t, chunks, gk, fg, lanes * gf * gk)
                if best is None or key < best[0]:
                    best = (key, lanes, gf, gk, t)
    _, lanes, gf, gk, t = best
    return lanes, gf, gk, t


@dataclass(frozen=True)
class Schedule:
    """How one ``Conv1DTranspose`` layer runs on a ``pe_count``-PE array.

    Build it with :meth:`plan`. All attributes are plain ints (or the layer's
    strings), derived once.

    Attributes
    ----------
    lanes : int
        PEs per group, any count up to ``pe_count`` (`plan_mapping`).
    groups : int
        ``filter_groups * tap_groups`` (at most ``pe_count // lanes``).
    chunks : int
        Channel chunks per (tap, filter) item, ``ceil(in_channels / lanes)``.
    filters_per_group, taps_per_group : int
        ``ceil(filters / filter_groups)``, ``ceil(kernel_size / tap_groups)``.
    cycles_per_step : int
        Array cycles per input step, ``taps_per_group * filters_per_group * chunks``.
    slots : int
        Output positions each scatter bank holds (power of two).
    tail_span : int
        Positions a frame occupies beyond its last step's position.
    revisit_steps, revisit_taps : int
        Step ``i - revisit_steps`` with tap ``k + revisit_taps`` (the same tap
        group) reaches the same position as step ``i`` with tap ``k``; a (step,
        tap) is the first touch of its position in its bank when no such earlier
        pair exists.
    """

    in_channels: int
    filters: int
    kernel_size: int
    strides: int
    dilation_rate: int
    padding: str
    output_padding: int | None
    pe_count: int
    activation: str = "linear"
    lanes: int = field(init=False)
    groups: int = field(init=False)
    filter_groups: int = field(init=False)
    tap_groups: int = field(init=False)
    chunks: int = field(init=False)
    filters_per_group: int = field(init=False)
    taps_per_group: int = field(init=False)
    cycles_per_step: int = field(init=False)
    keff: int = field(init=False)
    crop_left: int = field(init=False)
    out_pad: int = field(init=False)
    tail_span: int = field(init=False)
    revisit_steps: int = field(init=False)
    revisit_taps: int = field(init=False)
    slots: int = field(init=False)
    frame_queue_depth: int = field(init=False)
    out_fifo_depth: int = field(init=False)
    latency: Latencies = field(init=False)

    # ------------------------------------------------------------- planning
    @classmethod
    def plan(cls, config, pe_count: int = 64) -> Schedule:
        """The schedule of ``config`` (a `tconv.model.LayerConfig` or anything
        with its attributes, ``in_channels`` set) on ``pe_count`` PEs.

        Raises
        ------
        ValueError
            If ``pe_count`` is not a power of two >= 1 or ``in_channels`` is unset.
        """
        check_pe_count(pe_count)
        if not getattr(config, "in_channels", None):
            raise ValueError("layer.in_channels must be a positive integer to plan the hardware")
        return cls.of_config(config, pe_count)

    @classmethod
    def of_config(cls, config, pe_count: int) -> Schedule:
        """The schedule of ``config`` on ``pe_count`` PEs, any count (`plan` without its checks:
        a chain's stages take PE counts that are not powers of two)."""
        return cls(in_channels=config.in_channels, filters=config.filters,
                   kernel_size=config.kernel_size, strides=config.strides,
                   dilation_rate=config.dilation_rate, padding=config.padding.lower(),
                   output_padding=config.output_padding, pe_count=pe_count,
                   activation=getattr(config, "activation", None) or "linear")

    def __post_init__(self):
        s = object.__setattr__
        C, F, K = self.in_channels, self.filters, self.kernel_size
        st, d = self.strides, self.dilation_rate
        lanes, gf, gk, t = plan_mapping(C, F, K, st, self.pe_count)
        chunks = -(-C // lanes)
        groups = gf * gk
        s(self, "lanes", lanes)
        s(self, "groups", groups)
        s(self, "filter_groups", gf)
        s(self, "tap_groups", gk)
        s(self, "chunks", chunks)
        s(self, "filters_per_group", -(-F // gf))
        s(self, "taps_per_group", -(-K // gk))
        s(self, "cycles_per_step", t)
        keff = geometry.effective_kernel(K, d)
        crop = geometry.crop_left(K, st, self.padding, self.output_padding, d)
        # output_length(L) == (L - 1) * strides + out_pad for every L >= 1
        out_pad = geometry.output_length(1, K, st, self.padding, self.output_padding, d)
        s(self, "keff", keff)
        s(self, "crop_left", crop)
        s(self, "out_pad", out_pad)
        s(self, "tail_span", max(keff, crop + out_pad))
        # Step i - j with tap k + j*strides/dilation_rate reaches the same position
        # as (i, k); a bank only sees its own tap group, so j must also move the
        # tap by a multiple of tap_groups.
        j0 = d // math.gcd(st, d)
        dk = st * j0 // d
        per_group = gk // math.gcd(dk, gk)
        s(self, "revisit_steps", j0 * per_group)
        s(self, "revisit_taps", dk * per_group)
        fg = self.filters_per_group

        def timing(bank_words):  # (tap groups beyond kernel_size have no taps and are not built)
            s(self, "latency", pipeline_latencies(lanes, chunks, min(gk, K), t, self.pe_count, self.activation,
                                                  bank_words))
            # (+ 1: a credit returns to the emitter a cycle after the sink takes its beat)
            s(self, "out_fifo_depth", next_pow2(-(-(fg + self.latency.emit_to_out + 1) // fg) + 2))

        # The slots are chosen with the timing of the smallest bank they can give, and the
        # timing then follows the banks built (block RAM or not: `Latencies.bank_read`).
        timing(self._least_slots() * fg)
        s(self, "slots", self._choose_slots())
        if self.latency.bank_read != (self.bank_words > LUT_RAM_DEPTH):
            timing(self.bank_words)
        # +3: the issue logic checks the queue's fill one cycle late and keeps one entry spare
        s(self, "frame_queue_depth", next_pow2((self.slots - keff) // self.tail_span + 3))

    def _least_slots(self) -> int:
        """The fewest slots a bank may have: a step's writes (``keff`` positions) and the
        previous frame's tail clear of each other."""
        return next_pow2(self.tail_span + self.keff + self.strides + 1)

    def _choose_slots(self) -> int:
        """Smallest power of two that never stalls the array more than a much deeper buffer would.

        The lower bound keeps a step's writes (``keff`` positions) and the
        previous frame's tail clear of each other; above it, the frame model
        decides on a few back-to-back frames and a long one (whose steady state
        shows whether the slots cover the loop from a step's issue through its
        final pointer and the emitter back to the next step's slot check).
        """
        low = self._least_slots()
        candidates = [low << n for n in range(4)]
        probe = [6, 6, 1, 2, 6, 2 * candidates[-1] // self.strides + 16]
        results = []
        for slots in candidates:
            object.__setattr__(self, "slots", slots)
            object.__setattr__(self, "frame_queue_depth", 1 << 30)
            results.append(self.run(probe)["cycles"])
        best_cycles = min(results)
        for slots, cycles in zip(candidates, results):
            if cycles == best_cycles:
                return slots
        raise AssertionError

    # ------------------------------------------------------------ item order
    @property
    def bank_words(self) -> int:
        """Words of one scatter bank: ``slots * filters_per_group``."""
        return self.slots * self.filters_per_group

    @property
    def weights_in_luts(self) -> bool:
        """Whether the weight ROMs are LUTs (short steps) rather than block RAM."""
        return self.cycles_per_step <= LUT_ROM_WORDS

    @property
    def built_groups(self) -> int:
        """Groups with work: a tap group beyond ``kernel_size`` or a filter group beyond
        ``filters`` would only multiply zeros and is not built."""
        return min(self.tap_groups, self.kernel_size) * min(self.filter_groups, self.filters)

    def item(self, t: int) -> tuple[int, int, int]:
        """(kl, fl, c) of the ``t``-th item of a step."""
        c = t % self.chunks
        fl = (t // self.chunks) % self.filters_per_group
        kl = t // (self.chunks * self.filters_per_group)
        return kl, fl, c

    def group_of(self, gf: int, gk: int) -> int:
        """Index of group (gf, gk) in the array."""
        return gk * self.filter_groups + gf

    def work(self, group: int, t: int) -> tuple[int, int, range]:
        """(tap k, filter f, channels) group ``group`` computes at item ``t``.

        k or f may lie beyond the layer (padding work when the sizes do not
        divide evenly); channels are clipped to ``in_channels``.
        """
        gk, gf = divmod(group, self.filter_groups)
        kl, fl, c = self.item(t)
        k = gk + self.tap_groups * kl
        f = gf + self.filter_groups * fl
        lo = c * self.lanes
        return k, f, range(lo, min(lo + self.lanes, self.in_channels))

    def first_touch(self, step: int, k: int) -> bool:
        """Whether step ``step`` (within its frame) with tap ``k`` is the first of its tap group
        to reach its position."""
        return step < self.revisit_steps or k + self.revisit_taps >= self.kernel_size

    def first_touch_tap_level(self, gk: int) -> int:
        """Smallest ``kl`` whose tap ``gk + tap_groups*kl`` is never revisited by a later step."""
        need = self.kernel_size - self.revisit_taps - gk
        return max(0, -(-need // self.tap_groups))

    def taps_in_group(self, gk: int) -> int:
        """Tap levels of tap group ``gk`` that hold a real tap (``k < kernel_size``)."""
        return max(0, -(-(self.kernel_size - gk) // self.tap_groups))

    def final_offset(self, kl: int, last: bool) -> int:
        """Final pointer, relative to the step's position, once tap levels ``0..kl`` are written.

        Every position below it can no longer change: later taps of this step
        reach ``(kl + 1) * tap_groups * dilation_rate`` and beyond, later steps
        reach ``strides`` and beyond. After the last level of a frame's last step
        the whole frame is final (``tail_span``).
        """
        nxt = (kl + 1) * self.tap_groups
        if nxt >= self.kernel_size:
            return self.tail_span if last else self.strides
        reach = nxt * self.dilation_rate
        return reach if last else min(reach, self.strides)

    def output_length(self, length: int) -> int:
        return (length - 1) * self.strides + self.out_pad

    # ----------------------------------------------------------- frame model
    def run(self, lengths, *, first_cycle: int = 0) -> dict:
        """Cycle model of the RTL for frames of ``lengths`` steps sent back to back.

        The source offers every step at once and the sink is always ready;
        the first step's handshake is cycle ``first_cycle``. Returns a dict with
        ``beats`` (cycle of every output handshake, frame after frame),
        ``cycles`` (from the first input handshake to the last output handshake,
        both included) and ``stall_cycles`` (cycles the array waited for free slots).
        It follows the RTL's controller event by event: items issue one per cycle,
        a step starts only when its positions are free (the issue logic sees a
        released slot two cycles after the emitter released it), a tap level's
        writes make positions final for the emitter ``issue_to_write + 1``
        cycles after issue, and the emitter spends ``filters_per_group`` cycles
        on an emitted position, one on a skipped one and two on a frame end
        (the frame descriptor reaches its compares four cycles after the last
        step's first item issues).
        """
        lat = self.latency
        T, s = self.cycles_per_step, self.strides
        per_level = self.filters_per_group * self.chunks
        emitter = _EmitterModel(self)
        events, frames, free_at = emitter.events, emitter.frames, emitter.free_at
        stalls = 0
        t = first_cycle + 1  # first item issues the cycle after the first handshake
        base = 0
        for length in lengths:
            for i in range(length):
                last = i == length - 1
                pstep = base + i * s
                need = pstep + self.keff - self.slots  # positions below must be free
                emitter.advance(need)
                if need > 0:
                    ready = free_at[need - 1] + 1
                    if ready > t:
                        stalls += ready - t
                        t = ready
                if last:
                    frames.append((t + 4, base, pstep + self.crop_left + self.out_pad,
                                   pstep + self.tail_span))
                for kl in range(self.taps_per_group):
                    issue = t + (kl + 1) * per_level - 1
                    events.append((issue + lat.issue_to_write + 1, pstep + self.final_offset(kl, last)))
                t += T
            base = base + (length - 1) * s + self.tail_span
        emitter.advance(base)
        beats = emitter.beats
        total = (beats[-1] - first_cycle + 1) if beats else 0
        # Idle again once the issue side has no item left, the emitter has closed the last
        # frame and every slot is free: a frame whose first handshake comes after this
        # meets an idle array.
        idle = max(t, emitter.t, *free_at.values()) if free_at else max(t, emitter.t)
        return {"beats": beats, "cycles": total, "stall_cycles": stalls, "idle": idle}

    def frame_cycles(self, length: int) -> int:
        """Cycles of one frame of ``length`` steps on an idle array, source and sink never
        stalling: from the first input handshake to the last output handshake, both included.
        (0 for a frame without output.)"""
        return self.run([length])["cycles"]

    def drain_cycles(self, length: int) -> int:
        """Cycles from the last output handshake of an isolated ``length``-step frame until the
        array is idle. With ``same`` cropping the last output can leave while the array still
        computes (and the emitter skips) the cropped tail, so a testbench that isolates frames
        waits this long after a frame's last beat (never less than zero)."""
        res = self.run([length])
        return max(0, res["idle"] - res["beats"][-1]) if res["beats"] else res["idle"]

    def cycle_formula(self) -> tuple[str, int, int, dict]:
        """``frame_cycles`` as a closed form: ``(text, per_step, offset, exceptions)``.

        ``frame_cycles(L) == per_step * L + offset`` for every ``L`` except the
        lengths listed in ``exceptions`` (``{L: cycles}``, only short frames).
        """
        n = max(8, 2 * self.slots // max(self.strides, 1) + 4)
        c = {L: self.frame_cycles(L) for L in range(1, n + 1)}
        per_step = c[n] - c[n - 1]
        offset = c[n] - per_step * n
        exceptions = {L: v for L, v in c.items() if v != per_step * L + offset}
        text = f"{per_step}*L {'-' if offset < 0 else '+'} {abs(offset)}"
        if exceptions:
            text += f" for L >= {max(exceptions) + 1}"
            text += "; " + ", ".join(f"L={L}: {v}" for L, v in sorted(exceptions.items()))
        return text, per_step, offset, exceptions

    def frame_macs(self, length: int) -> int:
        """Every product of a ``length``-step frame (``length x kernel_size x filters x
        in_channels``), the ones ``same`` padding crops away included."""
        return length * self.kernel_size * self.filters * self.in_channels

    def utilization(self, length: int) -> float:
        """Products per PE-cycle of one isolated frame: `frame_macs` / (PEs x cycles). It
        counts cropped products too, so it is at least docs/contract.md's MAC utilization
        (``LayerConfig.useful_macs``), and equal for ``valid`` padding."""
        return self.frame_macs(length) / (self.pe_count * self.frame_cycles(length))

    def steady_utilization(self) -> float:
        """Products per PE-cycle on long frames: ``kernel_size * filters * in_channels /
        (pe_count * per_step)`` with ``per_step`` from `cycle_formula`."""
        per_step = self.cycle_formula()[1]
        return self.kernel_size * self.filters * self.in_channels / (self.pe_count * per_step)

    def utilization_note(self, target: float = UTILIZATION_TARGET) -> str | None:
        """One line when `steady_utilization` is below ``target``: what it reaches, why, and
        the nearest pe_counts (powers of two) that reach ``target``; None otherwise."""
        util = self.steady_utilization()
        if util >= target:
            return None
        K, F, C, P = self.kernel_size, self.filters, self.in_channels, self.pe_count
        macs, per_step = K * F * C, self.cycle_formula()[1]
        if per_step > self.cycles_per_step:
            why = (f"the emitter needs {per_step} cycles per step for {self.strides} output positions "
                   f"of {self.filters_per_group} filter rows, the array only {self.cycles_per_step}")
        else:
            used = self.built_groups * self.lanes
            why = (f"{macs} products per step over {P} PEs need at least {-(-macs // P)} cycles; "
                   f"{C} channels x {F} filters x {K} taps split best as {self.lanes} lanes x "
                   f"{self.filter_groups} filter groups x {self.tap_groups} tap groups ({used} PEs used, "
                   f"{self.chunks} chunks, {self.filters_per_group} filters and {self.taps_per_group} taps "
                   f"per group): {per_step} cycles")
        text = f"the array keeps {100 * util:.1f}% of its {P} multipliers busy on long frames: {why}"
        found = []
        for n in range(1, 17):  # nearest powers of two first, the larger one first on a tie
            for pe in (P << n, P >> n):
                if 1 <= pe <= MAX_PE_COUNT and pe != P:
                    other = Schedule(C, F, K, self.strides, self.dilation_rate, self.padding,
                                     self.output_padding, pe, self.activation)
                    u = other.steady_utilization()
                    if u >= target:
                        found.append(f"pe_count {pe} would reach {100 * u:.1f}%")
            if found:
                break
        return text + ("; " + ", ".join(found) if found else "")

    def summary(self) -> dict:
        """The manifest's ``array`` entries."""
        return {
            "pe_count": self.pe_count,
            "lanes": self.lanes,
            "groups": self.groups,
            "groups_built": self.built_groups,
            "multipliers_built": self.built_groups * self.lanes,
            "filter_groups": self.filter_groups,
            "tap_groups": self.tap_groups,
            "filters_per_group": self.filters_per_group,
            "taps_per_group": self.taps_per_group,
            "channel_chunks": self.chunks,
            "cycles_per_step": self.cycles_per_step,
            "scatter_slots": self.slots,
            "scatter_bank_words": self.bank_words,
            "output_fifo_depth": self.out_fifo_depth,
            "frame_queue_depth": self.frame_queue_depth,
            "issue_to_write_latency": self.latency.issue_to_write,
            "emit_to_output_latency": self.latency.emit_to_out,
        }


class _EmitterModel:
    """The emitter's side of `Schedule.run`: positions emitted, skipped and released, in order.

    ``events`` (cycle from which the final pointer is visible, its value) and
    ``frames`` (descriptor visible cycle, base, emit_end, frame_end) are appended
    by the issue side; ``free_at`` maps a position to the cycle its slot is free
    again (visible from); ``beats`` collects the cycle of every output handshake.
    """

    def __init__(self, schedule: Schedule):
        self.sch = schedule
        self.events, self.frames, self.free_at, self.beats = [], [], {}, []
        self.ep = self.t = self.ev = self.fp = self.fp_t = self.frame = self.base = 0

    def advance(self, limit_pos: int) -> None:
        """Process positions while they are final according to the events known so far."""
        sch = self.sch
        fg = sch.filters_per_group
        while True:
            ep = self.ep
            vis = None
            if self.frame < len(self.frames):
                vis, _, emit_end, frame_end = self.frames[self.frame]
                if ep == frame_end:
                    self.t = max(self.t, vis) + 2
                    self.frame += 1
                    self.base = ep
                    continue
            if ep >= limit_pos:
                return
            while self.fp <= ep:  # first cycle at which fp > ep
                if self.ev >= len(self.events):
                    return
                self.fp_t, self.fp = self.events[self.ev]
                self.ev += 1
            start = max(self.t, self.fp_t)
            head = ep - self.base < sch.crop_left
            tail = vis is not None and ep >= emit_end
            if head or tail:
                self.free_at[ep] = self.t = start + 1
            else:
                last_row = start + fg - 1
                self.free_at[ep] = self.t = last_row + 1
                self.beats.append(last_row + sch.latency.emit_to_out)
            self.ep += 1

