"""The ``--keras model.keras --layers A,B,C`` form of ``tconv generate`` and ``tconv analyze``.

Loads the saved model, checks that the layers form a chain
(:func:`tconv.model.keras_chain.check_keras_chain`: consecutive Conv1DTranspose
layers, identity-at-inference layers between them skipped), calibrates every
stage on the same data run through the model and returns the
:class:`~tconv.model.keras_chain.KerasChainImport` (``.chain`` is the
:class:`~tconv.model.chain.ChainQ`). Every problem is a one-line ``ValueError``.
"""

from __future__ import annotations

from pathlib import Path

from tconv.model.keras_chain import KerasChainImport, check_keras_chain, import_keras_chain

from .keras_model import _batched, load_keras_model, load_model_inputs

__all__ = ["load_keras_chain", "parse_layers"]


def parse_layers(text: str) -> list[str]:
    """``--layers A,B,C``: the names, in order (at least two)."""
    names = [n.strip() for n in str(text).split(",")]
    if len(names) < 2 or not all(names):
        raise ValueError(f"--layers {text!r}: give two or more Conv1DTranspose layer names separated by commas, "
                         f"e.g. --layers up1,up2,up3 (one layer: --layer NAME)")
    return names


def load_keras_chain(model_path, layers: str, *, data_path=None, width: int = 8, formats: dict | None = None,
                     batch: int = 4, length: int = 32, seed: int = 0) -> KerasChainImport:
    """Load ``model_path``, check the chain ``layers`` ("A,B,C"), calibrate it on ``data_path`` (model inputs)."""
    names = parse_layers(layers)
    model = load_keras_model(model_path)
    where = Path(model_path).name
    check_keras_chain(model, names, where=where)  # the one-line refusal before any data is read
    x = _batched(model, load_model_inputs(data_path)) if data_path is not None else None
    return import_keras_chain(model, names, data=x, formats=formats, width=width,
                              data_name=str(data_path) if data_path else None, batch=batch, length=length,
                              seed=seed)
