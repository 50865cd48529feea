"""Evaluators from the config: `build(config, ...)` returns one evaluator per entry of
`config.evals` (or the default one), each looked up by its `type` in `TYPES`.

    config.evals = dict(
        test=dict(type="metrics", split="test", every_epochs=1.0),
        val_auc=dict(type="predictions", split="validation", every_steps=500),
    )

Keys of an entry: `type` (required), `split` (default `config.data.eval_split`),
`every_steps` / `every_epochs` (default: only at the end), `batch_size` (default
`config.eval_batch_size`), `examples` (a fixed random subset of that many),
`trim_multiple` (default `config.eval_trim_multiple`). Without `config.evals` a
single evaluator named "" of type "metrics" on `config.data.eval_split` runs every
`eval_every_steps` / `eval_every_epochs` and writes `eval/<metric>` as before.
"""

from __future__ import annotations

from collections.abc import Callable

import ml_collections

from bigjax import durations
from bigjax.evaluators import samples, translations
from bigjax.evaluators.base import EvalSettings, Evaluator
from bigjax.evaluators.predictions import PredictionsEvaluator
from bigjax.evaluators.samples import SamplesEvaluator
from bigjax.evaluators.task_metrics import TaskMetricsEvaluator
from bigjax.evaluators.translations import TranslationsEvaluator

TYPES: dict[str, type] = {"metrics": TaskMetricsEvaluator, "predictions": PredictionsEvaluator,
                          "samples": SamplesEvaluator, "translations": TranslationsEvaluator}
# Keys only some types read (the rest of `EvalSettings.options`).
SAMPLE_KEYS = tuple(samples.DEFAULTS)
OPTION_KEYS = (*SAMPLE_KEYS, *translations.DEFAULTS, "tta", "plot_confusion")
ENTRY_KEYS = ("type", "split", "every_steps", "every_epochs", "batch_size", "examples",
              "trim_multiple", *OPTION_KEYS)


def settings_from_config(config: ml_collections.ConfigDict, steps_per_epoch: int,
                         workdir: str | None = None) -> list[EvalSettings]:
    """The resolved settings of every evaluator the config asks for (validated)."""
    defaults = dict(split=config.data.eval_split, batch_size=config.eval_batch_size,
                    trim_multiple=config.get("eval_trim_multiple"),
                    examples=config.data.get("eval_examples"))
    pairs = config.data.get("translation")
    target_language = pairs.get("target") if pairs else None  # BLEU's tokenizer
    entries = config.get("evals")
    if not entries:
        every = durations.resolve_steps(config, "eval_every", steps_per_epoch)
        return [EvalSettings(name="", type="metrics", split=defaults["split"], every_steps=every,
                             batch_size=defaults["batch_size"],
                             trim_multiple=defaults["trim_multiple"], workdir=workdir,
                             options={"examples": defaults["examples"]})]
    result = []
    for name, entry in entries.items():
        entry = dict(entry)
        unknown = set(entry) - set(ENTRY_KEYS)
        if unknown:
            raise ValueError(f"config.evals.{name} has unknown keys {sorted(unknown)}; "
                             f"known: {list(ENTRY_KEYS)}.")
        kind = entry.get("type")
        if kind not in TYPES:
            raise ValueError(f"config.evals.{name}.type={kind!r}; choose one of {sorted(TYPES)}.")
        every = _cadence(name, entry, steps_per_epoch)
        result.append(EvalSettings(
            name=name, type=kind, split=entry.get("split") or defaults["split"],
            every_steps=every, batch_size=entry.get("batch_size") or defaults["batch_size"],
            trim_multiple=entry.get("trim_multiple", defaults["trim_multiple"]),
            workdir=workdir, options={"examples": entry.get("examples", defaults["examples"]),
                                      "target_language": target_language,
                                      **{k: entry.get(k) for k in OPTION_KEYS}}))
    return result


def _cadence(name: str, entry: dict, steps_per_epoch: int) -> int | None:
    """`every_steps` / `every_epochs` of `config.evals.<name>` as steps (None: at the end)."""
    steps, epochs = entry.get("every_steps"), entry.get("every_epochs")
    if steps is not None and epochs is not None:
        raise ValueError(f"config.evals.{name}: set only one of every_steps and every_epochs.")
    for key, value in (("every_steps", steps), ("every_epochs", epochs)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or value <= 0):
            raise ValueError(f"config.evals.{name}.{key}={value!r} must be a positive number "
                             "(or None: only at the end).")
    return durations.resolve_steps(ml_collections.ConfigDict(entry), "every", steps_per_epoch)


def build(settings: list[EvalSettings], load_split: Callable, model, task, preprocess, mesh,
          rules, tokenizer=None) -> list[Evaluator]:
    """The evaluators; `load_split(split, examples)` gives each its data (loaded once per
    (split, examples), not at all for types that read none, like "samples")."""
    cache: dict = {}
    evaluators = []
    for s in settings:
        cls = TYPES[s.type]
        if not getattr(cls, "NEEDS_DATA", True):
            evaluators.append(cls(s, model, task, preprocess, None, mesh, rules, tokenizer))
            continue
        key = (s.split, s.options.get("examples"))
        if key not in cache:
            cache[key] = load_split(*key)
        evaluators.append(cls(s, model, task, preprocess, cache[key], mesh, rules,
                              tokenizer=tokenizer))
    return evaluators


def flatten_results(results: dict[str, dict]) -> dict:
    """`{evaluator name: metrics}` -> one dict: the default evaluator's (name "") metrics
    as they are, a named one's as `<name>/<metric>`."""
    flat = {}
    for name, metrics in results.items():
        flat.update(metrics if not name else {f"{name}/{k}": v for k, v in metrics.items()})
    return flat
