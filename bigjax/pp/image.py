"""On-device image preprocessing: scaling and augmentation inside the jit step.

Batches travel to the devices as uint8; these ops turn `image: uint8 [batch,
height, width, channels]` into `inputs: float32` of the same shape.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from bigjax.pp import image_mixing, rand_augment

NORMALIZATIONS = ("zero_to_one", "minus_one_to_one", "standardize")
PADDINGS = ("zeros", "reflect")


def normalize(images: jnp.ndarray, mode: str, mean: float = 0.0, std: float = 1.0) -> jnp.ndarray:
    """Pixels 0..255 (uint8, or floats after augmentation) -> float32: [0, 1], [-1, 1],
    or `(x / 255 - mean) / std`."""
    x = images.astype(jnp.float32) / 255.0
    if mode == "zero_to_one":
        return x
    if mode == "minus_one_to_one":
        return x * 2.0 - 1.0
    if mode == "standardize":
        return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)
    raise ValueError(f"Unknown normalization {mode!r}; choose one of {NORMALIZATIONS}.")


def random_translate(rng: jax.Array, images: jnp.ndarray, max_shift: int,
                     padding: str = "zeros") -> jnp.ndarray:
    """Shifts each image by its own random (dy, dx) in [-max_shift, max_shift]: a random
    crop of the image padded by `max_shift` pixels of zeros, or of its mirror image at
    the borders (`padding="reflect"`).

    `images: [batch, height, width, channels]`.
    """
    if max_shift <= 0:
        return images
    if padding not in PADDINGS:
        raise ValueError(f"config.pp.translate_padding={padding!r}; choose one of {PADDINGS}.")
    batch, height, width, _ = images.shape
    s = max_shift
    padded = jnp.pad(images, ((0, 0), (s, s), (s, s), (0, 0)),
                     mode="constant" if padding == "zeros" else "reflect")
    offsets = jax.random.randint(rng, (batch, 2), 0, 2 * s + 1)

    def crop(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0),
                                     (height, width, image.shape[-1]))

    return jax.vmap(crop)(padded, offsets)


def random_flip(rng: jax.Array, images: jnp.ndarray) -> jnp.ndarray:
    """Mirrors each image left-right with probability 1/2. `images: [batch, h, w, c]`."""
    flip = jax.random.bernoulli(rng, 0.5, (images.shape[0], 1, 1, 1))
    return jnp.where(flip, images[:, :, ::-1], images)


def random_cutout(rng: jax.Array, inputs: jnp.ndarray, size: int) -> jnp.ndarray:
    """Zeroes one `size` x `size` square per image, placed uniformly at random wholly
    inside it (airbench's cutout). `inputs: [batch, height, width, channels]`, normalised:
    zero is the data's mean colour under `normalize="standardize"`."""
    batch, height, width, _ = inputs.shape
    if not 0 < size <= min(height, width):
        raise ValueError(f"config.pp.cutout={size} must be in [1, {min(height, width)}] "
                         f"for {height}x{width} images.")
    ky, kx = jax.random.split(rng)
    top = jax.random.randint(ky, (batch, 1, 1, 1), 0, height - size + 1)
    left = jax.random.randint(kx, (batch, 1, 1, 1), 0, width - size + 1)
    rows = jnp.arange(height).reshape(1, height, 1, 1)
    cols = jnp.arange(width).reshape(1, 1, width, 1)
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return jnp.where(inside, jnp.zeros((), inputs.dtype), inputs)


def make_preprocess(pp: ml_collections.ConfigDict):
    """Returns `fn(batch, rng, train) -> batch` adding `inputs` from `image`.

    `pp.normalize` picks the scaling; in training, `pp.translate` (pixels) switches
    random shifts on (`pp.translate_padding`: what fills the border) and `pp.flip`
    random left-right mirroring, `pp.rotate` (degrees) random rotations and
    `pp.rand_augment` ([num_ops, magnitude]) RandAugment (`pp/rand_augment.py`),
    `pp.cutout` (pixels) zeroes a random square of each normalised image,
    `pp.mixup` / `pp.cutmix` (Beta alphas) mix each image
    with its partner and add `mix_weight` (`pp/image_mixing.py`). Each draws from its own
    fold of the step's key.
    """
    mode = pp.get("normalize", "zero_to_one")
    if mode not in NORMALIZATIONS:
        raise ValueError(f"config.pp.normalize={mode!r}; choose one of {NORMALIZATIONS}.")
    mean, std = pp.get("mean", 0.0), pp.get("std", 1.0)
    shift, padding = int(pp.get("translate", 0)), pp.get("translate_padding", "zeros")
    flip = bool(pp.get("flip", False))
    mixup_alpha, cutmix_alpha = float(pp.get("mixup") or 0.0), float(pp.get("cutmix") or 0.0)
    rotate = float(pp.get("rotate") or 0.0)
    randaug = pp.get("rand_augment")
    if randaug is not None and (len(randaug) != 2 or int(randaug[0]) < 1
                                or not 0 <= float(randaug[1]) <= 10):
        raise ValueError(f"config.pp.rand_augment={list(randaug)} must be [num_ops, "
                         "magnitude] with num_ops >= 1 and magnitude in [0, 10].")
    if padding not in PADDINGS:
        raise ValueError(f"config.pp.translate_padding={padding!r}; choose one of {PADDINGS}.")
    cutout = int(pp.get("cutout") or 0)

    def preprocess(batch: dict, rng: jax.Array, train: bool) -> dict:
        images = batch["image"]
        if train and shift:
            images = random_translate(rng, images, shift, padding)
        if train and flip:
            images = random_flip(jax.random.fold_in(rng, 1), images)
        if train and (rotate or randaug):
            images = images.astype(jnp.float32)  # 0..255, normalised below
            if rotate:
                images = rand_augment.random_rotate(jax.random.fold_in(rng, 3), images,
                                                    rotate)
            if randaug:
                images = rand_augment.rand_augment(jax.random.fold_in(rng, 4), images,
                                                   int(randaug[0]), float(randaug[1]))
        inputs = normalize(images, mode, mean, std)
        if train and cutout:
            inputs = random_cutout(jax.random.fold_in(rng, 5), inputs, cutout)
        if train and (mixup_alpha or cutmix_alpha):
            inputs, weight = image_mixing.mix(jax.random.fold_in(rng, 2), inputs, mixup_alpha,
                                              cutmix_alpha)
            return {**batch, "inputs": inputs, "mix_weight": weight,
                    "mix_label": image_mixing.partner(batch["label"])}
        return {**batch, "inputs": inputs}

    return preprocess
