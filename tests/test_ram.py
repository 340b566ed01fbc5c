"""`tconv.hw.ram.BlockRam`: the ECP5 form (DP16KD cells over sim/ecp5_cells.v) against the
portable form (an Amaranth memory), cycle by cycle on Icarus and Verilator, for every
mapping `ecp5_plan` chooses (36-bit cells, 18-bit cells, banks of them), ROMs and RAMs,
registered read data and not. Every shape runs on Icarus; on Verilator one shape per test by
default and every shape under ``pytest --long``."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from conftest import long_run, require_simulator

from tconv.hw.ram import LUT_RAM_DEPTH, BlockRam, dp16kd_initvals, ecp5_plan
from tconv.hw.rom import RomModule
from tconv.hw.verilog import convert
from tconv.sim.ecp5 import ECP5_CELLS
from tconv.sim.tools import simulator_env

# (width, depth, write, reads, registered): the cells ecp5_plan gives each, below.
SHAPES = {
    "bank-x36": (24, 512, True, 2, True),
    "rom-x36-wide": (80, 40, False, 1, True),
    "ram-x18-slices": (40, 700, True, 1, True),
    "ram-banks-x18": (10, 2500, True, 2, True),
    "rom-banks-unregistered": (7, 1500, False, 1, False),
}
CYCLES = 3000


def test_ecp5_plan_covers_width_and_depth():
    assert (ecp5_plan(24, 512).port_width, ecp5_plan(24, 512).cells) == (36, 1)
    assert (ecp5_plan(512, 192).port_width, ecp5_plan(512, 192).cells) == (36, 15)
    assert (ecp5_plan(40, 700).port_width, ecp5_plan(40, 700).slices, ecp5_plan(40, 700).banks) == (18, 3, 1)
    assert (ecp5_plan(10, 2500).slices, ecp5_plan(10, 2500).banks) == (1, 3)
    for width, depth in [(1, 17), (36, 512), (37, 513), (18, 1024), (19, 1025), (300, 9000)]:
        plan = ecp5_plan(width, depth)
        assert plan.slices * plan.port_width >= width and plan.banks * plan.words_per_cell >= depth
    with pytest.raises(ValueError, match="width and depth"):
        ecp5_plan(0, 4)


def test_initvals_hold_sixteen_rows_each():
    rows = [(n * 2654435761) & 0x3FFFF for n in range(1024)]
    vals = dp16kd_initvals(rows)
    assert list(vals) == [f"INITVAL_{i:02X}" for i in range(64)]
    for n in (0, 1, 15, 16, 517, 1023):
        v = vals[f"INITVAL_{n // 16:02X}"]
        assert (v >> (20 * (n % 16))) & 0x3FFFF == rows[n]
        assert (v >> (20 * (n % 16) + 18)) & 3 == 0  # two unused bits per row
    with pytest.raises(ValueError, match="1024 rows"):
        dp16kd_initvals([0] * 1025)


def _compare_tb(declarations: str, instances: str, stimulus: str, latency: int) -> str:
    """Testbench ``tb``: ``data_p`` (portable) and ``data_e`` (ECP5) must be equal every cycle
    after the first ``latency``, for ``CYCLES`` cycles of random ``stimulus``."""
    # The clock comes from the simulator's main: ``always #5`` on Icarus (TB_CLOCK), a
    # C++ loop on Verilator (no --timing, whose coroutines need a C++20 library).
    return f"""`timescale 1ns/1ps
module tb (
`ifndef TB_CLOCK
    input clk
`endif
);
`ifdef TB_CLOCK
    reg clk = 0;
    always #5 clk = ~clk;
`endif
{declarations}
    integer cycle = 0, errors = 0, k;
{instances}
    always @(posedge clk) begin
        cycle <= cycle + 1;
        if (cycle > {latency} && data_p !== data_e) begin
            errors = errors + 1;
            if (errors < 5) $display("cycle %0d: portable %h, ecp5 %h", cycle, data_p, data_e);
        end
{stimulus}
        if (cycle == {CYCLES}) begin
            $display("DONE errors=%0d", errors);
            $finish;
        end
    end
endmodule
"""


def _testbench(width: int, depth: int, write: bool, reads: int, latency: int) -> str:
    aw = max((depth - 1).bit_length(), 1)
    w_ports = ".w_addr(w_addr), .w_data(w_data), .w_en(w_en), " if write else ""
    declarations = f"""    reg rst = 0;
    reg [{aw - 1}:0] w_addr = 0;
    reg [{width - 1}:0] w_data = 0;
    reg w_en = 0;
    reg [{aw * reads - 1}:0] r_addr = 0;
    wire [{width * reads - 1}:0] data_p, data_e;"""
    instances = f"""    ram_portable p (.clk(clk), .rst(rst), {w_ports}.r_addr(r_addr), .r_data(data_p));
    ram_ecp5 e (.clk(clk), .rst(rst), {w_ports}.r_addr(r_addr), .r_data(data_e));"""
    stimulus = f"""        w_en <= ($random & 1);
        w_addr <= ($unsigned($random) % {depth});
        w_data <= {{$random, $random, $random}};
        for (k = 0; k < {reads}; k = k + 1)
            r_addr[k * {aw} +: {aw}] <= ($unsigned($random) % {depth});"""
    return _compare_tb(declarations, instances, stimulus, latency)


MAIN_CPP = """#include "Vtb.h"
#include "verilated.h"
int main(int argc, char** argv) {
    VerilatedContext ctx;
    ctx.commandArgs(argc, argv);
    Vtb tb{&ctx};
    while (!ctx.gotFinish()) {
        tb.clk = !tb.clk;
        tb.eval();
    }
    tb.final();
    return 0;
}
"""


def _run(simulator: str, folder, sources: list[str]) -> str:
    env = {**os.environ, **simulator_env(simulator)}
    if simulator == "icarus":
        subprocess.run(["iverilog", "-g2012", "-DTB_CLOCK", "-o", "tb.vvp", *sources], cwd=folder, check=True,
                       env=env)
        cmd = ["vvp", "-n", "tb.vvp"]
    else:
        (folder / "main.cpp").write_text(MAIN_CPP)
        subprocess.run(["verilator", "--cc", "--exe", "--build", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                        "--top-module", "tb", "-o", "tb", *sources, "main.cpp"], cwd=folder, check=True, env=env,
                       capture_output=True)
        cmd = ["obj_dir/tb"]
    return subprocess.run(cmd, cwd=folder, check=True, env=env, capture_output=True, text=True).stdout


def _on_simulators(shapes, both: str) -> list:
    """``(shape, simulator)``: every shape on Icarus, and on Verilator too for shape ``both``
    (the richest); every shape on both under ``pytest --long`` (a Verilator build of these
    cell models takes 15-30 s, so the default run keeps one)."""
    return [pytest.param(shape, sim, id=f"{shape}-{sim}") for shape in shapes
            for sim in ("icarus", "verilator") if sim == "icarus" or shape == both or long_run()]


@pytest.mark.parametrize("shape,simulator", _on_simulators(SHAPES, "ram-banks-x18"))
def test_ecp5_block_ram_matches_portable(tmp_path, shape, simulator):
    require_simulator(simulator)
    width, depth, write, reads, registered = SHAPES[shape]
    assert depth > LUT_RAM_DEPTH
    init = np.random.default_rng(depth).integers(0, 1 << min(width, 62), depth).tolist()

    def ram():
        return BlockRam(width=width, depth=depth, init=init, reads=reads, write=write, registered=registered)

    (tmp_path / "ram_portable.v").write_text(convert(ram(), name="ram_portable"))
    ecp5 = convert(ram(), name="ram_ecp5", platform="ecp5")
    assert ecp5.count("DP16KD #(") == reads * ecp5_plan(width, depth).cells
    assert ecp5.count('"OUTREG"') == (2 * ecp5.count("DP16KD #(") if registered else 0)
    (tmp_path / "ram_ecp5.v").write_text(ecp5)
    (tmp_path / "tb.v").write_text(_testbench(width, depth, write, reads, 1 + registered))
    shutil.copyfile(ECP5_CELLS, tmp_path / "ecp5_cells.v")
    out = _run(simulator, tmp_path, ["tb.v", "ram_portable.v", "ram_ecp5.v", "ecp5_cells.v"])
    assert "DONE errors=0" in out, out


# (width, depth) of weight ROMs written as text (`tconv.hw.rom.RomModule`): one 36-bit cell,
# wide words over several cells, 18-bit cells side by side, banks of them (a multiplexer behind).
ROM_SHAPES = {"x36": (24, 300), "x36-wide": (80, 40), "x18-slices": (40, 700), "banks": (10, 2500),
              "banks-wide": (45, 2100)}


def _rom_testbench(width: int, depth: int) -> str:
    aw = max((depth - 1).bit_length(), 1)
    declarations = f"""    reg [{aw - 1}:0] addr = 0;
    wire [{width - 1}:0] data_p, data_e;"""
    instances = """    rom_portable p (.clk(clk), .addr(addr), .data(data_p));
    rom_ecp5 e (.clk(clk), .addr(addr), .data(data_e));"""
    stimulus = f"        addr <= ($unsigned($random) % {depth});"
    return _compare_tb(declarations, instances, stimulus, 2)


@pytest.mark.parametrize("shape,simulator", _on_simulators(ROM_SHAPES, "banks-wide"))
def test_rom_module_ecp5_matches_portable(tmp_path, shape, simulator):
    """A weight ROM module's ECP5 text (DP16KD cells, output registers on) reads what its
    portable text reads, with the same two-cycle latency, cycle by cycle."""
    require_simulator(simulator)
    width, depth = ROM_SHAPES[shape]
    rng = np.random.default_rng(depth)
    words = tuple(int(sum(int(rng.integers(0, 2)) << b for b in range(width))) for _ in range(depth))
    portable = RomModule("rom_portable", width, depth, words).verilog()
    ecp5 = RomModule("rom_ecp5", width, depth, words).ecp5_verilog()
    assert ecp5.count("DP16KD #(") == ecp5_plan(width, depth).cells
    assert ecp5.count('.REGMODE_B("OUTREG")') == ecp5.count("DP16KD #(")
    (tmp_path / "rom_portable.v").write_text(portable)
    (tmp_path / "rom_ecp5.v").write_text(ecp5)
    (tmp_path / "tb.v").write_text(_rom_testbench(width, depth))
    shutil.copyfile(ECP5_CELLS, tmp_path / "ecp5_cells.v")
    out = _run(simulator, tmp_path, ["tb.v", "rom_portable.v", "rom_ecp5.v", "ecp5_cells.v"])
    assert "DONE errors=0" in out, out


def test_rom_module_ecp5_initvals_are_blockrams():
    """The ROM module's DP16KD contents are those `BlockRam`'s ECP5 form gives the same words
    (one mapping of words to cells, `tconv.hw.ram`)."""
    import re

    width, depth = 40, 700
    words = tuple((n * 2654435761) % (1 << width) for n in range(depth))
    text = RomModule("rom_ecp5", width, depth, words).ecp5_verilog()
    ram = convert(BlockRam(width=width, depth=depth, init=list(words), registered=True), name="r", platform="ecp5")
    pattern = r"\.(INITVAL_\w\w)\(320'h([0-9a-f]+)\)"
    assert sorted(re.findall(pattern, text)) == sorted(re.findall(pattern, ram))
    assert len(re.findall(pattern, text)) == 64 * ecp5_plan(width, depth).cells
