"""Runs a config's sweep: every point of its `get_sweep(arg)` as an ordinary bigjax run.

    python scripts/sweep.py --config=configs/digits_cnn.py[:ARG] --workdir_root=DIR \
        [--parallel=N] [--seeds=N] [--cv_folds=K] [--metric=NAME] [--config.KEY=VALUE ...]
    python scripts/sweep.py --config=... --workdir_root=DIR --collect_only   # tables only
    python scripts/sweep.py --smoke [--workdir_root=DIR]   # CI: digits CNN, 2x2, 6 steps

Each run gets its own workdir `DIR/<overrides>` (e.g.
`DIR/learning_rate=0.003,conv_features=16-32,seed=1`), and its log, attempts and
result under `DIR/logs/`. Re-running the same command skips the finished runs and
resumes the unfinished ones from their checkpoints: a sweep that was killed or
preempted continues, every run done once. Then it writes `DIR/results.csv`,
`DIR/results.md` (one row per point: overrides, final metrics as mean ± std over seeds
and folds, wall time, steps/s), `DIR/runs.csv` (one row per run) and PNG plots (final
metric against each swept value, `curves.png`). `--config.KEY=VALUE` applies to every
run (a point's own overrides win). A run that fails by itself (it diverged: exit 1; a
bad config: exit 2) is recorded as failed and not retried (delete its
`logs/<run>.result.json` to retry); one that was interrupted is resumed by the next
sweep. Exit status 1 when a run failed or did not end.

`--seeds=N`: each point with seeds 0..N-1 (`config.seed`). `--cv_folds=K`: each point
K times, holding out fold i of the training split (`config.data.cv_folds`,
`data.cv_fold`) and evaluating on it (`data.eval_split="cv_holdout"`; named evaluators
keep their own splits).

Devices. `--parallel=N` runs N points at once. On a machine with several GPUs they are
split between the N runs (CUDA_VISIBLE_DEVICES: 8 GPUs, --parallel=4 -> 2 each); on
CPU the runs share the cores. On a pod (several hosts), split the hosts instead: run
the same command on every host with `--shard=i/n` (host i of n runs every n-th run,
each a single-host run on its local devices), all with one shared `--workdir_root`
(e.g. gs://); each host writes the tables of whatever has finished when it ends, and
`--collect_only` rewrites them once all are done. A point that itself needs the whole
pod is an ordinary multi-host run (`scripts/launch_tpu.sh`): launch the points one
after another.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

from etils import epath

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # this checkout's bigjax, also when run from elsewhere
from bigjax import (  # noqa: E402
    config_cli,
    run_files,
    sweep_points,
    sweep_results,
    sweep_runner,
)


def parse_args(argv: list[str]):
    rest, overrides = config_cli.split_override_args(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="configs/NAME.py[:ARG], with a get_sweep(arg)")
    parser.add_argument("--workdir_root", help="the sweep's folder (local or gs://)")
    parser.add_argument("--parallel", type=int, default=1, help="runs at once (default 1)")
    parser.add_argument("--seeds", type=int, default=None, help="repeat each point with "
                        "seeds 0..N-1 and report mean ± std")
    parser.add_argument("--cv_folds", type=int, default=None, help="k-fold cross-validation "
                        "of each point on the training split")
    parser.add_argument("--shard", default=None, help="i/n: run every n-th run from the "
                        "i-th (one host of n sharing a --workdir_root)")
    parser.add_argument("--metric", default=None, help="final metric of the plots and the "
                        "bold column (default: accuracy, else loss)")
    parser.add_argument("--collect_only", action="store_true",
                        help="run nothing: rewrite the tables and plots from DIR")
    parser.add_argument("--smoke", action="store_true", help="CI: the 2x2 runlocal sweep "
                        "of configs/digits_cnn.py, 6 steps a run (in a temporary folder "
                        "unless --workdir_root is given)")
    args = parser.parse_args(rest)
    if args.smoke:
        args.config = args.config or os.path.join(REPO, "configs", "digits_cnn.py:runlocal")
        overrides = [("total_steps", "6"), *overrides]
    elif not args.config or not args.workdir_root:
        parser.error("--config and --workdir_root are required (or --smoke).")
    for name in ("parallel", "seeds", "cv_folds"):
        value = getattr(args, name)
        if value is not None and value < (2 if name == "cv_folds" else 1):
            parser.error(f"--{name}={value} must be at least {2 if name == 'cv_folds' else 1}.")
    return args, overrides


def shard_of(runs: list, shard: str | None) -> list:
    """The runs of host i of n for `--shard=i/n` (all runs without it)."""
    if shard is None:
        return runs
    try:
        index, count = (int(x) for x in shard.split("/"))
    except ValueError:
        index, count = -1, 0
    if not 0 <= index < count:
        raise SystemExit(f"--shard={shard}: expected i/n with 0 <= i < n, e.g. 0/4.")
    return runs[index::count]


def main(argv: list[str] | None = None) -> int:
    args, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    if args.smoke and not args.workdir_root:
        with tempfile.TemporaryDirectory() as root:
            args.workdir_root = root
            return sweep(args, overrides)
    return sweep(args, overrides)


def sweep(args: argparse.Namespace, overrides: list[tuple[str, str]]) -> int:
    """Runs (or collects) the sweep `args` describes; the exit status."""
    root = run_files.resolve(args.workdir_root)
    try:
        if args.collect_only:
            runs = sweep_results.load_runs(root)
        else:
            points = sweep_points.check_points(config_cli.load_sweep(args.config), args.config,
                                               overrides)
            runs = sweep_points.expand(points, args.seeds, args.cv_folds)
            config = config_cli.apply_overrides(config_cli.load_config_file(args.config),
                                                overrides)
            if args.cv_folds and config.data.get("lm"):
                raise ValueError("--cv_folds cross-validates data sets of examples; this "
                                 "config trains a language model on a token stream.")
    except (config_cli.ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    epath.Path(root).mkdir(parents=True, exist_ok=True)
    if not args.collect_only:
        record = {"config": args.config, "overrides": overrides, "seeds": args.seeds,
                  "cv_folds": args.cv_folds, "runs": [r.__dict__ for r in runs]}
        epath.Path(run_files.join(root, "sweep.json")).write_text(json.dumps(record, indent=1))
        mine = shard_of(runs, args.shard)
        try:
            envs = sweep_runner.gpu_groups(args.parallel) if args.parallel > 1 else None
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        sweep_runner.run_all(mine, root, args.config, overrides, args.parallel, envs)
    results = {r.name: sweep_runner.read_result(root, r) for r in runs}
    title = f"Sweep of {args.config}" + (f", {args.seeds} seeds" if args.seeds else "") + (
        f", {args.cv_folds}-fold cross-validation" if args.cv_folds else "")
    written = sweep_results.write_all(root, runs, results, args.metric, title)
    print(epath.Path(run_files.join(root, "results.md")).read_text())
    print("Wrote " + ", ".join(os.path.basename(p) for p in written) + f" in {root}.")
    mine = shard_of(runs, args.shard)
    failed = [r.name for r in mine if results[r.name] and "failed" in results[r.name]]
    missing = [r.name for r in mine if results[r.name] is None]
    if failed:
        print(f"{len(failed)} runs failed: {', '.join(failed)} (logs in "
              f"{run_files.join(root, 'logs')}).", file=sys.stderr)
    if missing:
        print(f"{len(missing)} runs did not end: {', '.join(missing)}; rerun the same "
              "command to resume them.", file=sys.stderr)
    if failed or missing:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
