"""scripts/sweep.py end to end: the digits CNN's 2x2 runlocal sweep (`--smoke`), killed
while its second run trains, re-run to the end (every run done once, the killed one
resumed), tables and plots written, and a third run that does nothing."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
from PIL import Image

from conftest import REPO, cli_env

SCRIPT = os.path.join(REPO, "scripts", "sweep.py")
RUNS = ["learning_rate=0.001,conv_features=16-32", "learning_rate=0.001,conv_features=32-64",
        "learning_rate=0.003,conv_features=16-32", "learning_rate=0.003,conv_features=32-64"]


def sweep(root, *args, **kwargs):
    return subprocess.run([sys.executable, SCRIPT, "--smoke", f"--workdir_root={root}", *args],
                          cwd=REPO, env=cli_env(), capture_output=True, text=True,
                          timeout=600, **kwargs)


def attempts(root, run) -> int:
    """How many times the sweep started `run` (the headers in its log)."""
    path = os.path.join(root, "logs", f"{run}.log")
    with open(path) as f:
        return sum(line.startswith("# ") and "bigjax.main" in line for line in f)


def test_a_killed_sweep_resumes_and_a_finished_one_does_nothing(tmp_path):
    root = str(tmp_path / "sweep")
    proc = subprocess.Popen([sys.executable, SCRIPT, "--smoke", f"--workdir_root={root}"],
                            cwd=REPO, env=cli_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    second_log = os.path.join(root, "logs", f"{RUNS[1]}.log")
    deadline = time.time() + 300
    while not os.path.exists(second_log) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)  # the second run is importing or training: kill the whole sweep
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert os.path.exists(os.path.join(root, "logs", f"{RUNS[0]}.result.json"))
    assert not os.path.exists(os.path.join(root, "logs", f"{RUNS[1]}.result.json"))

    done = sweep(root)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 of 4 runs already ended; running 3" in done.stdout
    assert [attempts(root, r) for r in RUNS] == [1, 2, 1, 1]  # only the killed one twice
    for run in RUNS:
        with open(os.path.join(root, "logs", f"{run}.result.json")) as f:
            result = json.load(f)
        assert result["final"]["step"] == 6 and 0 <= result["final"]["accuracy"] <= 1
        with open(os.path.join(root, run, "metrics.jsonl")) as f:
            steps = [json.loads(line)["step"] for line in f if "train/loss" in line]
        assert steps[-1] == 6

    with open(os.path.join(root, "results.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["point"] for r in rows] == RUNS
    assert {r["optim.learning_rate"] for r in rows} == {"0.001", "0.003"}
    assert all(r["finished"] == "1" and 0 <= float(r["accuracy"]) <= 1 for r in rows)
    with open(os.path.join(root, "results.md")) as f:
        table = f.read()
    assert table.count("| 1/1 |") == 4 and "(16, 32)" in table
    for png in ("accuracy_vs_optim.learning_rate.png", "accuracy_vs_model.conv_features.png",
                "curves.png"):
        image = np.asarray(Image.open(os.path.join(root, png)))
        assert image.shape[0] > 300 and (image[..., :3] < 100).any(), png  # drawn, not blank

    again = sweep(root)
    assert again.returncode == 0
    assert "4 of 4 runs already ended; running 0" in again.stdout
    assert [attempts(root, r) for r in RUNS] == [1, 2, 1, 1]


ONE_POINT = """
import sys
sys.path.insert(0, {configs!r})
from digits_cnn import get_config  # noqa: F401


def get_sweep(arg=None):
    return [{{"optim.learning_rate": 0.003}}]
"""


def test_seeds_and_folds_report_mean_and_std(tmp_path):
    config = tmp_path / "one_point.py"
    config.write_text(ONE_POINT.format(configs=os.path.join(REPO, "configs")))
    root = str(tmp_path / "cv")
    done = subprocess.run([sys.executable, SCRIPT, f"--config={config}:runlocal",
                           f"--workdir_root={root}", "--seeds=2", "--cv_folds=2",
                           "--config.total_steps=4"],
                          cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(os.path.join(root, "runs.csv")) as f:
        runs = list(csv.DictReader(f))
    assert [(r["seed"], r["fold"]) for r in runs] == [("0", "0"), ("0", "1"), ("1", "0"),
                                                      ("1", "1")]
    for r in runs:  # each run trained with its own seed and fold
        with open(os.path.join(root, r["run"], "config.json")) as f:
            used = json.load(f)
        assert (str(used["seed"]), str(used["data"]["cv_fold"])) == (r["seed"], r["fold"])
        assert used["data"]["cv_folds"] == 2 and used["data"]["eval_split"] == "cv_holdout"
    # Evaluated on the held-out fold: the 1,437 training digits cut in two.
    assert sorted(r["num_examples"] for r in runs) == ["718", "718", "719", "719"]
    with open(os.path.join(root, "results.csv")) as f:
        (row,) = list(csv.DictReader(f))
    accuracies = [float(r["accuracy"]) for r in runs]
    assert abs(float(row["accuracy"]) - np.mean(accuracies)) < 1e-5
    assert abs(float(row["accuracy_std"]) - np.std(accuracies, ddof=1)) < 1e-5
    with open(os.path.join(root, "results.md")) as f:
        assert " ± " in f.read()


def test_a_run_that_fails_is_recorded_once_and_not_retried(tmp_path):
    from bigjax import sweep_runner
    from bigjax.sweep_points import expand

    config = os.path.join(REPO, "configs", "digits_cnn.py:runlocal")
    (run,) = expand([{"optim.learning_rate": 1e12}])  # diverges: NaN loss, exit 1
    root = str(tmp_path)
    results = sweep_runner.run_all([run], root, config, [("total_steps", "4")])
    failed = results[run.name]["failed"]
    assert failed.startswith("error:") and "nan" in failed.lower(), failed
    again = sweep_runner.run_all([run], root, config, [("total_steps", "4")])
    assert again[run.name]["attempts"] == 1  # not started again
    assert attempts(root, run.name) == 1
