"""One module per ``tconv`` subcommand, each with ``register(subparsers)`` and ``run(args)``."""

from . import analyze, bench, explore, generate, pack_weights, simulate, synth

#: In the order ``tconv --help`` lists them.
COMMANDS = (analyze, generate, pack_weights, simulate, synth, bench, explore)
