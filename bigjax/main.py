"""Train (and evaluate on its schedule), resuming when the workdir holds checkpoints.

    python -m bigjax.main --config=configs/NAME.py[:ARG] --workdir=DIR [--config.KEY=VALUE ...]

Multi-host: pass --coordinator_address/--num_processes/--process_id (or run on
a TPU pod, where `jax.distributed.initialize()` finds them itself with
--distributed). `--print_config` prints the resolved config with each key's type and
doc, and exits.

Exit codes: 0 done (the last stdout line is the final metrics as JSON); 1 the run
failed (one `error:` line); 2 bad command line or config; 75 (`EXIT_PREEMPTED`,
EX_TEMPFAIL) stopped by SIGTERM / SIGINT / a preemption notice after saving a
checkpoint: rerun the same command to resume (schedulers may requeue on 75).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import traceback
import warnings

from bigjax import config_cli

EXIT_PREEMPTED = 75  # sysexits.h EX_TEMPFAIL: try again later


def parse_args(argv: list[str], description: str, need_config: bool,
               add_arguments=None):
    """`(args, --config.KEY=VALUE overrides)`; `add_arguments(parser)` adds a command's own."""
    rest, overrides = config_cli.split_override_args(argv)
    parser = argparse.ArgumentParser(description=description)
    if add_arguments is not None:
        add_arguments(parser)
    if need_config:
        parser.add_argument("--config", required=True, help="configs/NAME.py[:ARG]")
    parser.add_argument("--workdir", required=True, help="where the run's files go")
    parser.add_argument("--step", type=int, default=None,
                        help="checkpoint to resume from / evaluate (default: the newest that "
                             "restores)")
    if need_config:
        parser.add_argument("--print_config", action="store_true",
                            help="print the resolved config, each key with its type and "
                                 "doc, and exit")
        parser.add_argument("--dry_run", action="store_true",
                            help="compile the train step for the mesh and print params, bytes "
                                 "per device and FLOPs per step; train nothing, write nothing")
    parser.add_argument("--distributed", action="store_true",
                        help="call jax.distributed.initialize() (TPU pods, SLURM)")
    parser.add_argument("--coordinator_address", default=None)
    parser.add_argument("--num_processes", type=int, default=None)
    parser.add_argument("--process_id", type=int, default=None)
    return parser.parse_args(rest), overrides


def start_runtime(args) -> None:
    """Tunes malloc for XLA:CPU's per-call buffers when JAX runs on the CPU
    (`host_malloc.keep_freed_memory`, before any backend starts), then joins the
    multi-controller runtime when asked (a no-op for one process)."""
    from bigjax import host_malloc

    host_malloc.keep_freed_memory()
    init_distributed(args)


def init_distributed(args) -> None:
    """Joins the multi-controller runtime when asked; a no-op for one process."""
    if not (args.distributed or args.coordinator_address):
        return
    import jax

    if jax.config.jax_platforms in (None, "", "cpu") and args.coordinator_address:
        # CPU processes need a collectives backend to form one mesh (tests, laptops).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=args.coordinator_address,
                               num_processes=args.num_processes, process_id=args.process_id)


def setup_logging() -> None:
    """INFO lines `HH:MM:SS message` on stderr; `force`: a library imported earlier (absl)
    may have configured the root logger already."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr, force=True)
    logging.getLogger("jax").setLevel(logging.WARNING)  # e.g. "no TPU backend" on every start
    for chatty in ("fsspec", "gcsfs", "google.auth"):  # a line per file read from a bucket
        logging.getLogger(chatty).setLevel(logging.ERROR)
    # Orbax logs its failures with tracebacks through absl; bigjax reports each in one line
    # (a fallback, or the final `error:`), so they show only with BIGJAX_TRACEBACK=1.
    logging.getLogger("absl").setLevel(
        logging.WARNING if os.environ.get("BIGJAX_TRACEBACK") else logging.CRITICAL)


def print_error(err: BaseException) -> None:
    """One `error: ...` line on stderr (the traceback first with BIGJAX_TRACEBACK=1), as
    the last line: the objects the failed run left behind are collected first, and the
    warnings their finalizers may give then or at exit are not shown (seen once, under
    load: "coroutine ... was never awaited" after the error line of a failed restore;
    which library left the coroutine is not known)."""
    if os.environ.get("BIGJAX_TRACEBACK"):
        traceback.print_exception(err)
    else:
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        warnings.filterwarnings("ignore", category=ResourceWarning)
        gc.collect()
    print(f"error: {err}", file=sys.stderr, flush=True)


def run_and_print(job) -> int:
    """Runs `job()` and prints its result dict as the last line (JSON): exit code 0, or
    EXIT_PREEMPTED when the run stopped for preemption. A user error (bad value, missing
    file, NaN loss) prints one "error:" line: exit code 1."""
    from bigjax.checkpoint import CheckpointWriteError
    from bigjax.train import NonFiniteLossError

    try:
        result = job()
    except (ValueError, FileNotFoundError, NonFiniteLossError, CheckpointWriteError) as err:
        print_error(err)
        return 1
    print(json.dumps(result), flush=True)
    return EXIT_PREEMPTED if "preempted_at_step" in result else 0


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    try:
        args, overrides = parse_args(sys.argv[1:] if argv is None else argv,
                                     "Train a bigjax model.", need_config=True)
        config = config_cli.apply_overrides(config_cli.load_config_file(args.config), overrides)
    except config_cli.ConfigError as err:
        print_error(err)
        return 2
    if args.print_config:
        from bigjax import config_docs

        print(config_docs.annotated(config))
        return 0
    start_runtime(args)
    if args.dry_run:
        from bigjax import dry_run

        return run_and_print(lambda: dry_run.report(config))
    from bigjax import train

    return run_and_print(lambda: train.train_and_evaluate(config, args.workdir, args.step))


if __name__ == "__main__":
    sys.exit(main())
