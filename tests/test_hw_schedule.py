"""The array schedule (pure python): mapping, first-touch rule, finality, cycle model."""

from __future__ import annotations

import itertools

import pytest

from tconv.flow.bench import BENCH_LAYERS
from tconv.hw.schedule import Schedule, next_pow2
from tconv.model import LayerConfig

# docs/contract.md's benchmark layers: (L, in_channels, filters, kernel, strides, dilation, padding)
#: The benchmark layers (docs/contract.md; one table, tconv.flow.bench.BENCH_LAYERS) as
#: (L, in_channels, filters, kernel_size, strides, dilation_rate, padding).
BENCHMARKS = {name: (b["L"], b["in_channels"], b["filters"], b["kernel_size"], b["strides"], b["dilation_rate"],
                     b["padding"]) for name, b in BENCH_LAYERS.items()}


def _config(C, F, K, s, d, pad, op=None):
    return LayerConfig(filters=F, kernel_size=K, strides=s, dilation_rate=d, padding=pad,
                       output_padding=op, in_channels=C)


def _small_configs():
    for s, d, K, C, F, pad, op in itertools.product(
            (1, 2, 3), (1, 2, 3), (1, 2, 5), (1, 3, 8), (1, 3), ("valid", "same"), (None, 0)):
        if s > 1 and d > 1:
            continue
        yield _config(C, F, K, s, d, pad, op)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_mapping_keeps_every_lane_busy(name):
    L, C, F, K, s, d, pad = BENCHMARKS[name]
    sch = Schedule.plan(_config(C, F, K, s, d, pad), 64)
    expected_t = {"keras-doc": 192, "vocoder-up": 512, "dilated": 12, "odd-stride": 5, "pointwise": 16}
    assert sch.cycles_per_step == expected_t[name]
    # every lane of every group does useful work in every cycle of a step
    assert sch.cycles_per_step * sch.pe_count == K * F * C
    assert sch.lanes * sch.groups == 64


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_utilization_target(name):
    L, C, F, K, s, d, pad = BENCHMARKS[name]
    sch = Schedule.plan(_config(C, F, K, s, d, pad), 64)
    assert sch.utilization(L) >= 0.95
    assert sch.run([L, L, L])["stall_cycles"] == 0  # back-to-back frames never wait for slots


def test_work_covers_every_product_once():
    for cfg in _small_configs():
        for pe in (1, 4, 16):
            sch = Schedule.plan(cfg, pe)
            seen = set()
            for g in range(sch.groups):
                for t in range(sch.cycles_per_step):
                    k, f, chans = sch.work(g, t)
                    assert len(chans) <= sch.lanes
                    if k < cfg.kernel_size and f < cfg.filters:
                        for ch in chans:
                            assert (k, f, ch) not in seen
                            seen.add((k, f, ch))
            assert len(seen) == cfg.kernel_size * cfg.filters * cfg.in_channels


def test_first_touch_matches_brute_force():
    for cfg in _small_configs():
        for pe in (1, 8, 64):
            sch = Schedule.plan(cfg, pe)
            K, s, d = cfg.kernel_size, cfg.strides, cfg.dilation_rate
            for i in range(12):
                for k in range(K):
                    p = i * s + k * d
                    earlier = any(i2 * s + k2 * d == p
                                  for i2 in range(i) for k2 in range(K)
                                  if k2 % sch.tap_groups == k % sch.tap_groups)
                    assert sch.first_touch(i, k) == (not earlier), (cfg, pe, i, k)
            for gk in range(sch.tap_groups):
                for kl in range(sch.taps_per_group):
                    k = gk + sch.tap_groups * kl
                    if k < K:
                        assert (kl >= sch.first_touch_tap_level(gk)) == \
                            (k + sch.revisit_taps >= K)


def test_final_offset_is_safe_and_tight():
    """After tap levels 0..kl of step i, no later (step, tap) reaches below the pointer."""
    for cfg in _small_configs():
        sch = Schedule.plan(cfg, 8)
        K, s, d, Gk = cfg.kernel_size, cfg.strides, cfg.dilation_rate, sch.tap_groups
        L = 6
        for i in range(L):
            last = i == L - 1
            for kl in range(sch.taps_per_group):
                ptr = i * s + sch.final_offset(kl, last)
                pending = [(i, k) for k in range((kl + 1) * Gk, K)] + \
                          [(i2, k) for i2 in range(i + 1, L) for k in range(K)]
                reach = [i2 * s + k * d for i2, k in pending]
                assert all(p >= ptr for p in reach), (cfg, i, kl)
                if not last:
                    assert ptr <= (i + 1) * s
        assert sch.final_offset(sch.taps_per_group - 1, True) == sch.tail_span


def test_output_length_and_tail():
    for cfg in _small_configs():
        sch = Schedule.plan(cfg, 4)
        for L in range(1, 6):
            assert sch.output_length(L) == cfg.output_length(L)
            assert sch.crop_left + sch.output_length(L) <= (L - 1) * cfg.strides + sch.tail_span


def test_slots_and_queues_are_powers_of_two():
    for cfg in _small_configs():
        sch = Schedule.plan(cfg, 16)
        for v in (sch.slots, sch.out_fifo_depth, sch.frame_queue_depth):
            assert v == next_pow2(v)
        assert sch.slots >= sch.tail_span + sch.keff + cfg.strides


def test_cycle_formula_matches_model():
    for cfg in list(_small_configs())[::7]:
        sch = Schedule.plan(cfg, 8)
        text, per_step, offset, exceptions = sch.cycle_formula()
        for L in range(1, 30):
            want = exceptions.get(L, per_step * L + offset)
            assert sch.frame_cycles(L) == want
        assert str(per_step) in text


@pytest.mark.parametrize("pe", [0, 3, 6, -4, 2.0, True])
def test_bad_pe_count(pe):
    with pytest.raises(ValueError, match="pe_count.*power of two"):
        Schedule.plan(_config(4, 4, 3, 2, 1, "valid"), pe)


# ------------------------------------------------- mappings of any size
#: Real layers whose sizes are not powers of two (issue #20), at 64 PEs:
#: (in_channels, filters, kernel_size, strides, padding).
REAL_LAYERS = {
    "unet-up1": (160, 160, 5, 2, "same"), "unet-up2": (160, 80, 5, 2, "same"),
    "unet-up3": (80, 40, 5, 2, "same"), "unet-up4": (40, 20, 5, 2, "same"),
    "autoencoder-out": (32, 1, 7, 1, "same"),
}


def _brute_force_mapping(C, F, K, s, P):
    """The best key of plan_mapping over every (lanes, filter_groups, tap_groups)."""
    best = None
    for lanes in range(1, min(C, P) + 1):
        ch = -(-C // lanes)
        for gf in range(1, P // lanes + 1):
            for gk in range(1, P // (lanes * gf) + 1):
                fg, t = -(-F // gf), -(-K // gk) * -(-F // gf) * ch
                key = (max(t, s * fg), t)
                best = key if best is None else min(best, key)
    return best


def test_plan_mapping_is_the_fastest_of_every_integer_mapping():
    from tconv.hw.schedule import plan_mapping
    for C, F, K, s, P in itertools.product((1, 3, 5, 6, 10), (1, 3, 5), (1, 3, 5, 7), (1, 2, 3), (4, 8, 16)):
        lanes, gf, gk, t = plan_mapping(C, F, K, s, P)
        assert lanes * gf * gk <= P and gf <= F and gk <= K and lanes <= C
        assert t == -(-K // gk) * -(-F // gf) * -(-C // lanes)
        assert (max(t, s * -(-F // gf)), t) == _brute_force_mapping(C, F, K, s, P), (C, F, K, s, P)


@pytest.mark.parametrize("name", REAL_LAYERS)
def test_real_layers_steady_state_utilization(name):
    C, F, K, s, pad = REAL_LAYERS[name]
    sch = Schedule.plan(_config(C, F, K, s, 1, pad), 64)
    util = sch.steady_utilization()
    assert util == K * F * C / (64 * sch.cycle_formula()[1])
    note = sch.utilization_note()
    if name in ("unet-up4", "autoencoder-out"):
        # 4000 products over 64 PEs split at best into 70 cycles (20 lanes x 3 filter
        # groups); 224 products need 4 cycles (3.5 would be 100%): both below 95%
        assert util < 0.95 and note is not None
        assert f"{100 * util:.1f}%" in note and "pe_count 32 would reach 100.0%" in note
    else:
        assert util >= 0.95 and note is None
        assert sch.cycles_per_step * 64 == K * F * C  # every lane busy


def test_generate_notes_low_utilization(tmp_path, caplog):
    import logging

    from tconv.hw.generate import generate
    from tconv.model import FixedFormat, random_layer
    fmts = {"input": FixedFormat.parse("fixed<6,2>"), "weight": FixedFormat.parse("fixed<5,1>"),
            "bias": FixedFormat.parse("fixed<8,3>"), "output": FixedFormat.parse("fixed<8,3>")}
    layer = random_layer(_config(3, 1, 1, 1, 1, "valid"), fmts, seed=1)  # 3 products on 4 PEs: 75%
    with caplog.at_level(logging.INFO, logger="tconv.hw.generate"):
        generate(layer, tmp_path / "low", pe_count=4)
    notes = [r.getMessage() for r in caplog.records if "note:" in r.getMessage()]
    assert len(notes) == 1 and "75.0%" in notes[0] and "pe_count 1 would reach 100.0%" in notes[0]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tconv.hw.generate"):
        generate(layer, tmp_path / "full", pe_count=1)
    assert not [r for r in caplog.records if "note:" in r.getMessage()]
