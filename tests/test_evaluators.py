"""Named evaluators (`config.evals`): cadences, what they write, the gathered per-example
outputs and the ROC AUC computed from them (also across processes), and config errors."""

import json
import os
import socket
import subprocess
import sys
import time

import ml_collections
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bigjax import config_cli, evaluators

from conftest import REPO, cli_env, last_json_line, run_cli

# dropout 0: the two-process run below must train like the one-process run.
ARGS = ["--config=configs/digits_cnn.py:evals,runlocal", "--config.model.dropout_rate=0.0"]
NUM_TEST = 360  # examples in the digits test split


def _eval_rows(workdir: str) -> dict[str, list[int]]:
    """`{evaluator prefix: [steps]}` of the eval rows of `metrics.jsonl`."""
    rows: dict[str, list[int]] = {}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            names = {k.split("/")[1] for k in row if k.startswith("eval/")}
            assert len(names) <= 1, row  # one evaluator per row
            for name in names:
                rows.setdefault(name, []).append(row["step"])
                keys = {k for k in row if k != "step"}
                assert all(k.startswith(f"eval/{name}/") for k in keys), row
    return rows


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One process with 4 devices (the reference of the two-process test too)."""
    workdir = str(tmp_path_factory.mktemp("evals_one_process"))
    proc = run_cli("main", *ARGS, f"--workdir={workdir}", devices=4)
    assert "'data': 4" in proc.stderr
    return workdir, last_json_line(proc.stdout)


def _npz(workdir: str, name: str = "test_auc", step: int = 20) -> dict[str, np.ndarray]:
    with np.load(os.path.join(workdir, "eval", f"{name}_step_{step}.npz")) as f:
        return dict(f)


@pytest.mark.slow
def test_each_evaluator_runs_on_its_own_cadence_and_writes_its_outputs(single):
    workdir, final = single
    rows = _eval_rows(workdir)
    assert rows == {"train": [5, 10, 15, 20], "test": [10, 20], "test_auc": [20]}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows_by_step = [json.loads(line) for line in f]
    auc_rows = [r for r in rows_by_step if "eval/test_auc/auc" in r]
    assert [r["step"] for r in auc_rows] == [20]
    assert 0.5 < auc_rows[0]["eval/test_auc/auc"] <= 1.0
    # No default evaluator ("eval/<metric>") once config.evals names them.
    assert not any(k.startswith("eval/") and k.count("/") == 1 for r in rows_by_step for k in r)
    # The final line: every evaluator's metrics, under its name.
    assert final["step"] == 20
    for key in ("test/accuracy", "test/loss", "test/confusion_matrix", "test_auc/auc",
                "test_auc/accuracy", "train/accuracy"):
        assert key in final, key
    assert final["test/num_examples"] == final["test_auc/num_examples"] == NUM_TEST
    assert final["train/num_examples"] == 360  # `examples=360` of the train split
    assert final["test_auc/accuracy"] == final["test/accuracy"]  # same split, same params
    outputs = _npz(workdir)
    assert set(outputs) == {"index", "label", "prediction", "probabilities"}
    assert sorted(outputs["index"]) == list(range(NUM_TEST))  # joins back to the split
    from bigjax import datasets
    labels = datasets.load("digits", "test").features["label"]
    np.testing.assert_array_equal(outputs["label"], labels[outputs["index"]])
    assert outputs["label"].shape == outputs["prediction"].shape == (NUM_TEST,)
    assert outputs["probabilities"].shape == (NUM_TEST, 10)
    np.testing.assert_allclose(outputs["probabilities"].sum(1), 1.0, rtol=1e-5)
    assert sorted(os.listdir(os.path.join(workdir, "eval"))) == ["step_20.json",
                                                                 "test_auc_step_20.npz"]


@pytest.mark.slow
def test_auc_is_sklearns_one_vs_rest_macro_auc_of_the_saved_outputs(single):
    workdir, final = single
    outputs = _npz(workdir)
    labels, probs = outputs["label"], outputs["probabilities"]
    assert sorted(set(labels.tolist())) == list(range(10))  # every class present
    expected = roc_auc_score(labels, probs, multi_class="ovr", average="macro")
    assert final["test_auc/auc"] == pytest.approx(expected, abs=1e-12)
    assert final["test_auc/accuracy"] == pytest.approx(float((probs.argmax(1) == labels).mean()))
    np.testing.assert_array_equal(outputs["prediction"], probs.argmax(1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_gather_every_example_like_one_process(single, tmp_path):
    workdir, logs = str(tmp_path / "two"), tmp_path / "logs"
    logs.mkdir()
    port = _free_port()
    procs, files = [], []
    for i in range(2):
        out, err = open(logs / f"{i}.out", "w"), open(logs / f"{i}.err", "w")
        files += [out, err]
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "bigjax.main", *ARGS, f"--workdir={workdir}",
             f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
             f"--process_id={i}"], cwd=REPO, env=cli_env(devices=2), stdout=out, stderr=err))
    deadline = time.time() + 240
    while time.time() < deadline and any(p.poll() is None for p in procs):
        if any(p.poll() not in (None, 0) for p in procs):
            break
        time.sleep(0.1)
    for p in procs:
        if p.poll() is None:
            p.kill()  # SIGKILL: SIGTERM only notifies a jax.distributed process
        p.wait()
    for f in files:
        f.close()
    outs = [((logs / f"{i}.out").read_text(), (logs / f"{i}.err").read_text()) for i in range(2)]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    assert "'data': 4" in outs[0][1]

    finals = [last_json_line(out) for out, _ in outs]
    assert finals[0] == finals[1]  # every process computed the same non-additive metrics
    two, one = _npz(workdir), _npz(single[0])
    assert two["probabilities"].shape == (NUM_TEST, 10)  # rows of both processes
    np.testing.assert_array_equal(two["label"], one["label"])  # same examples, same order
    np.testing.assert_array_equal(two["prediction"], one["prediction"])
    # Not bit-identical: the cross-process all-reduce adds gradients in another order.
    np.testing.assert_allclose(two["probabilities"], one["probabilities"], atol=1e-5)
    assert finals[0]["test_auc/auc"] == pytest.approx(single[1]["test_auc/auc"], abs=1e-4)
    assert finals[0]["test_auc/num_examples"] == NUM_TEST
    assert finals[0]["test/confusion_matrix"] == single[1]["test/confusion_matrix"]


# ------------------------------------------------------------------------ config errors
def _config(**evals):
    config = config_cli.load_config_file(os.path.join(REPO, "configs", "digits_cnn.py"))
    config.evals = ml_collections.ConfigDict(evals)
    return config


def test_unknown_type_is_a_clear_error():
    config = _config(test=dict(type="metrics", split="test"),
                     roc=dict(type="auc", split="test", every_steps=10))
    with pytest.raises(ValueError, match=r"config\.evals\.roc\.type='auc'.*metrics.*predictions"):
        evaluators.settings_from_config(config, steps_per_epoch=22)


def test_missing_type_is_a_clear_error():
    with pytest.raises(ValueError, match=r"config\.evals\.roc\.type=None"):
        evaluators.settings_from_config(_config(roc=dict(split="test")), steps_per_epoch=22)


def test_unknown_key_is_a_clear_error():
    config = _config(test=dict(type="metrics", split="test", every_step=10))
    with pytest.raises(ValueError, match=r"config\.evals\.test has unknown keys \['every_step'\]"
                                         r".*every_steps"):
        evaluators.settings_from_config(config, steps_per_epoch=22)


def test_both_cadences_is_an_error():
    config = _config(test=dict(type="metrics", every_steps=10, every_epochs=1.0))
    with pytest.raises(ValueError, match="config.evals.test: set only one of every_steps"):
        evaluators.settings_from_config(config, steps_per_epoch=22)


def test_valid_entries_resolve_with_defaults():
    config = _config(test=dict(type="metrics", every_epochs=0.5),
                     auc=dict(type="predictions", split="train", batch_size=32, examples=100))
    by_name = {s.name: s for s in evaluators.settings_from_config(config, 22, "/w")}
    assert by_name["test"].split == config.data.eval_split
    assert by_name["test"].every_steps == 11  # ceil(0.5 * 22)
    assert by_name["test"].batch_size == config.eval_batch_size
    assert by_name["test"].prefix == "eval/test/"
    assert by_name["auc"].every_steps is None  # only at the end
    assert (by_name["auc"].split, by_name["auc"].batch_size) == ("train", 32)
    assert by_name["auc"].options["examples"] == 100
    assert by_name["auc"].workdir == "/w"


def test_predictions_need_a_task_with_per_example_outputs():
    import ml_collections

    from bigjax import sharding
    from bigjax.datasets.array_dataset import ArrayDataset
    from bigjax.evaluators.base import EvalSettings
    from bigjax.evaluators.predictions import PredictionsEvaluator
    from bigjax.tasks.masked_lm import MaskedLM

    mesh = sharding.make_mesh(ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1)))
    settings = EvalSettings(name="mlm", type="predictions", split="test", every_steps=None,
                            batch_size=8)
    data = ArrayDataset({"input_ids": np.ones((8, 4), np.int32)})
    with pytest.raises(ValueError, match="gives no per-example outputs; use type 'metrics'"):
        PredictionsEvaluator(settings, None, MaskedLM(), None, data, mesh, ())
