"""The docs are true to the code: the README's Python examples run as written, the CLI help
matches what exists, and every number the README and docs/*.md quote is regenerated from the
code (the demo's transcript, latency formulas, mapping and benchmark tables, manifest keys,
limits) so that drift fails the suite. Expected values come from the model, the schedule and
generated manifests, never from constants here; the doc text is what is checked.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import inspect
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from tconv.flow.cli import build_parser
from tconv.hw.schedule import Latencies, Schedule
from tconv.model import Conv1DTransposeQ, FixedFormat, LayerConfig

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("block", _python_blocks(ROOT / "README.md"))
def test_readme_python_examples_run(block, capsys):
    exec(compile(block, "README.md", "exec"), {})
    assert "SQNR" in capsys.readouterr().out


def test_readme_names_every_cli_command():
    readme = (ROOT / "README.md").read_text()
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in sub.choices:
        assert f"tconv {name}" in readme


def test_the_contract_lives_in_the_repository():
    """No file points at the steering folder's design.md, which a user who clones tconv lacks."""
    import subprocess
    hits = subprocess.run(["git", "grep", "-n", "shared/design.md", "--", ".", ":!tests/test_docs.py"],
                          cwd=ROOT, capture_output=True, text=True).stdout
    assert hits == "", hits
    assert (ROOT / "docs" / "contract.md").is_file() and (ROOT / "docs" / "design-folders.md").is_file()


def test_the_contract_lists_the_benchmark_layers_tconv_bench_runs():
    from tconv.flow.bench import BENCH_LAYERS

    text = (ROOT / "docs" / "contract.md").read_text()
    rows = re.findall(r"^\| ([a-z-]+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\w+) \|$", text, re.M)
    table = {r[0]: dict(L=int(r[1]), in_channels=int(r[2]), filters=int(r[3]), kernel_size=int(r[4]),
                        strides=int(r[5]), dilation_rate=int(r[6]), padding=r[7]) for r in rows}
    assert table == BENCH_LAYERS


# ---------------------------------------------------------------------------
# Numbers the docs quote, regenerated from the code.


def _text(name: str) -> str:
    return (ROOT / name).read_text()


def _section(text: str, heading: str) -> str:
    """The body of the Markdown section ``heading`` (up to the next heading of any level)."""
    start = text.index(heading + "\n") + len(heading) + 1
    nxt = re.search(r"^#+ ", text[start:], re.M)
    return text[start:start + nxt.start()] if nxt else text[start:]


def _useful(cfg: LayerConfig, length: int) -> int:
    """Useful MACs of one frame as `tconv simulate` and `tconv bench` count them (cropped output)."""
    from types import SimpleNamespace

    from tconv.sim.runner import useful_macs

    return useful_macs(SimpleNamespace(config=cfg), length)


def _cli(*argv) -> tuple[int, str]:
    from tconv.flow.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    assert rc == 0, err.getvalue()
    return rc, out.getvalue()


def _evaluate(expr: str, names: dict) -> int:
    """An arithmetic expression of the docs (``max(rom + operand + ..., 4)``), without eval."""
    funcs = {"max": max, "min": min, "ceil": math.ceil, "log2": math.log2}

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            return names[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in (ast.Add, ast.Sub, ast.Mult):
            a, b = ev(node.left), ev(node.right)
            return {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}[type(node.op)]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in funcs:
            return funcs[node.func.id](*[ev(a) for a in node.args])
        raise ValueError(f"unsupported expression {ast.dump(node)} in {expr!r}")

    value = ev(ast.parse(expr, mode="eval"))
    assert value == int(value), (expr, names)
    return int(value)


def _one(pattern: str, text: str, what: str):
    m = re.search(pattern, text, re.S)
    assert m, f"{what}: the docs no longer say {pattern!r}"
    return m.groups() if len(m.groups()) > 1 else m.group(1)


# ------------------------------------------------------- the README's demo transcript
def _transcript() -> list[str]:
    body = _section(_text("README.md"), "## What `make demo` shows")
    return re.search(r"```text\n(.*?)```", body, re.S).group(1).splitlines()


def _transcript_step(n: int) -> list[str]:
    lines = _transcript()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"=== [{n}/5]"))
    end = next((i for i, line in enumerate(lines) if i > start and line.startswith("===")), len(lines))
    return lines[start + 1:end]


def _demo_layer_from_transcript():
    """The demo's layer as the transcript prints it: its configuration and calibrated formats,
    random weights (the cycle counts and formats do not depend on the weights)."""
    lines = _transcript()
    cfg_dict = ast.literal_eval(next(line for line in lines if line.startswith("  layer   ")).split(None, 1)[1])
    cfg = LayerConfig.from_dict(cfg_dict)
    assert cfg.to_dict() == cfg_dict, "the transcript's layer line is not what LayerConfig.to_dict() prints"
    formats = {}
    for line in _transcript_step(2):
        m = re.match(r"  (input|weight|bias|output)\s+(u?fixed<[^>]+>)\s", line)
        if m:
            formats[m.group(1)] = m.group(2)
    assert set(formats) == {"input", "weight", "bias", "output"}, formats
    rng = np.random.default_rng(0)
    wf, bf = FixedFormat.parse(formats["weight"]), FixedFormat.parse(formats["bias"])
    kernel = rng.uniform(wf.min_value, wf.max_value, (cfg.kernel_size, cfg.filters, cfg.in_channels))
    bias = rng.uniform(bf.min_value, bf.max_value, cfg.filters)
    layer = Conv1DTransposeQ(cfg, kernel, bias, input_format=formats["input"], weight_format=formats["weight"],
                             bias_format=formats["bias"], output_format=formats["output"])
    return cfg, formats, layer


def _default_pe_count() -> int:
    from tconv.hw.generate import generate

    return inspect.signature(generate).parameters["pe_count"].default


def test_readme_demo_transcript_cycles_and_utilization_follow_the_schedule():
    """Step 4's array and formula lines, step 5's beat counts, frame 0's cycles and the MAC
    utilization, from the schedule alone (no simulator needed)."""
    from tconv.hw.generate import TEST_VECTOR_LENGTHS
    from tconv.sim.runner import useful_macs

    cfg, _, layer = _demo_layer_from_transcript()
    pe = _default_pe_count()
    sch = Schedule.plan(cfg, pe)
    formula = sch.cycle_formula()[0]
    gen, sim = _transcript_step(4), _transcript_step(5)
    assert f"  array             {pe} PEs, {sch.cycles_per_step} cycles per input step" in gen
    assert f"  cycles per frame  {formula}" in gen

    lengths = list(TEST_VECTOR_LENGTHS)
    beats_out = sum(cfg.output_length(n) for n in lengths)
    assert any(line.endswith(f": PASS - {len(lengths)} frame(s), {sum(lengths)} input beats, "
                          f"{beats_out}/{beats_out} output beats") for line in sim), sim
    frames = [re.match(r"  frame (\d+): L=(\d+), (\d+) cycles", line) for line in sim]
    frames = [m for m in frames if m]
    assert [int(m.group(2)) for m in frames] == lengths
    first = sch.frame_cycles(lengths[0])  # frame 0 meets an idle array: the model's count, exactly
    assert f"  frame 0: L={lengths[0]}, {first} cycles (formula {first})" in sim
    util = useful_macs(layer, lengths[0]) / (pe * first)
    assert f"  MAC utilization (frame 0, useful MACs / (PEs x cycles)): {100 * util:.1f}%" in sim


def test_readme_demo_transcript_layer_lines_follow_the_model():
    """The fixed-point layer's repr, its accumulator and product count, the value counts of the
    calibration table and the output-LSB figures are what the code derives for that layer."""
    cfg, formats, layer = _demo_layer_from_transcript()
    lines = _transcript()
    assert repr(layer) in lines
    assert f"  accumulator       {layer.accumulator_format} (derived: {layer.terms} products per output)" in lines
    gen = _transcript_step(4)
    assert f"  accumulator       {layer.accumulator_format}" in gen
    assert (f"  formats           input {formats['input']}, weight {formats['weight']}, bias {formats['bias']}, "
            f"output {formats['output']}") in gen
    # calibration table: counts from the shapes the transcript states
    batch, length, cin = map(int, _one(r"giving its inputs \((\d+), (\d+), (\d+)\)", "\n".join(lines), "inputs"))
    assert cin == cfg.in_channels
    counts = {"input": batch * length * cin, "weight": cfg.kernel_size * cfg.filters * cfg.in_channels,
              "bias": cfg.filters, "output": batch * cfg.output_length(length) * cfg.filters}
    for stage, n in counts.items():
        assert any(re.match(rf"  {stage}\s+{re.escape(formats[stage])}\s.*\b{n} values", line) for line in lines), stage
    fx, fw = FixedFormat.parse(formats["input"]).frac, FixedFormat.parse(formats["weight"]).frac
    assert any(f"fractional bits capped at Fa = {fx + fw}" in line for line in lines)
    assert f"  outputs compared  {counts['output']}" in lines
    # "max |error| E (N output LSB)": N = E / LSB of the output format, printed as the report does
    lsb = FixedFormat.parse(formats["output"]).lsb
    for what in ("max |error|", "analytic bound"):
        value, n_lsb = _one(rf"  {re.escape(what)}\s+([0-9.e-]+)  \(([0-9.e+]+) output LSB\)", "\n".join(lines), what)
        assert f"{float(value) / lsb:.3g}" == n_lsb, what
    # the sweep's rows at the chosen widths are the headline numbers
    sqnr = _one(r"  SQNR\s+([0-9.]+) dB", "\n".join(lines), "SQNR")
    max_err = float(_one(r"  max \|error\|\s+([0-9.e-]+)", "\n".join(lines), "max error"))
    sweep = lines[next(i for i, line in enumerate(lines) if line.startswith("bit-width sweep")):]
    for stage in ("weight", "input", "output"):
        row = next(line for line in sweep if re.match(rf"  {stage}\s+{re.escape(formats[stage])}\s+[0-9.]+ ", line))
        assert row.split()[2] == sqnr and row.split()[3] == f"{max_err:.4g}", row


@pytest.fixture(scope="module")
def demo_design(tmp_path_factory):
    """The demo's layer generated by ``tconv generate`` (CONFIG.json form): folder, printed lines, manifest."""
    cfg, formats, layer = _demo_layer_from_transcript()
    work = tmp_path_factory.mktemp("demo")
    (work / "config.json").write_text(json.dumps({"layer": cfg.to_dict(), "formats": formats}))
    np.savez(work / "w.npz", kernel=layer.kernel, bias=layer.bias)
    out = work / "hw"
    _, printed = _cli("generate", work / "config.json", "--weights", work / "w.npz", "-o", out, "-q")
    return out, printed.splitlines(), json.loads((out / "manifest.json").read_text())


def test_readme_demo_transcript_generate_lines_are_what_generate_prints(demo_design):
    out, printed, _ = demo_design
    quoted = [line for line in _transcript_step(4) if line and not line.startswith("$ ")]
    folder = re.match(r"wrote (\S+)/\S+\.v and ", quoted[0]).group(1)
    assert [line.replace(str(out), folder) for line in printed] == quoted


def test_readme_demo_transcript_simulate_lines_are_what_simulate_prints(demo_design):
    """Step 5 as `tconv simulate` prints it, frames 1 and 2 (back to back, so not the formula's
    idle-array count) included: the RTL on Icarus, a few seconds."""
    from conftest import require_simulator

    require_simulator("icarus")
    out, _, _ = demo_design
    quoted = [line for line in _transcript_step(5) if line and not line.startswith("$ ") and not line.startswith("done:")]
    _, printed = _cli("simulate", out, "--simulator", "icarus", "-q")
    assert printed.splitlines() == quoted


def test_readme_sqnr_figures_match_its_transcript():
    """The sentence under the demo's plot: what the 8th and 9th bits buy, what 12 output bits cost."""
    text = _text("README.md")
    rows = {}
    for line in _transcript():
        m = re.match(r"  (weight|input|output)\s+u?fixed<(\d+),\S*\s+([0-9.]+) ", line)
        if m:
            rows[m.group(1), int(m.group(2))] = float(m.group(3))
    weight8, input8, ninth = map(int, _one(r"the 8th bit buys (\d+) and (\d+) dB, a 9th would buy (\d+)\)",
                                           text, "what the 8th and 9th bits buy"))
    assert (round(rows["weight", 8] - rows["weight", 7]), round(rows["input", 8] - rows["input", 7])) == \
        (weight8, input8)
    assert round(rows["weight", 9] - rows["weight", 8]) == ninth == round(rows["input", 9] - rows["input", 8])
    bits, cost = _one(r"could shrink to (\d+) bits for ([0-9.]+) dB", text, "output")
    assert f"{rows['output', 16] - rows['output', int(bits)]:.2f}" == cost


# ------------------------------------------------------- architecture.md
def _architecture() -> str:
    return _text("docs/architecture.md")


LATENCY_LAYERS = [
    dict(filters=8, kernel_size=4, strides=2, padding="same", activation="relu", in_channels=8),  # the demo's
    dict(filters=32, kernel_size=3, strides=2, in_channels=128),  # keras-doc: two chunks at 64 PEs, block RAM
    dict(filters=8, kernel_size=5, strides=3, padding="same", in_channels=8),  # odd-stride: LUT ROM
    dict(filters=3, kernel_size=7, strides=4, output_padding=2, in_channels=5),
    dict(filters=1, kernel_size=2, strides=2, in_channels=1),
    dict(filters=33, kernel_size=16, strides=8, padding="same", in_channels=100),
    dict(filters=5, kernel_size=3, strides=2, in_channels=7, activation="relu"),
]


def _doc_latencies(sch: Schedule) -> tuple[int, int]:
    """``(Lp, emit_to_out)`` by the formulas and constants docs/architecture.md states."""
    text = " ".join(_architecture().split())
    lp = _one(r"`Lp = (max\(.+?\))`", text, "Lp")
    rom_bram, rom_lut = _one(r"`rom` (\d) for\s+block-RAM weights, (\d) for LUT ROMs", text, "rom")
    lut_words = int(_one(r"a LUT ROM[^`]*when\s+`T <= (\d+)`", text, "LUT ROM size"))
    op_narrow, op_from, op_wide, op_from2 = _one(
        r"`operand = (\d+)` below (\d+) PEs and `operand = (\d+)` from (\d+) PEs on", text, "operand")
    assert op_from == op_from2
    narrow, wide_from, wide, wide_from2, wide_lanes = _one(
        r"`product = (\d+)` below (\d+) PEs and `product = (\d+)` from (\d+) PEs on \(and from `R >= (\d+)` lanes on\)",
        text, "product")
    assert wide_from == wide_from2
    chunk_many, chunk_one = _one(r"`chunk` (\d) when `chunks > 1`, else (\d)", text, "chunk")
    names = {
        "rom": int(rom_lut) if sch.cycles_per_step <= lut_words else int(rom_bram),
        "operand": int(op_wide) if sch.pe_count >= int(op_from) else int(op_narrow),
        "product": int(wide) if sch.pe_count >= int(wide_from) or sch.lanes >= int(wide_lanes) else int(narrow),
        "R": sch.lanes,
        "chunk": int(chunk_many) if sch.chunks > 1 else int(chunk_one),
    }
    merge_expr = _one(r"merge \(`(.+?)` levels", text, "merge")
    merge = _evaluate(merge_expr, {"Gk": sch.tap_groups, "K": sch.kernel_size})
    emit = _one(r"`emit_to_out = (\d+) \+ bank \+ merge \+ act`", text, "emit_to_out")
    bank_ram, bank_words, bank_lut = _one(r"`bank` (\d) when the scatter banks are block RAM "
                                          r"\(`bank_words > (\d+)`.*?else (\d)", text, "bank")
    bank = int(bank_ram) if sch.bank_words > int(bank_words) else int(bank_lut)
    act_linear, act_other = _one(r"`act` (\d) for a linear activation, else (\d)", text, "act")
    act = int(act_linear) if sch.activation == "linear" else int(act_other)
    return _evaluate(lp, names), int(emit) + bank + merge + act


@pytest.mark.parametrize("pe_count", [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024])
@pytest.mark.parametrize("layer", LATENCY_LAYERS, ids=lambda d: f"k{d['kernel_size']}s{d['strides']}c{d['in_channels']}")
def test_architecture_latency_formulas_equal_the_schedule(layer, pe_count):
    sch = Schedule.plan(LayerConfig(**layer), pe_count)
    assert _doc_latencies(sch) == (sch.latency.issue_to_write, sch.latency.emit_to_out)


def test_architecture_pipeline_table_and_latency_names():
    from tconv.hw import schedule
    from tconv.hw.scatter import ScatterBank

    text = _architecture()
    assert int(_one(r"\| Lp - (\d) \| scatter read issued \|", text, "read lead")) == ScatterBank.LEAD
    wide_pes, wide_lanes = _one(r"\| \+1 \(only when `P >= (\d+)` or `R >= (\d+)`\) \|", text, "wide arrays")
    assert (int(wide_pes), int(wide_lanes)) == (schedule.WIDE_ARRAY_PES, schedule.WIDE_GROUP_LANES)
    wide_operand = _one(r"\| \+1 \(only when `P >= (\d+)`\) \| a third operand register", text, "wide operands")
    assert int(wide_operand) == schedule.WIDE_ARRAY_PES
    assert int(_one(r"`T <= (\d+)` \(`schedule.LUT_ROM_WORDS`\)", text, "LUT ROM")) == schedule.LUT_ROM_WORDS
    fields = {f.name for f in dataclasses.fields(Latencies)}
    # `Latencies.operand`, `.product`, ...: each a field of Schedule.latency
    named = {x for pair in re.findall(r"`Latencies\.(\w+)`|`\.(\w+)`", _section(text, "## Pipeline"))
             for x in pair if x}
    assert named and named <= fields, named - fields


def test_architecture_benchmark_table_follows_the_schedule():
    """Every cell of the mapping table (64 PEs) from Schedule; the lanes are all busy (T * P = K * F * C)."""
    from tconv.flow.bench import BENCH_LAYERS

    text = _architecture()
    pe = int(_one(r"For contract.md's benchmark layers on (\d+) PEs", text, "PEs"))
    rows = re.findall(r"^\| ([a-z-]+) \| (.+) \|$", _section(text, "## Mapping (taps, filters, in_channels) onto the array"),
                      re.M)
    rows = {name: [c.strip() for c in rest.split("|")] for name, rest in rows if name in BENCH_LAYERS}
    assert set(rows) == set(BENCH_LAYERS)
    for name, spec in BENCH_LAYERS.items():
        spec = dict(spec)
        length = spec.pop("L")
        cfg = LayerConfig(**spec)
        sch = Schedule.plan(cfg, pe)
        _, per_step, offset, exceptions = sch.cycle_formula()
        formula = f"{per_step}*L {'-' if offset < 0 else '+'} {abs(offset)}"
        if exceptions:
            formula += f" (L >= {max(exceptions) + 1})"
        cycles = sch.frame_cycles(length)
        all_util = sch.utilization(length)
        expected = [f"{sch.lanes} x {sch.groups} ({sch.filter_groups}x{sch.tap_groups})", str(sch.chunks),
                    str(sch.cycles_per_step), str(sch.slots), str(sch.bank_words), formula, str(length),
                    str(cycles), f"{100 * all_util:.1f}%" + (" *" if all_util > 1 else ""),
                    f"{100 * _useful(cfg, length) / (pe * cycles):.1f}%"]
        assert rows[name] == expected, name
        assert sch.cycles_per_step * pe == cfg.kernel_size * cfg.filters * cfg.in_channels, name




# ------------------------------------------------------- benchmarks.md
def _bench_section(title: str) -> str:
    body = _text("docs/benchmarks.md").split("<!-- tconv bench: begin -->")[1].split("<!-- tconv bench: end -->")[0]
    return _section(body, f"### {title}").strip()


def _md_rows(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def test_benchmarks_utilization_and_fpga_tables_follow_the_schedule():
    """The cycle counts, formula counts, useful MACs and utilizations of the MAC-utilization table
    (the RTL equals the model on an idle array), and the FPGA table's GOPS column, rendered by
    `tconv bench`'s own Markdown writer; only the measured cells (bit-exact, Fmax and resources)
    are taken from the page."""
    from tconv.flow import bench

    util_title, fpga_title = "MAC utilization (one frame, no stalls)", f"ECP5 {bench.FPGA_LAYER} layer, out of context"
    quoted_layers = _md_rows(_bench_section(util_title))
    quoted_fpga = _md_rows(_bench_section(fpga_title))
    pe = int(quoted_layers[0][1])
    layers = []
    for row in quoted_layers:
        name = row[0]
        spec = dict(bench.BENCH_LAYERS[name])
        length = spec.pop("L")
        cfg = LayerConfig(**spec)
        cycles = Schedule.plan(cfg, pe).frame_cycles(length)
        macs = _useful(cfg, length)
        layers.append({"name": name, "pe_count": pe, "L": length, "cycles": cycles, "formula_cycles": cycles,
                       "useful_macs": macs, "utilization": round(macs / (pe * cycles), 4),
                       "zero_insertion_utilization": round(bench.zero_insertion_utilization(cfg, length), 4),
                       "subkernel_utilization": round(bench.subkernel_utilization(cfg, length), 4),
                       "bit_exact": row[-1]})
    assert [r["name"] for r in layers] == list(bench.BENCH_LAYERS)
    # the measured cells by their column titles (GOPS and GOPS per DSP are computed)
    keys = {title: key for key, title in bench._FPGA_COLS}
    header = [c.strip() for c in _bench_section(fpga_title).splitlines()[0].strip("|").split("|")]
    assert [keys.get(h) for h in header] == [key for key, _ in bench._FPGA_COLS]
    types = {"speed": int, "seed": int, "pe_count": int, "fmax_mhz": float, "lut4": int, "ff": int, "mult18": int,
             "ebr": int}
    fpga = [{keys[h]: types.get(keys[h], str)(v) for h, v in zip(header, r) if keys[h] not in ("gops", "gops_per_dsp")}
            for r in quoted_fpga]
    results = {"machine": {"processor": "-", "cpus": 0, "platform": "-", "python": "-"}, "layers": layers,
               "fpga": fpga}
    rendered = bench.to_markdown(results)
    assert _section(rendered, f"### {util_title}").strip() == _bench_section(util_title)
    assert _section(rendered, f"### {fpga_title}").strip() == _bench_section(fpga_title)
    # ... and the summary above the tables quotes the same extremes
    text = _text("docs/benchmarks.md")
    low, high = min(layers, key=lambda r: r["utilization"]), max(layers, key=lambda r: r["utilization"])
    assert (f"{low['utilization']:.1%} ({low['name']}) to {high['utilization']:.1%} ({high['name']})") in text
    kd = next(r for r in layers if r["name"] == "keras-doc")
    od = next(r for r in layers if r["name"] == "odd-stride")
    assert re.search(rf"keras-doc \d+ -> {kd['cycles']} cycles,\s+odd-stride \d+ -> {od['cycles']}, i\.e\. "
                     rf"[0-9.]+% -> {od['utilization']:.1%} utilization", text)


# ------------------------------------------------------- manifest keys the docs name
def _has(manifest: dict, path: list[str]) -> bool:
    node = manifest
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def test_every_manifest_key_the_docs_name_exists(demo_design):
    """Dotted keys rooted at a manifest key (`array.pe_count`) and `manifest["a"]["b"]` in the
    README and docs/*.md resolve in a generated manifest; `layer.X` may also be an attribute of
    the fixed-point layer (`layer.accumulator_format`), and file names (`weights.npz`) are not keys."""
    _, _, manifest = demo_design
    roots = "|".join(sorted(manifest, key=len, reverse=True))
    dotted = re.compile(r"`(?:manifest\.)?((?:" + roots + r")(?:\.[A-Za-z_][A-Za-z0-9_]*)+)`")
    indexed = re.compile(r'manifest((?:\[\s*"[^"]+"\s*\])+)')
    _, _, layer = _demo_layer_from_transcript()
    checked, missing = 0, []
    for name in ["README.md", *(f"docs/{p.name}" for p in sorted((ROOT / "docs").glob("*.md")))]:
        text = _text(name)
        paths = [m.split(".") for m in dotted.findall(text)]
        paths += [re.findall(r'"([^"]+)"', m) for m in indexed.findall(text)]
        for path in paths:
            if path[-1] in ("npz", "json", "v", "vlt", "png"):
                continue
            if path[0] == "layer" and len(path) == 2 and hasattr(layer, path[1]) and not _has(manifest, path):
                continue
            checked += 1
            if not _has(manifest, path):
                missing.append(f"{name}: {'.'.join(path)}")
    assert checked >= 10 and not missing, missing


def test_contract_manifest_example_is_a_generated_manifest(demo_design):
    """docs/contract.md's manifest: every key exists in a generated manifest; the values of its
    layer (formats, bus widths, cycles per step, the cycle formula) are what the code derives for
    that layer; the layer-independent values (file names, generator) are what generate writes."""
    from tconv.hw.manifest import CycleFormula

    _, _, manifest = demo_design
    example = json.loads(re.search(r"```json\n(\{\n  \"top\".*?)```", _text("docs/contract.md"), re.S).group(1))
    top = manifest["top"]

    def keys(node, prefix=()):
        for k, v in node.items():
            if k == "...":
                continue
            yield prefix + (k,)
            if isinstance(v, dict):
                yield from keys(v, prefix + (k,))

    missing = [".".join(p) for p in keys(example) if not _has(manifest, list(p))]
    assert not missing, missing

    def subst(v):
        if isinstance(v, str):
            return v.replace("<module name>", top).replace("<top>", top)
        return [subst(x) for x in v] if isinstance(v, list) else v

    for key in ("top", "verilog", "verilator_waivers", "files", "weights", "test_vectors"):
        assert subst(example[key]) == manifest[key], key
    assert subst(example["array"]["multiplier_cell"]["ecp5_verilog"]) == manifest["array"]["multiplier_cell"]["ecp5_verilog"]
    assert example["generator"]["package"] == manifest["generator"]["package"]

    cfg = LayerConfig.from_dict(example["layer"])
    assert cfg.to_dict() == example["layer"]
    fm = example["formats"]
    q = Conv1DTransposeQ(cfg, np.zeros((cfg.kernel_size, cfg.filters, cfg.in_channels)), np.zeros(cfg.filters),
                         input_format=fm["input"], weight_format=fm["weight"], bias_format=fm["bias"],
                         output_format=fm["output"])
    assert fm["accumulator"] == str(q.accumulator_format)
    assert example["interface"]["s_axis_tdata_width"] == cfg.in_channels * q.input_format.width
    assert example["interface"]["m_axis_tdata_width"] == cfg.filters * q.output_format.width
    sch = Schedule.plan(cfg, example["array"]["pe_count"])
    assert example["array"]["cycles_per_step"] == sch.cycles_per_step
    text, per_step, offset, exceptions = sch.cycle_formula()
    assert example["performance"]["cycles_per_frame_formula"] == text
    assert example["performance"]["cycles_per_frame"] == CycleFormula(per_step, offset, exceptions).to_json()


def test_design_folder_page_matches_what_generate_writes(demo_design):
    """docs/design-folders.md: the file table, the test vectors' frame lengths, the weight file's
    arrays and the cycle-formula example's keys are what generate writes."""
    from tconv.hw.generate import ACTIVATION_TABLE, TEST_VECTOR_LENGTHS
    from tconv.hw.manifest import CycleFormula

    out, _, manifest = demo_design
    text = _text("docs/design-folders.md")
    table = _section(text, "## What a design folder holds")
    rows = re.findall(r"^\| `([^`]+)` \| (.*)$", table, re.M)
    named = [m.replace("<top>", manifest["top"]) for m, what in rows if not what.startswith("only for")]
    assert sorted(named) == sorted(["manifest.json", *manifest["files"]])
    # A table activation's folder holds its table too (the demo layer's relu is exact).
    assert [m for m, what in rows if what.startswith("only for a table activation")] == [ACTIVATION_TABLE]
    lengths = tuple(int(n) for n in re.findall(r"\d+", _one(r"input codes of three frames \(([^)]+) steps\)",
                                                                table, "test vectors")))
    assert lengths == TEST_VECTOR_LENGTHS
    with np.load(out / "test_vectors.npz") as tv:
        assert tuple(tv["lengths"]) == lengths
    with np.load(out / "weights.npz") as w:
        for key in re.findall(r"`(\w+)`", _one(r"weight and bias codes \(([^)]+)\)", table, "weights.npz")):
            assert key in w.files, key
    example = json.loads("{" + _one(r'```json\n("cycles_per_frame": \{.*?\})\n```', text, "formula example") + "}")
    formula = CycleFormula.from_json(example["cycles_per_frame"], "docs")
    assert formula.to_json() == example["cycles_per_frame"]
    assert set(example["cycles_per_frame"]) == set(manifest["performance"]["cycles_per_frame"])


# ------------------------------------------------------- README: formal, CLI, test counts
def test_readme_formal_numbers(tmp_path):
    """The proven configuration, its progress bound and the depths `make formal` and the test use."""
    from tconv.sim.design import GeneratedDesign
    from tconv.sim.formal import SMALLEST_CONFIG, default_bound, smallest_design

    text = " ".join(_section(_text("README.md"), "## Verification").split())
    layer = SMALLEST_CONFIG["layer"]
    assert (f"filters {layer['filters']}, in_channels {layer['in_channels']}, kernel {layer['kernel_size']}, "
            f"strides {layer['strides']}, one PE") in text and SMALLEST_CONFIG["array"]["pe_count"] == 1
    long_frames, test_frames = map(int, _one(r"frames of 1 to (\d+) steps in `make formal` and 1 to (\d+) in the test",
                                             text, "frame lengths"))
    bound = int(_one(r"within twice the manifest's cycles per frame \((\d+) cycles\)", text, "bound"))
    design = GeneratedDesign.load(smallest_design(tmp_path / "smallest"))
    assert bound == default_bound(design, long_frames)
    count_long, count_test = map(int, _one(r"depth (\d+) in `make formal`, (\d+) in the test", text, "count"))
    progress_long, progress_test = map(int, _one(r"\(depth (\d+), (\d+) in the test\)", text, "progress"))
    make = re.search(r"^formal:.*\n\t(.*)$", _text("Makefile"), re.M).group(1)
    assert f"--count-depth {count_long}" in make and f"--progress-depth {progress_long}" in make
    assert "--max-length" not in make or f"--max-length {long_frames}" in make
    formal_test = _text("tests/test_formal.py")
    assert f'"count": {count_test}' in formal_test and f'"progress": {progress_test}' in formal_test
    assert f"max_length={test_frames}" in formal_test


def test_readme_command_synopsis_names_only_existing_options():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    block = re.search(r"```sh\n(.*?)```", _section(_text("README.md"), "## Command line"), re.S).group(1)
    command, unknown = None, []
    for line in block.splitlines():
        m = re.match(r"tconv ([\w-]+)", line)
        command = m.group(1) if m else command
        options = {o for a in sub.choices[command]._actions for o in a.option_strings}
        unknown += [f"{command} {o}" for o in re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", line) if o not in options]
    assert not unknown, unknown


def test_readme_fuzz_and_random_layer_counts():
    """`make test` runs N model and M command-line examples; random layers: seeds in make test / --long."""
    text = " ".join(_text("README.md").split())
    model, cli = map(int, _one(r"`make test` runs (\d+) model and (\d+) command-line examples", text, "fuzz"))
    for name, quoted in (("test_fuzz_model.py", model), ("test_fuzz_cli.py", cli)):
        assert sum(int(n) for n in re.findall(r"^@fuzz\((\d+)\)", _text(f"tests/{name}"), re.M)) == quoted, name
    short, long = map(int, _one(r"(\d+) seeds in `make test` and (\d+) under `--long`", text, "seeds"))
    lo, hi, n = map(int, _one(r"SEEDS = range\((\d+), (\d+)\) if long_run\(\) else range\((\d+)\)",
                              _text("tests/test_rtl_random.py"), "SEEDS"))
    assert (short, long) == (n, hi - lo)


_NUMBER_WORDS = {w: n for n, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve".split())}


def test_readme_counts_of_simulated_and_linted_configurations():
    """"over N configurations (A to B PEs)" of tests/test_sim.py; "and N unusual ones" linted."""
    import test_hw_generate
    import test_sim

    text = " ".join(_text("README.md").split())
    n, lo, hi = map(int, _one(r"Icarus and Verilator over (\d+) configurations \((\d+) to (\d+) PEs\)", text, "sim"))
    pes = [cfg[2] for cfg in test_sim.CONFIGS.values()]
    assert (n, lo, hi) == (len(test_sim.CONFIGS), min(pes), max(pes))
    unusual = _one(r"128 PEs\) and (\w+) unusual ones passes", text, "lint")
    assert _NUMBER_WORDS.get(unusual, unusual) == len(test_hw_generate.ODD_LINT_CASES)
    assert (f"docs/contract.md's {list(_NUMBER_WORDS)[len(test_hw_generate.BENCHMARKS)]} layers at 64 PEs, "
            "keras-doc at 16 and 128 PEs") in text
    assert sorted(test_hw_generate.BENCH_CONFIGS[-2:]) == [("keras-doc", 16), ("keras-doc", 128)]


def test_stated_limits_are_the_code_limits():
    from tconv.flow.commands.simulate import MAX_STEPS
    from tconv.hw.folder import MAX_MANIFEST_BYTES
    from tconv.hw.manifest import MAX_PE_COUNT
    from tconv.model import config as limits
    from tconv.model.fixedpoint import MAX_WIDTH

    contract = " ".join(_text("docs/contract.md").split())
    kernel, strides, dilation, channels, values, width = map(int, _one(
        r"kernel_size <= (\d+), strides <= (\d+), dilation_rate <= (\d+), in_channels and filters <= (\d+), "
        r"at most 2\*\*(\d+) values in the weights or in any one array of an analysis, `--sweep` widths 1 to (\d+)\)",
        contract, "limits"))
    assert (kernel, strides, dilation, channels, 2 ** values, width) == (
        limits.MAX_KERNEL_SIZE, limits.MAX_STRIDES, limits.MAX_DILATION_RATE, limits.MAX_CHANNELS, limits.MAX_VALUES,
        MAX_WIDTH)
    assert int(_one(r"included, 1 to (\d+)\)", contract, "format width")) == MAX_WIDTH
    assert int(_one(r"`pe_count`, a power of two from 1 to (\d+), default (\d+)", contract, "pe_count")[0]) \
        == MAX_PE_COUNT
    folders = " ".join(_text("docs/design-folders.md").split())
    assert int(_one(r"`array.pe_count` a power of two from 1 to (\d+);", folders, "pe_count")) == MAX_PE_COUNT
    assert int(_one(r"UTF-8 JSON of at most (\d+) MiB", folders, "manifest size")) << 20 == MAX_MANIFEST_BYTES
    assert int(_one(r"at most\s+([\d,]+) steps", folders, "steps").replace(",", "")) == MAX_STEPS
    readme = " ".join(_text("README.md").split())
    assert int(_one(r"now at most (\d+)\)", readme, "pe_count")) == MAX_PE_COUNT


def test_design_folder_python_snippet_gives_the_schedule_cycles(demo_design):
    """The one-line Python of docs/design-folders.md runs on a generated manifest and gives
    Schedule.frame_cycles for every L."""
    import tconv.hw.manifest  # binds `tconv`, the namespace the snippet starts from

    _, _, manifest = demo_design
    snippet = _one(r"In Python:\s+`([^`]+)`", _text("docs/design-folders.md"), "Python snippet")
    code = compile(snippet, "docs/design-folders.md", "eval")
    cfg, _, _ = _demo_layer_from_transcript()
    sch = Schedule.plan(cfg, manifest["array"]["pe_count"])
    for length in (1, 2, 3, 8, 33):
        value = eval(code, {"tconv": tconv, "manifest": manifest, "L": length})
        assert value == sch.frame_cycles(length)


def test_design_folder_cycle_formula_example_is_the_dilated_layers():
    """docs/design-folders.md's ``cycles_per_frame`` example and its formula line are what the
    schedule gives the ``dilated`` benchmark layer at 64 PEs (the text says so)."""
    import json

    from tconv.flow.bench import bench_layer

    text = _text("docs/design-folders.md")
    assert "the `dilated` benchmark\nlayer at 64 PEs" in text or "`dilated` benchmark layer at 64 PEs" in " ".join(
        text.split())
    example = json.loads("{" + _one(r'\n("cycles_per_frame": \{.*\})\n```', text, "cycles_per_frame example") + "}")
    formula, per_step, offset, short = Schedule.plan(bench_layer("dilated").config, 64).cycle_formula()
    assert example["cycles_per_frame"] == {"per_step": per_step, "offset": offset,
                                           "short_frames": [[n, c] for n, c in sorted(short.items())]}
    assert f"(`{formula}`)" in text


def test_architecture_map_names_every_module_and_only_real_ones():
    """docs/architecture.md's map and code map: every module of the four packages is on it,
    and every file it names exists (so the map cannot drift from the tree)."""
    text = _architecture()
    modules = {str(p.relative_to(ROOT)) for pkg in ("model", "hw", "sim", "flow") for p in (ROOT / pkg).glob("*.py")
               if p.name != "__init__.py"}
    missing = sorted(m for m in modules if m not in text)
    assert not missing, f"not on docs/architecture.md's map: {missing}"
    named = set(re.findall(r"\b((?:model|hw|sim|flow)/[a-z_/]+\.(?:py|v))\b", text))
    assert named and not sorted(n for n in named if not (ROOT / n).is_file())


def test_no_method_in_hw_is_longer_than_80_lines():
    import ast

    long = []
    for path in sorted((ROOT / "hw").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.end_lineno - node.lineno + 1 > 80:
                long.append(f"{path.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long


def test_readme_own_cocotb_testbench_runs(tmp_path, monkeypatch):
    """"Your own cocotb testbench": the test module and the runner script, as written, on Icarus
    with a small generated design; the test must pass, and fail on a design one weight off."""
    from conftest import TINY_CONFIG, require_simulator

    require_simulator("icarus")
    from tconv.flow.cli import main

    test_module, script = re.findall(r"```py\n(.*?)```", _section(_text("README.md"),
                                                                  "### Your own cocotb testbench"), re.S)
    (tmp_path / "config.json").write_text(json.dumps(TINY_CONFIG))
    rng = np.random.default_rng(3)
    cfg = TINY_CONFIG["layer"]
    np.savez(tmp_path / "w.npz", kernel=rng.normal(0, 0.5, (cfg["kernel_size"], cfg["filters"], cfg["in_channels"])),
             bias=rng.normal(0, 1, cfg["filters"]))
    assert main(["generate", str(tmp_path / "config.json"), "--weights", str(tmp_path / "w.npz"),
                 "-o", str(tmp_path / "out"), "-q"]) == 0
    (tmp_path / "test_my_layer.py").write_text(test_module)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))

    def run() -> bool:
        from cocotb_tools.check_results import get_results

        for old in (tmp_path / "sim_build").glob("*.xml"):
            old.unlink()
        try:
            exec(compile(script, "README.md", "exec"), {})
        except SystemExit:  # the runner exits on a failed test
            pass
        (results,) = (tmp_path / "sim_build").glob("*.xml")
        total, failed = get_results(results)
        return total == 1 and failed == 0

    assert run()
    with np.load(tmp_path / "out" / "weights.npz") as w:   # the model's weight moves, the RTL's does not
        saved = dict(w)
    saved["kernel_codes"] = saved["kernel_codes"].copy()
    saved["kernel_codes"][0, 0, 0] += 1 if saved["kernel_codes"][0, 0, 0] < 0 else -1
    np.savez(tmp_path / "out" / "weights.npz", **saved)
    assert not run()
