"""``tconv generate``: a design folder from a layer, written whole or not at all.

The folder holds what `tconv.hw.generate` writes (Verilog, waivers,
manifest.json) plus the baked-in weight codes (``weights.npz``) and test vectors
(``test_vectors.npz``: input codes of a few frames and the model's expected
output codes) so that any simulator can check the design without tconv.
"""

from __future__ import annotations

import re

import numpy as np

from tconv.hw.generate import TEST_VECTOR_LENGTHS, make_test_vectors
from tconv.hw.manifest import MAX_PE_COUNT

from .files import Design, build_layer

__all__ = ["generate_design", "make_test_vectors", "ARRAY_KEYS", "MAX_PE_COUNT", "TEST_VECTOR_LENGTHS"]

#: Keys the CONFIG.json "array" object accepts, with their defaults.
ARRAY_KEYS = {"pe_count": 64}
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


def _array_options(design: Design) -> dict:
    unknown = sorted(set(design.array) - set(ARRAY_KEYS))
    if unknown:
        raise ValueError(f"array: unknown key(s) {unknown}; allowed: {sorted(ARRAY_KEYS)}")
    opts = {**ARRAY_KEYS, **design.array}
    pe = opts["pe_count"]
    if isinstance(pe, bool) or not isinstance(pe, int) or pe < 1 or pe & (pe - 1) or pe > MAX_PE_COUNT:
        raise ValueError(f"array.pe_count must be a power of two from 1 to {MAX_PE_COUNT} (1, 2, 4, ... 64 ...), "
                         f"got {pe!r}")
    return opts


def check_top(top) -> None:
    """``--top``: a Verilog identifier that is not a reserved word (None: the default name)."""
    if top is None:
        return
    if not isinstance(top, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", top):
        raise ValueError(f"--top must be a Verilog identifier (letters, digits, '_', not starting with a digit), "
                         f"got {top!r}")
    if top in VERILOG_KEYWORDS:
        raise ValueError(f"--top {top!r} is a Verilog/SystemVerilog keyword; choose another module name")


def generate_design(design: Design, kernel: np.ndarray, bias, out_dir, *, top: str | None = None,
                    log=print) -> dict:
    """Generate the hardware for ``design`` with these float weights into ``out_dir``.

    The folder is written by :func:`tconv.hw.folder.write_design`: on any error
    ``out_dir`` is left as it was; in a folder that tconv generated before only
    its own files are replaced; a non-empty folder it did not generate is refused.
    """
    from tconv.hw.folder import check_output_folder
    from tconv.hw.generate import generate
    from tconv.hw.check import check_layer

    check_top(top)
    layer = build_layer(design, kernel, bias)
    opts = _array_options(design)
    check_layer(layer, opts["pe_count"])  # refuse before saying anything is under way
    check_output_folder(out_dir)
    log(f"elaborating {opts['pe_count']}-PE array and writing Verilog ...")
    return generate(layer, out_dir, pe_count=opts["pe_count"], top_name=top)
