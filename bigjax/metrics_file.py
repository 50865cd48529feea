"""Reading a run's `metrics.jsonl` back: rows, and one key's curve by step.

The file only grows (`run_files.LineLog`): a run resumed from a checkpoint logs the
steps after that checkpoint again, so a curve keeps the last value logged for each step.
"""

from __future__ import annotations

import json

from etils import epath

from bigjax import run_files


def read_rows(workdir: str) -> list[dict]:
    """The rows of `workdir/metrics.jsonl` (local or gs://), one dict per line; [] when the
    run logged nothing yet."""
    path = epath.Path(run_files.join(workdir, "metrics.jsonl"))
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of `key`, sorted by step, keeping the last value logged for each
    step."""
    points = {r["step"]: r[key] for r in rows if key in r}
    steps = sorted(points)
    return steps, [points[s] for s in steps]
