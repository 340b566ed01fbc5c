"""``tconv bench``: utilization, FPGA, model and simulation speed in one table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub) -> None:
    """Add the subcommand to ``tconv``'s subparsers."""
    from ..bench import SECTIONS

    p = sub.add_parser(
        "bench", help="the performance table of docs/contract.md (utilization, Fmax, model and sim speed)",
        description="Generate the benchmark layers, measure MAC utilization in RTL simulation, run "
                    "synthesis and place-and-route, and time the model and the simulators, all in one "
                    "run. Takes several minutes (place-and-route of 128 PEs is the longest part).")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.add_argument("--markdown", metavar="FILE",
                   help="write the tables as Markdown into FILE (e.g. docs/benchmarks.md), between its "
                        "'tconv bench' marker comments, keeping the text around them and the tables of "
                        "sections not run (--only)")
    p.add_argument("--work", metavar="DIR", default="bench_work",
                   help="folder for generated designs and tool logs (default bench_work/)")
    p.add_argument("--pe-count", type=int, default=64, help="PEs for the utilization runs (default 64)")
    p.add_argument("--fpga-pe-counts", default="16,64,128", help="PE counts to place and route (default 16,64,128)")
    p.add_argument("--speed", type=int, action="append", choices=[6, 7, 8], help="speed grades (default 6 and 8)")
    p.add_argument("--seed", type=int, action="append",
                   help="nextpnr seed, repeatable: the fpga section places each design once per seed (its "
                        "Fmax moves by some 10%% from seed to seed), activation and weights use the first "
                        "(default 1)")
    p.add_argument("--simulator", choices=["verilator", "icarus"], default="verilator",
                   help="simulator for the utilization runs (default verilator)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..bench import run_bench, to_markdown, to_text

    sections = tuple(s.strip() for s in args.only.split(",") if s.strip())
    try:
        pe_counts = tuple(int(v) for v in args.fpga_pe_counts.split(","))
    except ValueError:
        raise ValueError(f"--fpga-pe-counts must be a comma list of integers, got {args.fpga_pe_counts!r}") from None
    log = (lambda *a: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    results = run_bench(args.work, sections=sections, pe_count=args.pe_count, fpga_pe_counts=pe_counts,
                        speeds=tuple(args.speed or (6, 8)), seeds=tuple(args.seed or (1,)), simulator=args.simulator, log=log)
    print(to_text(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    if args.markdown:
        write_markdown(Path(args.markdown), to_markdown(results))
    return 0


BEGIN, END = "<!-- tconv bench: begin -->", "<!-- tconv bench: end -->"


def _sections(block: str) -> tuple[str, list[tuple[str, str]]]:
    """The text before the first ``### `` heading, and each ``### `` section as (heading, text)."""
    parts = block.split("\n### ")
    return parts[0], [(p.split("\n", 1)[0], "### " + p) for p in parts[1:]]


def write_markdown(path: Path, tables: str) -> None:
    """Put the tables between the bench markers of ``path``, keeping the prose around
    them; a file without markers gets them appended (a new file holds only them).
    Sections (``### `` headings) that this run did not produce (``--only``) are kept as
    they were, the others replaced in place."""
    text = path.read_text() if path.is_file() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        old, tail = rest.split(END, 1)
        new_head, new_sections = _sections(tables)
        _, old_sections = _sections(old.strip("\n"))
        if new_sections and old_sections:
            fresh = dict(new_sections)
            merged = [fresh.pop(title, body).rstrip("\n") for title, body in old_sections]
            merged += [body.rstrip("\n") for body in fresh.values()]
            tables = new_head.rstrip("\n") + "\n\n" + "\n\n".join(merged)
        text = head + f"{BEGIN}\n{tables}\n{END}" + tail
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + f"{BEGIN}\n{tables}\n{END}" + "\n"
    path.write_text(text)
