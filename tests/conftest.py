"""Shared pytest set-up: real Keras runs on the jax backend (CPU)."""

import os

# Must happen before anything imports keras; jax is the backend tconv installs.
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
