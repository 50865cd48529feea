"""The task interface: what is learned from a model's output and a batch."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax


class Task(Protocol):
    """Loss and metrics for one kind of learning (classification, masked LM, ...).

    `out` is the model's first output (e.g. logits `[batch, classes]` or
    `[batch, length, vocab]`); `batch` is the preprocessed batch, with a
    `mask: bool [batch]` (False on padding rows) at eval.
    """

    def model_kwargs(self, batch: dict) -> dict:
        """Extra keyword arguments for `model.apply` taken from the batch (often none)."""

    def loss(self, out: jax.Array, batch: dict) -> tuple[jax.Array, dict]:
        """`(scalar mean loss, {metric: scalar})` of a training batch."""

    def eval_sums(self, out: jax.Array, batch: dict) -> dict:
        """Additive sums over the unmasked examples; summed over batches on device."""

    def summarize(self, sums: dict) -> dict[str, Any]:
        """Metrics from the summed `eval_sums` (host side)."""


@runtime_checkable
class TaskWithOutputs(Task, Protocol):
    """A task whose metrics need every example's output at once (not additive: AUC, BLEU,
    generated samples). The `predictions` evaluator gathers `eval_outputs` of all
    processes and calls `summarize_outputs` on the whole split."""

    def eval_outputs(self, out: jax.Array, batch: dict) -> dict[str, jax.Array]:
        """Per-example outputs, each `[batch, ...]` (e.g. predicted label, probabilities)."""

    def summarize_outputs(self, outputs: dict[str, Any]) -> dict[str, Any]:
        """Metrics from the outputs of every (unpadded) example of the split, as numpy."""
