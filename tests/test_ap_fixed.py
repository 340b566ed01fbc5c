"""FixedFormat against Vitis HLS ``ap_fixed`` itself, compiled with g++.

The ap_types headers come from the hls4ml wheel on PyPI (a test dependency);
nothing of them is copied into tconv. A generated C++ program instantiates
``ap_[u]fixed<W,I,AP_Q,AP_O>`` for a grid of formats and every mode, converts
(a) doubles and (b) codes of a wide ap_fixed source, and prints the resulting
codes, which must equal ``FixedFormat.quantize`` and ``FixedFormat.requantize``.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tconv.model.fixedpoint import OVERFLOW_MODES, QUANTIZATION_MODES, FixedFormat

FORMATS = [(8, 3, True), (5, -2, True), (5, 8, True), (3, 3, True), (1, 1, True),
           (8, 3, False), (5, -2, False), (4, 6, False)]
SRC_W, SRC_I = 40, 20  # the wide source of the fixed-to-fixed conversions
TYPES = [FixedFormat(w, i, s, q, o) for (w, i, s) in FORMATS for q in QUANTIZATION_MODES for o in OVERFLOW_MODES]


def _ap_types_dir() -> Path | None:
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "templates" / "vivado" / "ap_types"
    return path if (path / "ap_fixed.h").is_file() else None


def _program() -> str:
    lines = [
        "#include <ap_fixed.h>",
        "#include <cstdio>",
        "#include <vector>",
        "template <typename T> void conv(const std::vector<double>& xs, const std::vector<long long>& cs, int w) {",
        "  for (double x : xs) { T v = x; printf(\"%llu \", (unsigned long long) v.range(w - 1, 0).to_uint64()); }",
        f"  for (long long c : cs) {{ ap_fixed<{SRC_W}, {SRC_I}> s; s.range({SRC_W - 1}, 0) = c;",
        "    T v = s; printf(\"%llu \", (unsigned long long) v.range(w - 1, 0).to_uint64()); }",
        "  printf(\"\\n\");",
        "}",
        "int main() {",
        "  std::vector<double> xs; double x;",
        "  long long n; if (scanf(\"%lld\", &n) != 1) return 1;",
        "  for (long long i = 0; i < n; i++) { if (scanf(\"%la\", &x) != 1) return 1; xs.push_back(x); }",
        "  std::vector<long long> cs; long long c;",
        "  while (scanf(\"%lld\", &c) == 1) cs.push_back(c);",
    ]
    for t in TYPES:
        lines.append(f"  conv<{t.ap_type()}>(xs, cs, {t.width});")
    lines += ["  return 0;", "}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def ap_fixed_binary(tmp_path_factory):
    headers = _ap_types_dir()
    if headers is None:
        pytest.skip("ap_fixed headers not found: pip install -e '.[test]' (they come with hls4ml)")
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler: apt-get install -y g++")
    work = tmp_path_factory.mktemp("ap_fixed")
    (work / "conv.cpp").write_text(_program())
    # -O0: optimising 224 template instantiations costs minutes and checks nothing more.
    proc = subprocess.run([cxx, "-O0", "-std=c++14", "-w", f"-I{headers}", "conv.cpp", "-o", "conv"],
                          cwd=work, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return work / "conv"


def _values(rng) -> np.ndarray:
    ties = (rng.integers(-2 ** 12, 2 ** 12, 200) + 0.5) * 2.0 ** rng.integers(-12, 10, 200)
    fine = rng.integers(-2 ** 20, 2 ** 20, 200) * 2.0 ** -14
    wide = rng.uniform(-600, 600, 100)
    edges = np.array([0.0, -0.0, 1e30, -1e30, 1e-30, -1e-30, 2.0 ** -40, -(2.0 ** -40), 255.75, -256.0,
                      7.96875, -8.0, 3.984375, 127.5, -127.5, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5])
    return np.concatenate([ties, fine, wide, edges])


def test_quantize_and_requantize_equal_ap_fixed(ap_fixed_binary):
    rng = np.random.default_rng(2026)
    xs = _values(rng)
    src = FixedFormat(SRC_W, SRC_I)
    codes = np.concatenate([rng.integers(-2 ** 39, 2 ** 39, 150), rng.integers(-2 ** 24, 2 ** 24, 150),
                            rng.integers(-300, 300, 100), [0, 1, -1, 2 ** 39 - 1, -2 ** 39]])
    stdin = f"{len(xs)}\n" + "\n".join(float(x).hex() for x in xs) + "\n" + "\n".join(map(str, codes)) + "\n"
    proc = subprocess.run([str(ap_fixed_binary)], input=stdin, capture_output=True, text=True, check=True)
    rows = proc.stdout.strip().splitlines()
    assert len(rows) == len(TYPES)
    failures = []
    for fmt, row in zip(TYPES, rows):
        bits = np.array([int(v) for v in row.split()], dtype=np.uint64).astype(np.int64)
        want = np.where(fmt.signed & (bits >= 1 << (fmt.width - 1)), bits - (1 << fmt.width), bits)
        got = np.concatenate([fmt.quantize(xs), fmt.requantize(codes, src.frac)])
        if not np.array_equal(got, want):
            bad = int(np.argmax(got != want))
            where = f"double {xs[bad]!r}" if bad < len(xs) else f"{src} code {codes[bad - len(xs)]}"
            failures.append(f"{fmt.ap_type()}: {where} -> tconv {got[bad]}, ap_fixed {want[bad]}")
    assert not failures, "\n".join(failures[:20])
