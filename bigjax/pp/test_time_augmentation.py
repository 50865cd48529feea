"""Test-time augmentation for image classifiers: the model's logits averaged over
mirrored and shifted copies of each image (evaluator option `tta`).

- "flip": the image and its mirror image, weight 1/2 each (2 forward passes);
- "flip_translate": those two with weight 1/2, plus both shifted one pixel up-left and
  one pixel down-right (borders mirrored), weight 1/4 per shift (6 passes; airbench's
  `tta_level=2`).

The views are cut from `inputs: [batch, height, width, channels]` after preprocessing,
so they cost no host work.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp

MODES = ("flip", "flip_translate")


def views(inputs: jnp.ndarray, mode: str) -> list[tuple[float, jnp.ndarray]]:
    """`[(weight, view [batch, h, w, c])]` for `mode`; the weights sum to 1."""
    if mode not in MODES:
        raise ValueError(f"tta={mode!r}; choose one of {MODES} (or None: off).")
    if inputs.ndim != 4:
        raise ValueError(f"tta={mode!r} augments images [batch, height, width, channels]; "
                         f"the inputs are {inputs.shape}.")

    def mirrored(x: jnp.ndarray, weight: float) -> list[tuple[float, jnp.ndarray]]:
        return [(weight / 2, x), (weight / 2, x[:, :, ::-1])]

    if mode == "flip":
        return mirrored(inputs, 1.0)
    h, w = inputs.shape[1:3]
    padded = jnp.pad(inputs, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    up_left, down_right = padded[:, :h, :w], padded[:, 2:, 2:]
    return mirrored(inputs, 0.5) + mirrored(up_left, 0.25) + mirrored(down_right, 0.25)


def averaged_logits(apply: Callable[[jnp.ndarray], jnp.ndarray], inputs: jnp.ndarray,
                    mode: str) -> jnp.ndarray:
    """`sum_v weight_v * apply(view_v)`: `apply(inputs) -> logits [batch, classes]`."""
    return sum(weight * apply(view) for weight, view in views(inputs, mode))
