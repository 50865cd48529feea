"""The task's metrics over every example of a data split, jit-compiled and sharded.

The last batch is padded and masked, so each example counts exactly once. Token
data can be evaluated shortest first with each batch cut to its longest row
(`trim_multiple`; see `input_pipeline.eval_batches`).
"""

from __future__ import annotations

import flax.linen as nn
import jax
from jax.sharding import Mesh

from bigjax import input_pipeline, sharding
from bigjax.datasets.array_dataset import ArrayDataset

EVAL_SEED = 1234


class DatasetEvaluator:
    """`run(params) -> metrics` over `data` in global batches of `batch_size`."""

    def __init__(self, model: nn.Module, task, preprocess, data: ArrayDataset, batch_size: int,
                 mesh: Mesh, rules, trim_multiple: int | None = None):
        sharding.check_batch_size(mesh, batch_size, "config.eval_batch_size")
        self.data, self.batch_size, self.mesh = data, batch_size, mesh
        input_pipeline.check_trim_multiple(trim_multiple)  # now, not at the first eval
        self.trim_multiple = trim_multiple
        self.task = task

        def eval_step(params, batch, rng):
            batch = preprocess(batch, rng, train=False)
            with nn.logical_axis_rules(rules):
                out, _ = model.apply({"params": params}, batch["inputs"], train=False,
                                     **task.model_kwargs(batch))
            return task.eval_sums(out, batch)

        self._eval_step = jax.jit(eval_step)

    def run(self, params) -> dict:
        """Metrics (task.summarize of the sums over all batches)."""
        totals = None
        rows = sharding.process_rows(self.mesh, self.batch_size)
        batches = input_pipeline.eval_batches(self.data, self.batch_size, rows,
                                              self.trim_multiple)
        for index, batch in enumerate(batches):
            # Eval randomness (e.g. MLM masks) is fixed per batch, so every eval of a
            # checkpoint gives the same numbers.
            rng = jax.random.fold_in(jax.random.PRNGKey(EVAL_SEED), index)
            sums = self._eval_step(params, sharding.put_batch(batch, self.mesh), rng)
            totals = sums if totals is None else jax.tree.map(lambda a, b: a + b, totals, sums)
        return self.task.summarize(jax.device_get(totals))
