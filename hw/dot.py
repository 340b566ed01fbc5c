"""One group of PEs: ``lanes`` multipliers and a pipelined adder tree.

Each multiplier has its operands registered in front of it and its product
registered behind it. In the generated Verilog the last operand register, the
multiplication and the product register are one instance of the multiplier
cell (`tconv.hw.multiplier`), which maps to one DSP block with its own input
and output registers: no fabric path runs through a multiplier. The operands
pass one more register in the fabric before the cell: on the ECP5 the DSP rows
lie a dozen rows away from the block-RAM rows (and from the step buffer's wide
registers), and that register sits between them. The tree registers every level.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import ClockSignal, Instance, Module, Shape, Signal, signed
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

    Levels add pairs (an odd one out passes through) and every level is
    registered (without reset: data only): one carry chain between flip-flops. (With two levels per
    stage, Yosys merges the adders of a stage into one multi-operand sum that
    it maps to LUT compressors in front of a carry chain, which is slower.)
    Returns the final register, of ``out_shape`` (which must hold the sum, or
    ``select(sum)`` when given), or the single operand itself when there is
    only one.
    """
    level = list(operands)
    depth = 0
    while len(level) > 1:
        nxt = [level[j] + level[j + 1] if j + 1 < len(level) else level[j]
               for j in range(0, len(level), 2)]
        depth += 1
        regs = []
        for j, expr in enumerate(nxt):
            if len(nxt) == 1 and select is not None:
                expr = select(expr)
            r = Signal(out_shape if len(nxt) == 1 else expr.shape(), name=f"{name}_l{depth}_{j}",
                       reset_less=True)
            m.d.sync += r.eq(expr)
            regs.append(r)
        level = regs
    return level[0]


class DotProduct(wiring.Component):
    """``sum(x[r] * w[r] for r in range(lanes))`` with ``latency`` cycles of delay.

    Parameters
    ----------
    lanes : int
        Multipliers (any count; the tree passes an odd operand on to the next level).
    x_shape, w_shape : Shape
        Operand shapes (signedness included).
    out_width : int
        Signed width of the sum; the caller guarantees it holds every sum.
    operand_stages, product_stages : int
        Registers in front of and behind each multiplier (at least 1 each).
    w_registered : int
        Of the operand registers, how many the weights have passed already
        (a block-RAM weight ROM's registered read data is the first), so that
        ``w`` arrives that many cycles after ``x``'s cycle and only ``x`` passes them here.
    cell : MultiplierCell, optional
        Multiply through instances of this Verilog module (`tconv.hw.multiplier`),
        which holds the last operand register and the first product register.
        Without it (for Amaranth's simulator, which cannot run instances) the
        same registers and multiplication are built here; the cycle behaviour is
        identical.

    Members
    -------
    x : In(ArrayLayout(x_shape, lanes))
    w : In(ArrayLayout(w_shape, lanes))
    o : Out(signed(out_width))
        The dot product of the operands presented ``latency`` cycles earlier
        (operand registers, product registers, then the tree's stages).
    """

    def __init__(self, lanes: int, *, x_shape: Shape, w_shape: Shape, out_width: int,
                 operand_stages: int = 2, product_stages: int = 1, cell=None, w_registered: int = 0):
        if operand_stages < 1 or product_stages < 1:
            raise ValueError("a multiplier needs at least one operand and one product register")
        if not 0 <= w_registered <= operand_stages - (cell is not None):
            raise ValueError(f"w_registered must be 0..{operand_stages - (cell is not None)}, got {w_registered}")
        self._w_registered = w_registered
        self.lanes = lanes
        self._cell = cell
        self._x_shape = Shape.cast(x_shape)
        self._w_shape = Shape.cast(w_shape)
        self._out_width = out_width
        self._operand_stages = operand_stages
        self._product_stages = product_stages
        self.latency = operand_stages + product_stages + tree_stages(lanes)
        super().__init__({
            "x": In(data.ArrayLayout(self._x_shape, lanes)),
            "w": In(data.ArrayLayout(self._w_shape, lanes)),
            "o": Out(signed(out_width)),
        })

    def elaborate(self, platform):
        m = Module()
        pshape = _product_shape(self._x_shape, self._w_shape)
        level = []
        cell = self._cell
        # Registers inside the cell: the last operand one and the first product one.
        inside = 1 if cell is not None else 0
        for r in range(self.lanes):
            xr, wr = self.x[r], self.w[r]
            for n in range(self._operand_stages - inside):
                xn = Signal(self._x_shape, name=f"x{r}_{n}", reset_less=True)
                m.d.sync += xn.eq(xr)
                xr = xn
                if n >= self._w_registered:
                    wn = Signal(self._w_shape, name=f"w{r}_{n}", reset_less=True)
                    m.d.sync += wn.eq(wr)
                    wr = wn
            if cell is not None:
                a, b = Signal(cell.a_shape, name=f"a{r}"), Signal(cell.b_shape, name=f"b{r}")
                # Kept (`keep`) so that Yosys names the product's bits after it:
                # with one lane the product goes straight into a wider signal
                # (the dot product's output, a scatter bank's input), which
                # would otherwise take the bits and hold its sign extension as
                # an assignment from its own bits (unread sign bits for lint,
                # a combinational loop for a Verilator build: UNOPTFLAT).
                p = Signal(pshape, name=f"mul{r}_p", attrs={"keep": 1})
                m.d.comb += [a.eq(xr), b.eq(wr)]
                m.submodules[f"mul{r}"] = Instance(cell.name, i_clk=ClockSignal(), i_a=a, i_b=b, o_p=p)
            else:
                p = xr * wr
            for n in range(inside, self._product_stages):
                pn = Signal(pshape, name=f"product{r}" + (f"_{n}" if n else ""), reset_less=True)
                m.d.sync += pn.eq(p)
                p = pn
            level.append(p)
        m.d.comb += self.o.eq(adder_tree(m, level, signed(self._out_width), name="sum"))
        return m

    @staticmethod
    def model(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Dot products of rows of ``x`` and ``w`` (int64)."""
        return (np.asarray(x, dtype=np.int64) * np.asarray(w, dtype=np.int64)).sum(axis=-1)
