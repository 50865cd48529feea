"""RandAugment-style augmentation and random rotations, on device, per image.

`rand_augment(rng, images, num_ops, magnitude)`: each image gets `num_ops` operations
drawn uniformly (with replacement) from OPS, each at strength `magnitude` / 10 of its
maximum with a random sign (Cubuk et al. 2020, the fixed-magnitude variant):

- colour: identity, brightness (x0.1..1.9), contrast (x0.1..1.9 around the mean),
  colour (saturation x0.1..1.9), solarize (pixels above 255 - 25.6 m inverted),
  posterize (keep 8 - 0.4 m bits), autocontrast (each channel stretched to 0..255);
- geometric, one affine warp (bilinear, grey fill 128): rotate (up to 30 degrees),
  shear x / y (up to 0.3), translate x / y (up to 45% of the side).

`random_rotate(rng, images, max_degrees)`: each image rotated by its own angle drawn
uniformly from [-max_degrees, max_degrees] about its centre.

`images: float [batch, height, width, channels]` with values 0..255 (before
normalisation); colour ops mix channels, so they expect RGB (grayscale images get the
geometric and per-channel ops only where they apply).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.ndimage import map_coordinates

OPS = ("identity", "brightness", "contrast", "color", "solarize", "posterize",
       "autocontrast", "rotate", "shear_x", "shear_y", "translate_x", "translate_y")
FILL = 128.0


def affine_warp(image: jnp.ndarray, matrix: jnp.ndarray) -> jnp.ndarray:
    """`image: [h, w, c]` sampled at `matrix @ (y, x, 1)` about its centre (bilinear);
    `matrix: [2, 3]` maps output pixel coordinates to input ones."""
    h, w, c = image.shape
    ys, xs = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32) - (h - 1) / 2,
                          jnp.arange(w, dtype=jnp.float32) - (w - 1) / 2, indexing="ij")
    coords = jnp.stack([ys.ravel(), xs.ravel(), jnp.ones(h * w)])
    src = matrix @ coords
    src_y, src_x = src[0] + (h - 1) / 2, src[1] + (w - 1) / 2
    channels = [map_coordinates(image[..., k], [src_y, src_x], order=1, mode="constant",
                                cval=FILL) for k in range(c)]
    return jnp.stack(channels, axis=-1).reshape(h, w, c)


def _rotation(radians: jnp.ndarray) -> jnp.ndarray:
    cos, sin = jnp.cos(radians), jnp.sin(radians)
    return jnp.array([[cos, -sin, 0.0], [sin, cos, 0.0]])


def random_rotate(rng: jax.Array, images: jnp.ndarray, max_degrees: float) -> jnp.ndarray:
    """Each image rotated by its own uniform angle in [-max_degrees, max_degrees]."""
    angles = jax.random.uniform(rng, (images.shape[0],), minval=-max_degrees,
                                maxval=max_degrees) * jnp.pi / 180
    return jax.vmap(lambda image, a: affine_warp(image, _rotation(a)))(images, angles)


def _color_op(op: jnp.ndarray, image: jnp.ndarray, strength: jnp.ndarray,
              signed: jnp.ndarray) -> jnp.ndarray:
    """Colour op number `op` (its index in OPS; geometric ones are the identity here)."""
    factor = 1.0 + 0.9 * signed
    gray = image.mean(axis=-1, keepdims=True)
    lo, hi = image.min(axis=(0, 1), keepdims=True), image.max(axis=(0, 1), keepdims=True)
    bits = jnp.round(8 - 4 * strength)
    step = 2.0 ** (8 - bits)
    candidates = jnp.stack([
        image,
        image * factor,
        image.mean() + (image - image.mean()) * factor,
        gray + (image - gray) * factor,
        jnp.where(image < 256 - 256 * strength, image, 255 - image),
        jnp.floor(image / step) * step,
        jnp.where(hi > lo, (image - lo) * 255 / jnp.maximum(hi - lo, 1e-6), image),
    ])
    index = jnp.where(op < len(candidates), op, 0)
    return jnp.clip(jnp.take(candidates, index, axis=0), 0, 255)


def _geometry(op: jnp.ndarray, image_size: int, strength: jnp.ndarray,
              signed: jnp.ndarray) -> jnp.ndarray:
    """The `[2, 3]` affine matrix of op number `op` (identity for colour ops)."""
    eye = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    shift = 0.45 * image_size * signed
    matrices = jnp.stack([
        _rotation(signed * 30 * jnp.pi / 180),
        eye.at[1, 0].set(0.3 * signed),  # shear x: x' = x + s y
        eye.at[0, 1].set(0.3 * signed),  # shear y
        eye.at[1, 2].set(shift),  # translate x
        eye.at[0, 2].set(shift),  # translate y
    ])
    first = OPS.index("rotate")
    return jnp.where(op >= first, matrices[jnp.clip(op - first, 0, len(matrices) - 1)], eye)


def rand_augment(rng: jax.Array, images: jnp.ndarray, num_ops: int,
                 magnitude: float) -> jnp.ndarray:
    """`num_ops` random ops per image at `magnitude` (0..10); see the module docstring."""
    if not 0 <= magnitude <= 10 or num_ops < 1:
        raise ValueError(f"config.pp.rand_augment=({num_ops}, {magnitude}): num_ops must be "
                         ">= 1 and magnitude in [0, 10].")
    batch, h, w, _ = images.shape
    strength = magnitude / 10
    op_rng, sign_rng = jax.random.split(rng)
    ops = jax.random.randint(op_rng, (batch, num_ops), 0, len(OPS))
    signs = jnp.where(jax.random.bernoulli(sign_rng, 0.5, (batch, num_ops)), 1.0, -1.0)

    def augment(image, image_ops, image_signs):
        for k in range(num_ops):
            signed = strength * image_signs[k]
            image = _color_op(image_ops[k], image, strength, signed)
            geometric = image_ops[k] >= OPS.index("rotate")
            warped = affine_warp(image, _geometry(image_ops[k], min(h, w), strength, signed))
            image = jnp.where(geometric, warped, image)
        return image

    return jax.vmap(augment)(images, ops, signs)
