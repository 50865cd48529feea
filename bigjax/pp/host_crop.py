"""Random-resized crop on the host: numpy and Pillow work that runs in the input readers
(a background thread, or grain worker processes with `config.data.workers`), not on
the device.

Each training image is cut to a random rectangle covering a `scale` fraction of its
area with an aspect ratio (width / height) in `ratio`, and resized back to the image's
size (bilinear), the Inception-style augmentation. Every example draws from its own
generator, seeded by `TrainBatches` with (seed, batch index, row), so the crops are the
same whatever the number of workers or processes, and a resumed run sees the same pixels.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_RATIO = (3 / 4, 4 / 3)
ATTEMPTS = 10  # rectangles drawn before falling back to the whole image


def crop_box(height: int, width: int, rng: np.random.Generator, scale: tuple[float, float],
             ratio: tuple[float, float] = DEFAULT_RATIO) -> tuple[int, int, int, int]:
    """`(top, left, crop_height, crop_width)` of a random crop of a `height` x `width`
    image; the whole image when no drawn rectangle fits."""
    area = height * width
    for _ in range(ATTEMPTS):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    return 0, 0, height, width


def random_resized_crop(images: np.ndarray, rngs: list[np.random.Generator],
                        scale: tuple[float, float],
                        ratio: tuple[float, float] = DEFAULT_RATIO) -> np.ndarray:
    """`images: uint8 [n, h, w, c]` -> `uint8 [n, h, w, c]`, example i cropped with
    `rngs[i]` and resized back to `h` x `w`."""
    from PIL import Image

    n, height, width, channels = images.shape
    out = np.empty_like(images)
    for i in range(n):
        top, left, h, w = crop_box(height, width, rngs[i], scale, ratio)
        crop = images[i, top:top + h, left:left + w]
        pil = Image.fromarray(crop[..., 0] if channels == 1 else crop)
        resized = np.asarray(pil.resize((width, height), Image.BILINEAR), np.uint8)
        out[i] = resized.reshape(height, width, channels)
    return out


class HostCrop:
    """The host transform `TrainBatches` applies to each training batch:
    `(batch, rngs) -> batch` with its `image` column cropped (picklable, for workers)."""

    def __init__(self, scale: tuple[float, float], ratio: tuple[float, float] = DEFAULT_RATIO):
        if not (len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1):
            raise ValueError(f"config.data.host_crop_scale={list(scale)} must be [min, max] "
                             "with 0 < min <= max <= 1 (fractions of the image's area).")
        self.scale, self.ratio = (float(scale[0]), float(scale[1])), ratio

    def __call__(self, batch: dict[str, np.ndarray], rngs: list[np.random.Generator]
                 ) -> dict[str, np.ndarray]:
        if "image" not in batch or batch["image"].ndim != 4:
            raise ValueError("config.data.host_crop_scale crops images: the data set has no "
                             "`image` column [n, height, width, channels].")
        return {**batch, "image": random_resized_crop(batch["image"], rngs, self.scale,
                                                      self.ratio)}
