"""Quantization-error analysis of the Keras documentation's Conv1DTranspose example.

Keras' docs build ``Conv1DTranspose(32, 3, 2, activation="relu")`` on inputs of
shape (4, 10, 128), giving (4, 21, 32). This script builds that real Keras layer,
checks tconv's float model against it, then measures what 8-bit fixed point
costs, with a bit-width sweep. Run it with ``make demo``.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np

from tconv.model import Conv1DTransposeQ, LayerConfig, analyze, conv1d_transpose, sweep

FORMATS = dict(input_format="fixed<8,3,RND,SAT>", weight_format="fixed<8,1,RND,SAT>",
               bias_format="fixed<16,6>", output_format="fixed<16,6,RND,SAT>")


def main() -> int:
    try:
        import keras
    except ImportError:
        print("keras is not installed: run `make setup` (or pip install -e '.[keras]')", file=sys.stderr)
        return 1

    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, (4, 10, 128)).astype("float32")
    layer = keras.layers.Conv1DTranspose(32, 3, 2, activation="relu")
    y_keras = np.asarray(layer(x))
    kernel, bias = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())
    # A trained layer has a bias; Keras initialises it to zeros, so give it one.
    bias = rng.normal(0.0, 0.1, bias.shape)
    layer.set_weights([kernel.astype("float32"), bias.astype("float32")])
    y_keras = np.asarray(layer(x))

    config = LayerConfig.from_dict({**layer.get_config(), "in_channels": 128})
    y_float = conv1d_transpose(x, kernel, bias, strides=2, activation="relu")
    print(f"Keras Conv1DTranspose(32, 3, 2, relu): {x.shape} -> {y_keras.shape}")
    print(f"tconv float model vs Keras: max |diff| = {np.abs(y_float - y_keras).max():.2e} "
          f"(Keras computes in float32)\n")

    q = Conv1DTransposeQ(config, kernel, bias, **FORMATS)
    print(analyze(q, x.astype(np.float64)))
    print(f"  accumulator       {q.accumulator_format} (derived: {q.terms} products per output)\n")

    print("weight-width sweep (input, bias and output formats as above)")
    print(f"  {'weight format':<22} {'SQNR dB':>8} {'max |err|':>10} {'bound':>10}")
    for row in sweep(q, x.astype(np.float64), widths=range(4, 13), vary=("weight",), progress=False):
        print(f"  {row['format']:<22} {row['sqnr_db']:>8.2f} {row['max_abs_error']:>10.4f} {row['bound']:>10.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
