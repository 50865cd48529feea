"""A small convolutional classifier: conv/pool stages, then dense layers."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp


def max_pool_blocks(x: jnp.ndarray, size: int) -> jnp.ndarray:
    """Max over non-overlapping `size x size` blocks (window = stride, VALID: a remainder
    row/column is dropped), as `nn.max_pool(x, (size, size), strides=(size, size))`.

    `x: [batch, height, width, channels]` -> `[batch, height // size, width // size,
    channels]`. Written as reshape + max because XLA:CPU's gradient of
    `reduce_window` (select-and-scatter) is slow: this doubles the MNIST CNN's
    train steps/s on CPU.
    """
    b, h, w, c = x.shape
    h, w = h // size * size, w // size * size
    x = x[:, :h, :w, :].reshape(b, h // size, size, w // size, size, c)
    return x.max(axis=(2, 4))


class CNN(nn.Module):
    """[Conv k x k -> ReLU -> (MaxPool)] per stage -> Flatten -> Dense/ReLU/Dropout -> Dense.

    `inputs: [batch, height, width, channels]`; returns
    `(logits [batch, num_classes], {"pre_logits": [batch, dense[-1]]})`.
    `pool_every` pools after every n-th conv (1: after each conv).
    """

    num_classes: int
    conv_features: Sequence[int] = (32,)
    kernel_size: int = 3
    padding: str = "VALID"
    pool_size: int = 2
    pool_every: int = 1
    dense: Sequence[int] = (128,)
    dropout_rate: float = 0.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, inputs: jnp.ndarray, *, train: bool = False):
        if inputs.ndim != 4:
            raise ValueError(
                f"CNN expects images [batch, height, width, channels], got shape {inputs.shape}."
            )
        x = inputs.astype(self.dtype)
        k = self.kernel_size
        for i, features in enumerate(self.conv_features):
            x = nn.Conv(features, (k, k), padding=self.padding, dtype=self.dtype,
                        name=f"conv_{i}")(x)
            x = nn.relu(x)
            if (i + 1) % self.pool_every == 0:
                x = max_pool_blocks(x, self.pool_size)
        x = x.reshape((x.shape[0], -1))
        for i, width in enumerate(self.dense):
            x = nn.relu(nn.Dense(width, dtype=self.dtype, name=f"dense_{i}")(x))
            x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
        return logits.astype(jnp.float32), {"pre_logits": x}
