"""Every config's `runlocal` variant through the CLI, as a user runs it (subprocesses)."""

import json
import os

import pytest

from conftest import checkpoint_steps, last_json_line, run_cli

RUNS = [
    ("digits_cnn.py:runlocal", False),
    ("mnist_mlp.py:runlocal", True),
    ("mnist_mlp.py:tuned,runlocal", True),
    ("mnist_cnn.py:runlocal", True),
    ("mnist_cnn.py:tuned,runlocal", True),
]


@pytest.mark.slow
@pytest.mark.parametrize("config,needs_data", RUNS, ids=[r[0] for r in RUNS])
def test_runlocal_trains_and_leaves_the_workdir_of_cli_md(config, needs_data, tmp_path, request):
    if needs_data:
        request.getfixturevalue("real_data_dir")
    workdir = str(tmp_path / "run")
    proc = run_cli("main", f"--config=configs/{config}", f"--workdir={workdir}")
    final = last_json_line(proc.stdout)
    assert 0.0 <= final["accuracy"] <= 1.0 and final["num_examples"] > 0
    assert {"precision", "recall", "f1", "loss", "confusion_matrix"} <= set(final)
    assert "steps/s" in proc.stderr and "ETA" in proc.stderr

    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["total_steps"] == 20
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    train_rows = [r for r in rows if "train/loss" in r]
    eval_rows = [r for r in rows if "eval/accuracy" in r]
    assert [r["step"] for r in train_rows] == [5, 10, 15, 20]
    assert {"train/learning_rate", "train/steps_per_sec", "train/examples_per_sec"} <= set(
        train_rows[0])
    assert [r["step"] for r in eval_rows] == [10, 20]
    assert eval_rows[-1]["eval/accuracy"] == pytest.approx(final["accuracy"])
    assert {"eval/precision", "eval/recall", "eval/f1"} <= set(eval_rows[-1])
    assert any(name.startswith("events.out.tfevents")
               for name in os.listdir(os.path.join(workdir, "tensorboard")))
    assert checkpoint_steps(workdir)[-1] == 20

    if config.startswith("digits"):
        # The eval-only entry reproduces the final eval from the checkpoint.
        again = last_json_line(run_cli("evaluate", f"--workdir={workdir}").stdout)
        assert again["step"] == 20
        assert again["confusion_matrix"] == final["confusion_matrix"]
        assert again["loss"] == pytest.approx(final["loss"], rel=1e-6)
        older = last_json_line(run_cli("evaluate", f"--workdir={workdir}", "--step=10").stdout)
        assert older["step"] == 10


def test_unknown_override_key_lists_the_valid_keys(tmp_path):
    proc = run_cli("main", "--config=configs/digits_cnn.py:runlocal", f"--workdir={tmp_path}",
                   "--config.optim.lr=0.1", check=False)
    assert proc.returncode == 2
    assert "Unknown config key --config.optim.lr." in proc.stderr
    assert "optim.learning_rate" in proc.stderr
    assert "Traceback" not in proc.stderr
