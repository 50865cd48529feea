"""top1_hits equals argmax == label, ties included, on the MLM task's metrics too."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from bigjax.tasks.top1 import top1_hits


def test_equals_argmax_with_many_ties():
    rng = np.random.default_rng(0)
    logits = rng.integers(0, 4, size=(50, 7, 9)).astype(np.float32)  # ties in most rows
    labels = rng.integers(0, 9, size=(50, 7))
    expected = logits.argmax(-1) == labels
    assert 0 < expected.sum() < expected.size
    np.testing.assert_array_equal(np.asarray(top1_hits(jnp.asarray(logits), jnp.asarray(labels))),
                                  expected)


def test_equals_argmax_on_real_valued_logits():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 40, 1000)).astype(np.float32)
    labels = np.where(rng.random((3, 40)) < 0.5, logits.argmax(-1), rng.integers(0, 1000, (3, 40)))
    np.testing.assert_array_equal(np.asarray(top1_hits(jnp.asarray(logits), jnp.asarray(labels))),
                                  logits.argmax(-1) == labels)
