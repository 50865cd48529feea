"""BERT dynamic masking: rates, exclusions, determinism, jit."""

import jax
import jax.numpy as jnp
import numpy as np

from bigjax.tasks.mlm_masking import mask_tokens

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
