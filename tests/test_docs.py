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
