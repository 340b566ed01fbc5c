"""Amaranth HDL of the transposed-convolution accelerator (see docs/architecture.md)."""
