"""Rotary position embeddings (RoPE, Su et al. 2021), in the "rotate half" layout of
Llama / GPT-NeoX checkpoints: feature ``i`` of the first half of a head pairs with
feature ``i + head_dim / 2``."""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Llama 3.1's long-context rescaling, as its config.json's `rope_scaling` (rope_type
# "llama3") gives it: (factor, low_freq_factor, high_freq_factor, original_max_len).
Llama3Scaling = tuple[float, float, float, int]


def llama3_inv_freq(inv_freq: jax.Array, scaling: Llama3Scaling) -> jax.Array:
    """Rescaled rotary frequencies [head_dim / 2] (Llama 3.1): wavelengths longer than
    `original_max_len / low_freq_factor` are stretched `factor` times, those shorter than
    `original_max_len / high_freq_factor` kept, and the band between interpolated
    linearly in `original_max_len / wavelength`."""
    factor, low, high, original = (float(v) for v in scaling)
    if not (factor >= 1 and 0 < low < high and original > 0):
        raise ValueError(f"rope_scaling={tuple(scaling)}: needs factor >= 1 and "
                         "0 < low_freq_factor < high_freq_factor, original_max_len > 0.")
    wavelength = 2 * jnp.pi / inv_freq
    stretched = jnp.where(wavelength > original / low, inv_freq / factor, inv_freq)
    smooth = (original / wavelength - low) / (high - low)
    between = (wavelength <= original / low) & (wavelength >= original / high)
    return jnp.where(between, (1 - smooth) * inv_freq / factor + smooth * inv_freq, stretched)


def rotary_angles(positions: jax.Array, head_dim: int, theta: float = 10000.0,
                  scaling: Llama3Scaling | None = None) -> jax.Array:
    """Rotation angles: positions [batch, length] int -> [batch, length, head_dim / 2]
    float32, ``position * theta ** (-2i / head_dim)`` (frequencies rescaled by
    `llama3_inv_freq` with `scaling`)."""
    if head_dim % 2:
        raise ValueError(f"Rotary embeddings need an even head_dim, got {head_dim}.")
    inv_freq = theta ** (-jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim)
    if scaling is not None:
        inv_freq = llama3_inv_freq(inv_freq, scaling)
    return positions.astype(jnp.float32)[..., None] * inv_freq


def apply_rotary(x: jax.Array, angles: jax.Array) -> jax.Array:
    """Rotates the feature pairs of ``x`` [batch, length, heads, head_dim] by ``angles``
    [batch, length, head_dim / 2] (computed in float32, returned in ``x.dtype``)."""
    cos = jnp.cos(angles)[:, :, None, :]
    sin = jnp.sin(angles)[:, :, None, :]
    first, second = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    rotated = jnp.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)
    return rotated.astype(x.dtype)
