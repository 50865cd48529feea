"""A small convolutional classifier: conv/pool stages, then dense layers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import flax.linen as nn
import jax.numpy as jnp

from bigjax.models.layers.dropout import Dropout


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


NORMS = (None, "batch")


class CNN(nn.Module):
    """[Conv k x k -> (BatchNorm) -> ReLU -> (MaxPool)] per stage -> Flatten ->
    [Dense -> (BatchNorm) -> ReLU -> Dropout] per dense layer -> Dense(num_classes).

    `inputs: [batch, height, width, channels]`; returns
    `(logits [batch, num_classes] float32, {"pre_logits": [batch, dense[-1]] in dtype})`.

    Attributes:
      num_classes: width of the output layer.
      conv_features: output channels of each conv.
      kernel_size: conv window (square).
      padding: conv padding, "VALID" or "SAME".
      pool_size: max-pool window = stride.
      pool_every: pools after every n-th conv (1: after each conv).
      dense: widths of the hidden dense layers.
      dropout_rate: dropout after each hidden dense layer (train only, rng name "dropout").
      dtype: compute dtype of the activations (the logits are cast to float32).
      param_dtype: dtype of the params (float32 for mixed precision with bfloat16 `dtype`).
      norm: None (no normalisation: the param tree of earlier runs), or "batch":
        `nn.BatchNorm` after every conv (`conv_norm_{i}`) and every hidden dense layer
        (`dense_norm_{i}`), before the ReLU. Batch statistics are computed over all
        non-channel axes of the (global, under jit) batch when `train`; their running
        averages (momentum 0.9) live in the `batch_stats` collection and are used when
        not `train`. Apply with `mutable=["batch_stats"]` in training.
    """

    CONFIG_CHOICES: ClassVar[dict] = {"padding": ("VALID", "SAME"), "norm": NORMS}
    HEAD_MODULES: ClassVar[tuple[str, ...]] = ("head",)  # may be new under init_from

    num_classes: int
    conv_features: Sequence[int] = (32,)
    kernel_size: int = 3
    padding: str = "VALID"
    pool_size: int = 2
    pool_every: int = 1
    dense: Sequence[int] = (128,)
    dropout_rate: float = 0.0
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    norm: str | None = None

    def _norm(self, x: jnp.ndarray, name: str, train: bool) -> jnp.ndarray:
        """`x: [..., features]` -> same shape; the identity when `norm` is None."""
        if self.norm is None:
            return x
        return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                            dtype=self.dtype, param_dtype=self.param_dtype, name=name)(x)

    @nn.compact
    def __call__(self, inputs: jnp.ndarray, *, train: bool = False
                 ) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
        if self.norm not in NORMS:
            raise ValueError(f"CNN norm={self.norm!r}; choose from {NORMS}.")
        if inputs.ndim != 4:
            raise ValueError(
                f"CNN expects images [batch, height, width, channels], got shape {inputs.shape}."
            )
        x = inputs.astype(self.dtype)
        k = self.kernel_size
        for i, features in enumerate(self.conv_features):
            x = nn.Conv(features, (k, k), padding=self.padding, dtype=self.dtype,
                        param_dtype=self.param_dtype, name=f"conv_{i}")(x)
            x = nn.relu(self._norm(x, f"conv_norm_{i}", train))
            if (i + 1) % self.pool_every == 0:
                x = max_pool_blocks(x, self.pool_size)
        x = x.reshape((x.shape[0], -1))
        for i, width in enumerate(self.dense):
            x = nn.Dense(width, dtype=self.dtype, param_dtype=self.param_dtype,
                         name=f"dense_{i}")(x)
            x = nn.relu(self._norm(x, f"dense_norm_{i}", train))
            x = Dropout(self.dropout_rate, deterministic=not train)(x)
        logits = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype,
                          name="head")(x)
        return logits.astype(jnp.float32), {"pre_logits": x}
