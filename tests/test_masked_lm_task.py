import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bigjax.tasks.masked_lm import MaskedLM


def test_loss_counts_only_masked_positions():
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(2, 5, 11)), jnp.float32)
    targets = jnp.asarray(rng.integers(0, 11, (2, 5)))
    weights = jnp.asarray([[1, 0, 0, 1, 0], [0, 0, 1, 0, 0]], jnp.float32)
    loss, metrics = MaskedLM().loss(logits, {"mlm_targets": targets, "mlm_weights": weights})
    per_token = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    assert float(loss) == pytest.approx(float((per_token * weights).sum() / 3), rel=1e-6)
    # Changing a target where the weight is 0 changes nothing.
    other = targets.at[0, 1].set((targets[0, 1] + 1) % 11)
    loss2, _ = MaskedLM().loss(logits, {"mlm_targets": other, "mlm_weights": weights})
    assert float(loss2) == float(loss)
    assert 0.0 <= float(metrics["accuracy"]) <= 1.0


def test_eval_summary_perplexity_and_padding_rows():
    logits = jax.nn.one_hot(jnp.array([[1, 2], [3, 4]]), 6) * 4.0
    batch = {"mlm_targets": jnp.array([[1, 0], [3, 4]]),
             "mlm_weights": jnp.ones((2, 2)), "mask": jnp.array([True, False])}
    task = MaskedLM()
    summary = task.summarize(task.eval_sums(logits, batch))
    assert summary["num_tokens"] == 2 and summary["num_examples"] == 1
    assert summary["accuracy"] == 0.5
    assert summary["perplexity"] == pytest.approx(np.exp(summary["loss"]))
