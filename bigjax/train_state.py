"""The train state pytree and its born-sharded initialisation.

`TrainState` holds everything that changes during training: params, the model's
mutable collections (e.g. BatchNorm `batch_stats`), optimizer state, the step, the
run's base RNG key (each step folds the step number into it), and technique state
(EMA of params, pruning masks: an empty dict until a technique adds some). It is the
pytree a checkpoint saves, together with the data position.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from bigjax import lookahead, param_paths, sharding


@flax.struct.dataclass
class TrainState:
    step: jax.Array  # int32 scalar: optimizer steps taken
    params: Any
    model_state: Any  # {collection: tree}, e.g. {"batch_stats": ...}; {} if stateless
    opt_state: Any
    rng: jax.Array  # uint32 [2]: the run's base key, never advanced
    techniques: Any = flax.struct.field(default_factory=dict)  # EMA, pruning masks, ...

    @property
    def variables(self) -> dict:
        """What `model.apply` takes: `{"params": ..., **model_state}`."""
        return {"params": self.params, **self.model_state}


def make_variables_init(model: nn.Module, sample_inputs: jax.Array,
                        model_kwargs: dict | None = None) -> Callable[[jax.Array], dict]:
    """`init(rng) -> variables` (`{"params", *mutable collections}`, boxed with logical
    names); shapes follow from `sample_inputs: [1, ...]`."""

    def init(rng: jax.Array) -> dict:
        return dict(model.init({"params": rng, "dropout": rng}, sample_inputs, train=False,
                               **(model_kwargs or {})))

    return init


def make_init_fn(model: nn.Module, tx: optax.GradientTransformation, sample_inputs: jax.Array,
                 model_kwargs: dict | None = None) -> Callable[[jax.Array], TrainState]:
    """`init(rng) -> TrainState` with boxed (logically named) params and model state."""
    init_variables = make_variables_init(model, sample_inputs, model_kwargs)

    def init(rng: jax.Array) -> TrainState:
        init_rng, state_rng = jax.random.split(rng)
        variables = init_variables(init_rng)
        params = variables.pop("params")
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, model_state=variables,
                          opt_state=init_opt_state(tx, params, variables), rng=state_rng)

    return init


def init_opt_state(tx: optax.GradientTransformation, params: Any, model_state: Any) -> Any:
    """`tx.init(params)`, with a lookahead's slow copy of `model_state` put in (see
    `bigjax.lookahead`)."""
    return lookahead.attach_model_state(tx.init(params), model_state)


def abstract_state(init_fn, mesh, rules) -> tuple[Any, Any]:
    """`(abstract unboxed tree with shardings, shardings)` of what `init_fn(rng)` returns
    (a TrainState, or model variables), without allocating anything."""
    with sharding.mesh_context(mesh, rules):
        boxed = jax.eval_shape(init_fn, jax.random.PRNGKey(0))
    shardings = sharding.state_shardings(boxed, mesh, rules)
    abstract = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
        nn.meta.unbox(boxed), shardings,
    )
    return abstract, shardings


def state_initializer(init_fn, shardings, params_to_replace: Collection[str] = ()):
    """`init_fn` jit-compiled to return the unboxed state on `shardings`; the params named
    in `params_to_replace` (paths "a/b/c") and the whole optimizer state come back as
    zeros, so XLA drops their random initialisers (see `init_state`)."""
    replace = frozenset(params_to_replace)

    def create(rng):
        state = nn.meta.unbox(init_fn(rng))
        if not replace:
            return state
        params = jax.tree_util.tree_map_with_path(
            lambda path, x: jnp.zeros_like(x) if param_paths.path_name(path) in replace else x,
            state.params)
        return state.replace(params=params,
                             opt_state=jax.tree.map(jnp.zeros_like, state.opt_state))

    return jax.jit(create, out_shardings=shardings)


def init_state(init_fn, seed: int, shardings, rules=sharding.DEFAULT_RULES,
               params_to_replace: Collection[str] = ()) -> Any:
    """The initial state, created directly in its shardings (never whole on one device),
    traced under their mesh and `rules` so the model's sharding constraints apply.

    `params_to_replace`: param paths ("a/b/c") the caller replaces next (`init_from`'s
    loaded params). They come back as zeros, and so does the whole optimizer state, so
    their random initialisers are neither compiled nor run (seconds for a BERT-base, far
    more for large models); the caller must then build the optimizer state from the
    final params, as `train.load_init_from` does. The other params get the same values
    as without it (the same keys are drawn).
    """
    mesh = jax.tree.leaves(shardings)[0].mesh
    create = state_initializer(init_fn, shardings, params_to_replace)
    with sharding.mesh_context(mesh, rules):
        return create(jax.random.PRNGKey(seed))
