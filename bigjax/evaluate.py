"""Evaluate a run's checkpoint, on any mesh:

    python -m bigjax.evaluate --workdir=DIR [--step=N] [--config.KEY=VALUE ...]

Reads `DIR/config.json` (overrides apply on top), restores the newest (or the
given) checkpoint onto the current devices, and prints the eval metrics as one
JSON line — the same numbers the run's own final eval printed.
"""

from __future__ import annotations

import os
import sys

from bigjax import config_cli
from bigjax.main import init_distributed, parse_args, run_and_print, setup_logging

# Eval settings added after some runs were saved; such runs get them as None (unset).
EVAL_ONLY_KEYS = ("eval_trim_multiple",)


def evaluate_checkpoint(config, workdir: str, step: int | None = None) -> dict:
    """Metrics of checkpoint `step` (default: the newest) of the run in `workdir`."""
    from bigjax.checkpoint import Checkpointer
    from bigjax.evaluators.dataset_eval import DatasetEvaluator
    from bigjax.train import build_experiment
    from bigjax.train_state import abstract_state

    exp = build_experiment(config)
    checkpointer = Checkpointer(workdir, keep=None, async_save=False)
    try:
        step = checkpointer.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"No checkpoint in {checkpointer.directory}.")
        abstract, _ = abstract_state(exp.init_fn, exp.mesh, exp.rules)
        state, _ = checkpointer.restore(step, abstract)
    finally:
        checkpointer.close()
    evaluator = DatasetEvaluator(exp.model, exp.task, exp.preprocess, exp.eval_data,
                                 config.eval_batch_size, exp.mesh, exp.rules,
                                 config.get("eval_trim_multiple"))
    return {"step": step, **evaluator.run(state.params)}


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    try:
        args, overrides = parse_args(sys.argv[1:] if argv is None else argv,
                                     "Evaluate a bigjax checkpoint.", need_config=False)
        config = config_cli.config_from_json(os.path.join(args.workdir, "config.json"))
        for key in EVAL_ONLY_KEYS:  # runs saved before a key existed may still set it here
            if key not in config:
                config[key] = None
        config_cli.apply_overrides(config, overrides)
    except config_cli.ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    init_distributed(args)
    return run_and_print(lambda: evaluate_checkpoint(config, args.workdir, args.step))


if __name__ == "__main__":
    sys.exit(main())
