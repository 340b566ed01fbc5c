"""Generate a layer chain's design folder: one Verilog module, its waivers and ``manifest.json``.

The folder has what a single layer's has (docs/contract.md, "Generated files and
the manifest"); the manifest's ``stages`` holds one object per layer with that
layer's ``layer``, ``formats``, ``array`` and ``performance``, and the top-level
``formats`` has the chain's ``input`` (the first stage's) and ``output`` (the
last stage's). Every stage multiplies through its own cell ``<top>_s<i>_mul``
(operand widths differ between stages); ``ecp5/<top>_mul.v`` holds all of them
as MULT18X18D, which ``tconv synth`` reads in place of the portable ones.
"""

from __future__ import annotations

import json
import logging

import amaranth

from .chain import ChainPlan, Conv1DTransposeChainTop, plan_chain
from .folder import check_output_folder, write_design
from .generate import ACTIVATION_TABLE, _activation, _npz, ecp5_header, make_test_vectors, waivers
from .manifest import GENERATOR_PACKAGE, CycleFormula
from .verilog import check_module_name, convert

__all__ = ["generate_chain", "chain_design_files", "DEFAULT_CHAIN_TOP", "chain_cycle_formula"]

DEFAULT_CHAIN_TOP = "tconv_conv1d_transpose_chain"
_log = logging.getLogger("tconv.hw.generate")


def chain_cycle_formula(plan: ChainPlan) -> dict:
    """The chain cycle model as the manifest states it (`ChainPlan.frame_cycles` as data)."""
    per_step, offset, exceptions = plan.cycle_formula()
    return {"cycles_per_frame": CycleFormula(per_step, offset, exceptions).to_json(),
            "cycles_per_frame_function": "tconv.hw.chain.ChainPlan.frame_cycles",
            "definition": ("first s_axis handshake to last m_axis handshake of one frame of L steps on an idle "
                           "chain, source and sink never stalling; per_step is the bottleneck stage's "
                           "cycles_per_chain_step. A model: exact when one stage is the bottleneck, within a "
                           "few cycles when several stages are (their back-pressure is not modelled)")}


def _stage_entry(i: int, st, plan: ChainPlan, name: str, cell) -> dict:
    sch = plan.schedules[i]
    cfg = st.config
    formula, per_step, offset, exceptions = sch.cycle_formula()
    macs = cfg.kernel_size * cfg.filters * cfg.in_channels
    return {
        "name": name,
        "layer": cfg.to_dict(),
        "formats": {"input": str(st.input_format), "weight": str(st.weight_format),
                    "bias": str(st.bias_format) if st.bias_format is not None else None,
                    "accumulator": str(st.accumulator_format), "output": str(st.output_format)},
        "array": {**sch.summary(), "multiplier_cell": {"module": cell.name, "latency": cell.latency,
                                                        "a_width": cell.a_width, "b_width": cell.b_width}},
        "performance": {
            "cycles_per_frame_formula": formula,
            "cycles_per_frame": CycleFormula(per_step, offset, exceptions).to_json(),
            "cycles_per_frame_definition": "this stage alone, idle, source and sink never stalling",
            "macs_per_step": macs,
            "steady_state_mac_utilization": round(macs / (sch.pe_count * per_step), 6),
            **plan.stage_summary(i),
        },
        "activation": _activation(st),
    }


def chain_design_files(chain_q, plan: ChainPlan, *, top: str = DEFAULT_CHAIN_TOP) -> tuple[dict[str, bytes], dict]:
    """The files of ``chain_q``'s design folder in memory, ``({relative path: bytes}, manifest)``."""
    check_module_name(top)
    cells = [f"{top}_s{i}_mul" for i in range(len(chain_q.stages))]
    design = Conv1DTransposeChainTop(chain_q, plan, mul_cells=cells)
    cell_objs = [core.multiplier_cell for core in design.cores]
    verilog_text = convert(design, name=top) + "\n" + "".join(c.generic_verilog() for c in cell_objs)
    # The same chain elaborated for ECP5 (block RAM as DP16KD cells with output registers).
    ecp5_text = ecp5_header(top) + convert(Conv1DTransposeChainTop(chain_q, plan, mul_cells=cells), name=top,
                                           platform="ecp5")
    stages = chain_q.stages
    files = {
        f"{top}.v": verilog_text.encode(),
        f"ecp5/{top}.v": ecp5_text.encode(),
        f"{top}.vlt": _chain_waivers(top, cells).encode(),
        f"ecp5/{top}_mul.v": "\n".join(c.ecp5_verilog() for c in cell_objs).encode(),
        "test_vectors.npz": _npz(**make_test_vectors(chain_q)),
    }
    weights = {}
    entries = []
    for i, st in enumerate(stages):
        weights.update({f"kernel_codes_{i}": st.kernel_codes, f"bias_codes_{i}": st.bias_codes,
                        f"kernel_{i}": st.kernel, f"bias_{i}": st.bias})
        entry = _stage_entry(i, st, plan, chain_q.names[i], cell_objs[i])
        if st.activation_table is not None:
            table = f"stage{i}_{ACTIVATION_TABLE}"
            files[table] = (json.dumps(st.activation_table.to_json()) + "\n").encode()
            entry["activation"]["table"] = table
        entries.append(entry)
    files["weights.npz"] = _npz(**weights)
    first, last = stages[0], stages[-1]
    macs = plan.chain_macs_per_step()
    manifest = {
        "top": top,
        "verilog": [f"{top}.v"],
        "verilog_ecp5": [f"ecp5/{top}.v", f"ecp5/{top}_mul.v"],
        "verilator_waivers": f"{top}.vlt",
        "formats": {"input": str(first.input_format), "output": str(last.output_format)},
        "interface": {
            "s_axis_tdata_width": first.config.in_channels * first.input_format.width,
            "m_axis_tdata_width": last.config.filters * last.output_format.width,
            "clock": "clk", "reset": "rst (synchronous, active high)",
            "s_axis_packing": "channel c of the first layer in bits [c*W, (c+1)*W), two's complement when signed",
            "m_axis_packing": "filter f of the last layer in bits [f*W, (f+1)*W), two's complement when signed",
        },
        "array": {
            "pe_budget": plan.budget, "pe_count": plan.pe_count, "multipliers_built": plan.multipliers_built,
            "stage_pe_counts": [s.pe_count for s in plan.schedules],
            "multiplier_cell": {"modules": cells, "ecp5_verilog": f"ecp5/{top}_mul.v",
                                "note": (f"each stage's cell is defined in portable Verilog at the end of {top}.v; "
                                         f"ecp5/{top}_mul.v holds them as Lattice MULT18X18D with their registers, "
                                         "part of verilog_ecp5")},
        },
        "performance": {
            "cycles_per_chain_step": plan.cycles_per_chain_step,
            "chain_cycles": chain_cycle_formula(plan),
            "bottleneck_stage": plan.bottleneck,
            "bottleneck_layer": chain_q.names[plan.bottleneck],
            "macs_per_chain_step": macs,
            "steady_state_mac_utilization": round(plan.steady_utilization("built"), 6),
            "steady_state_mac_utilization_over_arrays": round(plan.steady_utilization("arrays"), 6),
            "mac_utilization": "macs_per_chain_step / (multipliers_built * cycles_per_chain_step), long frames",
        },
        "generator": {"package": GENERATOR_PACKAGE, "amaranth": amaranth.__version__},
        "stages": entries,
        "weights": "weights.npz",
        "test_vectors": "test_vectors.npz",
    }
    return files, manifest


def _chain_waivers(top: str, cells: list[str]) -> str:
    """`tconv.hw.generate.waivers` with the DECLFILENAME waiver for every stage's multiplier cell."""
    text = waivers(top)
    head, _, _ = text.rpartition("lint_off -rule DECLFILENAME")
    lines = "".join(f"lint_off -rule DECLFILENAME -file \"*{top}.v\" -match \"*'{c}'*\"\n" for c in cells)
    return head + lines


def generate_chain(chain_q, out_dir, *, pe_count: int = 64, top: str | None = None) -> dict:
    """Write the design folder of a layer chain (`tconv.model.chain.ChainQ`) into ``out_dir``.

    ``pe_count`` is the PE budget of the whole chain, split by `tconv.hw.chain.plan_chain`.
    Everything is checked before anything is elaborated; the folder is written all or
    nothing (`tconv.hw.folder.write_design`). Returns the manifest.
    """
    top = DEFAULT_CHAIN_TOP if top is None else check_module_name(top, "top (--top)")
    plan = plan_chain(chain_q, pe_count)
    check_output_folder(out_dir)
    _log.debug("PE budget %d split over %d stages:\n%s", pe_count, len(chain_q.stages), plan.report(chain_q.names))
    note = plan.utilization_note()
    if note:  # not an error: the design is exact and as fast as this budget allows
        _log.info("tconv: note: %s", note)
    _log.info("elaborating %d stage arrays and writing Verilog ...", len(chain_q.stages))
    files, manifest = chain_design_files(chain_q, plan, top=top)
    write_design(out_dir, files, manifest)
    manifest["files"] = sorted(files)
    return manifest
