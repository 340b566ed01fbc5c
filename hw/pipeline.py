"""`delay`: a value and its registered copies, one per pipeline stage.

Every pipeline of the core (the tag of an issued item, the tag of an emitted
row, a partial sum waiting for its write stage) is such a chain of registers.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Shape, Signal, Value
from amaranth.lib import data

__all__ = ["delay"]


def _leaves(layout, path: str, offset: int):
    """``(name, offset, width)`` of the non-aggregate fields of ``layout``, in bit order."""
    if isinstance(layout, data.Layout):
        for key, field in layout:
            sep = "_" if path and isinstance(key, str) else ""
            yield from _leaves(field.shape, f"{path}{sep}{key}", offset + field.offset)
    else:
        yield path, offset, Shape.cast(layout).width


def delay(m, value, stages: int, *, name: str, reset=()) -> list:
    """``[value, value one cycle later, ..., value stages cycles later]`` (in ``m.d.sync``).

    ``value`` is an Amaranth value or a `data.View` of a layout. A plain value
    gets registers ``{name}_s{j}`` of its shape, without reset unless ``reset``
    is true. A view is delayed field by field, each (non-aggregate) field
    with registers of its own named ``{name}{field}_s{j}`` (a field of an
    array or a nested struct is named by its path, ``taps0_addr``); the fields
    named in ``reset`` are reset, the others are data only. Each stage is a
    view of the same layout. A register that nothing reads is removed by
    Yosys, so fields can travel further than they are needed.
    """
    out = [value]
    if not isinstance(value, data.View):
        value = Value.cast(value)
        for j in range(1, stages + 1):
            sig = Signal(value.shape(), name=f"{name}_s{j}", reset_less=not reset)
            m.d.sync += sig.eq(out[-1])
            out.append(sig)
        return out
    layout = data.Layout.cast(value.shape())
    leaves = list(_leaves(layout, "", 0))
    reset = set(reset)
    for j in range(1, stages + 1):
        prev = Value.cast(out[-1])
        regs = []
        for path, offset, width in leaves:
            sig = Signal(width, name=f"{name}{path}_s{j}", reset_less=path not in reset)
            m.d.sync += sig.eq(prev[offset:offset + width])
            regs.append(sig)
        out.append(data.View(layout, Cat(*regs)))
    return out
