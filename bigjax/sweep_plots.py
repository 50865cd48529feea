"""A sweep's PNG plots (matplotlib): final metric against each swept value, and the
curves of all runs overlaid. See `sweep_results` for the tables they go with."""

from __future__ import annotations

import io
import numbers
import re
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from etils import epath  # noqa: E402

from bigjax import metrics_file, run_files  # noqa: E402
from bigjax.sweep_points import Run, override_text  # noqa: E402


def _save(fig, root: str, name: str) -> str:
    path = run_files.join(root, name)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    epath.Path(path).write_bytes(buffer.getvalue())
    return path


def _file_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def plot_metric_vs_keys(root: str, table: list[dict], keys: list[str], metric: str
                        ) -> list[str]:
    """``<metric>_vs_<key>.png`` per swept key: mean ± std of the final ``metric`` per
    value, a line per combination of the other keys' values. Positive numbers spanning 3x
    or more get a log axis; values that are not numbers are placed in the sweep's
    order."""
    paths = []
    for key in keys:
        values: dict[str, object] = {}  # text -> value, in the sweep's order
        for row in table:
            if key in row["overrides"]:
                values.setdefault(override_text(row["overrides"][key]), row["overrides"][key])
        numeric = all(isinstance(v, numbers.Real) and not isinstance(v, bool)
                      for v in values.values())
        position = {text: (v if numeric else i) for i, (text, v) in enumerate(values.items())}
        lines: dict[str, list] = {}
        for row in table:
            if key not in row["overrides"] or metric not in row["metrics"]:
                continue
            others = ", ".join(f"{k}={override_text(v)}" for k, v in row["overrides"].items()
                               if k != key) or metric
            mean, std, _ = row["metrics"][metric]
            lines.setdefault(others, []).append(
                (position[override_text(row["overrides"][key])], mean, std or 0.0))
        if not lines:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for label, points in lines.items():
            points.sort()
            ax.errorbar([p[0] for p in points], [p[1] for p in points],
                        yerr=[p[2] for p in points], marker="o", capsize=3, label=label)
        if numeric and min(values.values()) > 0 and \
                max(values.values()) / min(values.values()) >= 3:
            ax.set_xscale("log")
            ax.minorticks_off()
        ax.set_xticks(list(position.values()), list(position))
        ax.set_xlabel(key)
        ax.set_ylabel(f"final {metric}")
        ax.grid(alpha=0.3)
        if len(lines) > 1 or next(iter(lines)) != metric:
            ax.legend(fontsize=7)
        paths.append(_save(fig, root, f"{_file_part(metric)}_vs_{_file_part(key)}.png"))
    return paths


def plot_curves(root: str, runs: Sequence[Run], results: dict, metric: str) -> str:
    """``curves.png``: training loss and the eval ``metric`` against the step, every
    finished run overlaid (one colour per point)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    colours: dict[str, str] = {}
    for run in runs:
        if not results.get(run.name):
            continue
        label = None if run.point in colours else run.point  # one legend entry per point
        colour = colours.setdefault(run.point, f"C{len(colours) % 10}")
        rows = metrics_file.read_rows(run_files.join(root, run.name))
        train = metrics_file.series(rows, "train/loss")
        evals = metrics_file.series(rows, f"eval/{metric}")
        if train[0]:
            left.plot(*train, color=colour, alpha=0.8, label=label)
        if evals[0]:
            right.plot(*evals, color=colour, marker="o", alpha=0.8, label=label)
    left.set(xlabel="step", ylabel="train loss", title="training loss")
    right.set(xlabel="step", ylabel=metric, title=f"eval {metric}")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return _save(fig, root, "curves.png")
