"""scripts/bench_scaling.py --quick: the digits CNN for 3 steps on 1 device, DP=8 and FSDP=8
(each in its own subprocess) gives the same losses, and FSDP really splits the state."""

import os
import subprocess
import sys

import pytest

from conftest import REPO, cli_env, last_json_line


@pytest.fixture(scope="module")
def quick() -> dict:
    proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "bench_scaling.py"),
                           "--quick"], cwd=REPO, env=cli_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "| run | mesh |" in proc.stdout  # the markdown table
    return last_json_line(proc.stdout)


@pytest.mark.slow
def test_strategies_match_the_one_device_losses(quick):
    rows = {r["run"]: r for r in quick["rows"]}
    assert quick["reference"] == "ref" and set(rows) == {"ref", "dp8", "fsdp8"}
    assert quick["tolerance"] <= 1e-5  # the tolerance experiments/scaling/README.md states
    assert quick["all_within_tolerance"]
    for row in rows.values():
        assert max(row["max_loss_dev"], row["max_grad_norm_dev"]) <= 1e-5, row
        assert row["layout_ok"], row  # the state keeps its shardings through the steps


@pytest.mark.slow
def test_fsdp_holds_less_per_device_than_data_parallel(quick):
    rows = {r["run"]: r for r in quick["rows"]}
    ref, dp, fsdp = rows["ref"], rows["dp8"], rows["fsdp8"]
    # DP replicates everything; FSDP splits the large kernels 8 ways (small ones stay whole).
    assert dp["params_bytes_per_device"] == ref["params_bytes_per_device"]
    assert dp["opt_state_bytes_per_device"] == ref["opt_state_bytes_per_device"]
    assert fsdp["params_bytes_per_device"] < dp["params_bytes_per_device"]
    assert 1 / 8 <= fsdp["params_ratio"] < 0.2
    assert 1 / 8 <= fsdp["opt_ratio"] < 0.2
    # Each device's share of the batch is an eighth: less scratch memory than one device.
    assert dp["step_temp_bytes_per_device"] < ref["step_temp_bytes_per_device"]
    assert all(r["median_step_ms"] > 0 for r in rows.values())
