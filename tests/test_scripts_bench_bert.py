"""scripts/bench_bert.py --smoke: both workloads (fine-tuning, MLM) of the tiny BERT run on
both sides (bigjax, and Hugging Face on PyTorch when installed) and report speeds, the
ratio and the fractions of the measured matmul peak."""

import importlib.util
import os
import subprocess
import sys

import pytest

from conftest import REPO, cli_env, last_json_line

HAS_TORCH = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))


@pytest.fixture(scope="module")
def smoke() -> dict:
    proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "bench_bert.py"),
                           "--smoke"], cwd=REPO, env=cli_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "| workload | side |" in proc.stdout  # the markdown table
    return last_json_line(proc.stdout)


@pytest.mark.slow
def test_smoke_measures_both_sides_of_both_workloads(smoke):
    assert smoke["smoke"] and smoke["torch_available"] == HAS_TORCH
    assert smoke["peak_gflops"] > 0 and smoke["peak_gflops_per_cpu_s"] > 0
    assert set(smoke["workloads"]) == {"finetune", "mlm"}
    sides = {"bigjax", "torch"} if HAS_TORCH else {"bigjax"}
    for name, entry in smoke["workloads"].items():
        assert set(entry["sides"]) == sides, name
        assert (entry["batch_size"], entry["max_len"], entry["steps"]) == (4, 32, 2)
        for side, row in entry["sides"].items():
            assert row["examples_per_s"] > 0, (name, side)
            assert 0 < row["peak_fraction"] <= 1, (name, side, row)
            assert row["peak_fraction_per_cpu_s"] > 0 and row["cpu_per_wall"] > 0
            assert row["gflop_per_step"] > 0
        if HAS_TORCH:
            assert entry["ratio"] > 0
            assert entry["same_batches"], name  # both sides trained on the same token ids
        else:
            assert entry["ratio"] is None


@pytest.mark.slow
def test_mlm_bigjax_counts_fewer_flops_with_max_predictions(smoke):
    mlm = smoke["workloads"]["mlm"]
    assert mlm["max_predictions"] == 8  # a quarter of the 32 tokens, as 32 of 128
    if HAS_TORCH:  # the head at 8 positions, not at all 32 as Hugging Face computes it
        assert mlm["sides"]["bigjax"]["gflop_per_step"] < mlm["sides"]["torch"]["gflop_per_step"]
