"""The whole layer in Amaranth's simulator against Conv1DTransposeQ.forward_int, bit for bit.

Every run starts with garbage in the scatter banks (a stale word would show),
streams several frames back to back through the flat AXI4-Stream ports, and
most add random tvalid gaps and tready stalls; the testbench checks the
handshake rules on the way (tests in `tconv.sim.amaranth_sim`).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tconv.hw.check import check_layer
from tconv.hw.lookup import index_bits, select_bits
from tconv.model import Conv1DTransposeQ, LayerConfig
from tconv.sim.amaranth_sim import simulate

warnings.filterwarnings("ignore", message=".*created but never used")


def make_layer(seed, *, filters, kernel_size, in_channels, strides=1, dilation_rate=1,
               padding="valid", output_padding=None, activation="linear", use_bias=True,
               input_format="fixed<6,2,RND,SAT>", weight_format="fixed<5,1,RND_CONV,SAT>",
               bias_format="fixed<8,3>", output_format="fixed<8,3,RND,SAT>",
               data_format="channels_last"):
    rng = np.random.default_rng(seed)
    cfg = LayerConfig(filters=filters, kernel_size=kernel_size, strides=strides,
                      dilation_rate=dilation_rate, padding=padding, output_padding=output_padding,
                      activation=activation, use_bias=use_bias, in_channels=in_channels,
                      data_format=data_format)
    kernel = rng.uniform(-1, 1, (kernel_size, filters, in_channels))
    bias = rng.uniform(-2, 2, filters) if use_bias else None
    return Conv1DTransposeQ(cfg, kernel, bias, input_format=input_format, weight_format=weight_format,
                            bias_format=bias_format if use_bias else None, output_format=output_format)


def random_frames(q, lengths, seed):
    rng = np.random.default_rng(seed + 1000)
    f = q.input_format
    return [rng.integers(f.min_code, f.max_code, (L, q.config.in_channels), endpoint=True)
            for L in lengths]


def check(q, lengths, *, pe_count, seed=0, in_gap=0.0, out_stall=0.0, ready_off=None):
    frames = random_frames(q, lengths, seed)
    res = simulate(q, frames, pe_count=pe_count, seed=seed, in_gap=in_gap, out_stall=out_stall,
                   garbage_seed=seed, ready_off=ready_off)
    for n, (x, y) in enumerate(zip(frames, res.frames)):
        np.testing.assert_array_equal(y, q.forward_int(x), err_msg=f"frame {n} (L={len(x)})")
    return res


# (id, layer kwargs, pe_count, frame lengths, in_gap, out_stall)
CASES = [
    ("s1-k1-pointwise", dict(filters=3, kernel_size=1, in_channels=4), 4, [1, 5, 2], 0.0, 0.0),
    ("s2-k3-valid-relu", dict(filters=4, kernel_size=3, strides=2, in_channels=3, activation="relu"),
     8, [7, 1, 12], 0.3, 0.3),
    ("s3-k5-same-odd", dict(filters=2, kernel_size=5, strides=3, padding="same", in_channels=2,
                            activation="relu"), 4, [9, 3, 1], 0.2, 0.0),
    ("s4-k7-same-op", dict(filters=3, kernel_size=7, strides=4, padding="same", output_padding=2,
                           in_channels=3), 8, [6, 1, 4], 0.0, 0.4),
    ("s4-k2-valid-gaps", dict(filters=2, kernel_size=2, strides=4, in_channels=2), 4, [5, 2],
     0.3, 0.3),
    ("s2-k4-same-op0-even", dict(filters=3, kernel_size=4, strides=2, padding="same",
                                 output_padding=0, in_channels=3), 4, [1, 6, 1, 3], 0.0, 0.2),
    ("d2-k3-same", dict(filters=3, kernel_size=3, dilation_rate=2, padding="same", in_channels=3,
                        activation="relu6"), 8, [10, 2, 1], 0.2, 0.2),
    ("d3-k5-valid-leaky", dict(filters=4, kernel_size=5, dilation_rate=3, in_channels=2,
                               activation="leaky_relu", output_format="fixed<10,4,RND_CONV,SAT>"),
     16, [8, 3], 0.0, 0.0),
    ("d3-k2-same-op", dict(filters=2, kernel_size=2, dilation_rate=3, padding="same",
                           output_padding=0, in_channels=5), 4, [1, 2, 7], 0.3, 0.0),
    ("s3-k6-valid-op-leaky", dict(filters=5, kernel_size=6, strides=3, output_padding=1,
                                  in_channels=3, activation="leaky_relu"), 16, [4, 11], 0.0, 0.3),
    ("many-channels-chunks", dict(filters=3, kernel_size=3, strides=2, in_channels=9,
                                  activation="relu"), 4, [5, 3], 0.2, 0.2),
    ("tap-groups", dict(filters=1, kernel_size=7, dilation_rate=2, padding="same", in_channels=1,
                        activation="relu6"), 16, [12, 1, 5], 0.2, 0.2),
    ("sat-wrap-narrow-out", dict(filters=3, kernel_size=3, strides=2, in_channels=4,
                                 output_format="fixed<4,1,RND_INF,WRAP>"), 8, [6, 2], 0.0, 0.0),
    ("sat-sym-unsigned-in", dict(filters=2, kernel_size=4, strides=2, padding="same", in_channels=3,
                                 input_format="ufixed<6,2,RND,SAT>",
                                 output_format="fixed<5,2,TRN_ZERO,SAT_SYM>"), 8, [5, 4], 0.2, 0.0),
    ("sat-zero-unsigned-out", dict(filters=3, kernel_size=3, strides=1, in_channels=2,
                                   activation="relu", output_format="ufixed<4,1,RND_MIN_INF,SAT_ZERO>"),
     4, [6, 1], 0.0, 0.3),
    ("no-bias-wide-out", dict(filters=2, kernel_size=3, strides=3, in_channels=2, use_bias=False,
                              output_format="fixed<16,8>"), 2, [3, 1, 2], 0.0, 0.0),
    ("pe1", dict(filters=2, kernel_size=3, strides=2, in_channels=2), 1, [4, 2], 0.2, 0.2),
    ("long-frame-40", dict(filters=2, kernel_size=3, strides=2, padding="same", in_channels=2,
                           activation="relu"), 4, [40], 0.1, 0.1),
]


@pytest.mark.parametrize("name,kwargs,pe,lengths,gap,stall", CASES, ids=[c[0] for c in CASES])
def test_layer_matches_model(name, kwargs, pe, lengths, gap, stall):
    q = make_layer(hash(name) % 1000, **kwargs)
    check(q, lengths, pe_count=pe, seed=len(name), in_gap=gap, out_stall=stall)


# Bias codes by filter: rows 0-3 and 4-6 alike (only the filter row's top bit selects the
# bias), every row alike, and all different.
REPEATING_BIASES = {"top-bit": [0.5] * 4 + [-1.25] * 3, "constant": [0.75] * 7,
                    "distinct": [0.25 * f - 1 for f in range(7)]}


@pytest.mark.parametrize("biases", list(REPEATING_BIASES), ids=list(REPEATING_BIASES))
def test_repeating_biases_match_model(biases):
    """The emitter carries only the filter-row bits the bias depends on (`index_bits`)."""
    base = make_layer(3, filters=7, kernel_size=3, strides=2, in_channels=2, activation="relu")
    q = Conv1DTransposeQ(base.config, base.kernel, np.array(REPEATING_BIASES[biases]),
                         input_format=base.input_format, weight_format=base.weight_format,
                         bias_format=base.bias_format, output_format=base.output_format)
    check(q, [3, 1, 4], pe_count=2, seed=4, out_stall=0.2)


def test_index_bits_and_select_bits():
    assert index_bits([[1, 1, 1, 1, 2, 2, 2]], 3) == [2]
    assert select_bits([1, 1, 1, 1, 2, 2, 2], [2]) == [1, 2]
    assert index_bits([[5, 5, 5]], 2) == []
    assert index_bits([[1, 2, 1, 2]], 2) == [0]
    assert index_bits([[5, 5, 7, 7, 5]], 3) == [1] and select_bits([5, 5, 7, 7, 5], [1]) == [5, 7]
    # a bit one table ignores stays when another reads it
    assert index_bits([[1, 1], [3, 4]], 1) == [0]
    assert index_bits([[1, 2, 3]], 2) == [0, 1] and select_bits([1, 2, 3], [0, 1]) == [1, 2, 3, 3]


@pytest.mark.parametrize("activation", ["linear", "relu", "relu6", "leaky_relu"])
@pytest.mark.parametrize("output_format", ["fixed<7,3>", "fixed<6,2,RND_ZERO,WRAP>", "ufixed<5,1>",
                                           "fixed<6,5,RND,WRAP>",
                                           "fixed<12,2,RND_INF,WRAP>"])  # no bit dropped: sign unread
def test_wrapping_and_truncating_outputs(activation, output_format):
    """Default ap_fixed modes (TRN, WRAP): the post-processing keeps only the bits they read."""
    q = make_layer(6, filters=3, kernel_size=3, strides=2, padding="same", in_channels=3,
                   activation=activation, output_format=output_format)
    check(q, [5, 2], pe_count=4, seed=6, out_stall=0.2)


def _random_case(seed):
    rng = np.random.default_rng(seed)
    s = int(rng.integers(1, 5))
    d = 1 if s > 1 else int(rng.integers(1, 4))
    kwargs = dict(
        filters=int(rng.integers(1, 6)), kernel_size=int(rng.integers(1, 8)), strides=s,
        dilation_rate=d, in_channels=int(rng.integers(1, 7)),
        padding=str(rng.choice(["valid", "same"])),
        output_padding=None if rng.random() < 0.5 else int(rng.integers(0, s)),
        activation=str(rng.choice(["linear", "relu", "relu6", "leaky_relu"])),
        output_format=str(rng.choice(["fixed<6,2,RND,SAT>", "fixed<12,5>", "fixed<7,1,TRN_ZERO,SAT_SYM>",
                                      "ufixed<5,2,RND_CONV,SAT_ZERO>", "fixed<9,4,RND_INF,WRAP>"])),
    )
    pe = int(rng.choice([1, 2, 4, 8, 16]))
    lengths = [int(v) for v in rng.integers(1, 14, int(rng.integers(1, 4)))]
    return kwargs, pe, lengths, float(rng.choice([0.0, 0.3])), float(rng.choice([0.0, 0.4]))


@pytest.mark.parametrize("seed", range(24))
def test_random_layers_match_model(seed):
    kwargs, pe, lengths, gap, stall = _random_case(seed)
    q = make_layer(seed, **kwargs)
    check(q, lengths, pe_count=pe, seed=seed, in_gap=gap, out_stall=stall)


@pytest.mark.parametrize("pe", [2, 16])
def test_long_sink_stall_backs_up_into_the_array(pe):
    """m_axis_tready low for 300 cycles: the FIFO fills, the slots fill, the array and
    then s_axis stop; nothing is lost or duplicated when the sink comes back."""
    q = make_layer(9, filters=3, kernel_size=4, strides=3, padding="same", in_channels=2,
                   activation="relu")
    res = check(q, [20, 1, 15], pe_count=pe, seed=9, ready_off=(30, 330), in_gap=0.1)
    stalled = [c for c in res.in_cycles if 30 <= c < 330]
    assert len(stalled) < 20  # the input was held back during the stall


def test_widest_operands():
    """18-bit signed input and weight codes (one MULT18X18D operand each), wide accumulator."""
    q = make_layer(5, filters=2, kernel_size=3, strides=2, in_channels=5,
                   input_format="fixed<18,4,RND,SAT>", weight_format="fixed<18,2,RND,SAT>",
                   bias_format="fixed<24,8>", output_format="fixed<24,10,RND_CONV,SAT>")
    check(q, [6, 2], pe_count=4, seed=5)


def test_channels_first_uses_the_same_stream():
    q = make_layer(3, filters=3, kernel_size=3, strides=2, in_channels=2, data_format="channels_first")
    frames = random_frames(q, [5, 2], 3)
    res = simulate(q, frames, pe_count=4)
    for x, y in zip(frames, res.frames):
        # the stream carries steps; channels_first only transposes the model's arrays
        np.testing.assert_array_equal(y, q.forward_int(x.T).T)


# ------------------------------------------------------------------ cycles
CYCLE_CASES = [
    dict(filters=4, kernel_size=5, strides=3, padding="same", in_channels=4),
    dict(filters=3, kernel_size=3, dilation_rate=2, padding="same", in_channels=2),
    dict(filters=2, kernel_size=4, strides=2, in_channels=5),
    dict(filters=1, kernel_size=7, strides=1, padding="same", in_channels=1),
    dict(filters=3, kernel_size=1, strides=4, in_channels=3),  # the emitter is the bottleneck
    # mappings that are not powers of two (test_npow2_cycle_cases_map_as_intended)
    dict(filters=3, kernel_size=5, strides=1, in_channels=10),  # 2 lanes x 3 filter groups, 5 chunks
    dict(filters=5, kernel_size=5, strides=2, in_channels=6),   # 6 lanes: an adder tree of 6
]


def test_npow2_cycle_cases_map_as_intended():
    got = [(s.lanes, s.filter_groups, s.tap_groups, s.chunks)
           for s in (check_layer(make_layer(1, **kw), 8) for kw in CYCLE_CASES[-2:])]
    assert got == [(2, 3, 1, 5), (6, 1, 1, 1)]


@pytest.mark.parametrize("kwargs", CYCLE_CASES, ids=range(len(CYCLE_CASES)))
def test_measured_cycles_match_formula(kwargs):
    q = make_layer(1, **kwargs)
    sch = check_layer(q, 8)
    _, per_step, offset, exceptions = sch.cycle_formula()
    for L in (1, 3, 9):
        res = check(q, [L], pe_count=8)
        assert res.frame_cycles() == sch.frame_cycles(L) == exceptions.get(L, per_step * L + offset)
        assert [c - res.in_cycles[0] for c in res.out_cycles] == sch.run([L])["beats"]
    # back to back, the model predicts every output beat too
    lengths = [4, 1, 6]
    res = check(q, lengths, pe_count=8)
    assert [c - res.in_cycles[0] for c in res.out_cycles] == sch.run(lengths)["beats"]


def test_benchmark_odd_stride_utilization_in_rtl():
    """docs/contract.md's odd-stride layer on the default 64-PE array, measured in simulation."""
    q = make_layer(2, filters=8, kernel_size=5, strides=3, padding="same", in_channels=8,
                   activation="relu", input_format="fixed<8,3,RND,SAT>",
                   weight_format="fixed<8,1,RND,SAT>", bias_format="fixed<16,6>",
                   output_format="fixed<16,6,RND,SAT>")
    res = check(q, [64], pe_count=64)
    cycles = res.frame_cycles()
    assert cycles == check_layer(q, 64).frame_cycles(64)
    assert 64 * 5 * 8 * 8 / (64 * cycles) >= 0.95
