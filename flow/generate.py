"""``tconv generate``: a design folder from a layer, written whole or not at all.

The folder holds what `tconv.hw.generate` writes (Verilog, waivers,
manifest.json) plus the baked-in weight codes (``weights.npz``) and test vectors
(``test_vectors.npz``: input codes of a few frames and the model's expected
output codes) so that any simulator can check the design without tconv.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .files import Design, build_layer, current_umask

__all__ = ["generate_design", "ARRAY_KEYS", "TEST_VECTOR_LENGTHS"]

#: Keys the CONFIG.json "array" object accepts, with their defaults.
ARRAY_KEYS = {"pe_count": 64}
#: Largest array.pe_count: 16x the DSP blocks of today's largest FPGAs; planning far
#: larger arrays (2**40) takes unbounded time before anything could be refused.
MAX_PE_COUNT = 65536
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
#: Frame lengths of the shipped test vectors: a typical frame, the shortest, an odd one.
TEST_VECTOR_LENGTHS = (8, 1, 5)


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


def _check_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder; choose another -o")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise ValueError(f"{out} is not empty and holds no tconv design (no manifest.json); "
                         f"choose an empty or new folder for -o")


def make_test_vectors(layer, lengths=TEST_VECTOR_LENGTHS, seed: int = 0) -> dict[str, np.ndarray]:
    """Random input codes of frames with ``lengths`` steps and the model's output codes.

    Both are step-major (one row per bus beat) and frames follow each other.
    """
    rng = np.random.default_rng(seed)
    fmt = layer.input_format
    cin = layer.config.in_channels
    frames = [rng.integers(fmt.min_code, fmt.max_code + 1, (n, cin)) for n in lengths]
    channels_first = layer.config.data_format == "channels_first"
    outs = [layer.forward_int(f.T).T if channels_first else layer.forward_int(f) for f in frames]
    return {"inputs": np.concatenate(frames), "lengths": np.array(lengths),
            "expected": np.concatenate(outs), "expected_lengths": np.array([o.shape[0] for o in outs])}


def generate_design(design: Design, kernel: np.ndarray, bias, out_dir, *, top: str | None = None,
                    log=print) -> dict:
    """Generate the hardware for ``design`` with these float weights into ``out_dir``.

    Everything is built in a temporary folder beside ``out_dir`` and moved into
    place at the end; on any error ``out_dir`` is left as it was. An existing
    design folder (one with a manifest.json) is replaced.
    """
    from tconv.hw.generate import generate
    from tconv.hw.layer import check_layer

    check_top(top)
    layer = build_layer(design, kernel, bias)
    opts = _array_options(design)
    check_layer(layer, opts["pe_count"])  # refuse before saying anything is under way
    out = Path(out_dir)
    _check_target(out)
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise OSError(f"cannot create the design folder {out}: {parent} is a file, not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as err:  # name the user's folder, not the temporary one beside it
        raise OSError(f"cannot create the design folder {out}: {err.strerror or err}") from None
    try:
        log(f"elaborating {opts['pe_count']}-PE array and writing Verilog ...")
        manifest = generate(layer, tmp, pe_count=opts["pe_count"], top_name=top)
        np.savez(tmp / "weights.npz", kernel_codes=layer.kernel_codes, bias_codes=layer.bias_codes,
                 kernel=layer.kernel, bias=layer.bias)
        np.savez(tmp / "test_vectors.npz", **make_test_vectors(layer))
        manifest["weights"] = "weights.npz"
        manifest["test_vectors"] = "test_vectors.npz"
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        # mkdtemp's folder is 0700 (and np.savez follows the umask): give the whole
        # design, ecp5/ included, the permissions an ordinary folder would have.
        mask = current_umask()
        tmp.chmod(0o777 & ~mask)
        for f in tmp.rglob("*"):
            f.chmod((0o777 if f.is_dir() else 0o666) & ~mask)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest
