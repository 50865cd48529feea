"""bigjax.adam against optax.adam / optax.adamw as the oracle."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bigjax import adam


def _params(key):
    k1, k2 = jax.random.split(key)
    return {"dense": {"kernel": jax.random.normal(k1, (7, 5)), "bias": jnp.zeros(5)},
            "scale": jax.random.normal(k2, (5,))}


def _run(tx, params, steps=25):
    state = tx.init(params)
    for i in range(steps):
        grads = jax.tree.map(lambda p, i=i: jnp.sin(p * (i + 1)) + 0.1 * i, params)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    return params, state


@pytest.mark.parametrize("weight_decay", [None, 0.1])
def test_matches_optax(weight_decay):
    params = _params(jax.random.key(0))
    schedule = optax.linear_schedule(1e-2, 1e-3, 25)
    mask = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)  # noqa: E731
    if weight_decay is None:
        ours, oracle = adam.adam(schedule), optax.adam(schedule)
    else:
        ours = adam.adam(schedule, weight_decay=weight_decay, mask=mask)
        oracle = optax.adamw(schedule, weight_decay=weight_decay, mask=mask)
    got_params, got_state = _run(ours, params)
    want_params, want_state = _run(oracle, params)
    # Same pytree (checkpoints written with either load into the other) ...
    assert jax.tree.structure(got_state) == jax.tree.structure(want_state)
    # ... and the same numbers up to float32 rounding.
    for got, want in zip(jax.tree.leaves((got_params, got_state)),
                         jax.tree.leaves((want_params, want_state)), strict=True):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
    # The params did move: the comparison is not between two unchanged trees.
    assert not np.allclose(got_params["dense"]["kernel"], params["dense"]["kernel"])


def test_first_step_is_sign_times_lr():
    """Adam's first step is lr * g / (|g| + eps'), i.e. ~lr * sign(g), whatever g's size."""
    params = {"w": jnp.zeros(4)}
    grads = {"w": jnp.array([1e-3, -2.0, 50.0, -1e-2])}
    tx = adam.adam(0.1)
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1 * np.sign(grads["w"]), rtol=1e-4)
