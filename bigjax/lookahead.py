"""Lookahead with a ramped decay (airbench's form): slow weights that the params are
pulled back to every few steps, more strongly as training ends.

Every `every` steps the slow weights move to `decay * slow + (1 - decay) * fast` (fast:
the params the inner optimizer just produced) and the params are set to them, with
`decay = final_decay * (step / total_steps) ** 3`: early on the params are left alone,
near the end they are an average over the last few hundred steps. At the last step the
params become the slow weights. The transformation goes last in the optax chain; its
state holds one float32 copy of the params.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class LookaheadState(NamedTuple):
    """`slow`: the slow weights (a tree like the params); `count`: updates so far."""

    slow: Any
    count: jax.Array


def lookahead(every: int, final_decay: float, total_steps: int) -> optax.GradientTransformation:
    """The transformation; it needs `params` in `update`."""
    if every < 1 or not 0 <= final_decay < 1 or total_steps < 1:
        raise ValueError(f"lookahead: every={every} must be >= 1 and final decay "
                         f"{final_decay} in [0, 1).")

    def init(params):
        return LookaheadState(slow=jax.tree.map(lambda p: jnp.asarray(p, jnp.float32), params),
                              count=jnp.zeros((), jnp.int32))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("lookahead needs the params in update().")
        count = state.count + 1
        progress = count.astype(jnp.float32) / total_steps
        decay = jnp.where(count >= total_steps, 1.0, final_decay * progress ** 3)
        sync = (count % every == 0) | (count >= total_steps)

        def step(u, p, s):
            fast = p.astype(jnp.float32) + u.astype(jnp.float32)
            new_slow = jnp.where(sync, decay * s + (1 - decay) * fast, s)
            new_param = jnp.where(sync, new_slow, fast)
            return (new_param - p.astype(jnp.float32)).astype(u.dtype), new_slow

        out = jax.tree.map(step, updates, params, state.slow)
        treedef = jax.tree.structure(updates)
        new_updates = jax.tree.unflatten(treedef, [o[0] for o in treedef.flatten_up_to(out)])
        slow = jax.tree.unflatten(treedef, [o[1] for o in treedef.flatten_up_to(out)])
        return new_updates, LookaheadState(slow=slow, count=count)

    return optax.GradientTransformation(init, update)
