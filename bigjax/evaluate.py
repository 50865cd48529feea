"""Evaluate a run's checkpoint, on any mesh:

    python -m bigjax.evaluate --workdir=DIR [--step=N] [--config.KEY=VALUE ...]

Reads `DIR/config.json` (overrides apply on top), restores the newest (or the
given) checkpoint onto the current devices, and prints the eval metrics as one
JSON line — the same numbers the run's own final eval printed.
"""

from __future__ import annotations

import logging
import sys

from bigjax import config_cli, run_files
from bigjax.main import parse_args, print_error, run_and_print, setup_logging, start_runtime

log = logging.getLogger("bigjax")

def evaluate_checkpoint(config, workdir: str, step: int | None = None) -> dict:
    """Metrics of checkpoint `step` (default: the newest) of the run in `workdir`, from
    every evaluator of the config. Reads the params and model state only (never the
    optimizer state) straight onto this mesh; the train split is never read."""
    from bigjax import compilation_cache, evaluators
    from bigjax.experiment import build_model_parts

    compilation_cache.enable(config.compilation_cache_dir, workdir)
    parts = build_model_parts(config, workdir)
    settings = evaluators.settings_from_config(config, steps_per_epoch=1)
    evals = evaluators.build(settings, parts.load_split, parts.model, parts.task,
                             parts.preprocess, parts.mesh, parts.rules, parts.tokenizer)
    data = next((e.data for e in evals if getattr(e, "data", None) is not None), None)
    step, variables = restore_model_variables(parts, workdir, step, data)
    results = {e.settings.name: e.run(variables, step) for e in evals}
    return {"step": step, **evaluators.flatten_results(results)}


def restore_model_variables(parts, workdir: str, step: int | None = None, data=None,
                            doing: str = "Evaluating") -> tuple[int, dict]:
    """`(step, {"params": ..., **model state})` of checkpoint `step` (default: the newest
    that restores) of the run in `workdir`, straight onto `parts.mesh`. `data` (any split
    of the config's data) gives the input shapes; None: one example of the eval split.
    `doing` starts the warning when another checkpoint than the one asked for is used."""
    from bigjax.checkpoint import Checkpointer
    from bigjax.train_state import abstract_state

    checkpointer = Checkpointer(workdir, keep=None, async_save=False, read_only=True)
    try:
        newest = checkpointer.latest_step()
        if newest is None:
            raise FileNotFoundError(f"No checkpoint in {checkpointer.directory}.")
        if data is None:
            data = parts.load_split(parts.config.data.eval_split, 1)
        abstract, _ = abstract_state(parts.variables_init(data), parts.mesh, parts.rules)
        wanted = newest if step is None else step
        step, variables = checkpointer.restore_first_good(
            lambda s: checkpointer.restore_model(s, abstract), wanted)
        if step != wanted:
            log.warning("%s checkpoint %d instead of %d, which cannot be restored "
                        "(pass --step=N to choose another).", doing, step, wanted)
    finally:
        checkpointer.close()
    return step, variables


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    try:
        args, overrides = parse_args(sys.argv[1:] if argv is None else argv,
                                     "Evaluate a bigjax checkpoint.", need_config=False)
        config = config_cli.config_from_json(run_files.join(args.workdir, "config.json"))
        config = config_cli.apply_overrides(config, overrides)
    except config_cli.ConfigError as err:
        print_error(err)
        return 2
    start_runtime(args)
    return run_and_print(lambda: evaluate_checkpoint(config, args.workdir, args.step))


if __name__ == "__main__":
    sys.exit(main())
