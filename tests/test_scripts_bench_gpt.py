"""scripts/bench_gpt.py --smoke: nanoGPT's Tiny Shakespeare recipe trained by bigjax (1 and
5 steps per call) and by the same model in PyTorch on the same batches, each in its own
process; the script prints tokens/s, the ratio and both validation losses (about 20-30 s).
Without torch its row is skipped with the reason printed and bigjax still measured."""

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

from conftest import REPO, cli_env

SCRIPT = os.path.join(REPO, "scripts", "bench_gpt.py")
HAS_TORCH = importlib.util.find_spec("torch") is not None


def load_script():
    """scripts/bench_gpt.py as a module (its main() does not run)."""
    spec = importlib.util.spec_from_file_location("bench_gpt", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_smoke_prints_both_frameworks_tokens_per_second_and_the_ratio():
    proc = subprocess.run([sys.executable, SCRIPT, "--smoke"], cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "| framework | steps/call | train s |" in proc.stdout  # the markdown table
    assert "bigjax (" in proc.stdout and "/ torch tokens/s = " in proc.stdout
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["smoke"] and result["steps"] == 10 and result["steps_per_call"] == 5
    rows = result["rows"]
    assert set(rows) == {"bigjax", "bigjax_multi", "torch"}
    measured = ["bigjax", "bigjax_multi"] + (["torch"] if HAS_TORCH else [])
    for name in measured:
        row = rows[name]
        assert row["tokens_per_s"] > 0 and row["train_s"] > 0, (name, row)
        assert row["steps"] == 10 and math.isfinite(row["val_loss"]), (name, row)
        assert row["total_s"] >= row["train_s"], (name, row)
    assert rows["bigjax"]["compile_s"] > 0 and rows["bigjax_multi"]["steps_per_call"] == 5
    # Both bigjax rows train the same steps: the same losses whatever the steps per call.
    assert rows["bigjax"]["val_loss"] == pytest.approx(rows["bigjax_multi"]["val_loss"],
                                                       rel=1e-4)
    assert result["same_batches"] and result["same_val_tokens"]
    if HAS_TORCH:
        assert result["ratio"] > 0 and result["wall_ratio"] > 0
        assert rows["bigjax"]["vs_torch"] > 0
        # Same model, init scheme and data: both start from about ln(vocab) and learn alike.
        vocab = result["sizes"]["vocab_size"]
        for name in measured:
            assert abs(rows[name]["first_loss"] - math.log(vocab)) < 0.2, (name, rows[name])
        assert abs(rows["torch"]["val_loss"] - rows["bigjax"]["val_loss"]) < 0.3
    else:
        assert rows["torch"] is None and result["ratio"] is None
        assert "torch: not installed (pip install -e '.[bench]'), skipped" in proc.stdout


def test_torch_learning_rates_are_bigjax_schedule():
    # The torch side sets this per-step rate; it must be bigjax's schedule for the config.
    import ml_collections

    from bigjax import optim

    bench = load_script()
    config = ml_collections.ConfigDict(dict(
        learning_rate=1e-3, schedule="warmup_cosine", warmup_steps=100, end_lr_factor=0.1))
    schedule = optim.make_schedule(config, 2000)
    for step in (0, 1, 50, 99, 100, 101, 777, 1500, 1999, 2000):
        assert bench.lr_at(step, 1e-3, 100, 2000, 0.1) == pytest.approx(
            float(schedule(step)), rel=1e-5, abs=1e-9), step


def test_the_tuned_variant_trains_both_sides_at_its_learning_rate():
    bench = load_script()
    assert bench.parse_args(["--variant", "tuned"]).variant == "tuned"
    plain = bench.bench_config(dict(steps=20, warmup_steps=2))
    tuned = bench.bench_config(dict(steps=20, warmup_steps=2, variant="tuned"))
    assert (plain.optim.learning_rate, tuned.optim.learning_rate) == (1e-3, 3e-3)
    # Everything else is nanoGPT's recipe, as the plain config has it.
    assert {**tuned.to_dict(), "optim": None} == {**plain.to_dict(), "optim": None}
    assert {**tuned.optim.to_dict(), "learning_rate": 0} == {
        **plain.optim.to_dict(), "learning_rate": 0}
