"""The ``tconv`` command line.

Each subcommand lives in its own module of ``tconv.flow.commands``; bad input of
any kind ends in one line on stderr (``tconv: error: ...``) and exit status 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from importlib.metadata import PackageNotFoundError, version

from . import signals
from .commands import COMMANDS

__all__ = ["main", "build_parser"]


def _version() -> str:
    try:
        return version("tconv")
    except PackageNotFoundError:  # running from a source tree without install
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tconv",
        description="Keras Conv1DTranspose layers as bit-exact fixed-point FPGA hardware.")
    parser.add_argument("--version", action="version", version=f"tconv {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # From the first line on, SIGINT, SIGTERM and SIGHUP end the children, remove
    # temporary files and exit 130, 143, 129 (see tconv.flow.signals).
    with signals.handle_signals():
        try:
            return _main(argv)
        except KeyboardInterrupt as err:  # Ctrl-C, or signals.Terminated
            return signals.stopped(err)


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Counts and seeds of the subcommands that have them, refused in one line like any bad input.
    for name, low, what in (("batch", 1, "at least 1"), ("length", 1, "at least 1"),
                            ("frames", 1, "at least 1"), ("seed", 0, "an integer from 0 (numpy's seeds are >= 0)")):
        value = getattr(args, name, None)
        # (a repeatable option's values are a list)
        bad = [v for v in (value if isinstance(value, list) else [value]) if v is not None and v < low]
        if bad:
            print(f"tconv: error: --{name} must be {what}, got {bad[0]}", file=sys.stderr)
            return 2
    _progress_to_stderr(quiet=getattr(args, "quiet", False))
    try:
        return args.func(args)
    except BrokenPipeError:
        # The reader went away (`tconv simulate OUT | head -1`): stop quietly, as a
        # shell tool ended by SIGPIPE would, and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13
    except (ValueError, OSError) as err:
        print(f"tconv: error: {err}", file=sys.stderr)
        return 2




def _progress_to_stderr(*, quiet: bool) -> None:
    """tconv's library code reports progress on the ``tconv`` loggers, silent by default
    (a library says nothing unless asked); the command line shows it on stderr unless ``-q``."""
    logger = logging.getLogger("tconv")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (tests and callers may replace it)."""

    def emit(self, record):
        self.stream = sys.stderr
        super().emit(record)


if __name__ == "__main__":
    sys.exit(main())
