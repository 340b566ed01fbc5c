"""One group of PEs: ``lanes`` multipliers and a pipelined adder tree.

Each multiplier has registered operands (the caller's x register and the weight
ROM's output register) and a registered product, the shape Yosys maps onto one
ECP5 MULT18X18D per PE. The tree registers every second level so each cycle
holds at most two adders.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Shape, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .schedule import tree_stages

__all__ = ["DotProduct", "adder_tree"]


def _product_shape(x_shape: Shape, w_shape: Shape) -> Shape:
    width = x_shape.width + w_shape.width
    if x_shape.signed or w_shape.signed:
        return signed(width)
    return Shape(width, signed=False)


def adder_tree(m: Module, operands: list, out_shape: Shape, *, name: str, select=None):
    """Sum of ``operands`` through ``tree_stages(len(operands))`` register stages.

    Levels add pairs (an odd one out passes through); a register follows every
    second level and the last one. Returns the final register, of ``out_shape``
    (which must hold the sum, or ``select(sum)`` when given), or the single
    operand itself when there is only one.
    """
    level = list(operands)
    depth = 0
    while len(level) > 1:
        nxt = [level[j] + level[j + 1] if j + 1 < len(level) else level[j]
               for j in range(0, len(level), 2)]
        depth += 1
        if depth % 2 == 0 or len(nxt) == 1:
            regs = []
            for j, expr in enumerate(nxt):
                if len(nxt) == 1 and select is not None:
                    expr = select(expr)
                r = Signal(out_shape if len(nxt) == 1 else expr.shape(), name=f"{name}_l{depth}_{j}")
                m.d.sync += r.eq(expr)
                regs.append(r)
            nxt = regs
        level = nxt
    return level[0]


class DotProduct(wiring.Component):
    """``sum(x[r] * w[r] for r in range(lanes))`` with ``latency`` cycles of delay.

    Parameters
    ----------
    lanes : int
        Multipliers (a power of two).
    x_shape, w_shape : Shape
        Operand shapes (signedness included).
    out_width : int
        Signed width of the sum; the caller guarantees it holds every sum.

    Members
    -------
    x : In(ArrayLayout(x_shape, lanes))
    w : In(ArrayLayout(w_shape, lanes))
    o : Out(signed(out_width))
        The dot product of the operands presented ``latency`` cycles earlier.
    """

    def __init__(self, lanes: int, *, x_shape: Shape, w_shape: Shape, out_width: int):
        self.lanes = lanes
        self._x_shape = Shape.cast(x_shape)
        self._w_shape = Shape.cast(w_shape)
        self._out_width = out_width
        self.latency = 1 + tree_stages(lanes)
        super().__init__({
            "x": In(data.ArrayLayout(self._x_shape, lanes)),
            "w": In(data.ArrayLayout(self._w_shape, lanes)),
            "o": Out(signed(out_width)),
        })

    def elaborate(self, platform):
        m = Module()
        pshape = _product_shape(self._x_shape, self._w_shape)
        level = []
        for r in range(self.lanes):
            p = Signal(pshape, name=f"product{r}")
            m.d.sync += p.eq(self.x[r] * self.w[r])
            level.append(p)
        m.d.comb += self.o.eq(adder_tree(m, level, signed(self._out_width), name="sum"))
        return m

    @staticmethod
    def model(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Dot products of rows of ``x`` and ``w`` (int64)."""
        return (np.asarray(x, dtype=np.int64) * np.asarray(w, dtype=np.int64)).sum(axis=-1)
