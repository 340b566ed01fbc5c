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
            # partial arrives LEAD cycles after its address
            lead = ScatterBank.LEAD
            prev = ops[cycle - lead] if lead <= cycle < n + lead else None
            ctx.set(dut.partial, prev[2] if prev else 0)
            await ctx.tick()
        for cycle in range(4):
            await ctx.tick()
        for a, v in mem.items():
            ctx.set(dut.em_addr, a)
            await ctx.tick()
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
    """Every word comes out once, in order; a word written to an empty FIFO is
    offered in the same cycle; the writer never holds more than ``depth``."""
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
            assert valid == (bool(queue) or w_en), cycle
            if valid:
                assert data == (queue[0] if queue else word), cycle
            if w_en:
                written.append(word)
                queue.append(word)
            if valid and r_en:
                taken.append(queue.pop(0))
            await ctx.tick()
        assert taken == written[:len(taken)] and len(written) - len(taken) == len(queue)
        assert len(taken) > 500

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
