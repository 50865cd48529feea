"""Frozen params and layer-wise LR decay (bigjax.param_lr) through optim.make_optimizer."""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from bigjax import config_cli, durations, optim, param_lr, train
from bigjax.models.bert import BertForSequenceClassification
from bigjax.models.layers.encoder import stack_layer_params

from conftest import REPO

SMALL = dict(variant="tiny", vocab_size=50, hidden=16, heads=2, mlp_dim=32, max_len=8,
             num_layers=3, num_classes=2)


def _optim(**kw):
    base = dict(name="adamw", learning_rate=0.1, schedule="constant", warmup_steps=0,
                weight_decay=0.1, grad_clip_norm=0.5)
    return ml_collections.ConfigDict({**base, **kw})


def _bert_params(scan_layers=False):
    model = BertForSequenceClassification(**SMALL, scan_layers=scan_layers)
    return nn.unbox(model.init(jax.random.key(0), jnp.ones((1, 8), jnp.int32),
                               train=False)["params"])


def _grads(params, seed=1):
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return treedef.unflatten([jax.random.normal(k, p.shape) for k, p in zip(keys, leaves,
                                                                            strict=True)])


def _run(tx, params, steps=3):
    state = tx.init(params)
    for step in range(steps):
        updates, state = tx.update(_grads(params, step), state, params)
        params = jax.tree.map(lambda p, u: p + u, params, updates)
    return params


def test_frozen_params_never_move_and_do_not_count_in_clipping():
    params = {"encoder": {"w": jnp.ones((4, 4)), "b": jnp.ones(4)}, "head": jnp.ones((4, 2))}
    tx, _ = optim.make_optimizer(_optim(frozen="encoder/"), 10)
    after = _run(tx, params)
    for name in ("w", "b"):
        np.testing.assert_array_equal(after["encoder"][name], params["encoder"][name])
    # The head moves exactly as if the frozen params did not exist: their gradients
    # are left out of the global-norm clip and of weight decay.
    alone, _ = optim.make_optimizer(_optim(), 10)
    state = alone.init({"head": params["head"]})
    head = params["head"]
    for step in range(3):
        g = {"head": _grads(params, step)["head"]}
        updates, state = alone.update(g, state, {"head": head})
        head = head + updates["head"]
    np.testing.assert_allclose(after["head"], head, rtol=1e-6)
    assert not np.allclose(after["head"], params["head"])


def test_layer_decay_multipliers_by_depth():
    params = _bert_params()
    m = param_lr.lr_multipliers(params, layer_decay=0.5)
    layers = m["bert"]["encoder"]
    for i in range(3):  # layer i of 3: 0.5 ** (3 - i)
        assert set(jax.tree.leaves(layers[f"layers_{i}"])) == {0.5 ** (3 - i)}
    assert set(jax.tree.leaves(m["bert"]["embeddings"])) == {0.5 ** 4}
    assert set(jax.tree.leaves(m["pooler"])) == {1.0}
    assert set(jax.tree.leaves(m["classifier"])) == {1.0}


def test_scanned_layers_get_the_same_multipliers_as_unscanned():
    unscanned = _bert_params()
    scanned = _bert_params(scan_layers=True)
    m_unscanned = param_lr.lr_multipliers(unscanned, layer_decay=0.7)
    m_scanned = param_lr.lr_multipliers(scanned, layer_decay=0.7)
    # Expand the unscanned per-layer floats to leaf-shaped arrays, then stack them.
    expanded = jax.tree.map(lambda m, p: np.full(p.shape, m, np.float32), m_unscanned, unscanned)
    expanded["bert"]["encoder"] = stack_layer_params(expanded["bert"]["encoder"], 3)
    broadcast = jax.tree.map(lambda m, p: np.broadcast_to(np.asarray(m, np.float32), p.shape),
                             m_scanned, scanned)
    jax.tree.map(np.testing.assert_allclose, broadcast, expanded)


def test_layer_decay_scales_the_sgd_step():
    params = _bert_params()
    tx, _ = optim.make_optimizer(_optim(name="sgd", weight_decay=0.0, grad_clip_norm=None,
                                        layer_lr_decay=0.5), 10)
    grads = _grads(params)
    updates, _ = tx.update(grads, tx.init(params), params)
    enc = "bert", "encoder"
    layer0 = updates[enc[0]][enc[1]]["layers_0"]["mlp"]["wi"]["kernel"]
    grad0 = grads[enc[0]][enc[1]]["layers_0"]["mlp"]["wi"]["kernel"]
    np.testing.assert_allclose(layer0, -0.1 * 0.5 ** 3 * grad0, rtol=1e-6)
    np.testing.assert_allclose(updates["classifier"]["kernel"],
                               -0.1 * grads["classifier"]["kernel"], rtol=1e-6)


def test_bad_settings_fail_when_the_state_is_built():
    params = {"dense": {"kernel": jnp.ones((2, 2))}}
    tx, _ = optim.make_optimizer(_optim(frozen="encoder/"), 10)
    with pytest.raises(ValueError, match="'encoder/' matches no param"):
        tx.init(params)
    tx, _ = optim.make_optimizer(_optim(layer_lr_decay=0.9), 10)
    with pytest.raises(ValueError, match="needs a model with a transformer stack"):
        tx.init(params)
    tx, _ = optim.make_optimizer(_optim(layer_lr_decay=1.5), 10)
    with pytest.raises(ValueError, match="must be in"):
        tx.init(_bert_params())
    with pytest.raises(ValueError, match="not a regular expression"):
        optim.make_optimizer(_optim(frozen="layers_[0"), 10)


def test_frozen_accepts_a_comma_separated_string_or_a_list():
    assert param_lr.frozen_patterns("a/, b/ ,") == ("a/", "b/")
    assert param_lr.frozen_patterns(["a/", "b/"]) == ("a/", "b/")
    assert param_lr.frozen_patterns("") == () and param_lr.frozen_patterns(None) == ()


def test_layer_decay_on_scanned_layers_through_the_optimizer():
    params = _bert_params(scan_layers=True)
    tx, _ = optim.make_optimizer(_optim(name="sgd", weight_decay=0.0, grad_clip_norm=None,
                                        layer_lr_decay=0.5), 10)
    grads = _grads(params)
    updates, _ = tx.update(grads, tx.init(params), params)
    stacked = updates["bert"]["encoder"]["layers"]["mlp"]["wi"]["kernel"]  # [layers, ...]
    grad = grads["bert"]["encoder"]["layers"]["mlp"]["wi"]["kernel"]
    for i in range(3):
        np.testing.assert_allclose(stacked[i], -0.1 * 0.5 ** (3 - i) * grad[i], rtol=1e-6)


def test_a_nan_gradient_on_a_frozen_param_does_not_spread():
    params = {"encoder": {"w": jnp.ones((2, 2))}, "head": jnp.ones((2, 2))}
    tx, _ = optim.make_optimizer(_optim(frozen="encoder/"), 10)
    grads = {"encoder": {"w": jnp.full((2, 2), jnp.nan)}, "head": jnp.ones((2, 2))}
    updates, _ = tx.update(grads, tx.init(params), params)
    assert np.isfinite(updates["head"]).all() and (updates["encoder"]["w"] == 0).all()


def test_describe_counts_frozen_scaled_and_full_rate_arrays():
    params = _bert_params()
    line = param_lr.describe(params, _optim(frozen="bert/embeddings/", layer_lr_decay=0.9))
    n_embed = len(jax.tree.leaves(params["bert"]["embeddings"]))
    n_layers = len(jax.tree.leaves(params["bert"]["encoder"]))
    n_rest = len(jax.tree.leaves(params)) - n_embed - n_layers
    assert (f"{n_embed} arrays frozen, {n_layers} arrays scaled, {n_rest} arrays full rate"
            in line)
    assert param_lr.describe(params, _optim()) is None  # nothing to report
    line = param_lr.describe(params, _optim(frozen_after_epochs={"pooler": 3}))
    assert line.endswith("frozen after epochs: {'pooler': 3}")


def test_lr_multipliers_scale_the_matching_params_updates():
    params = {"conv": {"kernel": jnp.ones((3, 3)), "bias": jnp.ones((3,))},
              "norm_0": {"bias": jnp.ones((3,))}}
    grads = jax.tree.map(jnp.ones_like, params)
    base = dict(name="sgd", learning_rate=0.1, momentum=None, weight_decay=0.0,
                grad_clip_norm=None)
    plain, _ = optim.make_optimizer(_optim(**base), 10)
    scaled, _ = optim.make_optimizer(_optim(**base, lr_multipliers={r"norm_\d/bias": 64.0}), 10)
    a, _ = plain.update(grads, plain.init(params), params)
    b, _ = scaled.update(grads, scaled.init(params), params)
    np.testing.assert_allclose(b["norm_0"]["bias"], 64 * a["norm_0"]["bias"])
    np.testing.assert_array_equal(b["conv"]["bias"], a["conv"]["bias"])
    with pytest.raises(ValueError, match="matches no param"):
        bad, _ = optim.make_optimizer(_optim(**base, lr_multipliers={"nothing": 2.0}), 10)
        bad.init(params)
    with pytest.raises(ValueError, match="factors >= 0"):
        optim.make_optimizer(_optim(**base, lr_multipliers={"norm": "fast"}), 10)


def _moves(tx, params, steps=5):
    """Per step, whether each param changed: {name: [bool] * steps}."""
    state, update = tx.init(params), jax.jit(tx.update)
    history = [params]
    for step in range(steps):
        updates, state = update(_grads(params, step), state, history[-1])
        history.append(jax.tree.map(lambda p, u: p + u, history[-1], updates))
    flat = [param_lr.param_paths.flatten(h) for h in history]
    return {k: [not np.array_equal(a[k], b[k]) for a, b in zip(flat, flat[1:], strict=False)]
            for k in flat[0]}


def test_frozen_after_steps_stops_the_matching_params_at_that_step():
    params = {"whiten": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))},
              "head": {"bias": jnp.ones((2,))}}
    # momentum and (with nothing excluded) weight decay would keep moving a frozen param
    base = dict(name="sgd", momentum=0.9, weight_decay=0.1, decay_exclude="")
    tx, _ = optim.make_optimizer(_optim(**base, frozen_after_steps={"whiten/bias": 2}), 10)
    moved = _moves(tx, params)
    assert moved["whiten/bias"] == [True, True, False, False, False]
    assert moved["head/bias"] == moved["whiten/kernel"] == [True] * 5
    plain, _ = optim.make_optimizer(_optim(**base), 10)
    assert _moves(plain, params)["whiten/bias"] == [True] * 5
    with pytest.raises(ValueError, match="'stem/' matches no param"):
        bad, _ = optim.make_optimizer(_optim(frozen_after_steps={"stem/": 1}), 10)
        bad.init(params)
    for bad_value in (-1, 2.7, True):
        with pytest.raises(ValueError, match="whole steps >= 0"):
            optim.make_optimizer(_optim(frozen_after_steps={"whiten": bad_value}), 10)
    with pytest.raises(ValueError, match="turned into frozen_after_steps"):
        optim.make_optimizer(_optim(frozen_after_epochs={"whiten": 1}), 10)


def test_frozen_after_epochs_becomes_steps():
    config = ml_collections.ConfigDict(dict(frozen_after_epochs={"whiten/bias": 3},
                                            frozen_after_steps=None))
    assert durations.resolve_step_map(config, "frozen_after", 48) == {"whiten/bias": 144}
    config.frozen_after_steps = {"whiten/bias": 5}
    with pytest.raises(ValueError, match="only one of"):
        durations.resolve_step_map(config, "frozen_after", 48)


def test_an_experiment_freezes_after_the_configured_epochs():
    """build_experiment turns `frozen_after_epochs` into steps of its data (rounded up):
    the head's bias stops there while the rest keeps learning."""
    config = config_cli.load_config_file(os.path.join(REPO, "configs", "digits_cnn.py:runlocal"))
    exp = train.build_experiment(config_cli.apply_overrides(
        config, [("optim.frozen_after_epochs", "{'head/bias': 0.3}")]))
    limit = int(np.ceil(0.3 * exp.train_batches.steps_per_epoch))
    assert 1 < limit < exp.total_steps - 2
    params = jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), exp.abstract_state.params)
    moved = _moves(exp.tx, nn.unbox(params), steps=exp.total_steps - 1)
    # step 0 runs at the warmup's zero rate
    assert moved["head/bias"][1:] == [True] * (limit - 1) + [False] * (len(moved["head/bias"])
                                                                         - limit)
    assert all(moved["head/kernel"][1:])


def test_lookahead_pulls_the_params_to_slow_weights_and_ends_on_them():
    total, every, final = 10, 5, 0.5
    params = {"w": jnp.zeros((2,))}
    tx, _ = optim.make_optimizer(_optim(name="sgd", learning_rate=1.0, momentum=None,
                                        weight_decay=0.0, grad_clip_norm=None,
                                        lookahead_every=every, lookahead_decay=final), total)
    state = tx.init(params)
    slow, fast = np.zeros(2), np.zeros(2)
    for step in range(1, total + 1):
        grads = {"w": -jnp.ones((2,))}  # each step moves +1
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        fast = fast + 1
        if step % every == 0 or step == total:
            decay = 1.0 if step == total else final * (step / total) ** 3
            slow = decay * slow + (1 - decay) * fast
            fast = slow.copy()
        np.testing.assert_allclose(params["w"], fast, rtol=1e-6, err_msg=f"step {step}")
    # Without lookahead the params would be at 10; the pulls and the final copy leave them
    # at the slow weights: 5 * (1 - 0.5 / 8) = 4.6875 after the pull at step 5, never
    # updated at the end (the final decay is 1).
    np.testing.assert_allclose(params["w"], 5 * (1 - final / 8))


def test_lookahead_pulls_the_model_state_with_the_params():
    """BatchNorm running statistics follow the params to the slow weights (airbench
    averages every buffer); without `sync_model_state` they would stay the fast ones."""
    from bigjax import lookahead, train_state

    total, every, final = 10, 5, 0.5
    params = {"w": jnp.zeros((2,))}
    tx, _ = optim.make_optimizer(_optim(name="sgd", learning_rate=1.0, momentum=None,
                                        weight_decay=0.0, grad_clip_norm=None,
                                        lookahead_every=every, lookahead_decay=final), total)
    model_state = {"batch_stats": {"mean": jnp.zeros((2,)), "count": jnp.zeros((), jnp.int32)}}
    state = train_state.init_opt_state(tx, params, model_state)
    for step in range(1, total + 1):
        # the step's "running mean" is what the forward pass saw plus the step: the fast
        # params the lookahead mixes at a pull; the int leaf counts steps
        model_state = {"batch_stats": {"mean": params["w"] + 1.0,
                                       "count": model_state["batch_stats"]["count"] + 1}}
        updates, state = tx.update({"w": -jnp.ones((2,))}, state, params)
        params = optax.apply_updates(params, updates)
        state, model_state = lookahead.sync_model_state(state, model_state)
        # between pulls both are the fast values, at a pull both the slow ones
        np.testing.assert_allclose(model_state["batch_stats"]["mean"], params["w"],
                                   rtol=1e-6, err_msg=f"step {step}")
    assert int(model_state["batch_stats"]["count"]) == total  # non-float leaves untouched
    np.testing.assert_allclose(model_state["batch_stats"]["mean"], 5 * (1 - final / 8))


def test_sync_model_state_without_lookahead_changes_nothing():
    from bigjax import lookahead, train_state

    tx, _ = optim.make_optimizer(_optim(name="sgd", learning_rate=1.0, momentum=0.9,
                                        weight_decay=0.0, grad_clip_norm=None), 10)
    model_state = {"batch_stats": {"mean": jnp.ones((2,))}}
    state = train_state.init_opt_state(tx, {"w": jnp.zeros((2,))}, model_state)
    assert lookahead.sync_model_state(state, model_state) == (state, model_state)
