"""Masked language modelling: cross-entropy on the masked positions only."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax

from bigjax.tasks.top1 import top1_hits


class MaskedLM:
    """The model output is `logits: [batch, length, vocab]`; the (preprocessed) batch holds
    `mlm_targets: int32 [batch, length]` and `mlm_weights: float32 [batch, length]`.

    When the batch also holds `mlm_positions: int32 [batch, P]` (`pp.max_predictions`),
    the model is asked for logits at those positions only (`model_kwargs`), and
    targets, weights and logits are all [batch, P, ...].
    """

    def model_kwargs(self, batch: dict) -> dict:
        """Extra keyword arguments for `model.apply`: the positions to predict, if given."""
        if "mlm_positions" in batch:
            return {"masked_positions": batch["mlm_positions"]}
        return {}

    def loss(self, logits: jnp.ndarray, batch: dict) -> tuple[jnp.ndarray, dict]:
        """Mean cross-entropy over masked tokens, and the MLM accuracy."""
        weights = batch["mlm_weights"]
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["mlm_targets"])
        total = jnp.maximum(weights.sum(), 1.0)
        correct = top1_hits(logits, batch["mlm_targets"]) * weights
        return (losses * weights).sum() / total, {"accuracy": correct.sum() / total}

    def eval_sums(self, logits: jnp.ndarray, batch: dict) -> dict:
        """Sums over masked tokens of unmasked (non-padding) examples."""
        weights = batch["mlm_weights"] * batch["mask"][:, None]
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["mlm_targets"])
        correct = top1_hits(logits, batch["mlm_targets"]) * weights
        return {"loss_sum": (losses * weights).sum(), "count": weights.sum(),
                "correct": correct.sum(), "examples": batch["mask"].sum()}

    def summarize(self, sums: dict) -> dict:
        """loss (per masked token), accuracy, perplexity = exp(loss)."""
        count = max(float(sums["count"]), 1.0)
        loss = float(sums["loss_sum"]) / count
        return {"loss": loss, "accuracy": float(sums["correct"]) / count,
                "perplexity": float(np.exp(loss)), "num_tokens": int(round(count)),
                "num_examples": int(sums["examples"])}
