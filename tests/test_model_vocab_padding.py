"""BERT vocabulary padding (``vocab_multiple``): init, masking, loss, gradients, sharding."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bigjax import sharding
from bigjax.models.bert import (
    PADDED_LOGIT,
    BertForMaskedLM,
    BertForSequenceClassification,
    MlmHead,
)
from bigjax.models.layers.embeddings import (
    TextEmbeddings,
    padded_vocab_size,
    zero_padded_rows_init,
)

VOCAB, PADDED = 30522, 30720  # BERT's vocabulary, padded to a multiple of 1024
TINY = dict(variant="tiny", hidden=32, heads=2, mlp_dim=64, max_len=16)
IDS = jnp.array([[101, 7592, 2088, 30521, 102, 0, 0, 0], [101, 1, 2, 3, 4, 5, 6, 102]])
TARGETS = jnp.array([[7592, 2088, 30521, 5, 102, 0, 9, 30000], [1, 2, 3, 4, 5, 6, 7, 8]])
EMB = ("bert", "embeddings", "word_embeddings", "embedding")


def _init(model):
    return nn.unbox(model.init(jax.random.key(0), IDS, train=False)["params"])


def _flat(tree) -> dict:
    """{"bert/embeddings/...": leaf}."""
    return {"/".join(k.key for k in path): leaf
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _get(tree, path):
    for key in path:
        tree = tree[key]
    return tree


@pytest.fixture(scope="module")
def unpadded_and_padded():
    plain, padded = BertForMaskedLM(**TINY), BertForMaskedLM(**TINY, vocab_multiple=1024)
    return plain, _init(plain), padded, _init(padded)


def test_padded_vocab_size():
    assert padded_vocab_size(30522, 1) == 30522
    assert padded_vocab_size(30522, 4) == 30524
    assert padded_vocab_size(30522, 1024) == 30720
    assert padded_vocab_size(30720, 1024) == 30720
    with pytest.raises(ValueError, match="vocab_multiple=0"):
        padded_vocab_size(10, 0)


def test_zero_padded_rows_init_draws_the_unpadded_rows():
    init = nn.initializers.normal(stddev=0.02)
    key = jax.random.key(3)
    out = zero_padded_rows_init(init, 5)(key, (8, 3), jnp.float32)
    np.testing.assert_array_equal(out[:5], init(key, (5, 3), jnp.float32))
    np.testing.assert_array_equal(out[5:], np.zeros((3, 3)))
    with pytest.raises(ValueError, match="fewer than 5 rows"):
        zero_padded_rows_init(init, 5)(key, (4, 3), jnp.float32)


def test_padded_init_keeps_the_unpadded_values(unpadded_and_padded):
    _, plain, _, padded = unpadded_and_padded
    table = _get(padded, EMB)
    assert table.shape == (PADDED, 32) and _get(plain, EMB).shape == (VOCAB, 32)
    np.testing.assert_array_equal(table[:VOCAB], _get(plain, EMB))
    np.testing.assert_array_equal(table[VOCAB:], np.zeros((PADDED - VOCAB, 32)))
    assert padded["mlm_head"]["bias"].shape == (PADDED,)
    assert not np.any(padded["mlm_head"]["bias"])
    # Every other param has the same shape and value as without padding.
    flat_plain, flat_padded = _flat(plain), _flat(padded)
    assert flat_plain.keys() == flat_padded.keys()
    for name in flat_plain.keys() - {"/".join(EMB), "mlm_head/bias"}:
        np.testing.assert_array_equal(flat_padded[name], flat_plain[name])


def test_vocab_multiple_one_is_the_unpadded_model(unpadded_and_padded):
    plain, params, _, _ = unpadded_and_padded
    same = _init(BertForMaskedLM(**TINY, vocab_multiple=1))
    assert jax.tree.structure(same) == jax.tree.structure(params)
    jax.tree.map(np.testing.assert_array_equal, same, params)
    logits, _ = plain.apply({"params": params}, IDS, train=False)
    assert logits.shape == (2, 8, VOCAB)


def test_padded_param_keeps_logical_axes():
    model = BertForSequenceClassification(num_classes=2, **TINY, vocab_multiple=1024)
    boxed = jax.eval_shape(lambda: model.init(jax.random.key(0), IDS, train=False))["params"]
    emb = _get(boxed, EMB)
    assert emb.names == ("vocab", "embed") and emb.value.shape == (PADDED, 32)
    mlm = BertForMaskedLM(**TINY, vocab_multiple=1024)
    bias = jax.eval_shape(lambda: mlm.init(jax.random.key(0), IDS, train=False))["params"][
        "mlm_head"]["bias"]
    assert bias.names == ("vocab",) and bias.value.shape == (PADDED,)


@pytest.mark.parametrize("multiple", [1, 4, 1024])
def test_padding_lets_the_vocab_shard_over_tensor(multiple):
    """The vocab dim maps to the `tensor` mesh axis; 30522 rows do not divide by tensor=4,
    the padded tables do."""
    model = BertForMaskedLM(**TINY, vocab_multiple=multiple)
    boxed = jax.eval_shape(lambda: model.init(jax.random.key(0), IDS, train=False))["params"]
    for path in (EMB, ("mlm_head", "bias")):
        param = _get(boxed, path)
        mesh_axes = nn.logical_to_mesh_axes(param.names, sharding.DEFAULT_RULES)
        assert mesh_axes[0] == "tensor"
        assert (param.value.shape[0] % 4 == 0) == (multiple > 1)


def _with_garbage_padding(padded_params, plain_params):
    """The padded tree holding the unpadded params in its first rows, and random (non-zero)
    padding rows, as after training with weight decay or any non-zero-preserving update."""
    params = jax.tree.map(lambda a: a, padded_params)
    noise = jax.random.normal(jax.random.key(9), (PADDED - VOCAB, 32))
    table = jnp.concatenate([_get(plain_params, EMB), noise])
    params["bert"]["embeddings"]["word_embeddings"]["embedding"] = table
    params["mlm_head"]["bias"] = jnp.concatenate(
        [plain_params["mlm_head"]["bias"], jnp.full((PADDED - VOCAB,), 5.0)])
    return params


def _loss(model, params, positions=None):
    logits, _ = model.apply({"params": params}, IDS, train=False, masked_positions=positions)
    targets = TARGETS if positions is None else jnp.take_along_axis(TARGETS, positions, 1)
    return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean(), logits


@pytest.mark.parametrize("positions", [None, jnp.array([[1, 2, 3], [0, 4, 7]])])
def test_padded_logits_loss_and_argmax_match_unpadded(unpadded_and_padded, positions):
    plain, plain_params, padded, padded_params = unpadded_and_padded
    params = _with_garbage_padding(padded_params, plain_params)
    ref_loss, ref = _loss(plain, plain_params, positions)
    loss, logits = _loss(padded, params, positions)
    assert logits.shape == ref.shape[:-1] + (PADDED,) and logits.dtype == jnp.float32
    np.testing.assert_allclose(logits[..., :VOCAB], ref, atol=1e-5)
    # PADDED_LOGIT plus the decoder's dot product with the (garbage) padding rows.
    np.testing.assert_allclose(logits[..., VOCAB:], PADDED_LOGIT, rtol=1e-6)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
    np.testing.assert_array_equal(logits.argmax(-1), ref.argmax(-1))
    np.testing.assert_allclose(jax.nn.softmax(logits)[..., VOCAB:], 0.0, atol=0)
    # Label smoothing over the real vocabulary only: 0 * log_softmax(padding) stays finite.
    smooth = optax.smooth_labels(jax.nn.one_hot(TARGETS, VOCAB), 0.1)
    smooth_padded = jnp.pad(smooth, ((0, 0), (0, 0), (0, PADDED - VOCAB)))
    if positions is None:
        smoothed = optax.softmax_cross_entropy(logits, smooth_padded)
        assert np.isfinite(smoothed).all()
        np.testing.assert_allclose(smoothed, optax.softmax_cross_entropy(ref, smooth),
                                   rtol=1e-5)


def test_padded_rows_get_zero_gradients(unpadded_and_padded):
    plain, plain_params, padded, padded_params = unpadded_and_padded
    params = _with_garbage_padding(padded_params, plain_params)
    grads = jax.grad(lambda p: _loss(padded, p)[0])(params)
    ref_grads = jax.grad(lambda p: _loss(plain, p)[0])(plain_params)
    emb_grad = _get(grads, EMB)
    assert not np.any(emb_grad[VOCAB:]) and not np.any(grads["mlm_head"]["bias"][VOCAB:])
    np.testing.assert_allclose(emb_grad[:VOCAB], _get(ref_grads, EMB), atol=1e-6)
    np.testing.assert_allclose(grads["mlm_head"]["bias"][:VOCAB], ref_grads["mlm_head"]["bias"],
                               atol=1e-6)


def test_text_embeddings_padding_and_mlm_head_mask():
    emb = TextEmbeddings(vocab_size=10, hidden=4, max_len=8, vocab_multiple=8)
    ids = jnp.array([[1, 9, 0]])
    params = nn.unbox(emb.init(jax.random.key(0), ids, train=False)["params"])
    assert params["word_embeddings"]["embedding"].shape == (16, 4)
    x = emb.apply({"params": params}, ids, train=False)
    head = MlmHead(vocab_size=10, vocab_multiple=8)
    head_params = nn.unbox(head.init(jax.random.key(1), x, lambda h: h @ jnp.ones((4, 16)))[
        "params"])
    assert head_params["bias"].shape == (16,)
    logits = head.apply({"params": head_params}, x, lambda h: h @ jnp.ones((4, 16)))
    assert logits.shape == (1, 3, 16)
    np.testing.assert_array_equal(logits[..., 10:], PADDED_LOGIT)
    assert np.all(logits[..., :10] > PADDED_LOGIT)
