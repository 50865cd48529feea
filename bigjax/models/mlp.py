"""A multi-layer perceptron classifier over flattened inputs."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp


class MLP(nn.Module):
    """Flatten -> [Dense -> ReLU -> Dropout] * len(hidden) -> Dense(num_classes).

    `inputs: [batch, ...]` (flattened to `[batch, features]`); returns
    `(logits [batch, num_classes], {"pre_logits": [batch, hidden[-1]]})`.
    """

    num_classes: int
    hidden: Sequence[int] = (128, 64)
    dropout_rate: float = 0.0
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, inputs: jnp.ndarray, *, train: bool = False):
        x = inputs.reshape((inputs.shape[0], -1)).astype(self.dtype)
        for i, width in enumerate(self.hidden):
            x = nn.Dense(width, dtype=self.dtype, name=f"dense_{i}")(x)
            x = nn.relu(x)
            x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
        return logits.astype(jnp.float32), {"pre_logits": x}
