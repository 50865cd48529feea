"""Evaluator type "metrics": the task's additive metrics over a split, summed on device.

Loss, accuracy, a confusion matrix (classification), token counts (MLM): each
batch's `task.eval_sums` are added on device, and `task.summarize` turns the
totals into metrics (macro P/R/F1, perplexity, ...).
"""

from __future__ import annotations

from typing import Any

import jax

from bigjax import sharding
from bigjax.evaluators.base import BatchedEvaluator


class TaskMetricsEvaluator(BatchedEvaluator):
    """`run(variables, step) -> task.summarize(sum of eval_sums over the split)`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)

        def eval_step(variables, batch, rng):
            out, batch = self.apply(variables, batch, rng)
            return self.task.eval_sums(out, batch)

        self._eval_step = jax.jit(eval_step, out_shardings=sharding.replicated(self.mesh))

    def run(self, variables: dict, step: int = 0) -> dict[str, Any]:
        totals = None
        with sharding.mesh_context(self.mesh, self.rules):
            for batch, rng in self.batches():
                sums = self._eval_step(variables, batch, rng)
                totals = sums if totals is None else jax.tree.map(lambda a, b: a + b, totals,
                                                                  sums)
        return self.task.summarize(jax.device_get(totals))
