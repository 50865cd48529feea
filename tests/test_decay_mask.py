"""Weight decay / L1 / L2 masks by param path (bigjax.decay_mask), on the real models."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import pytest

from bigjax import decay_mask, models, optim, param_paths


def _bert_shapes(scan_layers: bool, boxed: bool = False):
    """Param shapes of the tiny BERT classifier (eval_shape: nothing is allocated)."""
    model = models.build(ml_collections.ConfigDict(dict(
        name="bert_classifier", variant="tiny", num_classes=2, scan_layers=scan_layers)))
    ids = jnp.zeros((1, 8), jnp.int32)
    params = jax.eval_shape(lambda: model.init(jax.random.key(0), ids, train=False))["params"]
    return params if boxed else nn.meta.unbox(params)


@pytest.fixture(scope="module", params=[False, True], ids=["unscanned", "scanned"])
def bert(request):
    return request.param, _bert_shapes(request.param)


def _named_mask(params, exclude=None) -> dict[str, bool]:
    return dict(zip(param_paths.flatten(params),
                    jax.tree.leaves(decay_mask.decay_mask(params, exclude)), strict=True))


def test_bert_decays_exactly_kernels_and_embeddings(bert):
    scan, params = bert
    mask = _named_mask(params)
    for name, decayed in mask.items():
        assert decayed == (name.split("/")[-1] in ("kernel", "embedding")), name
    layer = "layers" if scan else "layers_0"
    shapes = param_paths.flatten(params)
    # The cases `ndim > 1` got wrong: q/k/v biases [heads, kv], and with scan_layers every
    # LayerNorm param and bias ([layers, ...]).
    for part in ("query", "key", "value"):
        name = f"bert/encoder/{layer}/attention/{part}/bias"
        assert len(shapes[name].shape) == 2 + scan and not mask[name]
    for name in (f"bert/encoder/{layer}/attention_norm/scale",
                 f"bert/encoder/{layer}/mlp_norm/bias", f"bert/encoder/{layer}/mlp/wi/bias",
                 "bert/embeddings/norm/scale"):
        assert not mask[name], name
    assert mask["bert/embeddings/word_embeddings/embedding"]
    assert mask[f"bert/encoder/{layer}/attention/query/kernel"] and mask["classifier/kernel"]


def test_scanned_and_unscanned_masks_are_the_same():
    unscanned = {}
    for name, decayed in _named_mask(_bert_shapes(False)).items():
        unscanned.setdefault(re.sub(r"(^|/)layers_\d+(/|$)", r"\1layers\2", name), set()).add(
            decayed)
    assert all(len(values) == 1 for values in unscanned.values())  # every layer alike
    scanned = _named_mask(_bert_shapes(True))
    assert scanned == {name: values.pop() for name, values in unscanned.items()}


def test_custom_exclude_adds_to_or_replaces_the_defaults(bert):
    _, params = bert
    no_emb = _named_mask(params, "default,embeddings/")
    assert not any(v for n, v in no_emb.items() if n.startswith("bert/embeddings/"))
    assert no_emb["classifier/kernel"] and not no_emb["classifier/bias"]
    assert _named_mask(params, decay_mask.NO_EMBEDDING_DECAY) == no_emb
    assert _named_mask(params, ["default", r"(^|/)embedding$"]) == no_emb
    everything = _named_mask(params, "")
    assert all(everything.values())
    only_pooler = _named_mask(params, "pooler/")  # replaces the defaults: biases decayed
    assert only_pooler["classifier/bias"] and not only_pooler["pooler/kernel"]


def test_default_names_of_flax_norm_layers():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Embed(10, 4)(x)
            x = nn.LayerNorm()(nn.Dense(4)(x))
            x = nn.BatchNorm(use_running_average=True)(x)
            x = nn.RMSNorm()(x)
            x = nn.LayerNorm(name="conv_norm_0")(x)
            x = nn.LayerNorm(name="norm1")(x)
            return nn.Dense(3, name="normal_head")(x)  # a "norm..." name that is no norm

    params = jax.eval_shape(Net().init, jax.random.key(0), jnp.zeros((2,), jnp.int32))["params"]
    decayed = {n for n, v in _named_mask(params).items() if v}
    assert decayed == {"Embed_0/embedding", "Dense_0/kernel", "normal_head/kernel"}


def test_bad_regex_names_the_config_key():
    with pytest.raises(ValueError, match=r"config\.optim\.decay_exclude: '\(bias' is not"):
        decay_mask.exclude_patterns("default,(bias")
    config = ml_collections.ConfigDict(dict(name="adamw", learning_rate=1.0,
                                            decay_exclude=["[norm"]))
    with pytest.raises(ValueError, match=r"config\.optim\.decay_exclude"):
        optim.make_optimizer(config, 10)


def test_exclude_patterns_defaults_and_expansion():
    assert decay_mask.exclude_patterns(None) == decay_mask.DEFAULT_EXCLUDE
    assert decay_mask.exclude_patterns("") == decay_mask.exclude_patterns([]) == ()
    assert decay_mask.exclude_patterns(" default , embeddings/ ,default") == (
        *decay_mask.DEFAULT_EXCLUDE, "embeddings/")


def test_boxed_params_init_the_optimizer_as_in_training():
    """train_state inits the optimizer on boxed (nn.Partitioned) params: the mask is one
    bool per box, and the state has the same structure as from unboxed params."""
    boxed = _bert_shapes(True, boxed=True)
    mask = decay_mask.decay_mask(boxed)
    scale = boxed["bert"]["encoder"]["layers"]["attention_norm"]["scale"]
    assert isinstance(scale, nn.Partitioned)
    assert mask["bert"]["encoder"]["layers"]["attention_norm"]["scale"] is False
    config = ml_collections.ConfigDict(dict(name="adamw", learning_rate=1.0, weight_decay=0.1))
    tx, _ = optim.make_optimizer(config, 10)
    from_boxed = nn.meta.unbox(jax.eval_shape(tx.init, boxed))
    from_unboxed = jax.eval_shape(tx.init, nn.meta.unbox(boxed))
    assert jax.tree.structure(from_boxed) == jax.tree.structure(from_unboxed)


def test_describe_counts_arrays_and_values():
    params = {"dense": {"kernel": jnp.ones((3, 4)), "bias": jnp.ones(4)},
              "norm": {"scale": jnp.ones(4)}}
    line = decay_mask.describe(params)
    assert "apply to 1 arrays (12 values) and skip 2 (8 values)" in line


def test_runs_saved_before_decay_exclude_resume_with_the_rank_rule():
    """`decay_exclude="rank<2"` is the rule older runs trained with (no decay on params
    with fewer than 2 dims), so they resume unchanged."""
    params = {"dense": {"kernel": jnp.ones((3, 4)), "bias": jnp.ones(4)},
              "attention": {"query": {"bias": jnp.ones((2, 2))}},
              "layers": {"attention_norm": {"scale": jnp.ones((2, 4))}}}
    mask = decay_mask.decay_mask(params, decay_mask.LEGACY_RANK_RULE)
    assert mask == {"dense": {"kernel": True, "bias": False},
                    "attention": {"query": {"bias": True}},
                    "layers": {"attention_norm": {"scale": True}}}
