"""Lookahead with a ramped decay (airbench's form): slow weights that the params are
pulled back to every few steps, more strongly as training ends.

Every `every` steps the slow weights move to `decay * slow + (1 - decay) * fast` (fast:
the params the inner optimizer just produced) and the params are set to them, with
`decay = final_decay * (step / total_steps) ** 3`: early on the params are left alone,
near the end they are an average over the last few hundred steps. At the last step the
params become the slow weights. The transformation goes last in the optax chain; its
state holds one float32 copy of the params.

The model state (BatchNorm running statistics) is pulled the same way, as airbench
averages every buffer of the network: statistics measured with the fast weights would
not fit the slow ones the model ends on. Optax sees only the params, so the train step
calls `sync_model_state` after the update, and the state's slow copy of the model state
is put in by `attach_model_state` once the optimizer state is built.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

NO_SYNC = -1.0  # `LookaheadState.decay` of an update that did not pull


class LookaheadState(NamedTuple):
    """`slow`: the slow weights (a tree like the params); `count`: updates so far;
    `decay`: the decay the last update pulled with (`NO_SYNC`: it did not pull);
    `slow_model_state`: the model state's slow copy (float32; `()` until attached)."""

    slow: Any
    count: jax.Array
    decay: jax.Array
    slow_model_state: Any = ()


def _pull(fast: jax.Array, slow: jax.Array, sync: jax.Array, decay: jax.Array
          ) -> tuple[jax.Array, jax.Array]:
    """`(value, new slow)`: where `sync`, slow <- decay * slow + (1 - decay) * fast and the
    value is the new slow one; else the fast value and the slow one unchanged (float32)."""
    new_slow = jnp.where(sync, decay * slow + (1 - decay) * fast, slow)
    return jnp.where(sync, new_slow, fast), new_slow


def _unzip(like: Any, pairs: Any) -> tuple[Any, Any]:
    """A tree of pairs shaped like `like` -> two trees shaped like it."""
    treedef = jax.tree.structure(like)
    flat = treedef.flatten_up_to(pairs)
    return (jax.tree.unflatten(treedef, [p[0] for p in flat]),
            jax.tree.unflatten(treedef, [p[1] for p in flat]))


def lookahead(every: int, final_decay: float, total_steps: int) -> optax.GradientTransformation:
    """The transformation; it needs `params` in `update`."""
    if every < 1 or not 0 <= final_decay < 1 or total_steps < 1:
        raise ValueError(f"lookahead: every={every} must be >= 1 and final decay "
                         f"{final_decay} in [0, 1).")

    def init(params):
        return LookaheadState(slow=jax.tree.map(lambda p: jnp.asarray(p, jnp.float32), params),
                              count=jnp.zeros((), jnp.int32),
                              decay=jnp.asarray(NO_SYNC, jnp.float32))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("lookahead needs the params in update().")
        count = state.count + 1
        progress = count.astype(jnp.float32) / total_steps
        decay = jnp.where(count >= total_steps, 1.0, final_decay * progress ** 3)
        sync = (count % every == 0) | (count >= total_steps)

        def step(u, p, s):
            new_param, new_slow = _pull(p.astype(jnp.float32) + u.astype(jnp.float32), s,
                                        sync, decay)
            return (new_param - p.astype(jnp.float32)).astype(u.dtype), new_slow

        new_updates, slow = _unzip(updates, jax.tree.map(step, updates, params, state.slow))
        return new_updates, state._replace(slow=slow, count=count,
                                           decay=jnp.where(sync, decay, NO_SYNC))

    return optax.GradientTransformation(init, update)


def _is_lookahead(x: Any) -> bool:
    return isinstance(x, LookaheadState)


def _float32_copy(x: jax.Array) -> jax.Array:
    return jnp.asarray(x, jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating) else x


def attach_model_state(opt_state: Any, model_state: Any) -> Any:
    """`opt_state` with every `LookaheadState`'s slow model state set to a float32 copy
    of `model_state`; unchanged without lookahead."""
    def attach(s):
        if not _is_lookahead(s):
            return s
        return s._replace(slow_model_state=jax.tree.map(_float32_copy, model_state))

    return jax.tree.map(attach, opt_state, is_leaf=_is_lookahead)


def sync_model_state(opt_state: Any, model_state: Any) -> tuple[Any, Any]:
    """After an update: where the lookahead pulled the params, pull the model state's
    float leaves the same way (slow <- decay * slow + (1 - decay) * model state; model
    state <- slow). Returns `(opt_state, model_state)`; unchanged without lookahead."""
    found = [s for s in jax.tree.leaves(opt_state, is_leaf=_is_lookahead) if _is_lookahead(s)]
    if not found or not jax.tree.leaves(model_state):
        return opt_state, model_state
    if len(found) > 1:
        raise ValueError("sync_model_state: the optimizer chain holds more than one lookahead.")
    state = found[0]
    sync, decay = state.decay >= 0, state.decay

    def pull(m, s):
        if not jnp.issubdtype(m.dtype, jnp.floating):
            return m, s
        value, new_slow = _pull(m.astype(jnp.float32), s, sync, decay)
        return value.astype(m.dtype), new_slow

    new_model_state, slow = _unzip(model_state, jax.tree.map(pull, model_state,
                                                             state.slow_model_state))

    def replace(s):
        return s._replace(slow_model_state=slow) if _is_lookahead(s) else s

    return jax.tree.map(replace, opt_state, is_leaf=_is_lookahead), new_model_state
