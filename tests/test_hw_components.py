"""Each hardware block against its own model, in Amaranth's simulator (async testbenches)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from amaranth.sim import Simulator

from tconv.hw.dot import DotProduct
from tconv.hw.postprocess import Activation, Requantize
from tconv.hw.queues import OutputFifo, thermometer
from tconv.hw.scatter import ScatterBank
from tconv.hw.stepbuffer import StepBuffer
from tconv.model import Conv1DTransposeQ, FixedFormat, LayerConfig
from tconv.model.fixedpoint import OVERFLOW_MODES, QUANTIZATION_MODES


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def _py(value):
    """numpy ints (and lists of them) to Python ints for ctx.set."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [int(v) for v in value]
    return int(value)


def _pipeline(dut, inputs: dict, outputs: list, latency: int, n: int) -> dict:
    """Drive ``inputs`` (name -> list of n values) one per cycle; collect ``outputs``
    ``latency`` cycles later. Returns name -> list of n values."""
    got = {name: [] for name in outputs}

    async def bench(ctx):
        for cycle in range(n + latency):
            if cycle < n:
                for name, values in inputs.items():
                    ctx.set(getattr(dut, name), _py(values[cycle]))
            await ctx.tick()
            if cycle + 1 >= latency and len(got[outputs[0]]) < n:
                for name in outputs:
                    got[name].append(ctx.get(getattr(dut, name)))

    _run(dut, bench)
    return got


def _edge_values(rng, width: int, shift: int, n: int) -> np.ndarray:
    """Random codes of a signed ``width``-bit accumulator, with ties and extremes for ``shift``."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    vals = list(rng.integers(lo, hi, n, endpoint=True))
    vals += [lo, hi, 0, -1, 1]
    if 0 < shift < width:
        half = 1 << (shift - 1)
        for base in rng.integers(lo >> shift, hi >> shift, 12, endpoint=True):
            for delta in (half - 1, half, half + 1):
                v = (int(base) << shift) + delta
                if lo <= v <= hi:
                    vals.append(v)
    return np.array(vals, dtype=np.int64)


REQUANT_CASES = [
    # (output format, input width, input frac)
    *[(f"fixed<6,2,{q},{o}>", 14, 7) for q, o in itertools.product(QUANTIZATION_MODES, OVERFLOW_MODES)],
    *[(f"ufixed<5,2,{q},{o}>", 12, 6) for q in ("TRN", "RND_CONV") for o in OVERFLOW_MODES],
    ("fixed<10,9,RND,SAT>", 8, 3),        # no dropped bits: left shift by 2
    ("fixed<4,1,RND_INF,SAT_SYM>", 6, 12),   # shift 9 > input width 6
    ("fixed<5,8,RND_ZERO,WRAP>", 12, 0),   # negative output frac
    ("fixed<16,6,RND,SAT>", 20, 10),
    # exactly one dropped bit (nothing lies above half), every rounding mode
    *[(f"fixed<8,3,{q},SAT>", 10, 6) for q in QUANTIZATION_MODES],
]


@pytest.mark.parametrize("fmt,width,frac", REQUANT_CASES)
def test_requantize_matches_model(fmt, width, frac):
    f = FixedFormat.parse(fmt)
    dut = Requantize(f, in_width=width, in_frac=frac)
    rng = np.random.default_rng(width * 100 + frac)
    vals = _edge_values(rng, width, frac - f.frac, 60)
    got = _pipeline(dut, {"i": list(vals)}, ["o"], 2, len(vals))["o"]
    want = f.requantize(vals, frac) & ((1 << f.width) - 1)
    np.testing.assert_array_equal(np.array(got, dtype=np.int64), want)


@pytest.mark.parametrize("act", ["linear", "relu", "relu6", "leaky_relu"])
@pytest.mark.parametrize("formats", [("fixed<6,2>", "fixed<5,1>", "fixed<8,3>"),
                                     ("fixed<6,8>", "fixed<5,6>", "fixed<8,12>"),  # Fa < 0
                                     ("ufixed<6,2>", "fixed<5,3>", "fixed<8,3>")])
def test_activation_matches_model(act, formats):
    cfg = LayerConfig(filters=1, kernel_size=2, in_channels=3, activation=act)
    q = Conv1DTransposeQ(cfg, np.zeros((2, 1, 3)), np.zeros(1), input_format=formats[0],
                         weight_format=formats[1], bias_format=formats[2], output_format="fixed<8,3>")
    af = q.accumulator_format
    dut = Activation(act, acc_width=af.width, acc_frac=af.frac)
    assert dut.out_frac == q.activation_frac
    rng = np.random.default_rng(7)
    vals = _edge_values(rng, af.width, 0, 80)
    six = 6 << af.frac if af.frac >= 0 else 6 >> -af.frac  # 6 in accumulator codes
    vals = np.concatenate([vals, [six - 1, six, six + 1]])
    vals = vals[(vals >= af.min_code) & (vals <= af.max_code)]
    got = _pipeline(dut, {"i": list(vals)}, ["o"], 1, len(vals))["o"]
    np.testing.assert_array_equal(np.array(got, dtype=np.int64), q.activate(vals))


@pytest.mark.parametrize("lanes,xs,ws", [(1, signed(6), signed(5)), (4, unsigned(6), signed(5)),
                                         (8, signed(8), signed(8)), (16, unsigned(3), unsigned(4))])
def test_dot_product_matches_model(lanes, xs, ws):
    dut = DotProduct(lanes, x_shape=xs, w_shape=ws, out_width=xs.width + ws.width + 5)
    rng = np.random.default_rng(lanes)

    def codes(shape, n):
        lo = -(1 << (shape.width - 1)) if shape.signed else 0
        hi = (1 << (shape.width - 1)) - 1 if shape.signed else (1 << shape.width) - 1
        return rng.integers(lo, hi, (n, lanes), endpoint=True)

    n = 40
    x, w = codes(xs, n), codes(ws, n)
    x[0], w[0] = x.min(), w.min()  # extreme products
    got = _pipeline(dut, {"x": [list(map(int, r)) for r in x], "w": [list(map(int, r)) for r in w]},
                    ["o"], dut.latency, n)["o"]
    np.testing.assert_array_equal(np.array(got), DotProduct.model(x, w))


def test_scatter_bank_read_modify_write_with_forwarding():
    """Random updates, many back to back on one word, with bubbles; garbage initial contents."""
    depth, width = 8, 12
    rng = np.random.default_rng(3)
    init = [int(v) for v in rng.integers(-2000, 2000, depth)]
    dut = ScatterBank(depth=depth, width=width, init=init)
    n = 400
    ops = []
    written = set()
    for _ in range(n):
        if rng.random() < 0.2:
            ops.append(None)
            continue
        addr = int(rng.integers(0, 3)) if rng.random() < 0.7 else int(rng.integers(0, depth))
        first = addr not in written or rng.random() < 0.1
        written.add(addr)
        ops.append((addr, first, int(rng.integers(-50, 50))))
    # Sequential model.
    mem = {}
    for op in ops:
        if op:
            a, first, v = op
            mem[a] = (0 if first else mem[a]) + v

    async def bench(ctx):
        for cycle in range(n + ScatterBank.LEAD):
            op = ops[cycle] if cycle < n else None
            ctx.set(dut.valid, op is not None)
            if op:
                ctx.set(dut.addr, op[0])
                ctx.set(dut.first, op[1])
            # partial arrives LEAD - PARTIAL_LEAD cycles after its address
            lead = ScatterBank.LEAD - ScatterBank.PARTIAL_LEAD
            prev = ops[cycle - lead] if lead <= cycle < n + lead else None
            ctx.set(dut.partial, prev[2] if prev else 0)
            await ctx.tick()
        for _ in range(4):
            await ctx.tick()
        for a, v in mem.items():
            ctx.set(dut.em_addr, a)
            await ctx.tick().repeat(2)  # the read data is registered behind the RAM
            assert ctx.get(dut.em_data) == v, (a, ctx.get(dut.em_data), v)

    _run(dut, bench)


def test_step_buffer_keeps_order_under_random_handshakes():
    dut = StepBuffer(10)
    rng = np.random.default_rng(5)
    sent = [(int(v), int(rng.random() < 0.3)) for v in rng.integers(0, 1024, 80)]
    got = []

    async def bench(ctx):
        i = 0
        offering = False
        for _ in range(600):
            if not offering and i < len(sent) and rng.random() < 0.7:
                offering = True
                ctx.set(dut.i.payload, {"data": sent[i][0], "last": sent[i][1]})
            ctx.set(dut.i.valid, offering)
            consume = rng.random() < 0.5
            ctx.set(dut.consume, consume)
            _, _, ready, valid, step = await ctx.tick().sample(dut.i.ready, dut.valid, dut.step)
            if offering and ready:
                i += 1
                offering = False
            if consume and valid:
                got.append((step.data, step.last))
            if len(got) == len(sent):
                break
        assert got == sent

    _run(dut, bench)


@pytest.mark.parametrize("depth", [1, 2, 4])
@pytest.mark.parametrize("seed", [1, 2])
def test_output_fifo_against_a_queue(depth, seed):
    """Every word comes out once, in order, from the cycle after it was written on
    (``r_valid`` and ``r_data`` are registers); a word taken is replaced in the
    same cycle (one word per cycle); the writer never holds more than ``depth``."""
    dut = OutputFifo(width=8, depth=depth)
    rng = np.random.default_rng(seed)
    written, taken = [], []

    async def bench(ctx):
        queue = []  # words stored at the start of the cycle
        for cycle in range(1500):
            w_en = len(queue) < depth and rng.random() < 0.6
            # Long stalls and bursts of the sink.
            r_en = rng.random() < (0.1 if (cycle // 50) % 3 == 0 else 0.7)
            word = int(rng.integers(0, 256))
            ctx.set(dut.w_en, w_en)
            ctx.set(dut.w_data, word)
            ctx.set(dut.r_en, r_en)
            valid, data = ctx.get(dut.r_valid), ctx.get(dut.r_data)
            assert valid == bool(queue), cycle
            if valid:
                assert data == queue[0], cycle
            if w_en:
                written.append(word)
                queue.append(word)
            if valid and r_en:
                taken.append(queue.pop(0))
            await ctx.tick()
        assert taken == written[:len(taken)] and len(written) - len(taken) == len(queue)
        assert len(taken) > 250  # the test exercised the FIFO (depth 1: a word every other cycle at most)

    _run(dut, bench)


def test_thermometer_counts_up_and_down():
    from amaranth.hdl import Module, Signal
    m = Module()
    inc, dec = Signal(), Signal()
    flags, nxt = thermometer(m, 5, inc, dec, name="n")
    rng = np.random.default_rng(3)

    async def bench(ctx):
        count = 0
        for _ in range(400):
            i = count < 5 and rng.random() < 0.5
            d = count > 0 and rng.random() < 0.5
            ctx.set(inc, i)
            ctx.set(dec, d)
            after = count + i - d
            assert [ctx.get(f) for f in flags] == [int(count > k) for k in range(5)]
            assert [ctx.get(f) for f in nxt] == [int(after > k) for k in range(5)]
            await ctx.tick()
            count = after

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


# ------------------------------------------------------------------ the core's components
# (tconv.hw.layer wires these together; each is checked here on its own.)

def _layer_schedule(seed, pe_count, **kwargs):
    from test_hw_layer import make_layer

    from tconv.hw.check import check_layer
    q = make_layer(seed, **kwargs)
    return q, check_layer(q, pe_count)


COMPONENT_LAYERS = [
    # (layer kwargs, pe_count): one group, several filter rows; filter rows and tap levels;
    # channel chunks (block-RAM weights); tap groups with one item a step; tap and
    # filter groups with a cropped head; dilation
    (dict(filters=3, kernel_size=1, in_channels=4), 4),
    (dict(filters=6, kernel_size=5, strides=3, in_channels=3, padding="same"), 8),
    (dict(filters=4, kernel_size=3, strides=2, in_channels=9), 4),
    (dict(filters=2, kernel_size=4, strides=2, in_channels=2), 16),
    (dict(filters=3, kernel_size=5, strides=3, in_channels=3, padding="same"), 32),
    (dict(filters=5, kernel_size=3, dilation_rate=2, in_channels=2, padding="same"), 2),
]


def test_delay_is_a_register_chain_per_field():
    """`delay` of a plain value and of a struct view: stage j is the input of j cycles
    earlier; only the fields named in ``reset`` are reset."""
    from amaranth.hdl import Module, Signal
    from amaranth.lib import data

    from tconv.hw.pipeline import delay
    layout = data.StructLayout({"valid": 1, "x": signed(5), "v": data.ArrayLayout(3, 2)})
    m = Module()
    plain, tag = Signal(7), Signal(layout)
    plains = delay(m, plain, 3, name="p")
    tags = delay(m, tag, 4, name="t", reset=("valid",))
    assert len(plains) == 4 and len(tags) == 5 and all(isinstance(t, data.View) for t in tags)
    rng = np.random.default_rng(0)
    seq = [(int(rng.integers(0, 128)), int(rng.integers(0, 2)), int(rng.integers(-16, 16)),
            [int(v) for v in rng.integers(0, 8, 2)]) for _ in range(30)]

    async def bench(ctx):
        for n, (p, valid, x, v) in enumerate(seq):
            ctx.set(plain, p)
            ctx.set(tag, {"valid": valid, "x": x, "v": v})
            for j in range(1, 4):
                assert ctx.get(plains[j]) == (seq[n - j][0] if n >= j else 0)
            for j in range(1, 5):
                got = ctx.get(tags[j])
                if n >= j:
                    assert (got.valid, got.x, list(got.v)) == (seq[n - j][1], seq[n - j][2], seq[n - j][3])
                else:
                    assert got.valid == 0
            await ctx.tick()

    _run(m, bench)
    # One register per field and stage, named by the field's path.
    names = {sig.name: sig for view in tags[1:] for sig in view.as_value().parts}
    assert {f"t{f}_s{j}" for f in ("valid", "x", "v0", "v1") for j in range(1, 5)} == set(names)
    assert [names[f"t{f}_s1"].reset_less for f in ("valid", "x", "v0")] == [False, True, True]
    assert [p.name for p in plains[1:]] == ["p_s1", "p_s2", "p_s3"] and plains[1].reset_less


@pytest.mark.parametrize("kwargs,pe_count", COMPONENT_LAYERS)
def test_issue_control_against_the_schedule(kwargs, pe_count):
    """Items issue in `Schedule.item` order, a step starts exactly when its positions
    are free (the released count the frame model uses), and each item's tag (slots,
    first touches, final pointer) and each frame descriptor match `Schedule.run`'s."""
    from tconv.hw.issue import IssueControl, built_tap_groups, position_width, slot_width
    _, sch = _layer_schedule(1, pe_count, **kwargs)
    assert sch.slots == 1 << slot_width(sch)
    dut = IssueControl(sch)
    lengths = [3, 1, 5, 2]
    T, D, PW, AW = sch.cycles_per_step, sch.slots, position_width(sch), slot_width(sch)
    steps = [(i, i == n - 1) for n in lengths for i in range(n)]
    rng = np.random.default_rng(len(kwargs) + pe_count)
    taps = built_tap_groups(sch)
    pushes = []

    async def bench(ctx):
        cur, t, pstep, released, mid = 0, 0, 0, 0, False
        descriptor_due = None
        for cycle in range(40 * T * len(steps)):
            if cur == len(steps):
                if ctx.get(dut.push):  # after a last step of one item
                    assert descriptor_due == cycle
                    pushes.append((ctx.get(dut.descriptor.emit_end), ctx.get(dut.descriptor.frame_end)))
                break
            step_no, last = steps[cur]
            # Release a position of an earlier step now and then (never one still written).
            rel = released < pstep and rng.random() < 0.4
            # The step buffer's `valid` is a register: it starts low and rises in the cycle after.
            ctx.set(dut.step_valid, cycle > 0)
            ctx.set(dut.step_valid_next, 1)
            ctx.set(dut.step_last, last)
            ctx.set(dut.released, rel)
            ctx.set(dut.pop, ctx.get(dut.push))  # the frame queue is emptied at once
            tag = ctx.get(dut.tag)
            consume = ctx.get(dut.consume)
            ctx.set(dut.next_last, steps[cur + 1][1] if consume and cur + 1 < len(steps) else last)
            free_enough = released >= pstep + sch.keff - D
            assert tag.valid == (mid or (cycle > 0 and free_enough)), (cycle, cur, t)
            if ctx.get(dut.push):
                pushes.append((ctx.get(dut.descriptor.emit_end), ctx.get(dut.descriptor.frame_end)))
                assert descriptor_due == cycle
            if tag.valid:
                kl, fl, c = sch.item(t)
                assert (tag.t, tag.c, tag.c_first, tag.c_last) == (t, c, c == 0, c == sch.chunks - 1)
                assert tag.event == (c == sch.chunks - 1 and fl == sch.filters_per_group - 1)
                if tag.event:
                    assert tag.event_fp == (pstep + sch.final_offset(kl, last)) % (1 << PW)
                for i, gk in enumerate(taps):
                    k = gk + sch.tap_groups * kl
                    slot = (pstep + k * sch.dilation_rate) % D
                    assert tag.taps[i].wen == (k < sch.kernel_size)
                    assert tag.taps[i].slot == slot
                    assert tag.taps[i].addr == slot + (fl << AW if sch.filters_per_group > 1 else 0)
                    if k < sch.kernel_size:
                        assert tag.taps[i].first == sch.first_touch(step_no, k)
                if t == 0 and last:
                    descriptor_due = cycle + 1
                assert consume == (t == T - 1)
                mid = t != T - 1
                t = (t + 1) % T
                if t == 0:
                    pstep += sch.tail_span if last else sch.strides
                    cur += 1
            else:
                assert not consume
            released += rel
            await ctx.tick()
        assert cur == len(steps)

    _run(dut, bench)
    # The frame descriptors of Schedule.run: (pstep + crop_left + out_pad, pstep + tail_span).
    want, base = [], 0
    for n in lengths:
        pstep = base + (n - 1) * sch.strides
        want.append((pstep + sch.crop_left + sch.out_pad, pstep + sch.tail_span))
        base = pstep + sch.tail_span
    assert pushes == want


@pytest.mark.parametrize("act", ["linear", "relu"])
@pytest.mark.parametrize("kwargs,pe_count", COMPONENT_LAYERS)
def test_output_row_matches_the_model(kwargs, pe_count, act):
    """Masked bank words plus the filter row's bias, through activation and
    requantization, as `Conv1DTransposeQ.activate` and the output format's requantize."""
    from tconv.hw.issue import row_width
    from tconv.hw.lookup import index_bits
    from tconv.hw.output_row import OutputRow, bias_table
    q, sch = _layer_schedule(2, pe_count, activation=act, **kwargs)
    groups = range(min(sch.filter_groups, sch.filters))
    row_bits = index_bits([bias_table(q, sch, g) for g in groups], row_width(sch))
    gf = len(groups) - 1
    dut = OutputRow(q, sch, gf, row_bits)
    n_taps = dut.words.shape().length
    rng = np.random.default_rng(gf)
    bound = q.sum_bound // n_taps
    words = rng.integers(-bound, bound, (40, n_taps), endpoint=True)
    touched = rng.integers(0, 2, (40, n_taps))
    fls = [fl for fl in rng.integers(0, sch.filters_per_group, 40) if gf + sch.filter_groups * fl < sch.filters]
    n = len(fls)
    bias = bias_table(q, sch, gf)
    acc = np.array([int((words[j] * touched[j]).sum()) + bias[fls[j]] for j in range(n)], dtype=np.int64)
    of = q.output_format
    want = of.requantize(q.activate(acc), q.activation_frac) & ((1 << of.width) - 1)
    got = []

    async def bench(ctx):
        for cycle in range(n + dut.latency + 1):
            j1, j2 = cycle - 1, cycle - 2  # the rows read 1 and 2 cycles ago
            if 0 <= j1 < n:
                ctx.set(dut.fl, sum(((int(fls[j1]) >> b) & 1) << k for k, b in enumerate(row_bits)))
            if 0 <= j2 < n:  # the banks' registered read data and the touched flags
                ctx.set(dut.words, [int(v) for v in words[j2]])
                ctx.set(dut.touched, [int(v) for v in touched[j2]])
            if 0 <= cycle - dut.latency < n:
                got.append(ctx.get(dut.o))
            await ctx.tick()

    _run(dut, bench)
    np.testing.assert_array_equal(np.array(got, dtype=np.int64), want)


@pytest.mark.parametrize("rows", [1, 2, 3])
def test_beat_assembler_against_a_list(rows):
    """Rows in, a beat out with the last row: row r in bits [r*row_width, ...), cut to the width."""
    from tconv.hw.beats import BeatAssembler
    rw, width = 6, 6 * rows - 2
    dut = BeatAssembler(rows=rows, row_width=rw, width=width)
    rng = np.random.default_rng(rows)
    beats = [([int(v) for v in rng.integers(0, 1 << rw, rows)], int(rng.integers(0, 2))) for _ in range(20)]
    got = []

    async def bench(ctx):
        for row_vals, last in beats:
            for r, v in enumerate(row_vals):
                while rng.random() < 0.3:  # gaps between rows
                    ctx.set(dut.valid, 0)
                    ctx.set(dut.row, int(rng.integers(0, 1 << rw)))
                    assert not ctx.get(dut.w_en)
                    await ctx.tick()
                ctx.set(dut.valid, 1)
                ctx.set(dut.row, v)
                ctx.set(dut.last_row, r == rows - 1)
                ctx.set(dut.beat_last, last)
                assert ctx.get(dut.w_en) == (r == rows - 1)
                if r == rows - 1:
                    word = ctx.get(dut.word)
                    got.append((word.data, word.last))
                await ctx.tick()
            ctx.set(dut.valid, 0)

    from amaranth.hdl import Module, Signal
    top = Module()  # with one row the assembler has no register: give the simulation a clock domain
    top.submodules.dut = dut
    tick = Signal()
    top.d.sync += tick.eq(~tick)
    _run(top, bench)
    want = [(sum(v << (r * rw) for r, v in enumerate(vals)) & ((1 << width) - 1), last) for vals, last in beats]
    assert got == want


@pytest.mark.parametrize("kwargs,pe_count", COMPONENT_LAYERS)
def test_emitter_against_a_position_model(kwargs, pe_count):
    """Driven with random final-pointer events and writes, frame descriptors loaded
    as the frame queue loads them, and a sink that stalls: the emitter reads, in order, each output
    position of each frame between its crop_left head and its emit_end (as
    `Schedule.run` sends them) one filter row per cycle and only once final, skips
    the others, pops each descriptor at the frame's end, releases every position,
    flags exactly the banks written at the position, and never holds more than
    out_fifo_depth beats."""
    from tconv.hw.emitter import Emitter
    from tconv.hw.issue import built_tap_groups, position_width, row_width, slot_width
    _, sch = _layer_schedule(3, pe_count, **kwargs)
    D, AW, PW, Fg = sch.slots, slot_width(sch), position_width(sch), sch.filters_per_group
    n_taps = len(built_tap_groups(sch))
    dut = Emitter(sch, row_bits=list(range(row_width(sch))))
    frames, base = [], 0  # (first position, emit_end, frame_end), as in Schedule.run
    for n in [3, 1, 4, 2]:
        pstep = base + (n - 1) * sch.strides
        frames.append((base, pstep + sch.crop_left + sch.out_pad, pstep + sch.tail_span))
        base = pstep + sch.tail_span
    expected = [(p, fl) for first, emit_end, _ in frames
                for p in range(first + sch.crop_left, emit_end) for fl in range(Fg)]
    end = frames[-1][2]
    rng = np.random.default_rng(pe_count + len(kwargs))
    reads, written = [], set()

    async def bench(ctx):
        fp, released_seen, head, head_at, pops = 0, 0, 0, 1, 0
        fifo, outstanding = [], 0  # beats on their way to / in the output FIFO; beats holding a credit
        # The tag written now was the upcoming one in the previous cycle (fp_up: the final
        # pointer once both are written).
        idle = {"valid": 0, "t": 0, "c": 0, "c_first": 1, "c_last": 1, "event": 0, "event_fp": 0,
                "taps": [{"addr": 0, "slot": 0, "first": 1, "wen": 0}] * n_taps}
        tag, fp_up, next_fp = idle, 0, 0
        for cycle in range(60 * (end + 10) * Fg):
            if released_seen == end and pops == len(frames):
                break
            # A final-pointer event with writes below it, never to a slot still in use.
            up = dict(idle, event_fp=int(rng.integers(0, 1 << PW)))
            new_fp = min(fp_up + int(rng.integers(0, 4)), released_seen + D, end)
            if rng.random() < 0.4 and new_fp > fp_up:
                taps = []
                for i in range(n_taps):
                    q = int(rng.integers(fp_up, new_fp))
                    wen = int(rng.random() < 0.7)
                    if wen:
                        written.add((i, q))
                    taps.append({"addr": 0, "slot": q % D, "first": 1, "wen": wen})
                up.update(valid=1, event=1, event_fp=new_fp % (1 << PW), taps=taps)
                fp_up = new_fp
            ctx.set(dut.written, tag)
            ctx.set(dut.upcoming, up)
            have_head = head < len(frames) and cycle >= head_at
            ctx.set(dut.head_valid, have_head)
            if head < len(frames):
                ctx.set(dut.head, {"emit_end": frames[head][1] % (1 << PW),
                                   "frame_end": frames[head][2] % (1 << PW)})
            taken = bool(fifo) and fifo[0] <= cycle and rng.random() < 0.5
            ctx.set(dut.taken, taken)
            out = ctx.get(dut.tag)
            if out.valid:
                p, fl = expected[len(reads)]
                assert p < fp and ctx.get(dut.em_addr) == p % D + (fl << AW if Fg > 1 else 0), cycle
                assert (out.last_row, out.beat_last) == (fl == Fg - 1, p == frames[head][1] - 1)
                assert list(out.touched) == [int((i, p) in written) for i in range(n_taps)], (cycle, p)
                reads.append((p, fl))
                if fl == 0:
                    outstanding += 1
                if fl == Fg - 1:
                    fifo.append(cycle + 3)
            assert outstanding <= sch.out_fifo_depth
            if taken:
                fifo.pop(0)
                outstanding -= 1
            if ctx.get(dut.pop):
                assert have_head and released_seen <= frames[head][2]
                head, head_at, pops = head + 1, cycle + 1, pops + 1
            released_seen += ctx.get(dut.released)
            if tag["event"]:
                fp = next_fp
            tag, next_fp = up, new_fp
            await ctx.tick()
        assert pops == len(frames) and released_seen == end

    _run(dut, bench)
    assert reads == expected
