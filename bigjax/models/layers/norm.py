"""LayerNorm and RMSNorm with logically partitioned params."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from bigjax.models.layers import axes


def layer_norm(
    *,
    epsilon: float = 1e-6,
    dtype: jnp.dtype = jnp.float32,
    param_dtype: jnp.dtype = jnp.float32,
    name: str | None = None,
    use_bias: bool = True,
) -> nn.LayerNorm:
    """``nn.LayerNorm`` whose ``scale`` and ``bias`` [embed] carry the ``embed`` axis
    (``use_bias=False``: no ``bias``).

    Statistics are computed in float32 whatever ``dtype`` is.
    """
    return nn.LayerNorm(
        epsilon=epsilon,
        dtype=dtype,
        param_dtype=param_dtype,
        use_bias=use_bias,
        scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), (axes.EMBED,)),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), (axes.EMBED,)),
        name=name,
    )


def rms_norm(
    *,
    epsilon: float = 1e-6,
    dtype: jnp.dtype = jnp.float32,
    param_dtype: jnp.dtype = jnp.float32,
    name: str | None = None,
) -> nn.RMSNorm:
    """``nn.RMSNorm`` (Llama's norm: ``x / rms(x) * scale``, no mean, no bias) whose
    ``scale`` [embed] carries the ``embed`` axis. Statistics are computed in float32."""
    return nn.RMSNorm(
        epsilon=epsilon,
        dtype=dtype,
        param_dtype=param_dtype,
        scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), (axes.EMBED,)),
        name=name,
    )
