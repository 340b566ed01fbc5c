"""From a trained Keras model to verified Verilog: the whole tconv flow on a small 1-D upsampler.

1. build a Keras model with a Conv1DTranspose layer and train it for a few
   seconds on CPU to interpolate signals 2x, save it as ``model.keras`` and
   save calibration inputs (the model's inputs) as ``calib.npy``;
2. import the layer and calibrate 8-bit formats from Python
   (``tconv.model.import_keras``);
3. ``tconv analyze --keras``: error report with plots;
4. ``tconv generate --keras``: Verilog, manifest and test vectors;
5. ``tconv simulate``: the Verilog on Icarus against the bit-exact model.

Run it with ``make demo`` (or ``python examples/keras_to_verilog.py --help``).
Exit status 0 only when every step, the bit-exact simulation included, passes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np

LOW_RATE = 32  # input steps per example; the model outputs twice as many
LAYER = "upsample"


def signals(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` band-limited signals of ``2 * LOW_RATE`` samples: three random sinusoids each,
    below the low rate's Nyquist frequency so that 2x interpolation is learnable."""
    t = np.arange(2 * LOW_RATE)
    freq = rng.uniform(0.01, 0.2, (n, 3, 1))
    phase = rng.uniform(0, 2 * np.pi, (n, 3, 1))
    amp = rng.uniform(0.2, 0.6, (n, 3, 1))
    return (amp * np.sin(2 * np.pi * freq * t + phase)).sum(axis=1).astype("float32")


def build_and_train(out: Path, epochs: int, seed: int, activation: str = "relu") -> tuple[Path, Path]:
    import keras

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    hi = signals(640, rng)
    x, y = hi[:, ::2, None], hi[:, :, None]  # every other sample in, all samples out
    inputs = keras.Input((LOW_RATE, 1), name="low_rate")
    h = keras.layers.Conv1D(8, 5, padding="same", activation="relu", name="encode")(inputs)
    h = keras.layers.Conv1DTranspose(8, 4, strides=2, padding="same", activation=activation, name=LAYER)(h)
    outputs = keras.layers.Conv1D(1, 5, padding="same", name="head")(h)
    model = keras.Model(inputs, outputs, name="upsampler")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    start = time.perf_counter()
    hist = model.fit(x[:512], y[:512], batch_size=64, epochs=epochs, verbose=0, validation_data=(x[512:], y[512:]))
    print(f"model {model.name}: {' -> '.join(f'{lay.name} ({type(lay).__name__})' for lay in model.layers[1:])}")
    print(f"trained {epochs} epoch(s) in {time.perf_counter() - start:.1f} s: validation MSE "
          f"{hist.history['val_loss'][0]:.4f} -> {hist.history['val_loss'][-1]:.4f} "
          f"(signal power {float(np.mean(y ** 2)):.4f})")
    model_path, data_path = out / "model.keras", out / "calib.npy"
    model.save(model_path)
    np.save(data_path, x[512:576])  # 64 held-out examples: the model's inputs
    print(f"saved {model_path} and {data_path} {x[512:576].shape}")
    return model_path, data_path


def step(n: int, title: str) -> None:
    print(f"\n=== [{n}/5] {title} " + "=" * max(0, 68 - len(title)), flush=True)


def tconv(*argv) -> int:
    """Run a ``tconv`` command in this process, showing it as it would be typed."""
    from tconv.flow.cli import main

    argv = [str(a) for a in argv]
    print("$ tconv " + " ".join(f"'{a}'" if "<" in a else a for a in argv), flush=True)
    rc = main(argv)
    sys.stdout.flush()
    return rc


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="build/demo", help="folder for the model, report and design "
                        "(default build/demo)")
    parser.add_argument("--epochs", type=int, default=40, help="training epochs (default 40, a few seconds)")
    parser.add_argument("--width", type=int, default=8, help="input and weight bits (default 8)")
    parser.add_argument("--simulator", choices=["icarus", "verilator"], default="icarus")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--activation", default="relu",
                        help="the Conv1DTranspose layer's Keras activation (default relu; e.g. tanh, sigmoid, "
                             "gelu: every elementwise one is built in hardware)")
    args = parser.parse_args(argv)
    try:
        import keras  # noqa: F401
    except ImportError:
        print("keras is not installed: run `make setup` (or pip install -e '.[keras]')", file=sys.stderr)
        return 1
    import keras

    from tconv.model import import_keras

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    step(1, "build and train a small Keras upsampler, save it as .keras")
    model_path, data_path = build_and_train(out, args.epochs, args.seed, args.activation)

    step(2, "import the Conv1DTranspose layer and calibrate its formats (Python)")
    model = keras.saving.load_model(model_path)
    x = np.load(data_path)
    imported = import_keras(model, name=LAYER, data=x, width=args.width, data_name=str(data_path))
    q = imported.layer
    kernel = np.asarray(model.get_layer(LAYER).kernel)
    print(f"import_keras(model, name={LAYER!r}, data=x, width={args.width}).layer")
    print(f"  layer   {q.config.to_dict()}")
    print(f"  kernel  {kernel.shape} float32, imported exactly: {np.array_equal(q.kernel, kernel)}")
    print(imported.calibration)

    step(3, "analyze: quantization error report with plots")
    report = out / "report"
    if tconv("analyze", "--keras", model_path, "--layer", LAYER, "--data", data_path, "--width", args.width,
             "-o", report, "-q") != 0:
        return 1

    step(4, "generate: Verilog, manifest and test vectors")
    design = out / "hw"
    if tconv("generate", "--keras", model_path, "--layer", LAYER, "--data", data_path, "--width", args.width,
             "-o", design, "-q") != 0:
        return 1

    step(5, f"simulate: the Verilog on {args.simulator}, bit for bit against the model")
    rc = tconv("simulate", design, "--simulator", args.simulator, "-q")
    print("\n" + ("done: " if rc == 0 else "FAILED: ") + f"model {model_path}, report {report}/, design {design}/")
    return rc


if __name__ == "__main__":
    sys.exit(main())
