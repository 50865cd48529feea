"""Sequence-to-sequence learning (translation): label-smoothed cross-entropy of every
target token given the source and the target tokens before it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bigjax.tasks.top1 import top1_hits


class Translation:
    """The model output is `logits: [batch, target_length, padded vocab]`; the
    preprocessed batch (`pp.translation`) holds `decoder_inputs`, `targets` int32 [batch,
    target_length] and `weights` float32 [batch, target_length] (1 at real target tokens).

    Training loss: cross-entropy against the targets smoothed by `label_smoothing`
    (Szegedy et al. 2016; 0.1 in the Transformer paper) over the `vocab_size` real tokens
    (the padding columns of a padded vocabulary get none), averaged over target tokens.
    Eval metrics (unsmoothed): loss (nats per token), perplexity, next-token accuracy.
    """

    def __init__(self, vocab_size: int, label_smoothing: float = 0.0):
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"config.label_smoothing={label_smoothing} must be in [0, 1).")
        self.vocab_size = int(vocab_size)
        self.label_smoothing = float(label_smoothing)

    def model_kwargs(self, batch: dict) -> dict:
        return {"decoder_inputs": batch["decoder_inputs"]}

    def token_losses(self, logits: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
        """`(smoothed loss, negative log-likelihood)`, each float32 [batch, length]."""
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        if not self.label_smoothing:
            return nll, nll
        # Cross-entropy against the uniform distribution over the real tokens; a mask, not
        # a slice, so that a vocabulary axis sharded over the mesh stays as it is.
        real = jnp.arange(logits.shape[-1]) < self.vocab_size
        log_probs = jax.nn.log_softmax(logits, axis=-1)
        uniform = -jnp.where(real, log_probs, 0.0).sum(axis=-1) / self.vocab_size
        eps = self.label_smoothing
        return (1.0 - eps) * nll + eps * uniform, nll

    def loss(self, logits: jax.Array, batch: dict) -> tuple[jax.Array, dict]:
        """Mean smoothed cross-entropy over the target tokens; metrics: the unsmoothed
        `nll` and next-token `accuracy`."""
        weights = batch["weights"]
        smoothed, nll = self.token_losses(logits, batch["targets"])
        total = jnp.maximum(weights.sum(), 1.0)
        correct = top1_hits(logits, batch["targets"]) * weights
        return (smoothed * weights).sum() / total, {"nll": (nll * weights).sum() / total,
                                                    "accuracy": correct.sum() / total}

    def eval_sums(self, logits: jax.Array, batch: dict) -> dict:
        """Sums over the target tokens of the unmasked (non-padding) rows."""
        weights = batch["weights"] * batch["mask"][:, None]
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
        return {"loss_sum": (nll * weights).sum(), "count": weights.sum(),
                "correct": (top1_hits(logits, batch["targets"]) * weights).sum()}

    def summarize(self, sums: dict) -> dict:
        count = max(float(sums["count"]), 1.0)
        loss = float(sums["loss_sum"]) / count
        return {"loss": loss, "perplexity": float(np.exp(min(loss, 700.0))),
                "accuracy": float(sums["correct"]) / count, "num_tokens": int(round(count))}
