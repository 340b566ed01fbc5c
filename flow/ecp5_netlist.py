"""Block-RAM output registers for Yosys' ECP5 netlists (used by ``tconv synth``).

An ECP5 DP16KD read without its output register has a clock-to-out of about
4.3 ns (speed 8), most of a 200 MHz cycle, and Yosys' ``synth_ecp5`` never
switches that register on (``REGMODE_x = "NOREG"`` always), even when the
design registers the read data right behind the RAM, as tconv's weight ROMs
and scatter banks do. `absorb_output_registers` moves such flip-flops into the
block RAM: where every used data output of one read port feeds exactly one
plain flip-flop (same clock as the port, always enabled, no set/reset, power-up
zero) and nothing else, the flip-flops are removed, their outputs are driven by
the RAM's data pins, and the port's ``REGMODE`` becomes ``OUTREG`` (the port's
output clock enable is tied high by Yosys' mapping). The circuit is the same,
cycle for cycle; only where its register sits changes.

Only true dual-port DP16KD ports (data width 18 or less) are touched; in the
36-bit pseudo-dual-port mode the read data spans both ports' pins and they are
left alone.
"""

from __future__ import annotations

from collections import defaultdict

__all__ = ["absorb_output_registers"]


def _is_plain_ff(cell: dict) -> bool:
    """A TRELLIS_FF that loads its input every cycle, with no set or reset, starting at 0."""
    if cell["type"] != "TRELLIS_FF":
        return False
    p, c = cell["parameters"], cell["connections"]
    always_enabled = p.get("CEMUX", "CE").strip() == "1" or c.get("CE") == ["1"]
    no_reset = p.get("LSRMUX", "LSR").strip() != "INV" and c.get("LSR", ["0"]) == ["0"]
    rising = p.get("CLKMUX", "CLK").strip() == "CLK"
    return always_enabled and no_reset and rising and p.get("REGSET", "RESET").strip() == "RESET"


def _width(param) -> int:
    """A Yosys JSON integer parameter (a binary string or an int)."""
    return int(param, 2) if isinstance(param, str) else int(param)


def _plan(cell: dict, cells: dict, loads: dict, port_bits: set, pins: list[str], clock) -> dict | None:
    """``{data pin: flip-flop}`` when every used pin in ``pins`` feeds one plain flip-flop on ``clock``."""
    plan = {}
    for pin in pins:
        (bit,) = cell["connections"][pin]
        if isinstance(bit, str) or bit in port_bits:
            return None
        users = loads.get(bit, [])
        if not users:
            continue  # an unused data bit
        if len(users) != 1:
            return None
        ff_name, ff_port = users[0]
        ff = cells[ff_name]
        if ff_port != "DI" or not _is_plain_ff(ff) or ff["connections"]["CLK"] != clock:
            return None
        plan[pin] = ff_name
    return plan or None


def absorb_output_registers(netlist: dict, top: str) -> int:
    """Switch on DP16KD output registers in module ``top`` of a Yosys JSON ``netlist`` (in place).

    Returns the number of block RAMs changed.
    """
    module = netlist["modules"][top]
    cells = module["cells"]
    loads = defaultdict(list)
    for name, cell in cells.items():
        for port, bits in cell["connections"].items():
            if cell["port_directions"].get(port) == "input":
                for bit in bits:
                    loads[bit].append((name, port))
    port_bits = {b for p in module["ports"].values() for b in p["bits"]}

    changed = 0
    for cell in list(cells.values()):
        if cell["type"] != "DP16KD":
            continue
        params, conn = cell["parameters"], cell["connections"]
        if any(params.get(f"CLK{s}MUX", f"CLK{s}").strip() != f"CLK{s}" for s in "AB"):
            continue
        if _width(params.get("DATA_WIDTH_A", "10010")) == 36:
            # Pseudo dual port: one 36-bit read port (clock B) on both sides' data
            # pins. Both sides' output registers are switched on and enabled (the
            # write side's enable is unused otherwise), so the read data is
            # registered whichever side's register a pin passes through; this
            # needs both sides on one clock.
            # A ROM's unused write side has no clock (and its clock enable off):
            # it gets the read clock, for its output register only.
            if conn.get("CLKA") == ["0"] and conn.get("CEA") == ["0"]:
                conn["CLKA"] = conn.get("CLKB")
            if conn.get("CLKA") != conn.get("CLKB"):
                continue
            sides = [("AB", [p for p in conn if p.startswith("DO")])]
        else:
            sides = [(s, [p for p in conn if p.startswith(f"DO{s}")]) for s in "AB"]
        for side, pins in sides:
            if any(params.get(f"REGMODE_{s}", "NOREG") != "NOREG" for s in side):
                continue
            if any(conn.get(f"OCE{s}") != ["1"] for s in side if s == "B" or len(side) == 1):
                continue
            plan = _plan(cell, cells, loads, port_bits, pins, conn.get(f"CLK{side[-1]}"))
            if not plan:
                continue
            for pin, ff_name in plan.items():
                conn[pin] = cells.pop(ff_name)["connections"]["Q"]
            for s in side:
                params[f"REGMODE_{s}"] = "OUTREG"
                conn[f"OCE{s}"] = ["1"]
            changed += 1
    return changed
