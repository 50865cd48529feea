"""BERT models: head shapes, padding invariance, scan/remat, dtypes, variant configs."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bigjax.models.bert import (
    VARIANTS,
    BertEncoder,
    BertForMaskedLM,
    BertForSequenceClassification,
    MlmHead,
    bert_config,
)
from bigjax.models.layers.encoder import stack_layer_params

VOCAB = 64
SMALL = dict(variant="tiny", vocab_size=VOCAB, hidden=32, heads=2, mlp_dim=64, max_len=16)
IDS = jnp.array([[2, 10, 11, 12, 3, 0, 0, 0], [2, 20, 21, 22, 23, 24, 25, 3]])


def _init(model, ids=IDS, **kw):
    return nn.unbox(model.init(jax.random.key(0), ids, train=False, **kw)["params"])


def _shapes(model, ids=IDS):
    """Boxed param shapes/dtypes, without running init."""
    return jax.eval_shape(lambda: model.init(jax.random.key(0), ids, train=False))["params"]


@pytest.fixture(scope="module")
def mlm():
    model = BertForMaskedLM(**SMALL)
    return model, _init(model)


def test_encoder_shapes_and_aux():
    model = BertEncoder(**SMALL)
    params = _init(model)
    assert set(params) == {"embeddings", "encoder"}
    hidden, aux = model.apply({"params": params}, IDS, train=False)
    assert hidden.shape == (2, 8, 32)
    assert aux["hidden_states"] is hidden


def test_mlm_head_shapes_and_tied_decoder(mlm):
    model, params = mlm
    assert set(params) == {"bert", "mlm_head"}
    assert set(params["mlm_head"]) == {"dense", "norm", "bias"}  # no separate decoder matrix
    logits, aux = model.apply({"params": params}, IDS, train=False)
    assert logits.shape == (2, 8, VOCAB) and logits.dtype == jnp.float32
    assert aux["hidden_states"].shape == (2, 8, 32)
    # The decoder is the word-embedding matrix (tied) plus the head's own bias.
    emb = params["bert"]["embeddings"]["word_embeddings"]["embedding"]
    hidden, _ = BertEncoder(**SMALL).apply({"params": params["bert"]}, IDS, train=False)
    expected = MlmHead(vocab_size=VOCAB).apply(
        {"params": params["mlm_head"]}, hidden, lambda h: h @ emb.T
    )
    np.testing.assert_allclose(logits, expected, atol=1e-5)


def test_classifier_shapes_and_pooled():
    model = BertForSequenceClassification(num_classes=3, **SMALL)
    params = _init(model)
    assert set(params) == {"bert", "pooler", "classifier"}
    logits, aux = model.apply({"params": params}, IDS, train=False)
    assert logits.shape == (2, 3) and logits.dtype == jnp.float32
    assert aux["pooled"].shape == (2, 32)
    assert aux["hidden_states"].shape == (2, 8, 32)
    with pytest.raises(TypeError):
        BertForSequenceClassification(**SMALL)  # num_classes is required


def test_extra_padding_changes_nothing(mlm):
    model, params = mlm
    longer = jnp.pad(IDS, ((0, 0), (0, 4)))  # 4 more pad tokens
    types = jnp.zeros_like(longer).at[:, 9:].set(1)  # segment ids at pad positions only
    a, _ = model.apply({"params": params}, IDS, train=False)
    b, _ = model.apply({"params": params}, longer, token_type_ids=types, train=False)
    valid = np.asarray(IDS != 0)
    np.testing.assert_allclose(a[valid], b[:, :8][valid], atol=1e-5)


def test_train_mode_uses_dropout_rng(mlm):
    model, params = mlm
    out = [
        model.apply({"params": params}, IDS, train=True, rngs={"dropout": jax.random.key(i)})[0]
        for i in (1, 2)
    ]
    assert not np.allclose(*out)


def test_scan_and_remat_match_plain(mlm):
    model, params = mlm
    num_layers = bert_config("tiny")["num_layers"]
    scanned = jax.tree.map(lambda a: a, params)
    scanned["bert"]["encoder"] = stack_layer_params(params["bert"]["encoder"], num_layers)
    ref, _ = model.apply({"params": params}, IDS, train=False)
    scan_model = BertForMaskedLM(**SMALL, scan_layers=True, remat=True)
    shapes = nn.unbox(_shapes(scan_model))
    assert jax.tree.map(jnp.shape, shapes) == jax.tree.map(jnp.shape, scanned)
    out, _ = jax.jit(lambda p: scan_model.apply({"params": p}, IDS, train=False))(scanned)
    np.testing.assert_allclose(out, ref, atol=1e-4)


def test_bf16_compute_f32_params(mlm):
    _, params = mlm
    model = BertForMaskedLM(dtype=jnp.bfloat16, **SMALL)
    dtypes = {p.dtype for p in jax.tree.leaves(nn.unbox(_shapes(model)))}
    assert dtypes == {jnp.dtype(jnp.float32)}
    logits, aux = jax.jit(lambda p: model.apply({"params": p}, IDS, train=False))(params)
    assert aux["hidden_states"].dtype == jnp.bfloat16
    assert logits.dtype == jnp.float32 and np.isfinite(logits).all()


def test_params_carry_logical_axes():
    boxed = _shapes(BertForSequenceClassification(num_classes=2, **SMALL, scan_layers=True))
    leaves = jax.tree.leaves(boxed, is_leaf=lambda v: isinstance(v, nn.Partitioned))
    assert all(isinstance(v, nn.Partitioned) and len(v.names) == v.value.ndim for v in leaves)
    emb = boxed["bert"]["embeddings"]["word_embeddings"]["embedding"]
    assert emb.names == ("vocab", "embed")
    assert boxed["bert"]["encoder"]["layers"]["mlp"]["wi"]["kernel"].names == (
        "layers",
        "embed",
        "mlp",
    )
    mlm_bias = _shapes(BertForMaskedLM(**SMALL))["mlm_head"]["bias"]
    assert mlm_bias.names == ("vocab",)


def test_variants_and_overrides():
    assert bert_config("base")["num_layers"] == 12
    mini = bert_config("minilm-l6")
    assert (mini["num_layers"], mini["hidden"], mini["heads"], mini["mlp_dim"]) == (
        6,
        384,
        12,
        1536,
    )
    assert bert_config("tiny", hidden=64, heads=None)["hidden"] == 64
    assert set(VARIANTS) >= {"tiny", "mini", "small", "base", "minilm-l6"}
    with pytest.raises(ValueError, match="variant"):
        bert_config("huge")
    with pytest.raises(ValueError, match="keys"):
        bert_config("tiny", hiden=3)
    with pytest.raises(ValueError, match="divisible"):
        bert_config("tiny", hidden=130, heads=4)
    assert BertEncoder(variant="mini", num_layers=1).config()["num_layers"] == 1


def test_masked_positions_give_the_full_logits_at_those_positions(mlm):
    model, params = mlm
    full, _ = model.apply({"params": params}, IDS, train=False)
    positions = jnp.array([[1, 3, 0], [7, 2, 2]])
    gathered, aux = model.apply({"params": params}, IDS, train=False, masked_positions=positions)
    assert gathered.shape == (2, 3, VOCAB) and aux["hidden_states"].shape == (2, 8, 32)
    np.testing.assert_allclose(gathered, np.take_along_axis(full, positions[..., None], 1),
                               atol=1e-5)
