"""Back-pressure patterns of both testbench engines: which cycles a port stalls."""

from __future__ import annotations

import itertools
import random

__all__ = ["PATTERNS", "pause_pattern", "pause_table"]

PATTERNS = ("none", "random", "bursty", "toggle", "long")


def pause_pattern(name: str, rng: random.Random):
    """Infinite pause generator (True = stall this cycle) for a back-pressure pattern name.

    ``none``: never; ``random``: each cycle with probability 0.3; ``bursty``: runs
    of 1-40 ready cycles then 1-25 stalled ones; ``toggle``: every other cycle;
    ``long``: 200 stalled cycles every 300.
    """
    if name == "none":
        return itertools.repeat(False)
    if name == "random":
        return (rng.random() < 0.3 for _ in itertools.count())
    if name == "bursty":
        def bursts():
            while True:
                yield from [False] * rng.randint(1, 40)
                yield from [True] * rng.randint(1, 25)
        return bursts()
    if name == "toggle":
        return itertools.cycle([False, True])
    if name == "long":
        return itertools.cycle([False] * 100 + [True] * 200)
    raise ValueError(f"unknown back-pressure pattern {name!r}")


def pause_table(source: str, sink: str, seed: int, cycles: int) -> list[tuple[bool, bool]]:
    """``cycles`` (source stalls, sink stalls) pairs, drawn as the cocotb testbench draws them:
    one ``random.Random(seed)`` shared by both ports, source first each cycle."""
    rng = random.Random(seed)
    src, snk = pause_pattern(source, rng), pause_pattern(sink, rng)
    return [(next(src), next(snk)) for _ in range(cycles)]
