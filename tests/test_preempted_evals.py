"""A run preempted at a step where an evaluation is due saves first and skips it; the
resumed run runs that evaluation before training on, so no evaluation is ever lost."""

import json
import os

from bigjax import config_cli, train
from bigjax.preemption import PreemptionCheck

from conftest import REPO


def _eval_steps(workdir) -> list[int]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [row["step"] for row in map(json.loads, f) if "eval/test/accuracy" in row]


def test_an_eval_due_at_the_preempted_step_runs_on_resume(tmp_path, monkeypatch):
    config = config_cli.load_config_file(
        os.path.join(REPO, "configs", "digits_cnn.py:evals,runlocal"))
    workdir = str(tmp_path / "run")
    calls = []

    def preempted_at_step_10(self):  # the 10th train-step call, when evals.test is due
        calls.append(1)
        return len(calls) == 10

    monkeypatch.setattr(PreemptionCheck, "should_stop", preempted_at_step_10)
    assert train.train_and_evaluate(config, workdir) == {"preempted_at_step": 10}
    assert _eval_steps(workdir) == []  # saved first, evaluation skipped

    monkeypatch.setattr(PreemptionCheck, "should_stop", lambda self: False)
    assert train.train_and_evaluate(config, workdir)["step"] == 20
    assert _eval_steps(workdir) == [10, 20]  # the skipped one ran first
