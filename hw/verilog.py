"""Amaranth design to one flat, lint-clean Verilog module.

Amaranth's RTLIL backend gives every operator cell its operands at their
narrowest width and lets Verilog's context rules extend them (``$signed(a6) +
$signed(3'h3)`` into an 11-bit sum). That is exact, but Verilator's -Wall flags
each such operand (WIDTHEXPAND). `explicit_widths` makes those extensions
explicit in the netlist (sign or zero bits concatenated onto the operand) before
Yosys writes the Verilog, so the lint reports real width mismatches only.

Flow (Amaranth's bundled Yosys): RTLIL -> proc, flatten, memory_collect,
opt_clean -> RTLIL -> `explicit_widths` -> write_verilog. Flattening gives a
single module named like the file, and opt_clean drops the debug wires the
hierarchy would otherwise show as unused.
"""

from __future__ import annotations

import re

from amaranth.back import rtlil

__all__ = ["convert", "explicit_widths", "check_module_name", "VERILOG_KEYWORDS"]

#: Reserved words of Verilog-2005 and SystemVerilog-2017 (Verilator reads .v files as
#: SystemVerilog): none can name the top module.
VERILOG_KEYWORDS = frozenset("""
accept_on alias always always_comb always_ff always_latch and assert assign assume automatic before begin bind
bins binsof bit break buf bufif0 bufif1 byte case casex casez cell chandle checker class clocking cmos config
const constraint context continue cover covergroup coverpoint cross deassign default defparam design disable
dist do edge else end endcase endchecker endclass endclocking endconfig endfunction endgenerate endgroup
endinterface endmodule endpackage endprimitive endprogram endproperty endspecify endsequence endtable endtask
enum event eventually expect export extends extern final first_match for force foreach forever fork forkjoin
function generate genvar global highz0 highz1 if iff ifnone ignore_bins illegal_bins implements implies import
incdir include initial inout input inside instance int integer interconnect interface intersect join join_any
join_none large let liblist library local localparam logic longint macromodule matches medium modport module
nand negedge nettype new nexttime nmos nor noshowcancelled not notif0 notif1 null or output package packed
parameter pmos posedge primitive priority program property protected pull0 pull1 pulldown pullup
pulsestyle_ondetect pulsestyle_onevent pure rand randc randcase randsequence rcmos real realtime ref reg
reject_on release repeat restrict return rnmos rpmos rtran rtranif0 rtranif1 s_always s_eventually s_nexttime
s_until s_until_with scalared sequence shortint shortreal showcancelled signed small soft solve specify
specparam static string strong strong0 strong1 struct super supply0 supply1 sync_accept_on sync_reject_on
table tagged task this throughout time timeprecision timeunit tran tranif0 tranif1 tri tri0 tri1 triand trior
trireg type typedef union unique unique0 unsigned until until_with untyped use uwire var vectored virtual void
wait wait_order wand weak weak0 weak1 while wildcard wire with within wor xnor xor
""".split())


def check_module_name(name, what: str = "top") -> str:
    """``name`` if it can name a Verilog module: an identifier that is not a reserved word."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"{what} must be a Verilog identifier (letters, digits, '_', not starting with a digit), "
                         f"got {name!r}")
    if name in VERILOG_KEYWORDS:
        raise ValueError(f"{what} {name!r} is a Verilog/SystemVerilog keyword; choose another module name")
    return name

# Cells whose operands Verilog extends to the result width.
_TO_RESULT = {"$add", "$sub", "$and", "$or", "$xor", "$xnor"}
# Comparisons: operands are extended to the wider of the two.
_TO_EACH_OTHER = {"$lt", "$le", "$gt", "$ge", "$eq", "$ne", "$eqx", "$nex"}

_WIRE = re.compile(r"^\s*wire\s+(.*?)\s*(\S+)\s*$")
_CONST = re.compile(r"^(\d+)'([01xzm-]*)$")
_SLICE = re.compile(r"^(\S+) \[(\d+)(?::(\d+))?\]$")


def _yosys():
    from amaranth._toolchain.yosys import find_yosys
    return find_yosys(lambda ver: ver >= (0, 40))


def _split_sigspec(spec: str) -> list[str]:
    """Chunks of an RTLIL sigspec, most significant first."""
    spec = spec.strip()
    if not spec.startswith("{"):
        return [spec]
    inner = spec[1:-1].strip()
    chunks, tokens = [], inner.split()
    n = 0
    while n < len(tokens):
        tok = tokens[n]
        if n + 1 < len(tokens) and tokens[n + 1].startswith("["):
            chunks.append(f"{tok} {tokens[n + 1]}")
            n += 2
        else:
            chunks.append(tok)
            n += 1
    return chunks


def _msb(chunk: str, widths: dict[str, int]) -> str:
    """The most significant bit of one sigspec chunk, as a sigspec."""
    m = _CONST.match(chunk)
    if m:
        return f"1'{m.group(2)[0]}"
    m = _SLICE.match(chunk)
    if m:
        return f"{m.group(1)} [{m.group(2)}]"
    return f"{chunk} [{widths[chunk] - 1}]"


def explicit_widths(text: str) -> str:
    """Extend the narrow operands of operator cells in RTLIL ``text`` explicitly."""
    widths: dict[str, int] = {}
    for line in text.splitlines():
        m = _WIRE.match(line)
        if m:
            attrs = m.group(1).split()
            width = int(attrs[attrs.index("width") + 1]) if "width" in attrs else 1
            widths[m.group(2)] = width
    out, cell = [], None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("cell "):
            cell = {"type": stripped.split()[1], "lines": [line], "params": {}, "conns": {}}
            continue
        if cell is None:
            out.append(line)
            continue
        cell["lines"].append(line)
        if stripped.startswith("parameter "):
            _, name, value = stripped.split(None, 2)
            cell["params"][name] = value
        elif stripped.startswith("connect "):
            _, port, spec = stripped.split(None, 2)
            cell["conns"][port] = spec
        elif stripped == "end":
            out.extend(_rewrite(cell, widths))
            cell = None
    return "\n".join(out) + "\n"


def _rewrite(cell: dict, widths: dict[str, int]) -> list[str]:
    kind, params = cell["type"], cell["params"]
    if kind == "$logic_not" and int(params["\\A_WIDTH"]) > 1:
        # `!a` of a vector (Verilator: LOGNOT wants 1 bit) is `a == 0`.
        width = int(params["\\A_WIDTH"])
        head = cell["lines"][0]
        indent = head[:len(head) - len(head.lstrip())]
        name = head.split()[2]
        a, y, y_width = cell["conns"]["\\A"], cell["conns"]["\\Y"], params["\\Y_WIDTH"]
        body = ["parameter \\A_SIGNED 0", "parameter \\B_SIGNED 0",
                f"parameter \\A_WIDTH {width}", f"parameter \\B_WIDTH {width}",
                f"parameter \\Y_WIDTH {y_width}",
                f"connect \\A {a}", f"connect \\B {width}'{'0' * width}", f"connect \\Y {y}"]
        return [f"{indent}cell $eq {name}"] + [f"{indent}  {b}" for b in body] + [f"{indent}end"]
    if kind in _TO_RESULT:
        target = int(params["\\Y_WIDTH"])
    elif kind in _TO_EACH_OTHER:
        target = max(int(params["\\A_WIDTH"]), int(params["\\B_WIDTH"]))
    else:
        return cell["lines"]
    new_spec = {}
    for port in ("A", "B"):
        width = int(params[f"\\{port}_WIDTH"])
        if width >= target:
            continue
        spec = cell["conns"][f"\\{port}"]
        chunks = _split_sigspec(spec)
        fill = _msb(chunks[0], widths) if params[f"\\{port}_SIGNED"] == "1" else "1'0"
        new_spec[port] = "{ " + " ".join([fill] * (target - width) + chunks) + " }"
    if not new_spec:
        return cell["lines"]
    lines = []
    for line in cell["lines"]:
        stripped = line.strip()
        indent = line[:len(line) - len(line.lstrip())]
        parts = stripped.split(None, 2)
        if parts[0] == "parameter" and parts[1] in ("\\A_WIDTH", "\\B_WIDTH") \
                and parts[1][1] in new_spec:
            line = f"{indent}parameter {parts[1]} {target}"
        elif parts[0] == "connect" and parts[1] in ("\\A", "\\B") and parts[1][1] in new_spec:
            line = f"{indent}connect {parts[1]} {new_spec[parts[1][1]]}"
        lines.append(line)
    return lines


def _memory_attributes(text: str, keep=("no_rw_check",)) -> dict[str, list[str]]:
    """Memory name -> the attributes in ``keep`` that its ``$mem_v2`` cell carries in RTLIL ``text``."""
    found: dict[str, list[str]] = {}
    pending: list[str] = []
    cell_attrs = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("attribute "):
            attr = stripped.split()[1].lstrip("\\")
            if attr in keep:
                pending.append(attr)
            continue
        if stripped.startswith("cell "):
            cell_attrs = pending if stripped.split()[1] == "$mem_v2" else None
        elif cell_attrs and stripped.startswith("parameter \\MEMID"):
            memid = stripped.split(None, 2)[2].strip('"').replace("\\\\", "\\")
            found[memid.lstrip("\\")] = cell_attrs
        pending = []
    return found


def _annotate_memories(verilog: str, attrs: dict[str, list[str]]) -> str:
    """Put ``(* attr *)`` in front of the Verilog declarations of the memories in ``attrs``.

    ``write_verilog -noattr`` drops every attribute; these few are semantic for
    synthesis (``no_rw_check``: a read never depends on a same-cycle write to
    its word, so no collision logic is needed) and are kept.
    """
    if not attrs:
        return verilog
    out = []
    for line in verilog.splitlines(keepends=True):
        m = _MEMDECL.match(line)
        if m and m.group(2).lstrip("\\") in attrs:
            indent = m.group(1)
            out.append(indent + "".join(f"(* {a} *) " for a in attrs[m.group(2).lstrip("\\")])
                       + line[len(indent):])
        else:
            out.append(line)
    return "".join(out)


_MEMDECL = re.compile(r"^(\s*)reg\s+(?:\[[^\]]*\]\s*)?(\\\S+|\w+)\s+\[[^\]]*\];")


def convert(top, *, name: str, platform=None) -> str:
    """Verilog text of ``top`` (a `wiring.Component`) as one module called ``name``.

    Ports are the component's signature members plus ``clk`` and ``rst``.
    ``platform="formal"`` elaborates the invariants the components state with
    Amaranth ``Assert`` (as amaranth's own FIFOs do) into ``assert`` statements,
    for :mod:`tconv.sim.formal`; the generated design never has them.
    """
    text = rtlil.convert(top, name=name, emit_src=False, platform=platform)
    yosys = _yosys()
    flat = yosys.run(["-q", "-"], "\n".join([
        f"read_rtlil <<rtlil\n{text}\nrtlil",
        "proc -norom",
        "flatten",
        "memory_collect",
        "opt_clean -purge",
        "write_rtlil",
    ]), ignore_warnings=True)
    flat = explicit_widths(flat[flat.index("autoidx") if "autoidx" in flat else 0:])
    verilog = yosys.run(["-q", "-"], "\n".join([
        f"read_rtlil <<rtlil\n{flat}\nrtlil",
        "write_verilog -norename -noattr",
    ]), ignore_warnings=True)
    return _annotate_memories(verilog, _memory_attributes(flat))
