"""Rotary position embeddings (RoPE, Su et al. 2021), in the "rotate half" layout of
Llama / GPT-NeoX checkpoints: feature ``i`` of the first half of a head pairs with
feature ``i + head_dim / 2``."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def rotary_angles(positions: jax.Array, head_dim: int, theta: float = 10000.0) -> jax.Array:
    """Rotation angles: positions [batch, length] int -> [batch, length, head_dim / 2]
    float32, ``position * theta ** (-2i / head_dim)``."""
    if head_dim % 2:
        raise ValueError(f"Rotary embeddings need an even head_dim, got {head_dim}.")
    inv_freq = theta ** (-jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim)
    return positions.astype(jnp.float32)[..., None] * inv_freq


def apply_rotary(x: jax.Array, angles: jax.Array) -> jax.Array:
    """Rotates the feature pairs of ``x`` [batch, length, heads, head_dim] by ``angles``
    [batch, length, head_dim / 2] (computed in float32, returned in ``x.dtype``)."""
    cos = jnp.cos(angles)[:, :, None, :]
    sin = jnp.sin(angles)[:, :, None, :]
    first, second = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    rotated = jnp.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)
    return rotated.astype(x.dtype)
