"""A decoder of three upsampling Conv1DTranspose layers as one streaming design, end to end.

1. build a small 1-D autoencoder (encoder: three stride-2 Conv1D; decoder: three
   stride-2 Conv1DTranspose with a Dropout between the first two, as in Keras'
   timeseries anomaly-detection example), train it a few seconds on CPU, save it
   as ``model.keras`` and the model's inputs as ``calib.npy``;
2. ``tconv analyze --keras --layers up1,up2,up3``: the chain's error against the
   float decoder, end to end and per stage;
3. ``tconv generate --keras --layers up1,up2,up3 --pe-count 64``: one design,
   the 64-PE budget split over the three stages, stage i's output format equal to
   stage i+1's input format;
4. ``tconv simulate`` on Icarus and on Verilator: every output word against the
   chain model (under random back-pressure), and the chain's MAC utilization on
   a long frame against the manifest.

Run it with ``python examples/keras_decoder_chain.py`` (``--help`` for options).
Exit status 0 only when every step, the bit-exact simulations included, passes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np

LENGTH = 64  # samples per example; the latent sequence is 8 steps
LAYERS = "up1,up2,up3"


def signals(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` smooth signals of ``LENGTH`` samples, three channels (random sinusoids)."""
    t = np.arange(LENGTH)
    freq = rng.uniform(0.01, 0.08, (n, 1, 3))
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 3))
    return (0.8 * np.sin(2 * np.pi * freq * t[:, None] + phase)).astype("float32")


def build_and_train(out: Path, epochs: int, seed: int) -> tuple[Path, Path]:
    import keras

    keras.utils.set_random_seed(seed)
    x = signals(512, np.random.default_rng(seed))
    L = keras.layers
    inputs = keras.Input((None, 3), name="signal")
    h = L.Conv1D(8, 5, strides=2, padding="same", activation="relu", name="down1")(inputs)
    h = L.Conv1D(12, 5, strides=2, padding="same", activation="relu", name="down2")(h)
    h = L.Conv1D(12, 5, strides=2, padding="same", activation="relu", name="down3")(h)
    h = L.Conv1DTranspose(12, 4, strides=2, padding="same", activation="relu", name="up1")(h)
    h = L.Dropout(0.1, name="drop")(h)
    h = L.Conv1DTranspose(8, 4, strides=2, padding="same", activation="relu", name="up2")(h)
    outputs = L.Conv1DTranspose(3, 4, strides=2, padding="same", name="up3")(h)
    model = keras.Model(inputs, outputs, name="autoencoder")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    start = time.perf_counter()
    hist = model.fit(x[:448], x[:448], batch_size=64, epochs=epochs, verbose=0, validation_data=(x[448:], x[448:]))
    print(f"model {model.name}: {' -> '.join(f'{lay.name} ({type(lay).__name__})' for lay in model.layers[1:])}")
    print(f"trained {epochs} epoch(s) in {time.perf_counter() - start:.1f} s: validation MSE "
          f"{hist.history['val_loss'][0]:.4f} -> {hist.history['val_loss'][-1]:.4f}")
    model_path, data_path = out / "model.keras", out / "calib.npy"
    model.save(model_path)
    np.save(data_path, x[448:])
    print(f"saved {model_path} and {data_path} {x[448:].shape}")
    return model_path, data_path


def step(n: int, title: str) -> None:
    print(f"\n=== [{n}/4] {title} " + "=" * max(0, 68 - len(title)), flush=True)


def tconv(*argv) -> int:
    """Run a ``tconv`` command in this process, showing it as it would be typed."""
    from tconv.flow.cli import main

    argv = [str(a) for a in argv]
    print("$ tconv " + " ".join(argv), flush=True)
    rc = main(argv)
    sys.stdout.flush()
    return rc


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="build/decoder", help="folder for the model, report and design "
                        "(default build/decoder)")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs (default 30, a few seconds)")
    parser.add_argument("--pe-count", type=int, default=64, help="PE budget of the chain (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import keras  # noqa: F401
    except ImportError:
        print("keras is not installed: run `make setup` (or pip install -e '.[keras]')", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    step(1, "build and train a small autoencoder, save it as .keras")
    model_path, data_path = build_and_train(out, args.epochs, args.seed)

    step(2, "analyze: the decoder chain against the float decoder")
    if tconv("analyze", "--keras", model_path, "--layers", LAYERS, "--data", data_path, "-o", out / "report",
             "-q") != 0:
        return 1

    step(3, f"generate: one design of {LAYERS}, {args.pe_count} PEs split over the stages")
    design = out / "hw"
    if tconv("generate", "--keras", model_path, "--layers", LAYERS, "--data", data_path,
             "--pe-count", args.pe_count, "-o", design, "-q") != 0:
        return 1

    step(4, "simulate: Icarus and Verilator against the chain model")
    rc = 0
    for sim in ("icarus", "verilator"):
        rc |= tconv("simulate", design, "--simulator", sim, "--sink-pause", "random", "--source-pause", "random",
                    "-q")
    rc |= tconv("simulate", design, "--simulator", "verilator", "--frames", "1", "--length", "256", "-q")
    manifest = json.loads((design / "manifest.json").read_text())
    perf = manifest["performance"]
    print(f"manifest: {perf['cycles_per_chain_step']} cycles per input step, bottleneck {perf['bottleneck_layer']}, "
          f"steady MAC utilization {100 * perf['steady_state_mac_utilization']:.1f}%")
    print("\n" + ("done: " if rc == 0 else "FAILED: ") + f"model {model_path}, report {out / 'report'}/, "
          f"design {design}/")
    return rc


if __name__ == "__main__":
    sys.exit(main())
