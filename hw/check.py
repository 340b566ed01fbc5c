"""What the hardware can build: `check_layer` validates a quantized layer and plans its schedule.

Every generate path calls it once, before anything is elaborated or written, and
hands the `Schedule` it returns to `tconv.hw.layer` (the schedule is never
planned twice).
"""

from __future__ import annotations

from .multiplier import DSP_OPERAND_BITS as MAX_OPERAND_BITS
from .postprocess import check_activation
from .schedule import Schedule

__all__ = ["check_layer"]


def check_layer(layer_q, pe_count: int) -> Schedule:
    """Validate what the hardware can build; returns the schedule.

    Raises
    ------
    ValueError
        Naming the field and what it allows: ``array.pe_count`` (a power of two),
        ``layer.activation`` (every elementwise activation of the fixed-point
        model, `tconv.model.ACTIVATIONS`), ``formats.input`` /
        ``formats.weight`` (at most 18 bits signed, 17 unsigned, one MULT18X18D
        operand), ``formats.output`` (a wrapping output must keep some bit of the
        result).
    """
    config = layer_q.config
    config.check_limits()  # a layer built in Python reaches here without the flows' checks
    check_activation(config.activation)
    for field, fmt in (("input", layer_q.input_format), ("weight", layer_q.weight_format)):
        bits = fmt.width + (0 if fmt.signed else 1)
        if bits > MAX_OPERAND_BITS:
            raise ValueError(
                f"formats.{field} {fmt} is too wide for the array's multipliers (one ECP5 "
                f"MULT18X18D per PE): allowed are at most {MAX_OPERAND_BITS} bits signed "
                f"(fixed<W,I> with W <= {MAX_OPERAND_BITS}) or {MAX_OPERAND_BITS - 1} bits unsigned")
    out = layer_q.output_format
    act_frac = layer_q.activation_frac
    if out.overflow == "WRAP" and out.frac - act_frac >= out.width:
        # Every code would be 0: synthesis would remove the whole datapath.
        raise ValueError(
            f"formats.output {out} wraps away every bit of the layer's result: the result has "
            f"{act_frac} fractional bits, so the output's {out.width} bits (the lowest weighs "
            f"2^{-out.frac}) would always be 0; allowed are output formats with fewer than "
            f"{act_frac + out.width} fractional bits, or a saturating overflow mode")
    return Schedule.plan(config, pe_count)
