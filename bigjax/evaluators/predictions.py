"""Evaluator type "predictions": metrics that need every example's output at once.

Each batch's per-example outputs (`task.eval_outputs`: predicted labels,
probabilities, token ids) are gathered from all devices and processes (the
jitted step returns them replicated) and concatenated on the host, padding rows
dropped, each example with its `index` in the split. `task.summarize_outputs`
computes the non-additive metrics (ROC AUC here; BLEU and generated samples for
sequence tasks) from the whole split, identically on every process. Process 0
writes the outputs to `workdir/eval/<name>_step_<N>.npz`.
"""

from __future__ import annotations

import io
from typing import Any

import jax
import numpy as np
from etils import epath

from bigjax import run_files, sharding
from bigjax.evaluators.base import BatchedEvaluator
from bigjax.tasks.base import TaskWithOutputs


class PredictionsEvaluator(BatchedEvaluator):
    """`run(variables, step) -> task.summarize_outputs(outputs of every example)`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(self.task, TaskWithOutputs):
            raise ValueError(f"Evaluator {self.settings.name!r} has type 'predictions', but "
                             f"task {type(self.task).__name__} gives no per-example outputs; "
                             "use type 'metrics'.")

        def eval_step(variables, batch, rng):
            out, batch = self.apply(variables, batch, rng)
            return {"index": batch["index"], **self.task.eval_outputs(out, batch)}, batch["mask"]

        self._eval_step = jax.jit(eval_step, out_shardings=sharding.replicated(self.mesh))

    def gather(self, variables: dict) -> dict[str, np.ndarray]:
        """Every example's outputs (`[num_examples, ...]` numpy arrays) in eval order, with
        `index`: each example's index in the split (text is evaluated shortest first)."""
        parts: list[dict] = []
        with sharding.mesh_context(self.mesh, self.rules):
            for batch, rng in self.batches(with_index=True):
                outputs, mask = jax.device_get(self._eval_step(variables, batch, rng))
                parts.append({k: np.asarray(v)[np.asarray(mask)] for k, v in outputs.items()})
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def run(self, variables: dict, step: int = 0) -> dict[str, Any]:
        outputs = self.gather(variables)
        if self.settings.workdir and jax.process_index() == 0:
            folder = epath.Path(run_files.join(self.settings.workdir, "eval"))
            folder.mkdir(parents=True, exist_ok=True)
            buffer = io.BytesIO()  # one upload: object stores cannot seek while writing
            np.savez(buffer, **outputs)
            (folder / f"{self.settings.name or 'eval'}_step_{step}.npz").write_bytes(
                buffer.getvalue())
        return self.task.summarize_outputs(outputs)
