"""What every evaluator shares: its settings, and the loop over a split in padded batches.

An evaluator is one kind of evaluation on one data split with its own cadence,
configured as `config.evals.<name> = dict(type=..., split=..., every_steps=... or
every_epochs=..., batch_size=..., examples=..., trim_multiple=...)`. `run(variables)`
returns its metrics; the loop writes the scalars as `eval/<name>/<metric>` (or
`eval/<metric>` for the default evaluator, whose name is "").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, Protocol

import flax.linen as nn
import jax
from jax.sharding import Mesh

from bigjax import input_pipeline, sharding
from bigjax.datasets.array_dataset import Examples
from bigjax.forward import forward
from bigjax.pp import test_time_augmentation
from bigjax.tasks.base import Task

EVAL_SEED = 1234


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """One evaluator's settings, resolved from the config.

    `every_steps`: cadence in train steps (None: only at the end). `batch_size`: the
    global eval batch. `trim_multiple`: see `input_pipeline.eval_batches`.
    `workdir`: where evaluators that write files put them (None: nowhere).
    """

    name: str
    type: str
    split: str
    every_steps: int | None
    batch_size: int
    trim_multiple: int | None = None
    workdir: str | None = None
    options: dict = dataclasses.field(default_factory=dict)  # type-specific keys

    @property
    def batch_size_key(self) -> str:
        """The config key its batch size comes from (for messages)."""
        return f"config.evals.{self.name}.batch_size" if self.name else "config.eval_batch_size"

    def resolved_options(self, defaults: dict) -> dict:
        """`defaults` (an evaluator type's option keys) with the values the config sets: a
        key left None takes its default."""
        return {k: v if self.options.get(k) is None else self.options[k]
                for k, v in defaults.items()}

    @property
    def prefix(self) -> str:
        """`eval/<name>/` (`eval/` for the default evaluator)."""
        return f"eval/{self.name}/" if self.name else "eval/"


class Evaluator(Protocol):
    """`run(variables, step) -> metrics` over the evaluator's whole split."""

    settings: EvalSettings

    def run(self, variables: dict, step: int) -> dict[str, Any]: ...


class BatchedEvaluator:
    """Base of the evaluators that apply the model to every example of `data` once.

    Batches are padded to the global batch size with `mask` False on padding rows
    (each process reads its rows); each batch gets a fixed eval key, so every eval of
    a checkpoint gives the same numbers. Steps are traced under the mesh and rules.
    """

    def __init__(self, settings: EvalSettings, model: nn.Module, task: Task, preprocess,
                 data: Examples, mesh: Mesh, rules, tokenizer=None):
        sharding.check_batch_size(mesh, settings.batch_size, settings.batch_size_key)
        input_pipeline.check_trim_multiple(settings.trim_multiple)  # now, not at the first eval
        tta = settings.options.get("tta")
        if tta and tta not in test_time_augmentation.MODES:
            raise ValueError(f"config.evals.{settings.name}.tta={tta!r}; choose one of "
                             f"{test_time_augmentation.MODES} (or None: off).")
        self.settings, self.task, self.data = settings, task, data
        self.model, self.preprocess, self.mesh, self.rules = model, preprocess, mesh, rules

    def apply(self, variables: dict, batch: dict, rng: jax.Array) -> tuple[Any, dict]:
        """`(model output, preprocessed batch)` in eval mode (traced inside a jit); with
        the option `tta` the logits averaged over augmented views of the images
        (`pp/test_time_augmentation.py`)."""
        batch = self.preprocess(batch, rng, train=False)
        tta = self.settings.options.get("tta")
        if tta:
            def logits(inputs):
                return forward(self.model, self.task, variables, {**batch, "inputs": inputs},
                               train=False)[0]

            return test_time_augmentation.averaged_logits(logits, batch["inputs"], tta), batch
        out, _ = forward(self.model, self.task, variables, batch, train=False)
        return out, batch

    def batches(self, with_index: bool = False) -> Iterator[tuple[dict, jax.Array]]:
        """`(global batch on the mesh, eval key)` for every batch of the split; with
        `with_index` each batch has an `index` column (the examples' indices in the split)."""
        rows = sharding.process_rows(self.mesh, self.settings.batch_size)
        for index, batch in enumerate(input_pipeline.eval_batches(
                self.data, self.settings.batch_size, rows, self.settings.trim_multiple,
                with_index)):
            rng = jax.random.fold_in(jax.random.PRNGKey(EVAL_SEED), index)
            yield sharding.put_batch(batch, self.mesh), rng
