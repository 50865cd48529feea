"""The train state pytree and its born-sharded initialisation.

`TrainState` holds everything that changes during training: params, optimizer
state, the step, and the run's base RNG key (each step folds the step number
into it). It is the pytree a checkpoint saves, together with the data position.
"""

from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from bigjax import sharding


@flax.struct.dataclass
class TrainState:
    step: jax.Array  # int32 scalar: optimizer steps taken
    params: Any
    opt_state: Any
    rng: jax.Array  # uint32 [2]: the run's base key, never advanced


def make_init_fn(model: nn.Module, tx: optax.GradientTransformation, sample_inputs: jax.Array):
    """`init(rng) -> TrainState` with boxed (logically named) params.

    Param shapes follow from `sample_inputs: [1, ...]`.
    """

    def init(rng: jax.Array) -> TrainState:
        init_rng, state_rng = jax.random.split(rng)
        variables = model.init({"params": init_rng, "dropout": init_rng}, sample_inputs,
                               train=False)
        params = variables["params"]
        return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                          opt_state=tx.init(params), rng=state_rng)

    return init


def abstract_state(init_fn, mesh, rules) -> tuple[TrainState, Any]:
    """`(abstract unboxed state with shardings, shardings)` without allocating anything."""
    boxed = jax.eval_shape(init_fn, jax.random.PRNGKey(0))
    shardings = sharding.state_shardings(boxed, mesh, rules)
    abstract = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
        nn.meta.unbox(boxed), shardings,
    )
    return abstract, shardings


def init_state(init_fn, seed: int, shardings) -> TrainState:
    """The initial state, created directly in its shardings (never whole on one device)."""
    create = jax.jit(lambda rng: nn.meta.unbox(init_fn(rng)), out_shardings=shardings)
    return create(jax.random.PRNGKey(seed))
