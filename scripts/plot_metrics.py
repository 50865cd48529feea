"""Plots train loss and eval curves (accuracy, or the `--metric`s: one panel each) from
runs' `metrics.jsonl` into one PNG.

    python scripts/plot_metrics.py --out experiments/mnist/curves.png \
        workdirs/mnist_mlp workdirs/mnist_mlp_tuned ...
    python scripts/plot_metrics.py --out curves.png --metric eval/val/loss \
        --metric eval/test_beam/bleu workdirs/multi30k

Seconds-long as it is (no `--smoke` needed). A workdir without `metrics.jsonl` is an
error; a metric a workdir never logged (e.g. `eval/accuracy` of a run with named
evaluators, which logs `eval/<name>/accuracy`) is a warning naming the keys it has.
"""

from __future__ import annotations

import argparse
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bigjax import metrics_file  # noqa: E402


def warn_if_missing(workdir: str, rows: list[dict], key: str) -> None:
    """Warns on stderr when `workdir` never logged `key` (its curve would be empty)."""
    if not any(key in r for r in rows):
        logged = sorted({k for r in rows for k in r} - {"step"})
        print(f"warning: {workdir} logged no {key!r}; its keys: {', '.join(logged) or 'none'}",
              file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdirs", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--metric", action="append", default=None,
                        help="an eval metric to plot, one panel each (repeatable; default "
                             "eval/accuracy)")
    args = parser.parse_args()
    metrics = args.metric or ["eval/accuracy"]
    missing = [w for w in args.workdirs if not os.path.isfile(os.path.join(w, "metrics.jsonl"))]
    if missing:
        parser.error(f"no metrics.jsonl in {', '.join(missing)} (a bigjax.main workdir?)")
    fig, (ax_loss, *ax_metrics) = plt.subplots(1, 1 + len(metrics),
                                               figsize=(6 * (1 + len(metrics)), 4.5))
    for workdir in args.workdirs:
        rows = metrics_file.read_rows(workdir)
        label = os.path.basename(os.path.normpath(workdir))
        for key in ("train/loss", *metrics):
            warn_if_missing(workdir, rows, key)
        ax_loss.plot(*metrics_file.series(rows, "train/loss"), label=label)
        for ax, metric in zip(ax_metrics, metrics, strict=True):
            ax.plot(*metrics_file.series(rows, metric), marker="o", label=label)
    ax_loss.set(xlabel="step", ylabel="train loss", yscale="log", title="train loss")
    for ax, metric in zip(ax_metrics, metrics, strict=True):
        ax.set(xlabel="step", ylabel=metric, title=metric)
    for ax in (ax_loss, *ax_metrics):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
