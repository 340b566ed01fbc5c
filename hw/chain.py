"""Consecutive layers as one streaming design: the PE budget split and the chain's top.

`plan_chain` splits a PE budget over the stages of a `tconv.model.chain.ChainQ`.
Stage ``i`` sees ``rate_i = strides_0 * ... * strides_{i-1}`` of its own input
steps per chain input step (on long frames), so it spends
``per_step_i * rate_i`` cycles per chain input step, where ``per_step_i`` is
the steady cycles per own step of its `Schedule` (the slope of
`Schedule.cycle_formula`, emitter limits included). The chain runs as fast as
its slowest stage (the bottleneck); `plan_chain` picks the arrays (of any PE
count, `tconv.hw.schedule.plan_mapping` shapes) whose sum fits the budget with the
smallest bottleneck, each stage with the fewest PEs that keep it at or below that
bottleneck (PEs that would add nothing are not built). Each stage's estimate is
``max(T, strides * filters_per_group)``, the mapping's own key; the plan then
reports the schedules' exact slopes.

`Conv1DTransposeChainTop` has the flat AXI4-Stream ports of a single layer
(docs/contract.md): ``s_axis`` feeds the first stage's core, each core's output
stream is the next core's input stream (the same AXI4-Stream rules as outside:
`amaranth.lib.stream` valid/ready, ``last`` carried with the data), and the last
core's output is ``m_axis``. Every core is the unchanged
`tconv.hw.layer.Conv1DTransposeCore`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .check import check_layer
from .layer import Conv1DTransposeCore
from .schedule import Schedule, check_pe_count, plan_mapping

__all__ = ["ChainPlan", "Conv1DTransposeChainTop", "plan_chain", "stage_rates"]


def stage_rates(configs) -> list[int]:
    """Input steps of each stage per chain input step on long frames: the product of the strides before it."""
    rates, rate = [], 1
    for cfg in configs:
        rates.append(rate)
        rate *= cfg.strides
    return rates


@functools.lru_cache(maxsize=256)
def _array_options(in_channels: int, filters: int, kernel_size: int, strides: int, budget: int) -> list:
    """``[(estimate, pe_count)]``: for every steady cycles-per-step estimate ``max(T, strides *
    filters_per_group)`` of `plan_mapping` within ``budget`` PEs, the fewest PEs that reach it, fastest first."""
    best: dict[int, int] = {}
    for pes in range(1, budget + 1):
        lanes, gf, gk, t = plan_mapping(in_channels, filters, kernel_size, strides, pes)
        used = lanes * gf * gk  # the mapping may leave PEs of ``pes`` unused
        est = max(t, strides * -(-filters // gf))
        if est not in best or used < best[est]:
            best[est] = used
    return sorted(best.items())


def _stage_schedule(config, pe_count: int) -> Schedule:
    """The stage's schedule on an array of ``pe_count`` PEs: any count, not only a power of two
    (the hardware needs none; only a single layer's ``array.pe_count`` is one by contract)."""
    return Schedule.of_config(config, pe_count)


@dataclass(frozen=True)
class ChainPlan:
    """Every stage's schedule and the chain's throughput.

    Attributes
    ----------
    budget : int
        The PE budget (``--pe-count``).
    schedules : tuple of Schedule
    rates : tuple of int
        `stage_rates`.
    per_step : tuple of int
        Steady cycles per own input step of each stage.
    """

    budget: int
    schedules: tuple
    rates: tuple
    per_step: tuple

    @property
    def chain_step_cycles(self) -> tuple:
        """Cycles each stage spends per chain input step: ``per_step * rate``."""
        return tuple(p * r for p, r in zip(self.per_step, self.rates))

    @property
    def cycles_per_chain_step(self) -> int:
        """Steady cycles per chain input step: the bottleneck stage's."""
        return max(self.chain_step_cycles)

    @property
    def bottleneck(self) -> int:
        """Index of the slowest stage (the first of equals)."""
        return self.chain_step_cycles.index(self.cycles_per_chain_step)

    @property
    def pe_count(self) -> int:
        """PEs of the stages' arrays together."""
        return sum(s.pe_count for s in self.schedules)

    @property
    def multipliers_built(self) -> int:
        return sum(s.built_groups * s.lanes for s in self.schedules)

    def chain_macs_per_step(self) -> int:
        """Products of every stage per chain input step on long frames."""
        return sum(s.kernel_size * s.filters * s.in_channels * r for s, r in zip(self.schedules, self.rates))

    def steady_utilization(self, over: str = "built") -> float:
        """Products per PE-cycle on long frames, over the multipliers built (``over="built"``) or
        over the stages' ``pe_count`` sum (``over="arrays"``)."""
        pes = self.multipliers_built if over == "built" else self.pe_count
        return self.chain_macs_per_step() / (pes * self.cycles_per_chain_step)

    def frame_cycles(self, length: int) -> int:
        """The chain cycle model: cycles of one frame of ``length`` chain input steps on an idle
        chain, source and sink never stalling, first input to last output handshake (both included).

        Stage ``i`` takes its first input when stage ``i - 1`` hands out its first output
        (`Schedule.run`'s first beat) and, fed at least as fast as it works, ends
        `Schedule.frame_cycles` of its own frame length later; when the stage before it is
        slower, it ends one single-step frame's latency after that stage's last output. The
        frame ends when the last stage does (0 when a stage gives no output).
        """
        start, end, n = 0, None, int(length)
        for sch in self.schedules:
            run = sch.run([n])
            if not run["beats"]:
                return 0
            own_end = start + run["cycles"] - 1
            drain = max(sch.frame_cycles(1) - 1, 0)
            end = own_end if end is None else max(own_end, end + drain)
            start += run["beats"][0]
            n = sch.output_length(n)
        return end + 1

    def cycle_formula(self, longest: int = 64) -> tuple[int, int, dict]:
        """`frame_cycles` as ``(per_step, offset, exceptions)``: ``per_step * L + offset`` for frames
        longer than every exception (``{L: cycles}``), checked up to ``longest`` steps."""
        c = {n: self.frame_cycles(n) for n in range(1, longest + 1)}
        per_step = c[longest] - c[longest - 1]
        offset = c[longest] - per_step * longest
        return per_step, offset, {n: v for n, v in c.items() if v != per_step * n + offset}

    def utilization_note(self, target: float = 0.9) -> str | None:
        """One line when the chain keeps fewer than ``target`` of its multipliers busy on long
        frames: which stage is the bottleneck and how far the others are from it; None otherwise."""
        util = self.steady_utilization()
        if util >= target:
            return None
        b = self.bottleneck
        idle = ", ".join(f"stage {i} {100 * c / self.cycles_per_chain_step:.0f}%"
                         for i, c in enumerate(self.chain_step_cycles) if i != b)
        return (f"the chain keeps {100 * util:.1f}% of its {self.multipliers_built} multipliers busy on long frames: "
                f"stage {b} is the bottleneck ({self.chain_step_cycles[b]} cycles per input step on "
                f"{self.schedules[b].pe_count} PEs); the other stages are busy {idle} of that time, and no split of "
                f"the budget of {self.budget} PEs over the array shapes the stages have comes closer (a larger "
                f"budget may)")

    def stage_summary(self, i: int) -> dict:
        """The manifest's ``stages[i].performance`` entries of the chain."""
        return {"input_steps_per_chain_step": self.rates[i], "cycles_per_step": self.per_step[i],
                "cycles_per_chain_step": self.chain_step_cycles[i], "bottleneck": i == self.bottleneck}

    def report(self, names) -> str:
        """A table of the split: per stage PEs, cycles per own step and per chain step."""
        lines = [f"{'stage':<20} {'PEs':>5} {'built':>5} {'cyc/own step':>12} {'steps/chain step':>16} "
                 f"{'cyc/chain step':>14}"]
        for i, (name, s) in enumerate(zip(names, self.schedules)):
            mark = "  <- bottleneck" if i == self.bottleneck else ""
            lines.append(f"{name:<20} {s.pe_count:>5} {s.built_groups * s.lanes:>5} {self.per_step[i]:>12} "
                         f"{self.rates[i]:>16} {self.chain_step_cycles[i]:>14}{mark}")
        lines.append(f"chain: {self.pe_count} of {self.budget} PEs in arrays ({self.multipliers_built} multipliers "
                     f"built), {self.cycles_per_chain_step} cycles per input step, MAC utilization "
                     f"{100 * self.steady_utilization():.1f}% over the multipliers built on long frames")
        return "\n".join(lines)


def plan_chain(chain_q, budget: int = 64) -> ChainPlan:
    """The fastest split of ``budget`` PEs over ``chain_q``'s stages, with no PE that adds nothing.

    Every stage is checked by `tconv.hw.check.check_layer` (what the hardware can build).

    Raises
    ------
    ValueError
        ``array.pe_count`` not a power of two, or smaller than the number of stages.
    """
    budget = check_pe_count(budget)
    stages = chain_q.stages
    if budget < len(stages):
        raise ValueError(f"array.pe_count {budget} is the PE budget of the whole chain: at least one PE per stage "
                         f"is needed ({len(stages)} stages); allowed: a power of two >= {len(stages)}")
    for st in stages:
        check_layer(st, 1)
    configs = [st.config for st in stages]
    rates = stage_rates(configs)
    options = [_array_options(c.in_channels, c.filters, c.kernel_size, c.strides, budget) for c in configs]
    candidates = sorted({est * r for opts, r in zip(options, rates) for est, _ in opts})
    for bound in candidates:
        # per stage the fewest PEs whose estimate keeps it within the bound
        chosen = [min((pes for est, pes in opts if est * r <= bound), default=None) for opts, r in zip(options, rates)]
        if None not in chosen and sum(chosen) <= budget:
            schedules = tuple(_stage_schedule(c, pes) for c, pes in zip(configs, chosen))
            return ChainPlan(budget, schedules, tuple(rates), tuple(s.cycle_formula()[1] for s in schedules))
    raise AssertionError("one PE per stage always fits the budget")


class Conv1DTransposeChainTop(wiring.Component):
    """The generated chain module: the ports of `tconv.hw.layer.Conv1DTransposeTop`.

    Parameters
    ----------
    chain_q : tconv.model.chain.ChainQ
    plan : ChainPlan
        From `plan_chain`.
    mul_cells : list of str, optional
        One multiplier cell module name per stage (`tconv.hw.multiplier`); inline multipliers without.
    garbage_seed : int, optional
        Simulation only: random scatter-bank contents at start (each stage its own seed).

    Members
    -------
    s_axis_tdata : In(in_channels * Wx of the first stage)
    s_axis_tvalid, s_axis_tlast : In(1)
    s_axis_tready : Out(1)
    m_axis_tdata : Out(filters * Wo of the last stage)
    m_axis_tvalid, m_axis_tlast : Out(1)
    m_axis_tready : In(1)
    """

    def __init__(self, chain_q, plan: ChainPlan, *, mul_cells=None, garbage_seed: int | None = None):
        if len(plan.schedules) != len(chain_q.stages):
            raise ValueError(f"the plan has {len(plan.schedules)} stages, the chain {len(chain_q.stages)}")
        self.plan = plan
        self.cores = [
            Conv1DTransposeCore(st, sch, mul_cell=None if mul_cells is None else mul_cells[i],
                                garbage_seed=None if garbage_seed is None else garbage_seed + i)
            for i, (st, sch) in enumerate(zip(chain_q.stages, plan.schedules))]
        super().__init__({
            "s_axis_tdata": In(self.cores[0].in_width),
            "s_axis_tvalid": In(1),
            "s_axis_tready": Out(1),
            "s_axis_tlast": In(1),
            "m_axis_tdata": Out(self.cores[-1].out_width),
            "m_axis_tvalid": Out(1),
            "m_axis_tready": In(1),
            "m_axis_tlast": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        for i, core in enumerate(self.cores):
            m.submodules[f"stage{i}"] = core
        # Stage to stage: the output FIFO of one core is the step buffer's stream of the next.
        for a, b in zip(self.cores, self.cores[1:]):
            wiring.connect(m, a.o, b.i)
        first, last = self.cores[0], self.cores[-1]
        m.d.comb += [
            first.i.payload.data.eq(self.s_axis_tdata),
            first.i.payload.last.eq(self.s_axis_tlast),
            first.i.valid.eq(self.s_axis_tvalid),
            self.s_axis_tready.eq(first.i.ready),
            self.m_axis_tdata.eq(last.o.payload.data),
            self.m_axis_tlast.eq(last.o.payload.last),
            self.m_axis_tvalid.eq(last.o.valid),
            last.o.ready.eq(self.m_axis_tready),
        ]
        return m
