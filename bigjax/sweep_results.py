"""A sweep's tables and plots, from its finished runs' results.

``write_all(root, runs, results)`` writes into the sweep's root:

- ``runs.csv``: one row per run (point, seed, fold): its overrides, final metrics, wall
  time and steps/s.
- ``results.csv`` and ``results.md``: one row per point: its overrides, every final
  scalar metric as the mean over the point's seeds and folds (``_std``: their sample
  standard deviation, where there are several), wall time and steps/s (means), and how
  many of its runs finished.
- ``<metric>_vs_<key>.png`` for every swept key: the point's final metric (mean, with
  the standard deviation as error bars) against the key's value, one line per
  combination of the other keys; ``curves.png``: the training loss and the metric over
  the steps of every run, overlaid.
"""

from __future__ import annotations

import csv
import io
import json
import math
import numbers
from collections.abc import Sequence

import numpy as np
from etils import epath

from bigjax import run_files
from bigjax.sweep_points import Run, override_text

PREFERRED_METRICS = ("accuracy", "loss")  # the default metric: the first one present


def scalar_metrics(final: dict) -> dict[str, float]:
    """The finite numbers of a run's final metrics (``step`` and lists left out)."""
    return {k: float(v) for k, v in final.items() if k != "step" and
            isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)}


def choose_metric(results: Sequence[dict], wanted: str | None) -> str | None:
    """``wanted`` (checked), else the first of ``PREFERRED_METRICS`` (also as the last
    part of a named evaluator's ``name/metric``) that a result has, else its first."""
    names = [k for r in results for k in scalar_metrics(r.get("final", {}))]
    if wanted:
        if wanted not in names:
            raise ValueError(f"--metric={wanted} is not among the runs' final metrics: "
                             f"{sorted(set(names))}.")
        return wanted
    for preferred in PREFERRED_METRICS:
        for name in names:
            if name == preferred or name.endswith("/" + preferred):
                return name
    return names[0] if names else None


def summarize(runs: Sequence[Run], results: dict[str, dict | None]) -> list[dict]:
    """One row per point, in the sweep's order: ``point``, ``overrides``, ``runs``,
    ``finished``, ``failed`` (counts), ``metrics`` {name: (mean, std or None, n)},
    ``wall_s``, ``steps_per_sec`` (means over its finished runs; None when none
    finished)."""
    rows: dict[str, dict] = {}
    for run in runs:
        row = rows.setdefault(run.point, {"point": run.point, "overrides": run.overrides,
                                          "runs": 0, "finished": [], "failed": 0})
        row["runs"] += 1
        result = results.get(run.name)
        if result and "failed" in result:
            row["failed"] += 1
        elif result:
            row["finished"].append(result)
    table = []
    for row in rows.values():
        done = row.pop("finished")
        values: dict[str, list[float]] = {}
        for result in done:
            for name, value in scalar_metrics(result["final"]).items():
                values.setdefault(name, []).append(value)
        row["finished"] = len(done)
        row["metrics"] = {k: (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1
                              else None, len(v)) for k, v in values.items()}
        row["wall_s"] = _mean([r["wall_s"] for r in done])
        row["steps_per_sec"] = _mean([r["steps_per_sec"] for r in done])
        table.append(row)
    return table


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _keys(runs: Sequence[Run]) -> list[str]:
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run.overrides if k not in keys]
    return keys


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def runs_csv(runs: Sequence[Run], results: dict[str, dict | None]) -> str:
    """``runs.csv``'s text: one row per run."""
    keys = _keys(runs)
    metrics = sorted({k for r in results.values() if r for k in scalar_metrics(r["final"])})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["run", *keys, "seed", "fold", "status", *metrics, "wall_s",
                     "steps_per_sec"])
    for run in runs:
        result = results.get(run.name)
        values = scalar_metrics(result["final"]) if result else {}
        writer.writerow([run.name, *[override_text(run.overrides[k]) if k in run.overrides
                                     else "" for k in keys],
                         "" if run.seed is None else run.seed,
                         "" if run.fold is None else run.fold, status(result),
                         *[_fmt(values.get(m)) for m in metrics],
                         _fmt(result and result["wall_s"]),
                         _fmt(result and result["steps_per_sec"])])
    return out.getvalue()


def status(result: dict | None) -> str:
    """"finished", "failed: <its error line>", or "" (not ended yet)."""
    if result is None:
        return ""
    return f"failed: {result['failed']}" if "failed" in result else "finished"


def results_csv(table: list[dict], keys: list[str]) -> str:
    """``results.csv``'s text: one row per point (mean and, where repeated, std)."""
    metrics = sorted({k for row in table for k in row["metrics"]})
    repeated = {m for row in table for m, (_, std, _) in row["metrics"].items()
                if std is not None}
    out = io.StringIO()
    writer = csv.writer(out)
    header = ["point", *keys, "runs", "finished", "failed"]
    for m in metrics:
        header += [m, f"{m}_std"] if m in repeated else [m]
    writer.writerow([*header, "wall_s", "steps_per_sec"])
    for row in table:
        line = [row["point"], *[override_text(row["overrides"][k]) if k in row["overrides"]
                                else "" for k in keys], row["runs"], row["finished"],
                row["failed"]]
        for m in metrics:
            mean, std, _ = row["metrics"].get(m, (None, None, 0))
            line += [_fmt(mean), _fmt(std)] if m in repeated else [_fmt(mean)]
        writer.writerow([*line, _fmt(row["wall_s"]), _fmt(row["steps_per_sec"])])
    return out.getvalue()


def results_markdown(table: list[dict], keys: list[str], metric: str | None,
                     title: str) -> str:
    """``results.md``'s text: the points as a markdown table, mean ± std."""
    metrics = sorted({k for row in table for k in row["metrics"]
                      if k != "num_examples" and not k.endswith("/num_examples")},
                     key=lambda m: (m != metric, m))
    lines = [f"# {title}", "",
             f"{len(table)} points; mean ± sample standard deviation over each point's "
             "finished runs (seeds and folds); wall time and steps/s are means per run.", "",
             "| " + " | ".join([*keys, "runs", *metrics, "wall s", "steps/s"]) + " |",
             "|" + "---|" * len(keys) + "---:|" * (len(metrics) + 3)]
    for row in table:
        cells = [override_text(row["overrides"][k]) if k in row["overrides"] else ""
                 for k in keys]
        cells.append(f"{row['finished']}/{row['runs']}" +
                     (f" ({row['failed']} failed)" if row["failed"] else ""))
        for m in metrics:
            mean, std, _ = row["metrics"].get(m, (None, None, 0))
            text = _fmt4(mean) + ("" if std is None else f" ± {_fmt4(std)}")
            cells.append(f"**{text}**" if m == metric and mean is not None else text)
        cells += [_fmt4(row["wall_s"]), _fmt4(row["steps_per_sec"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt4(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def write_all(root: str, runs: Sequence[Run], results: dict[str, dict | None],
              metric: str | None = None, title: str = "Sweep results") -> list[str]:
    """Writes the tables and plots (see the module doc) into ``root``; returns the paths."""
    from bigjax import sweep_plots

    keys = _keys(runs)
    table = summarize(runs, results)
    metric = choose_metric([r for r in results.values() if r], metric)
    files = {"runs.csv": runs_csv(runs, results), "results.csv": results_csv(table, keys),
             "results.md": results_markdown(table, keys, metric, title)}
    written = []
    for name, text in files.items():
        path = run_files.join(root, name)
        epath.Path(path).write_text(text)
        written.append(path)
    if metric is not None:
        written += sweep_plots.plot_metric_vs_keys(root, table, keys, metric)
        written.append(sweep_plots.plot_curves(root, runs, results, metric))
    return written


def load_runs(root: str) -> list[Run]:
    """The runs listed in ``ROOT/sweep.json`` (what the last ``scripts/sweep.py`` ran)."""
    path = epath.Path(run_files.join(root, "sweep.json"))
    if not path.exists():
        raise ValueError(f"{path} not found: is {root} a sweep's --workdir_root?")
    return [Run(**{**r, "args": tuple(map(tuple, r["args"]))})
            for r in json.loads(path.read_text())["runs"]]
