"""bigjax.adam against optax.adam / optax.adamw as the oracle."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from bigjax import adam, optim


def _params(key, dtype=jnp.float32):
    k1, k2 = jax.random.split(key)
    return {"dense": {"kernel": jax.random.normal(k1, (7, 5), dtype), "bias": jnp.zeros(5, dtype)},
            "scale": jax.random.normal(k2, (5,), dtype)}


def _grads(params, i):
    """Gradients of very different sizes: O(1), ~1e-6 (near eps), and exact zeros."""
    big = jax.tree.map(lambda p: jnp.sin(p * (i + 1)) + 0.1 * i, params)
    big["dense"]["kernel"] = big["dense"]["kernel"].at[0].multiply(1e-6).at[1].set(0.0)
    return big


def _run(tx, params, steps=25):
    state = tx.init(params)
    for i in range(steps):
        updates, state = tx.update(_grads(params, i), state, params)
        params = optax.apply_updates(params, updates)
    return params, state


def _assert_trees_match(got, want, rtol, atol):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert (g.shape, g.dtype) == (w.shape, w.dtype)
        np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(w, np.float32),
                                   rtol=rtol, atol=atol)


@pytest.mark.parametrize("weight_decay", [None, 0.1])
@pytest.mark.parametrize("b1, b2, eps", [(0.9, 0.999, 1e-8), (0.8, 0.95, 1e-3)])
def test_matches_optax(weight_decay, b1, b2, eps):
    params = _params(jax.random.key(0))
    schedule = optax.linear_schedule(1e-2, 1e-3, 25)
    mask = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)  # noqa: E731
    if weight_decay is None:
        ours, oracle = adam.adam(schedule, b1, b2, eps), optax.adam(schedule, b1, b2, eps)
    else:
        ours = adam.adam(schedule, b1, b2, eps, weight_decay=weight_decay, mask=mask)
        oracle = optax.adamw(schedule, b1, b2, eps, weight_decay=weight_decay, mask=mask)
    got_params, got_state = _run(ours, params)
    want_params, want_state = _run(oracle, params)
    # Same pytree, shapes and dtypes (checkpoints written with either load into the other),
    # and the same numbers up to float32 rounding.
    _assert_trees_match((got_params, got_state), (want_params, want_state), 2e-5, 1e-7)
    # The params did move: the comparison is not between two unchanged trees.
    assert not np.allclose(got_params["dense"]["kernel"], params["dense"]["kernel"])


def test_bfloat16_params_keep_their_state_dtypes():
    params = _params(jax.random.key(1), jnp.bfloat16)
    got_params, got_state = _run(adam.adam(1e-2), params, steps=5)
    want_params, want_state = _run(optax.adam(1e-2), params, steps=5)
    _assert_trees_match((got_params, got_state), (want_params, want_state), 2e-2, 1e-2)


def test_make_optimizer_matches_the_optax_chain():
    """The configs' chain (clip -> AdamW with masked decay -> schedule), both ways."""
    config = ml_collections.ConfigDict(dict(
        name="adamw", learning_rate=3e-3, weight_decay=0.05, grad_clip_norm=0.5,
        schedule="warmup_linear", warmup_steps=5))
    params = _params(jax.random.key(2))
    ours, _ = optim.make_optimizer(config, 25)
    oracle, _ = optim.make_optimizer(config, 25, adam_impl="optax")
    _assert_trees_match(_run(ours, params), _run(oracle, params), 2e-5, 1e-7)


def test_first_step_is_lr_times_g_over_abs_g_plus_eps():
    """Adam's first step is exactly lr * g / (|g| + eps): ~lr * sign(g) when |g| >> eps."""
    params = {"w": jnp.zeros(5)}
    grads = {"w": jnp.array([1e-3, -2.0, 50.0, -1e-2, 1e-8])}
    updates, _ = adam.adam(0.1).update(grads, adam.adam(0.1).init(params), params)
    g = np.asarray(grads["w"], np.float64)
    np.testing.assert_allclose(updates["w"], -0.1 * g / (np.abs(g) + 1e-8), rtol=1e-5)


@pytest.mark.parametrize("weight_decay", [None, 0.1])
@pytest.mark.parametrize("options", [
    dict(eps_root=1e-8), dict(eps_root=1e-3, eps=0.0), dict(nesterov=True),
    dict(nesterov=True, eps_root=1e-6, b1=0.8), dict(mu_dtype=jnp.float32)])
def test_options_match_optax(options, weight_decay):
    """eps_root, nesterov (Nadam) and an explicit mu_dtype, each against optax's own."""
    params = _params(jax.random.key(3))
    schedule = optax.linear_schedule(1e-2, 1e-3, 25)
    mask = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)  # noqa: E731
    if weight_decay is None:
        ours, oracle = adam.adam(schedule, **options), optax.adam(schedule, **options)
    else:
        ours = adam.adam(schedule, weight_decay=weight_decay, mask=mask, **options)
        oracle = optax.adamw(schedule, weight_decay=weight_decay, mask=mask, **options)
    got_params, got_state = _run(ours, params)
    _assert_trees_match((got_params, got_state), _run(oracle, params), 2e-5, 1e-7)
    assert not np.allclose(got_params["dense"]["kernel"], params["dense"]["kernel"])


@pytest.mark.parametrize("nesterov", [False, True])
def test_bfloat16_mu_matches_optax_and_keeps_its_dtype(nesterov):
    """mu_dtype=bfloat16 with float32 params: mu stored in bfloat16, nu and the updates
    in float32, the same numbers as optax's (mu up to one bfloat16 rounding step)."""
    params = _params(jax.random.key(4))
    ours = adam.adam(1e-2, mu_dtype=jnp.bfloat16, nesterov=nesterov)
    oracle = optax.adam(1e-2, mu_dtype=jnp.bfloat16, nesterov=nesterov)
    got_params, got_state = _run(ours, params, steps=10)
    want_params, want_state = _run(oracle, params, steps=10)
    _assert_trees_match(got_params, want_params, 2e-5, 1e-7)
    _assert_trees_match(got_state, want_state, 8e-3, 1e-7)
    mu, nu = got_state[0].mu, got_state[0].nu
    assert {x.dtype for x in jax.tree.leaves(mu)} == {jnp.dtype(jnp.bfloat16)}
    assert {x.dtype for x in jax.tree.leaves(nu)} == {jnp.dtype(jnp.float32)}
    updates, _ = ours.update(_grads(params, 0), ours.init(params), params)
    assert {x.dtype for x in jax.tree.leaves(updates)} == {jnp.dtype(jnp.float32)}


def test_nesterov_first_step():
    """Nadam's first step: m_hat = b1 (1 - b1) g / (1 - b1^2) + g, v_hat = g^2, so the
    update is -lr * (1 + b1 / (1 + b1)) * sign(g) for |g| >> eps."""
    params = {"w": jnp.zeros(3)}
    grads = {"w": jnp.array([1.0, -2.0, 50.0])}
    tx = adam.adam(0.1, nesterov=True)
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1 * (1 + 0.9 / 1.9) * np.sign(grads["w"]),
                               rtol=1e-5)


@pytest.mark.parametrize("options", [
    dict(mu_dtype="bfloat16"), dict(nesterov=True, eps_root=1e-8)])
def test_make_optimizer_options_match_the_optax_chain(options):
    config = ml_collections.ConfigDict(dict(
        name="adamw", learning_rate=3e-3, weight_decay=0.05, grad_clip_norm=0.5,
        schedule="warmup_linear", warmup_steps=5, **options))
    params = _params(jax.random.key(5))
    ours, _ = optim.make_optimizer(config, 25)
    oracle, _ = optim.make_optimizer(config, 25, adam_impl="optax")
    (got_params, got_state), (want_params, want_state) = _run(ours, params), _run(oracle, params)
    _assert_trees_match(got_params, want_params, 2e-5, 1e-7)
    _assert_trees_match(got_state, want_state, 8e-3 if "mu_dtype" in options else 2e-5, 1e-7)
