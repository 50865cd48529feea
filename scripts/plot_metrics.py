"""Plots train loss and eval accuracy curves from runs' `metrics.jsonl` into one PNG.

    python scripts/plot_metrics.py --out experiments/mnist/curves.png \
        workdirs/mnist_mlp workdirs/mnist_mlp_tuned ...
"""

from __future__ import annotations

import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of `key`, keeping the last value logged for each step."""
    points = {r["step"]: r[key] for r in rows if key in r}
    steps = sorted(points)
    return steps, [points[s] for s in steps]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workdirs", nargs="+")
    parser.add_argument("--out", required=True)
    parser.add_argument("--metric", default="eval/accuracy")
    args = parser.parse_args()
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(12, 4.5))
    for workdir in args.workdirs:
        rows = read_metrics(workdir)
        label = os.path.basename(os.path.normpath(workdir))
        ax_loss.plot(*series(rows, "train/loss"), label=label)
        ax_metric.plot(*series(rows, args.metric), marker="o", label=label)
    ax_loss.set(xlabel="step", ylabel="train loss", yscale="log", title="train loss")
    ax_metric.set(xlabel="step", ylabel=args.metric, title=args.metric)
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
