import jax.numpy as jnp
import numpy as np
import pytest

from bigjax import init_from


def test_merge_loads_matching_params_and_keeps_new_ones():
    fresh = {"bert": {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)},
             "head": {"kernel": jnp.zeros((3, 4))}}
    source = {"bert": {"w": np.ones((2, 3)), "b": np.ones(3)}, "head": {"kernel": np.ones((3, 2))},
              "mlm_head": {"bias": np.ones(5)}}
    merged, report = init_from.merge_params(fresh, source)
    np.testing.assert_array_equal(merged["bert"]["w"], 1.0)
    np.testing.assert_array_equal(merged["head"]["kernel"], 0.0)  # shape differs: re-initialised
    assert sorted(report["loaded"]) == ["bert/b", "bert/w"]
    assert report["new"] == ["head/kernel (shape (3, 2) -> (3, 4))"]
    assert report["unused"] == ["head/kernel", "mlm_head/bias"]
    assert merged["bert"]["w"].dtype == jnp.float32


def test_unknown_source_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a bigjax workdir"):
        init_from.read_source_params(str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(FileNotFoundError, match="No complete checkpoint"):
        init_from.read_source_params(str(tmp_path))


def test_minilm_source_reads_the_pretrained_encoder(minilm):
    params = init_from.read_source_params("minilm")
    assert params["bert"]["embeddings"]["word_embeddings"]["embedding"].shape == (30522, 384)


def test_params_to_replace_come_back_as_zeros_and_drop_their_initialisers():
    """A run from `init_from` builds its fresh state without the random init of the
    params it is about to load: those (and the optimizer state, rebuilt after the load)
    are zeros, the rest are what the full init gives, and the compiled program does less
    than half the work."""
    import jax
    import optax

    from bigjax import sharding
    from bigjax.models.bert import BertForSequenceClassification
    from bigjax.train_state import abstract_state, make_init_fn, state_initializer

    model = BertForSequenceClassification(variant="tiny", vocab_size=512, hidden=32, heads=2,
                                          mlp_dim=64, max_len=16, num_layers=2, num_classes=2)
    init_fn = make_init_fn(model, optax.adamw(1e-3), jnp.ones((1, 16), jnp.int32))
    mesh = sharding.make_mesh({}, jax.devices()[:1])
    abstract, shardings = abstract_state(init_fn, mesh, sharding.DEFAULT_RULES)
    body = frozenset(n for n in init_from.param_paths.flatten(abstract.params)
                     if n.startswith("bert/"))
    full_fn = state_initializer(init_fn, shardings)
    part_fn = state_initializer(init_fn, shardings, body)
    with sharding.mesh_context(mesh, sharding.DEFAULT_RULES):
        rng = jax.random.PRNGKey(3)
        full, part = full_fn(rng), part_fn(rng)
        flops = [f.lower(rng).compile().cost_analysis()["flops"] for f in (full_fn, part_fn)]
    full_flat = init_from.param_paths.flatten(full.params)
    for name, value in init_from.param_paths.flatten(part.params).items():
        if name in body:
            assert not np.any(value), name
        else:
            np.testing.assert_array_equal(value, full_flat[name])
    assert np.any(full_flat["bert/embeddings/word_embeddings/embedding"])
    assert not any(np.any(x) for x in jax.tree.leaves(part.opt_state))
    assert flops[1] < 0.5 * flops[0], flops
