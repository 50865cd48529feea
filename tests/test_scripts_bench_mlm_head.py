"""scripts/bench_mlm_head.py --smoke: builds and times the MLM train step with and without
`pp.max_predictions` (configs/mlm_bert.py:runlocal, 2 steps, one round) and prints
steps/s of each and their ratio (about 20 s)."""

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO, cli_env

NUMBER = r"(\d+(?:\.\d+)?)"


def ratio_bounds(a: float, b: float) -> tuple[float, float]:
    """Where the ratio of the unrounded rates lies, given rates printed to 2 decimals."""
    return (a - 0.005) / (b + 0.005) - 0.005, (a + 0.005) / max(b - 0.005, 1e-9) + 0.005


@pytest.mark.slow
def test_smoke_prints_both_rates_and_the_ratio():
    proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "bench_mlm_head.py"),
                           "--smoke"], cwd=REPO, env=cli_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 3, proc.stdout
    # runlocal caps the picked tokens at 10 per row.
    gathered = re.fullmatch(rf"\s*max_predictions=10:\s+{NUMBER} steps/s", lines[0])
    full = re.fullmatch(rf"\s*every position:\s+{NUMBER} steps/s", lines[1])
    ratio = re.fullmatch(rf"ratio: {NUMBER}x", lines[2])
    assert gathered and full and ratio, proc.stdout
    rates = [float(m.group(1)) for m in (gathered, full, ratio)]
    assert all(r > 0 for r in rates), proc.stdout
    low, high = ratio_bounds(rates[0], rates[1])
    assert low <= rates[2] <= high, proc.stdout  # the ratio of the printed rates
