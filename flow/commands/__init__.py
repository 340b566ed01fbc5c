"""One module per ``tconv`` subcommand, each with ``register(subparsers)`` and ``run(args)``."""

from . import analyze, bench, explore, generate, simulate, synth

#: In the order ``tconv --help`` lists them.
COMMANDS = (analyze, generate, simulate, synth, bench, explore)
