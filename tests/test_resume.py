"""Preemption and exact resume: SIGKILL mid-run, SIGTERM, and a changed config."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from etils import epath

from bigjax.main import EXIT_PREEMPTED

import fake_gcs
from conftest import REPO, checkpoint_steps, cli_env, last_json_line, read_state, run_cli

BUCKET = "bigjax-test"

# A fast model so that a run lasts long enough to be interrupted but not long.
ARGS = ["--config=configs/digits_cnn.py:runlocal", "--config.total_steps=240",
        "--config.checkpoint.every_steps=40", "--config.log_every_steps=40",
        "--config.eval_every_steps=0", "--config.model.conv_features=(8,)",
        "--config.model.dropout_rate=0.3", "--config.pp.translate=1"]


def _start(workdir, env=None):
    return subprocess.Popen([sys.executable, "-m", "bigjax.main", *ARGS, f"--workdir={workdir}"],
                            cwd=REPO, env=cli_env(**(env or {})), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(proc, workdir, timeout=120):
    """Returns once the run has logged step 120 of 240: its checkpoint 40 is then complete
    (saving 80 first waited for it) and the run is mid-way. Read from the run's log, not
    by listing the workdir: a bucket's listing takes longer than the whole run."""
    start = time.time()
    while time.time() - start < timeout:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            pytest.fail(f"run ended before step 120 (workdir {workdir})")
        if " step 120/240 " in line:
            return 120
    pytest.fail("step 120 was not logged in time")


def _assert_same_state(workdir_a, workdir_b, step):
    a, b = read_state(workdir_a, step), read_state(workdir_b, step)
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(x, y)  # bit-identical on CPU


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("uninterrupted"))
    final = last_json_line(run_cli("main", *ARGS, f"--workdir={workdir}").stdout)
    return workdir, final


@pytest.mark.slow
def test_sigkill_then_rerun_is_bit_identical(uninterrupted, tmp_path):
    workdir = str(tmp_path / "killed")
    proc = _start(workdir)
    step = _wait_for_checkpoint(proc, workdir)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and 0 < step < 240
    resumed_at = checkpoint_steps(workdir)[-1]
    assert resumed_at < 240  # killed mid-run: the rerun really resumes
    proc = run_cli("main", *ARGS, f"--workdir={workdir}")
    assert f"Resumed from checkpoint {resumed_at} " in proc.stderr
    _assert_same_state(uninterrupted[0], workdir, 240)
    assert last_json_line(proc.stdout)["confusion_matrix"] == uninterrupted[1]["confusion_matrix"]


@pytest.mark.slow
def test_resume_may_read_the_data_from_disk_and_in_worker_processes(uninterrupted, tmp_path):
    """Killed while reading from memory on a thread, resumed reading ArrayRecord files in
    a worker process: the same batches, so the same state as the uninterrupted run."""
    workdir = str(tmp_path / "moved")
    proc = _start(workdir)
    _wait_for_checkpoint(proc, workdir)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc = run_cli("main", *ARGS, f"--workdir={workdir}", "--config.data.on_disk=True",
                   "--config.data.workers=1", f"--config.data.prepared_dir={tmp_path / 'prep'}")
    assert "Resuming with changed data.on_disk, data.prepared_dir, data.workers" in proc.stderr
    assert (tmp_path / "prep" / "digits").is_dir()  # it did read from ArrayRecord files
    _assert_same_state(uninterrupted[0], workdir, 240)


@pytest.fixture(scope="module")
def bucket():
    """A local Cloud Storage server with an empty bucket; its settings are set in this
    process (to read the checkpoints back) and returned for the CLI subprocesses."""
    with fake_gcs.serving(BUCKET) as env, pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        yield env


@pytest.mark.slow
def test_gcs_workdir_trains_resumes_after_sigkill_and_evaluates(uninterrupted, bucket, tmp_path):
    """Every file of a run goes to the bucket (through epath, TensorStore and the
    TensorBoard writer) and the killed run resumes bit-identically from there."""
    workdir = f"gs://{BUCKET}/runs/cnn"
    proc = _start(workdir, env=bucket)
    step = _wait_for_checkpoint(proc, workdir)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < step < 240
    resumed_at = checkpoint_steps(workdir)[-1]
    proc = run_cli("main", *ARGS, f"--workdir={workdir}", env=bucket)
    assert f"Resumed from checkpoint {resumed_at} " in proc.stderr
    _assert_same_state(uninterrupted[0], workdir, 240)
    final = last_json_line(proc.stdout)
    assert final["confusion_matrix"] == uninterrupted[1]["confusion_matrix"]

    run = epath.Path(workdir)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train/loss" in r][-1] == 240
    assert {r["step"] for r in rows if "train/loss" in r} >= {40, resumed_at + 40}
    assert json.loads((run / "eval" / "step_240.json").read_text())["step"] == 240
    assert json.loads((run / "config.json").read_text())["total_steps"] == 240
    events = list((run / "tensorboard").iterdir())
    assert events and all(e.name.startswith("events.out.tfevents") for e in events)
    assert not os.path.exists(os.path.join(REPO, "gs:"))  # nothing went to a local "gs:" folder

    evaluated = last_json_line(run_cli("evaluate", f"--workdir={workdir}", env=bucket).stdout)
    assert evaluated["step"] == 240
    assert evaluated["confusion_matrix"] == uninterrupted[1]["confusion_matrix"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])  # preemption, Ctrl-C
def test_sigterm_saves_and_exits_cleanly_then_resumes(uninterrupted, tmp_path, sig):
    workdir = str(tmp_path / "preempted")
    proc = _start(workdir)
    _wait_for_checkpoint(proc, workdir)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_PREEMPTED, err[-3000:]  # distinct: schedulers requeue it
    stopped = last_json_line(out)["preempted_at_step"]
    assert stopped in checkpoint_steps(workdir) and stopped < 240
    run_cli("main", *ARGS, f"--workdir={workdir}")
    _assert_same_state(uninterrupted[0], workdir, 240)


def test_changed_config_on_an_existing_run_is_refused(tmp_path):
    workdir = str(tmp_path / "run")
    run_cli("main", "--config=configs/digits_cnn.py:runlocal", f"--workdir={workdir}")
    with open(os.path.join(workdir, "config.json")) as f:
        saved = f.read()
    proc = run_cli("main", "--config=configs/digits_cnn.py:runlocal", f"--workdir={workdir}",
                   "--config.optim.learning_rate=0.5", check=False)
    assert proc.returncode == 1 and "optim.learning_rate" in proc.stderr
    with open(os.path.join(workdir, "config.json")) as f:
        assert f.read() == saved  # nothing the user saved is overwritten
    # Extending a finished run is allowed: it resumes and trains the extra steps.
    proc = run_cli("main", "--config=configs/digits_cnn.py:runlocal", f"--workdir={workdir}",
                   "--config.total_steps=30")
    assert last_json_line(proc.stdout)["step"] == 30
    assert os.path.exists(os.path.join(workdir, "config_history.jsonl"))
