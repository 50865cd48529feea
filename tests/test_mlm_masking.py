"""BERT dynamic masking: rates, exclusions, determinism, jit, the per-row cap."""

import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from bigjax.pp.text import make_preprocess
from bigjax.tasks.mlm_masking import mask_tokens, prediction_positions

VOCAB, MASK, SPECIAL = 1000, 4, (1, 2, 3, 4)  # 0 = [PAD]


def _batch():
    ids = jax.random.randint(jax.random.key(0), (256, 128), 5, VOCAB)
    ids = ids.at[:, 0].set(2).at[:, 100].set(3).at[:, 101:].set(0)  # [CLS] ... [SEP] pad
    return ids.at[:, 50].set(1)  # an [UNK]-like special in the middle


_mask = jax.jit(
    lambda rng, ids: mask_tokens(rng, ids, vocab_size=VOCAB, mask_id=MASK, special_ids=SPECIAL)
)


def test_masking_statistics():
    ids = _batch()
    masked, targets, weights = (np.asarray(a) for a in _mask(jax.random.key(1), ids))
    ids = np.asarray(ids)
    eligible = (ids != 0) & ~np.isin(ids, SPECIAL)
    picked = weights > 0
    assert weights.dtype == np.float32 and masked.dtype == ids.dtype
    np.testing.assert_array_equal(targets, ids)
    assert not picked[~eligible].any()  # never pad or special
    np.testing.assert_array_equal(masked[~picked], ids[~picked])  # others untouched
    assert abs(picked.sum() / eligible.sum() - 0.15) < 0.01
    n = picked.sum()
    to_mask = (masked == MASK) & picked
    to_random = (masked != MASK) & (masked != ids) & picked
    kept = (masked == ids) & picked
    assert abs(to_mask.sum() / n - 0.8) < 0.02
    assert abs(to_random.sum() / n - 0.1) < 0.02
    assert abs(kept.sum() / n - 0.1) < 0.02
    assert ((masked >= 0) & (masked < VOCAB)).all()


def test_deterministic_per_key():
    ids = _batch()
    a, b, c = (
        _mask(jax.random.key(5), ids),
        _mask(jax.random.key(5), ids),
        _mask(jax.random.key(6), ids),
    )
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[2], c[2])


def test_mask_prob_and_eager():
    ids = jnp.full((64, 64), 7, jnp.int32)
    _, _, w = mask_tokens(
        jax.random.key(0), ids, vocab_size=VOCAB, mask_id=MASK, special_ids=SPECIAL, mask_prob=0.5
    )
    assert abs(float(w.mean()) - 0.5) < 0.03


def test_max_predictions_caps_each_row_at_a_random_subset_of_its_picks():
    ids = _batch()
    kw = dict(vocab_size=VOCAB, mask_id=MASK, special_ids=SPECIAL, mask_prob=0.5)
    free = [np.asarray(a) for a in mask_tokens(jax.random.key(3), ids, **kw)]
    capped = [np.asarray(a) for a in
              mask_tokens(jax.random.key(3), ids, max_predictions=30, **kw)]
    assert free[2].sum(-1).min() > 30  # every row would pick more than the cap
    assert (capped[2].sum(-1) == 30).all()
    assert not (capped[2] > free[2]).any()  # a subset of the same draws' picks
    dropped = (free[2] > 0) & (capped[2] == 0)
    np.testing.assert_array_equal(capped[0][dropped], np.asarray(ids)[dropped])  # left unchanged
    # The kept picks are spread over the row, not the first 30 eligible tokens.
    assert capped[2][:, 60:101].sum() > 0.3 * capped[2].sum()
    # A cap no row reaches changes nothing.
    loose = [np.asarray(a) for a in
             mask_tokens(jax.random.key(3), ids, max_predictions=100, **kw)]
    for a, b in zip(free, loose, strict=True):
        np.testing.assert_array_equal(a, b)


def test_prediction_positions_gather_every_pick_in_order():
    ids = _batch()
    _, _, weights = mask_tokens(jax.random.key(1), ids, vocab_size=VOCAB, mask_id=MASK,
                                special_ids=SPECIAL, mask_prob=0.5, max_predictions=32)
    positions, gathered = prediction_positions(weights, 32)
    positions, gathered, weights = (np.asarray(a) for a in (positions, gathered, weights))
    assert positions.shape == (256, 32) and positions.dtype == np.int32
    assert (weights.sum(-1) == 32).all()  # every row reached the cap...
    np.testing.assert_array_equal(gathered.sum(-1), weights.sum(-1))  # ...and lost no pick
    for row in range(0, 256, 17):
        np.testing.assert_array_equal(positions[row], np.flatnonzero(weights[row]))
    # Rows with fewer picks: the picks in order, then unweighted filler positions.
    _, _, sparse = mask_tokens(jax.random.key(1), ids, vocab_size=VOCAB, mask_id=MASK,
                               special_ids=SPECIAL, mask_prob=0.05, max_predictions=32)
    positions, gathered = (np.asarray(a) for a in prediction_positions(sparse, 32))
    sparse = np.asarray(sparse)
    for row in range(0, 256, 17):
        picked = np.flatnonzero(sparse[row])
        np.testing.assert_array_equal(positions[row, :len(picked)], picked)
        assert (gathered[row, :len(picked)] == 1).all() and (gathered[row, len(picked):] == 0).all()


def test_batches_shorter_than_the_cap_predict_every_position():
    """Eval batches cut to their longest row may be shorter than max_predictions."""
    weights = jnp.zeros((4, 16)).at[:, 3].set(1.0)
    positions, gathered = prediction_positions(weights, 32)
    assert positions.shape == gathered.shape == (4, 16)
    assert (np.asarray(positions)[:, 0] == 3).all() and float(gathered.sum()) == 4
    # Through the preprocessing, at two widths: [batch, P] when wider, else [batch, width].
    tokenizer = types.SimpleNamespace(vocab_size=VOCAB, mask_id=MASK, special_ids=SPECIAL,
                                      pad_id=0)
    pp = make_preprocess(ml_collections.ConfigDict(dict(kind="text_mlm", max_predictions=10)),
                         tokenizer)
    for width, predicted in ((32, 10), (8, 8)):
        batch = pp({"input_ids": _batch()[:, :width]}, jax.random.key(0), train=False)
        assert batch["inputs"].shape == (256, width)
        for key in ("mlm_positions", "mlm_targets", "mlm_weights"):
            assert batch[key].shape == (256, predicted)


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_max_predictions_must_be_a_positive_int(bad):
    pp = ml_collections.ConfigDict(dict(kind="text_mlm", max_predictions=bad))
    with pytest.raises(ValueError, match="max_predictions=.* must be a positive int"):
        make_preprocess(pp, tokenizer=None)
