"""Evaluator type "metrics": the task's additive metrics over a split, summed on device.

Loss, accuracy, a confusion matrix (classification), token counts (MLM): each
batch's `task.eval_sums` are added on device, and `task.summarize` turns the
totals into metrics (macro P/R/F1, perplexity, ...). With the option `plot_confusion`
a classification eval also draws its confusion matrix:
`workdir/eval/<name>_confusion_step_<N>.png`.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from etils import epath

from bigjax import run_files, sharding
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
        metrics = self.task.summarize(jax.device_get(totals))
        if (self.settings.options.get("plot_confusion") and "confusion_matrix" in metrics
                and self.settings.workdir and jax.process_index() == 0):
            self._write_confusion_png(metrics["confusion_matrix"], step)
        return metrics

    def _write_confusion_png(self, confusion, step: int) -> None:
        """`workdir/eval/<name>_confusion_step_<N>.png` (see `confusion_plot`)."""
        from bigjax.evaluators import confusion_plot  # matplotlib: only when drawing

        name = self.settings.name or "eval"
        png = confusion_plot.confusion_png(np.asarray(confusion),
                                           getattr(self.data, "class_names", None),
                                           f"{name} ({self.settings.split}), step {step}")
        folder = epath.Path(run_files.join(self.settings.workdir, "eval"))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}_confusion_step_{step}.png").write_bytes(png)
