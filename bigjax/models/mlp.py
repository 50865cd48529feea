"""A multi-layer perceptron classifier over flattened inputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import flax.linen as nn
import jax.numpy as jnp

from bigjax.models.layers.dropout import Dropout


class MLP(nn.Module):
    """Flatten -> [Dense -> ReLU -> Dropout] * len(hidden) -> Dense(num_classes).

    `inputs: [batch, ...]` (flattened to `[batch, features]`); returns
    `(logits [batch, num_classes] float32, {"pre_logits": [batch, hidden[-1]] in dtype})`.

    Attributes:
      num_classes: width of the output layer.
      hidden: widths of the hidden layers.
      dropout_rate: dropout after each hidden layer (train only, rng name "dropout").
      dtype: compute dtype of the activations (the logits are cast to float32).
      param_dtype: dtype of the params (float32 for mixed precision with bfloat16 `dtype`).
    """

    HEAD_MODULES: ClassVar[tuple[str, ...]] = ("head",)  # may be new under init_from

    num_classes: int
    hidden: Sequence[int] = (128, 64)
    dropout_rate: float = 0.0
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, inputs: jnp.ndarray, *, train: bool = False
                 ) -> tuple[jnp.ndarray, dict[str, jnp.ndarray]]:
        x = inputs.reshape((inputs.shape[0], -1)).astype(self.dtype)
        for i, width in enumerate(self.hidden):
            x = nn.Dense(width, dtype=self.dtype, param_dtype=self.param_dtype,
                         name=f"dense_{i}")(x)
            x = nn.relu(x)
            x = Dropout(self.dropout_rate, deterministic=not train)(x)
        logits = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype,
                          name="head")(x)
        return logits.astype(jnp.float32), {"pre_logits": x}
