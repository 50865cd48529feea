"""On-device image preprocessing: scaling and augmentation inside the jit step.

Batches travel to the devices as uint8; these ops turn `image: uint8 [batch,
height, width, channels]` into `inputs: float32` of the same shape.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

NORMALIZATIONS = ("zero_to_one", "minus_one_to_one", "standardize")


def normalize(images: jnp.ndarray, mode: str, mean: float = 0.0, std: float = 1.0) -> jnp.ndarray:
    """uint8 0..255 -> float32: [0, 1], [-1, 1], or `(x / 255 - mean) / std`."""
    x = images.astype(jnp.float32) / 255.0
    if mode == "zero_to_one":
        return x
    if mode == "minus_one_to_one":
        return x * 2.0 - 1.0
    if mode == "standardize":
        return (x - mean) / std
    raise ValueError(f"Unknown normalization {mode!r}; choose one of {NORMALIZATIONS}.")


def random_translate(rng: jax.Array, images: jnp.ndarray, max_shift: int) -> jnp.ndarray:
    """Shifts each image by its own random (dy, dx) in [-max_shift, max_shift], zero fill.

    `images: [batch, height, width, channels]`.
    """
    if max_shift <= 0:
        return images
    batch, height, width, _ = images.shape
    s = max_shift
    padded = jnp.pad(images, ((0, 0), (s, s), (s, s), (0, 0)))
    offsets = jax.random.randint(rng, (batch, 2), 0, 2 * s + 1)

    def crop(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0),
                                     (height, width, image.shape[-1]))

    return jax.vmap(crop)(padded, offsets)


def make_preprocess(pp: ml_collections.ConfigDict):
    """Returns `fn(batch, rng, train) -> batch` adding `inputs` from `image`.

    `pp.normalize` picks the scaling; `pp.translate` (pixels, train only)
    switches random shifts on.
    """
    mode = pp.get("normalize", "zero_to_one")
    if mode not in NORMALIZATIONS:
        raise ValueError(f"config.pp.normalize={mode!r}; choose one of {NORMALIZATIONS}.")
    mean, std = pp.get("mean", 0.0), pp.get("std", 1.0)
    shift = int(pp.get("translate", 0))

    def preprocess(batch: dict, rng: jax.Array, train: bool) -> dict:
        images = batch["image"]
        if train and shift:
            images = random_translate(rng, images, shift)
        return {**batch, "inputs": normalize(images, mode, mean, std)}

    return preprocess
