"""The README's Python example runs as written, and the CLI help matches what exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tconv.flow.cli import build_parser

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
