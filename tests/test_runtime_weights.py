"""Runtime weights (docs/contract.md, "Runtime weights"): packing, the switch rule, and the RTL.

- `tconv.hw.weight_stream`: pack/unpack round trip, the layout, the switch model.
- Amaranth's simulator (fast): sets loaded between phases of frames, malformed sets
  (early tlast, no tlast on the last beat) and a reset in the middle of a set, each
  followed by frames whose output shows which set is active.
- The generated Verilog in both testbench engines (compiled and cocotb) on Icarus and
  Verilator: sets loaded between frames and in the middle of frames, back-to-back frames of
  one step, random and bursty w_axis_tvalid, random m_axis back-pressure, short and long
  sets, and a set that differs from the active one in one weight code of one PE (seen in
  exactly the frames that use it); the two engines agree on the verdict and on the set of
  every frame.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator
from conftest import require_simulator
from test_hw_layer import make_layer, random_frames

from tconv.hw.bus import pack_beat, unpack_beat
from tconv.hw.check import check_layer
from tconv.hw.generate import design_files, generate
from tconv.hw.layer import Conv1DTransposeTop
from tconv.hw.weight_stream import pack_set, stream_layout, unpack_set, weight_switch, with_codes
from tconv.sim.design import GeneratedDesign
from tconv.sim.runner import simulate

LAYERS = {  # LUT-RAM weights (T <= 16) and block-RAM weights, both with a bias
    "lut": dict(filters=3, kernel_size=3, in_channels=5, strides=2),
    "bram": dict(filters=8, kernel_size=5, in_channels=20, strides=3, padding="same"),
}


def random_set(q, rng):
    wf, bf = q.weight_format, q.bias_format
    kc = rng.integers(wf.min_code, wf.max_code, q.kernel_codes.shape, endpoint=True)
    bc = rng.integers(bf.min_code, bf.max_code, q.bias_codes.shape, endpoint=True) if bf else None
    return kc, bc


# ------------------------------------------------------------------ model and packing
@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("pe_count", [1, 4, 16])
def test_pack_unpack_round_trip(name, pe_count):
    q = make_layer(3, **LAYERS[name])
    lay = stream_layout(q, check_layer(q, pe_count))
    kc, bc = random_set(q, np.random.default_rng(pe_count))
    beats = pack_set(q, lay, kc, bc)
    assert len(beats) == lay.beats == lay.weight_beats + lay.bias_beats
    assert all(0 <= b < 1 << lay.beat_width for b in beats)
    k2, b2 = unpack_set(q, lay, beats)
    np.testing.assert_array_equal(k2, kc)
    np.testing.assert_array_equal(b2, bc)
    # every kernel code sits in exactly one field: changing one code changes one beat
    kc2 = kc.copy()
    kc2[1, 2, 4] = kc[1, 2, 4] + (1 if kc[1, 2, 4] < q.weight_format.max_code else -1)
    diff = [i for i, (a, b) in enumerate(zip(beats, pack_set(q, lay, kc2, bc))) if a != b]
    assert len(diff) == 1 and diff[0] < lay.weight_beats


def test_pack_refuses_bad_codes():
    q = make_layer(3, **LAYERS["lut"])
    lay = stream_layout(q, check_layer(q, 4))
    kc, bc = random_set(q, np.random.default_rng(0))
    with pytest.raises(ValueError, match="outside the format"):
        pack_set(q, lay, kc + 1000, bc)
    with pytest.raises(ValueError, match="shape"):
        pack_set(q, lay, kc[:1], bc)
    with pytest.raises(ValueError, match="beats"):
        unpack_set(q, lay, pack_set(q, lay, kc, bc)[:-1])


def test_weight_switch_rule():
    # set 0 ends at 10, set 1 (malformed) at 20, set 2 at 30, set 3 never completed
    ends, valid = [10, 20, 30, None], [True, False, True, True]
    assert weight_switch(ends, [0, 10, 11, 25, 30, 31], valid) == [-1, -1, 0, 0, 0, 2]
    assert weight_switch([], [5]) == [-1]


def test_rom_design_has_no_load_port():
    q = make_layer(3, **LAYERS["lut"])
    sch = check_layer(q, 4)
    rom_files, rom = design_files(q, sch)
    rt_files, rt = design_files(q, sch, runtime_weights=True)
    assert rom["array"]["weights"] == "rom" and "weights_stream" not in rom
    assert "w_axis_tdata" not in rom_files["tconv_conv1d_transpose.v"].decode()
    assert rt["array"]["weights"] == "runtime"
    lay = stream_layout(q, sch)
    assert rt["interface"]["w_axis_beats"] == lay.beats == rt["weights_stream"]["beats"]
    assert rt["interface"]["w_axis_tdata_width"] == lay.beat_width
    v = rt_files["tconv_conv1d_transpose.v"].decode()
    for port in ("w_axis_tdata", "w_axis_tvalid", "w_axis_tready", "w_axis_tlast"):
        assert port in v


# ------------------------------------------------------------------ Amaranth simulator
class Bench:
    """Phases on one simulated design: send a weight set (optionally cut short by a reset),
    then run frames and return their outputs."""

    def __init__(self, q, pe_count, seed=0):
        self.q = q
        self.top = Conv1DTransposeTop(q, check_layer(q, pe_count), runtime_weights=True)
        self.layout = self.top.weights_stream
        self.rng = np.random.default_rng(seed)

    async def send_set(self, ctx, beats, lasts, reset_after=None):
        top, n = self.top, 0
        while n < len(beats):
            valid = self.rng.random() < 0.7
            ctx.set(top.w_axis_tvalid, int(valid))
            ctx.set(top.w_axis_tdata, beats[n])
            ctx.set(top.w_axis_tlast, lasts[n])
            _, _, ready = await ctx.tick().sample(top.w_axis_tready)
            n += bool(valid and ready)
            if reset_after is not None and n == reset_after:
                ctx.set(top.w_axis_tvalid, 0)
                ctx.set(self.rst, 1)
                for _ in range(2):
                    await ctx.tick()  # (a plain await never raises DomainReset)
                ctx.set(self.rst, 0)
                return
        ctx.set(top.w_axis_tvalid, 0)

    async def frames(self, ctx, frames):
        top, q = self.top, self.q
        beats = [(pack_beat(s, q.input_format.width), int(i == len(x) - 1)) for x in frames for i, s in enumerate(x)]
        want = sum(q.config.output_length(len(x)) for x in frames)
        outs, ip = [], 0
        for _ in range(200 * (len(beats) + 10) * max(1, self.top.schedule.cycles_per_step)):
            if ip >= len(beats) and len(outs) >= want:
                break
            valid = ip < len(beats) and self.rng.random() < 0.8
            if valid:
                ctx.set(top.s_axis_tdata, beats[ip][0])
                ctx.set(top.s_axis_tlast, beats[ip][1])
            ctx.set(top.s_axis_tvalid, int(valid))
            ready = int(self.rng.random() < 0.8)
            ctx.set(top.m_axis_tready, ready)
            _, _, s_ready, m_valid, m_data = await ctx.tick().sample(top.s_axis_tready, top.m_axis_tvalid,
                                                                     top.m_axis_tdata)
            ip += bool(valid and s_ready)
            if m_valid and ready:
                outs.append(unpack_beat(m_data, q.config.filters, q.output_format.width, q.output_format.signed))
        ctx.set(top.s_axis_tvalid, 0)
        assert len(outs) == want, f"{len(outs)} of {want} output beats"
        got, pos = [], 0
        for x in frames:
            n = q.config.output_length(len(x))
            got.append(np.array(outs[pos:pos + n]).reshape(n, q.config.filters))
            pos += n
        return got

    def run(self, script):
        m = Module()
        m.domains.sync = cd = ClockDomain()
        m.submodules.top = self.top
        self.rst = cd.rst
        results = []

        async def bench(ctx):
            for step in script:
                if step[0] == "set":
                    await self.send_set(ctx, *step[1:])
                else:
                    results.append(await self.frames(ctx, step[1]))

        sim = Simulator(m)
        sim.add_clock(1e-8)
        sim.add_testbench(bench)
        sim.run()
        return results


def check_phase(q, frames, got, codes):
    model = q if codes is None else with_codes(q, *codes)
    for x, y in zip(frames, got):
        np.testing.assert_array_equal(y, model.forward_int(x))


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_malformed_sets_and_reset_keep_the_active_set(name):
    """Phases: a good set A; a short set, a long set and a set cut by rst, each followed by
    frames that must still use A; a good set B; frames with B. Every set differs from the
    others in every output, so a wrongly taken set shows."""
    q = make_layer(4, **LAYERS[name])
    bench = Bench(q, 8, seed=1)
    lay, rng = bench.layout, np.random.default_rng(7)
    sets = [random_set(q, rng) for _ in range(5)]
    packed = [pack_set(q, lay, *s) for s in sets]
    good = [0] * (lay.beats - 1) + [1]
    fr = [random_frames(q, [2, 1, 3], seed) for seed in range(6)]
    short = lay.beats // 2 + 1
    script = [
        ("set", packed[0], good), ("frames", fr[0]),
        ("set", packed[1][:short], [0] * (short - 1) + [1]), ("frames", fr[1]),       # early tlast
        ("set", packed[2] + packed[2][:3], [0] * (lay.beats + 2) + [1]), ("frames", fr[2]),  # no tlast at the end
        ("set", packed[3], good, lay.beats - 1), ("frames", fr[3]),                   # rst before the last beat
        ("set", packed[4], good), ("frames", fr[4]),
    ]
    got = bench.run(script)
    for phase, codes in enumerate([sets[0], sets[0], sets[0], sets[0], sets[4]]):
        check_phase(q, fr[phase], got[phase], codes)
    # the frames of phase 1 would have shown set 1 (the test can fail)
    assert any(not np.array_equal(with_codes(q, *sets[1]).forward_int(x), y) for x, y in zip(fr[1], got[1]))


# ------------------------------------------------------------------ generated Verilog
@pytest.fixture(scope="module")
def designs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runtime_designs")
    out = {}
    for name, args in LAYERS.items():
        q = make_layer(5, **args, activation="linear", output_format="fixed<16,8,RND,SAT>")
        generate(q, root / name, pe_count=8, runtime_weights=True)
        out[name] = root / name
    return out


@pytest.mark.parametrize("engine", ["compiled", "cocotb"])
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_loads_during_a_frame_train(designs, name, simulator, engine):
    """Sets sent between frames, in the middle of frames and among back-to-back frames of one
    step, with random and bursty w_axis_tvalid and random back-pressure on s_axis and m_axis;
    a short and a long set among them. Both testbench engines."""
    require_simulator(simulator)
    design = GeneratedDesign.load(designs[name])
    q, rng = design.layer, np.random.default_rng(11)
    lengths = [3, 1, 1, 1, 4, 2, 1, 1, 5, 1, 2, 1, 1, 3] + [2] * 10  # the tail lets the last set take effect
    starts = np.concatenate([[0], np.cumsum(lengths)])
    beats = [design.pack_weights(*random_set(q, rng)) for _ in range(5)]
    sets = [(beats[0], int(starts[1])),            # between frames
            (beats[1], int(starts[4]) + 2),        # in the middle of a 4-step frame
            (beats[2][:len(beats[2]) // 2], int(starts[6])),  # short: dropped
            (beats[3] + beats[3][:4], int(starts[6])),  # long: dropped through its tlast
            (beats[4], int(starts[9]))]            # among frames of one step
    for pause in ("random", "bursty"):
        res = simulate(design.folder, simulator, lengths=lengths, seed=3, source_pause="random",
                       sink_pause="random", weight_sets=sets, weight_pause=pause, engine=engine)
        assert res.passed, res.summary()
        used = res.extra["weight_sets_used"]
        assert 2 not in used and 3 not in used
        assert used[0] == -1 and {0, 1, 4} <= set(used), used
        assert used == sorted(used, key=lambda j: [-1, 0, 1, 4].index(j))


def _one_code_changed(q):
    """The generation's codes with kernel[2, 5, 13] changed: one code of one PE."""
    kc, bc = q.kernel_codes.copy(), q.bias_codes.copy()
    kc[2, 5, 13] = q.weight_format.max_code if kc[2, 5, 13] != q.weight_format.max_code else 0
    return kc, bc


@pytest.mark.parametrize("engine", ["compiled", "cocotb"])
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_one_weight_code_of_one_pe(designs, simulator, engine):
    """A set that differs from the generation's weights in one code of one PE is seen in the
    output of exactly the frames that must use it (both testbench engines)."""
    require_simulator(simulator)
    design = GeneratedDesign.load(designs["bram"])
    q = design.layer
    kc, bc = _one_code_changed(q)
    lengths = [2, 3, 1, 2, 4]
    inputs = np.full((sum(lengths), q.config.in_channels), q.input_format.max_code // 2 + 1)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    res = simulate(design.folder, simulator, lengths=lengths, inputs=inputs, seed=5, sink_pause="random",
                   weight_sets=[(design.pack_weights(kc, bc), int(starts[2]))], engine=engine)
    assert res.passed, res.summary()
    used = res.extra["weight_sets_used"]
    assert used[:2] == [-1, -1] and used[-1] == 0
    # Every frame's output tells the two sets apart, so the check above (each frame against
    # the set the rule gives) fails for any frame that used the other one.
    changed = with_codes(q, kc, bc)
    for i in range(len(lengths)):
        x = inputs[starts[i]:starts[i + 1]]
        assert not np.array_equal(changed.forward_int(x), q.forward_int(x))


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_cocotb_engine_catches_one_wrong_code(designs, simulator, tmp_path):
    """The cocotb engine's check sees a one-code difference, and sees the load take effect: in
    a copy of the design whose model (weights.npz) says the generation's weights are the
    one-code-changed set while the Verilog holds the original ones, loading the changed set
    after frame 2 leaves exactly the frames before it took effect wrong."""
    import shutil

    require_simulator(simulator)
    folder = tmp_path / "changed"
    shutil.copytree(designs["bram"], folder)
    design = GeneratedDesign.load(folder)
    q = design.layer
    kc, bc = _one_code_changed(q)
    with np.load(folder / "weights.npz") as w:
        arrays = dict(w)
    np.savez(folder / "weights.npz", **{**arrays, "kernel_codes": kc})
    lengths = [2, 3, 1, 2, 4]
    inputs = np.full((sum(lengths), q.config.in_channels), q.input_format.max_code // 2 + 1)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    res = simulate(folder, simulator, lengths=lengths, inputs=inputs, seed=5, sink_pause="random", engine="cocotb",
                   weight_sets=[(design.pack_weights(kc, bc), int(starts[2]))])
    assert not res.passed
    used = res.extra["weight_sets_used"]
    assert used[:2] == [-1, -1] and used[-1] == 0, used
    assert [m["frame"] for m in res.mismatches] == [i for i, j in enumerate(used) if j == -1], res.mismatches


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_engines_agree_on_weight_sets(designs, simulator):
    """The same design, frames and weight sets on the compiled and the cocotb engine: the same
    verdict and the same set per frame. Frames isolated (each engine's frames then take the
    same cycles) with sets between frames, in the middle of one, and a short one; and back to
    back frames of one step with sets among them, w_axis_tvalid random and bursty."""
    require_simulator(simulator)
    design = GeneratedDesign.load(designs["lut"])
    q, rng = design.layer, np.random.default_rng(31)
    beats = [design.pack_weights(*random_set(q, rng)) for _ in range(4)]
    runs = []
    isolated = [3, 1, 4, 2, 1, 3]
    starts = np.concatenate([[0], np.cumsum(isolated)])
    runs.append((isolated, True, "bursty", [(beats[0], int(starts[1])), (beats[1], int(starts[2]) + 2),
                                            (beats[2][:-1], int(starts[4])), (beats[3], int(starts[4]))]))
    train = [2] + [1] * 14
    starts = np.concatenate([[0], np.cumsum(train)])
    for pause in ("random", "bursty"):
        runs.append((train, False, pause, [(beats[0], int(starts[2])), (beats[1], int(starts[5])),
                                           (beats[3], int(starts[9]))]))
    for lengths, isolate, pause, sets in runs:
        inputs = np.concatenate(random_frames(q, lengths, 8))
        res = {engine: simulate(design.folder, simulator, lengths=lengths, inputs=inputs, seed=6,
                                isolate_frames=isolate, weight_sets=sets, weight_pause=pause, engine=engine)
               for engine in ("compiled", "cocotb")}
        for r in res.values():
            assert r.passed, r.summary()
        used = res["compiled"].extra["weight_sets_used"]
        assert res["cocotb"].extra["weight_sets_used"] == used
        assert len(set(used)) >= 3, used  # the runs do switch sets, so agreeing says something


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_runtime_designs_lint_clean(designs, name):
    """`verilator --lint-only -Wall` with the design's own waivers reports nothing."""
    from test_hw_generate import _require_verilator

    env = _require_verilator()
    manifest = GeneratedDesign.load(designs[name]).manifest
    run = subprocess.run(["verilator", "--lint-only", "-Wall", manifest["verilator_waivers"], *manifest["verilog"]],
                         cwd=designs[name], env=env, capture_output=True, text=True)
    assert run.returncode == 0 and "%Warning" not in run.stderr and "%Error" not in run.stderr, run.stderr[-3000:]


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_cocotb_engine_runs_a_runtime_design(designs, simulator):
    """Without weight sets the cocotb testbench holds w_axis_tvalid low: the generation's
    weights stay active; a reset in the middle of a set is the compiled engine's only."""
    require_simulator(simulator)
    res = simulate(designs["lut"], simulator, lengths=[3, 1, 2], engine="cocotb", seed=2, sink_pause="random")
    assert res.passed, res.summary()
    assert res.extra["weight_sets_used"] == [-1, -1, -1]
    with pytest.raises(ValueError, match="compiled testbench only"):
        simulate(designs["lut"], simulator, lengths=[3], engine="cocotb", weight_sets=[([0], 0)],
                 weight_reset=(0, 1))


def test_loader_formal_smallest_configuration(tmp_path):
    """SymbiYosys on the smallest configuration's loader (sim/formal_weights.py): the bank select
    changes only at frame boundaries, a set of the wrong length never becomes active, a complete
    one always does, writes follow a handshake and never hit a bank in use; and with the loader
    built for one beat fewer than the harness expects, the check fails."""
    from test_formal import _require_tools

    from tconv.model import LayerConfig, random_layer
    from tconv.sim.formal import SMALLEST_CONFIG
    from tconv.sim.formal_weights import run_loader_formal

    _require_tools()
    cfg = SMALLEST_CONFIG
    q = random_layer(LayerConfig.from_dict(cfg["layer"]), cfg["formats"], seed=0, bias_range=(-1, 1))
    lay = stream_layout(q, check_layer(q, 1))
    status, log = run_loader_formal(lay, tmp_path / "good", depth=16)
    assert status == "PASS", log[-2000:]
    status, log = run_loader_formal(lay, tmp_path / "bad", depth=16, beats=lay.beats - 1)
    assert status == "FAIL" and "failed assertion" in log, log[-2000:]


# ------------------------------------------------------------------ command line
@pytest.fixture
def cli_files(tmp_path):
    import json

    from conftest import TINY_CONFIG

    rng = np.random.default_rng(0)
    cfg = json.loads(json.dumps(TINY_CONFIG))
    cfg["array"]["weights"] = "runtime"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (tmp_path / "rom.json").write_text(json.dumps(TINY_CONFIG))
    for name in ("a", "b"):
        np.savez(tmp_path / f"{name}.npz", kernel=rng.uniform(-1, 1, (3, 2, 3)), bias=rng.uniform(-2, 2, 2))
    return tmp_path


def _cli(capsys, *argv):
    from tconv.flow.cli import main

    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_generate_pack_and_simulate(cli_files, capsys):
    """array.weights "runtime" in CONFIG.json; pack-weights from floats and from codes agree;
    W.npy holds the same codes; simulate loads the set and reports which frames used it, the
    same on both testbench engines."""
    require_simulator("icarus")
    d = cli_files
    assert _cli(capsys, "generate", d / "config.json", "--weights", d / "a.npz", "-o", d / "out", "-q")[0] == 0
    design = GeneratedDesign.load(d / "out")
    rc, out, _ = _cli(capsys, "pack-weights", d / "out", "--weights", d / "b.npz", "-o", d / "b.hex")
    assert rc == 0 and f"{design.weights_layout().beats} beats" in out
    q = design.quantize_weights(*[np.load(d / "b.npz")[k] for k in ("kernel", "bias")])
    np.savez(d / "codes.npz", kernel_codes=q.kernel_codes, bias_codes=q.bias_codes)
    assert _cli(capsys, "pack-weights", d / "out", "--weights", d / "codes.npz", "-o", d / "c.hex")[0] == 0
    assert (d / "b.hex").read_text() == (d / "c.hex").read_text()
    beats = [int(line, 16) for line in (d / "b.hex").read_text().split()]
    assert beats == design.pack_weights(q.kernel_codes, q.bias_codes)
    assert _cli(capsys, "pack-weights", d / "out", "--weights", d / "b.npz", "-o", d / "b.npy")[0] == 0
    fields = np.load(d / "b.npy")
    assert fields.shape == (len(beats), design.weights_layout().lanes)
    lines = []
    for engine in ("compiled", "cocotb"):
        rc, out, err = _cli(capsys, "simulate", d / "out", "--frames", "4", "--length", "3", "--weights-file",
                            d / "b.hex", "--load-after-frames", "1", "--weight-pause", "random", "--engine",
                            engine, "-q")
        assert rc == 0 and "PASS" in out and "weights per frame: 0:generated" in out and "set 0" in out, out + err
        lines.append([line for line in out.splitlines() if "weights per frame" in line])
    assert lines[0] == lines[1]


@pytest.mark.parametrize("case,message", [
    ("rom_pack", "not a runtime-weights design"),
    ("rom_simulate", "--weights-file needs a runtime-weights design"),
    ("suffix", "must end in .hex (beats) or .npy (codes)"),
    ("wide", "beat wider than w_axis_tdata"),
    ("config", "array.weights: 'flash' is not allowed; allowed: 'rom', 'runtime'"),
])
def test_cli_refuses_bad_runtime_input(cli_files, capsys, case, message):
    import json

    d = cli_files
    if case == "config":
        cfg = json.loads((d / "config.json").read_text())
        cfg["array"]["weights"] = "flash"
        (d / "config.json").write_text(json.dumps(cfg))
        argv = ["generate", d / "config.json", "--weights", d / "a.npz", "-o", d / "out", "-q"]
    else:
        rom = case.startswith("rom")
        assert _cli(capsys, "generate", d / ("rom.json" if rom else "config.json"), "--weights", d / "a.npz",
                    "-o", d / "out", "-q")[0] == 0
        (d / "w.hex").write_text("f" * 400 + "\n")
        argv = {"rom_pack": ["pack-weights", d / "out", "--weights", d / "b.npz", "-o", d / "b.hex"],
                "rom_simulate": ["simulate", d / "out", "--weights-file", d / "w.hex"],
                "suffix": ["pack-weights", d / "out", "--weights", d / "b.npz", "-o", d / "b.txt"],
                "wide": ["simulate", d / "out", "--weights-file", d / "w.hex"]}[case]
    rc, _, err = _cli(capsys, *argv)
    assert rc == 2 and message in err, err
    if case == "config":
        assert not (d / "out").exists()


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_reset_in_the_middle_of_a_set(designs, name, simulator):
    """rst pulsed after a few beats of set 1 (between frames): set 1 is dropped (its remaining
    beats end in an early tlast), the frames after the reset still use set 0, set 2 loads later."""
    require_simulator(simulator)
    design = GeneratedDesign.load(designs[name])
    q, rng = design.layer, np.random.default_rng(21)
    lengths = [2, 3, 1, 2, 2, 3, 2, 2, 2, 2]
    ends = np.cumsum(lengths)
    beats = [design.pack_weights(*random_set(q, rng)) for _ in range(3)]
    sets = [(beats[0], 0), (beats[1], int(ends[1])), (beats[2], int(ends[3]))]
    res = simulate(design.folder, simulator, lengths=lengths, seed=4, sink_pause="random", source_pause="random",
                   weight_sets=sets, weight_pause="random", weight_reset=(1, len(beats[1]) // 2))
    assert res.passed, res.summary()
    used = res.extra["weight_sets_used"]
    assert 1 not in used and used[2] == used[3] == 0 and used[-1] == 2, used


def test_bench_weights_section(tmp_path):
    """`tconv bench --only weights` on one layer (Verilator; no place-and-route here): the ROM
    and the runtime design take the same cycles for a train with a set loaded in its middle,
    the set is used from the frame after the load, and the tables render."""
    from tconv.flow import bench
    from tconv.flow.bench_weights import bench_weights

    require_simulator("verilator")
    res = bench_weights(tmp_path, simulator="verilator", speeds=(8,), seed=1, log=lambda *a: None,
                        layers=["odd-stride"], fpga=False)
    row, = res["utilization"]
    assert row["bit_exact"] and row["runtime_cycles"] == row["rom_cycles"]
    assert row["runtime_utilization"] == row["rom_utilization"] >= 0.95 and row["set_used_from"] == 3
    res["fpga"] = [{"layer": "keras-doc", "weights": w, "pe_count": 64, "speed": 8, "fmax_mhz": f, "lut4": 1,
                    "ff": 2, "mult18": 64, "ebr": e, "seed": 1} for w, f, e in (("rom", 200.5, 17), ("runtime", 199.5, 34))]
    text = bench.to_text({"machine": bench.machine(), "weights": res})
    assert "Runtime weights: a set loaded during a frame train" in text and "199.5" in text and "34" in text


def test_manifest_schema_of_runtime_designs():
    from tconv.hw.manifest import ManifestError, check_manifest

    q = make_layer(3, **LAYERS["lut"])
    _, manifest = design_files(q, check_layer(q, 4), runtime_weights=True)
    parsed = check_manifest(manifest, "m.json")
    assert parsed["runtime_weights"] and parsed["w_axis_beats"] == manifest["weights_stream"]["beats"]
    bad = {**manifest, "array": {**manifest["array"], "weights": "flash"}}
    with pytest.raises(ManifestError, match="array.weights must be 'rom' or 'runtime'"):
        check_manifest(bad, "m.json")
    iface = {k: v for k, v in manifest["interface"].items() if k != "w_axis_beats"}
    with pytest.raises(ManifestError, match="interface.w_axis_beats"):
        check_manifest({**manifest, "interface": iface}, "m.json")
    rom = {**manifest, "array": {k: v for k, v in manifest["array"].items() if k != "weights"}}
    assert check_manifest(rom, "m.json")["runtime_weights"] is False  # older manifests: ROM


@pytest.mark.parametrize("pe_count", [1, 32])
@pytest.mark.parametrize("args", [
    dict(filters=3, kernel_size=3, in_channels=5, strides=2, use_bias=False),
    dict(filters=7, kernel_size=4, in_channels=9, strides=2, bias_format="ufixed<8,3>"),
    dict(filters=5, kernel_size=5, in_channels=3, dilation_rate=2, padding="same", bias_format="ufixed<8,3>"),
], ids=["no-bias", "unsigned-bias", "dilated"])
def test_sets_between_phases(args, pe_count):
    """Amaranth's simulator: generation weights, then two sets, each followed by frames; without
    a bias, with an unsigned bias, several filter rows and tap groups, LUT and block RAM."""
    q = make_layer(2, **args)
    bench = Bench(q, pe_count, seed=3)
    rng = np.random.default_rng(1)
    sets = [random_set(q, rng) for _ in range(2)]
    good = [0] * (bench.layout.beats - 1) + [1]
    fr = [random_frames(q, [3, 1, 2], k) for k in range(3)]
    got = bench.run([("frames", fr[0]), ("set", pack_set(q, bench.layout, *sets[0]), good), ("frames", fr[1]),
                     ("set", pack_set(q, bench.layout, *sets[1]), good), ("frames", fr[2])])
    for phase, codes in enumerate([None, sets[0], sets[1]]):
        check_phase(q, fr[phase], got[phase], codes)


def test_synth_harness_drives_w_axis(designs, tmp_path):
    """`tconv synth`'s out-of-context harness reaches w_axis too (else synthesis would see
    constant weights and drop the load path); it compiles with a runtime design."""
    from tconv.flow.synth import HARNESS_TOP, harness_verilog

    require_simulator("icarus")
    manifest = GeneratedDesign.load(designs["lut"]).manifest
    iface = manifest["interface"]
    text = harness_verilog(manifest["top"], iface["s_axis_tdata_width"], iface["m_axis_tdata_width"],
                           iface["w_axis_tdata_width"])
    assert ".w_axis_tdata(shift_w)" in text and ".w_axis_tvalid(w_valid_r)" in text
    assert "w_axis" not in harness_verilog(manifest["top"], 8, 8)
    (tmp_path / "h.v").write_text(text)
    run = subprocess.run(["iverilog", "-g2012", "-s", HARNESS_TOP, "-o", str(tmp_path / "h.vvp"), str(tmp_path / "h.v"),
                          *(str(designs["lut"] / v) for v in manifest["verilog"])], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
