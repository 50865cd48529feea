"""bigjax's Dropout (16-bit draws, two per random word) behaves like nn.Dropout: the same
keep rate and scaling, unbiased, the identity when deterministic."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bigjax.models.layers.dropout import Dropout, keep_mask


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_keep_rate_and_scale_match_nn_dropout(rate):
    x = jnp.ones((4, 12, 128, 129), jnp.float32)  # an odd size: the last word is half used
    ours = Dropout(rate).apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(0)})
    theirs = nn.Dropout(rate).apply({}, x, deterministic=False,
                                    rngs={"dropout": jax.random.key(0)})
    kept, kept_theirs = float((ours != 0).mean()), float((theirs != 0).mean())
    n = x.size
    tolerance = 5 * np.sqrt(rate * (1 - rate) / n)  # five standard deviations
    assert abs(kept - (1 - rate)) < tolerance and abs(kept_theirs - (1 - rate)) < tolerance
    assert float(ours.mean()) == pytest.approx(1.0, abs=10 * tolerance / (1 - rate))  # unbiased
    np.testing.assert_allclose(np.unique(np.asarray(ours)),
                               [0.0, 1 / (1 - round(rate * 65536) / 65536)], rtol=1e-6)


def test_masks_are_independent_across_keys_and_positions():
    keep_a, _ = keep_mask(jax.random.key(1), (256, 256), 0.5)
    keep_b, _ = keep_mask(jax.random.key(2), (256, 256), 0.5)
    agree = float((keep_a == keep_b).mean())
    assert abs(agree - 0.5) < 0.01  # unrelated masks agree half the time
    pairs = np.asarray(keep_a).reshape(-1, 2)  # the two halves of one random word
    assert abs(float((pairs[:, 0] == pairs[:, 1]).mean()) - 0.5) < 0.01


def test_identity_when_deterministic_or_rate_zero_and_dtype_kept():
    x = jnp.arange(12, dtype=jnp.bfloat16).reshape(3, 4)
    assert Dropout(0.3).apply({}, x, deterministic=True) is x
    assert Dropout(0.0).apply({}, x, deterministic=False) is x
    y = Dropout(0.3).apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(0)})
    assert y.dtype == jnp.bfloat16 and y.shape == x.shape
