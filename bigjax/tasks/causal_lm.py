"""Causal language modelling: cross-entropy of every next token."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import optax

from bigjax.tasks.top1 import top1_hits


class CausalLM:
    """The model output is `logits: [batch, length, vocab]`; the preprocessed batch holds
    `targets: int32 [batch, length]` and `weights: float32 [batch, length]` (1 where the
    target counts; `pp.lm.next_token_inputs`).

    Eval metrics: loss (nats per token), perplexity, next-token accuracy, bits per token,
    bits per byte of text (with `token_bytes`, the UTF-8 bytes each token id stands for)
    and bits per character (`char_tokens`: one token is one character).
    """

    def __init__(self, token_bytes: np.ndarray | None = None, char_tokens: bool = False):
        self.token_bytes = None if token_bytes is None else np.asarray(token_bytes, np.float32)
        self.char_tokens = char_tokens

    def model_kwargs(self, batch: dict) -> dict:
        return {}

    def loss(self, logits: jnp.ndarray, batch: dict) -> tuple[jnp.ndarray, dict]:
        """Mean cross-entropy over the counted target tokens, and next-token accuracy."""
        weights = batch["weights"]
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
        total = jnp.maximum(weights.sum(), 1.0)
        correct = top1_hits(logits, batch["targets"]) * weights
        return (losses * weights).sum() / total, {"accuracy": correct.sum() / total}

    def eval_sums(self, logits: jnp.ndarray, batch: dict) -> dict:
        """Sums over the counted targets of the unmasked (non-padding) windows."""
        weights = batch["weights"] * batch["mask"][:, None]
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
        sums = {"loss_sum": (losses * weights).sum(), "count": weights.sum(),
                "correct": (top1_hits(logits, batch["targets"]) * weights).sum()}
        if self.token_bytes is not None:
            sums["bytes"] = (jnp.asarray(self.token_bytes)[batch["targets"]] * weights).sum()
        return sums

    def summarize(self, sums: dict) -> dict:
        count = max(float(sums["count"]), 1.0)
        loss_sum = float(sums["loss_sum"])
        loss = loss_sum / count
        metrics = {"loss": loss, "perplexity": float(np.exp(min(loss, 700.0))),
                   "accuracy": float(sums["correct"]) / count,
                   "bits_per_token": loss / math.log(2), "num_tokens": int(round(count))}
        if "bytes" in sums and float(sums["bytes"]) > 0:
            metrics["bits_per_byte"] = loss_sum / math.log(2) / float(sums["bytes"])
        if self.char_tokens:
            metrics["bits_per_char"] = metrics["bits_per_token"]
        return metrics
