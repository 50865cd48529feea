"""Mixup and CutMix on device: each training image blended with (mixup) or patched
by (CutMix) its partner, the image at the mirrored position of the global batch.

The batch gets `mix_weight: float32 [batch]`, the share λ of each example's own image,
and `mix_label: [batch]`, the partner's label (a column of its own, so the rows may be
split into microbatches afterwards); the classification loss is the cross-entropy
against `λ one_hot(label) + (1 - λ) one_hot(mix_label)` (`tasks/classification.py`).
λ is drawn once per batch from Beta(α, α); with both set, each batch uses one of the two
at random (probability 1/2 each, as timm).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def partner(x: jnp.ndarray) -> jnp.ndarray:
    """The partner of every row: the batch reversed on its first axis."""
    return x[::-1]


def mixup(rng: jax.Array, images: jnp.ndarray, alpha: float) -> tuple[jnp.ndarray, jnp.ndarray]:
    """`(λ x + (1 - λ) partner(x), λ)`; `images: float [batch, h, w, c]`, λ a scalar."""
    lam = jax.random.beta(rng, alpha, alpha)
    return lam * images + (1 - lam) * partner(images), lam


def cutmix(rng: jax.Array, images: jnp.ndarray, alpha: float) -> tuple[jnp.ndarray, jnp.ndarray]:
    """`(x with a box cut from partner(x), λ)`: the box covers about 1 - λ of the image
    (clipped at the borders); the returned λ is the share of pixels left of x's own."""
    beta_rng, y_rng, x_rng = jax.random.split(rng, 3)
    lam = jax.random.beta(beta_rng, alpha, alpha)
    _, h, w, _ = images.shape
    cut = jnp.sqrt(1 - lam)
    cy, cx = jax.random.randint(y_rng, (), 0, h), jax.random.randint(x_rng, (), 0, w)
    half_h, half_w = (cut * h / 2).astype(jnp.int32), (cut * w / 2).astype(jnp.int32)
    top, bottom = jnp.clip(cy - half_h, 0, h), jnp.clip(cy + half_h, 0, h)
    left, right = jnp.clip(cx - half_w, 0, w), jnp.clip(cx + half_w, 0, w)
    rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
    box = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
    mixed = jnp.where(box[None, :, :, None], partner(images), images)
    return mixed, 1 - box.mean()


def mix(rng: jax.Array, images: jnp.ndarray, mixup_alpha: float, cutmix_alpha: float
        ) -> tuple[jnp.ndarray, jnp.ndarray]:
    """`(mixed images, mix_weight [batch])` by mixup and/or CutMix (an alpha of 0: off)."""
    choice_rng, mixup_rng, cutmix_rng = jax.random.split(rng, 3)
    batch = images.shape[0]
    if mixup_alpha and cutmix_alpha:
        a, lam_a = mixup(mixup_rng, images, mixup_alpha)
        b, lam_b = cutmix(cutmix_rng, images, cutmix_alpha)
        use_mixup = jax.random.bernoulli(choice_rng)
        images, lam = jnp.where(use_mixup, a, b), jnp.where(use_mixup, lam_a, lam_b)
    elif mixup_alpha:
        images, lam = mixup(mixup_rng, images, mixup_alpha)
    else:
        images, lam = cutmix(cutmix_rng, images, cutmix_alpha)
    return images, jnp.full((batch,), lam, jnp.float32)
