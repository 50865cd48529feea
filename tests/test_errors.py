"""Bad input fails with one clear message (CLI level)."""

import glob
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np

from conftest import REPO, checkpoint_steps, last_json_line, read_state, run_cli


def _sgd_run(workdir: str, learning_rate: str, *extra: str):
    """digits runlocal with plain SGD at a constant (or warmed-up) rate, a checkpoint every
    step; returns the finished process (not checked)."""
    return run_cli("main", "--config=configs/digits_cnn.py:runlocal", f"--workdir={workdir}",
                   "--config.optim.name=sgd", "--config.optim.schedule=constant",
                   f"--config.optim.learning_rate={learning_rate}",
                   "--config.checkpoint.every_steps=1", *extra, check=False)


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    workdir = str(tmp_path / "nan")
    proc = _sgd_run(workdir, "1e12", "--config.optim.warmup_steps=0")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    line = [x for x in proc.stderr.splitlines() if x.startswith("error: Loss is")][0]
    bad_step = int(line.split(" at step ")[1].split(";")[0])
    steps = checkpoint_steps(workdir)
    assert steps and max(steps) < bad_step
    for leaf in jax.tree.leaves(read_state(workdir, max(steps))["params"]):
        assert np.isfinite(leaf).all()


def test_batch_not_divisible_by_devices_is_clear(tmp_path):
    proc = run_cli("main", "--config=configs/digits_cnn.py:runlocal", f"--workdir={tmp_path}",
                   "--config.batch_size=60", devices=8, check=False)
    assert proc.returncode == 1 and "must be a multiple of the 8 devices" in proc.stderr


def test_missing_data_file_fails_fast(tmp_path):
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    proc = run_cli("main", "--config=configs/mnist_mlp.py:runlocal", f"--workdir={tmp_path}/w",
                   f"--config.data.data_dir={tmp_path}/data", check=False, timeout=60)
    assert proc.returncode == 1 and "train-images-idx3-ubyte.gz is missing" in proc.stderr


def test_params_that_overflow_are_never_saved(tmp_path):
    # A learning rate beyond float32's range: the first loss and gradient are finite, the
    # updated params are not. The old check (loss and gradient only) saved them.
    workdir = str(tmp_path / "inf")
    proc = _sgd_run(workdir, "1e39", "--config.optim.warmup_steps=0",
                    "--config.optim.momentum=0.0")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "error: The params became NaN or Inf at step 1; stopping without saving it. " \
           "No good checkpoint was saved." in proc.stderr
    assert checkpoint_steps(workdir) == []


def test_keep_zero_is_refused_and_deletes_nothing(tmp_path):
    workdir = str(tmp_path / "run")
    run_cli("main", "--config=configs/digits_cnn.py:runlocal", f"--workdir={workdir}")
    before = checkpoint_steps(workdir)
    assert before == [10, 20]
    for keep in ("0", "-1"):  # on resume of a finished run: it would delete every checkpoint
        proc = run_cli("main", "--config=configs/digits_cnn.py:runlocal", f"--workdir={workdir}",
                       f"--config.checkpoint.keep={keep}", "--config.total_steps=30",
                       check=False)
        assert proc.returncode == 2  # refused with the config, before anything is opened
        assert f"error: config.checkpoint.keep={keep} must be int >= 1 | None" in proc.stderr
        assert checkpoint_steps(workdir) == before


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    workdir = str(tmp_path / "run")
    run_cli("main", "--config=configs/digits_cnn.py:runlocal", f"--workdir={workdir}")
    # OCDBT keeps the array data in `d/` folders (per process, and merged at the top).
    data_files = glob.glob(os.path.join(workdir, "checkpoints", "20", "state", "**", "d", "*"),
                           recursive=True)
    assert data_files
    for path in data_files:  # a copy cut short, as by a full disk
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    evaluated = run_cli("evaluate", f"--workdir={workdir}")
    assert "Checkpoint 20 in" in evaluated.stderr and "cannot be restored" in evaluated.stderr
    assert "Evaluating checkpoint 10 instead of 20" in evaluated.stderr
    assert "--step=N" in evaluated.stderr
    assert last_json_line(evaluated.stdout)["step"] == 10
    resumed = run_cli("main", "--config=configs/digits_cnn.py:runlocal", f"--workdir={workdir}",
                      "--config.total_steps=30")
    assert "RESUMING FROM CHECKPOINT 10, not the newest (20)" in resumed.stderr
    assert last_json_line(resumed.stdout)["step"] == 30
    assert checkpoint_steps(workdir) == [10, 20, 30]  # nothing deleted
    chosen = run_cli("main", "--config=configs/digits_cnn.py:runlocal", f"--workdir={workdir}",
                     "--config.total_steps=30", "--step=10")
    assert "Resumed from checkpoint 10 " in chosen.stderr


def test_config_json_is_written_only_once_the_checkpoint_fits(tmp_path):
    workdir = str(tmp_path / "run")
    run_cli("main", "--config=configs/digits_cnn.py:runlocal", f"--workdir={workdir}")
    os.remove(os.path.join(workdir, "config.json"))  # lost: the change cannot be refused
    proc = run_cli("main", "--config=configs/digits_cnn.py:runlocal", f"--workdir={workdir}",
                   "--config.model.dense=(64,)", "--config.total_steps=30", check=False)
    assert proc.returncode == 1
    # One line says why (TensorStore's leftover reads may still print "Event loop is
    # closed" while the process exits: see the issue-14 note).
    assert "error: No checkpoint in " in proc.stderr and "can be restored into this model " \
           "(step 20: it holds another model: an array is" in proc.stderr
    assert not os.path.exists(os.path.join(workdir, "config.json"))  # the wrong one not kept
    assert checkpoint_steps(workdir) == [10, 20]
    proc = run_cli("main", "--config=configs/digits_cnn.py:runlocal", f"--workdir={workdir}",
                   "--config.total_steps=30")  # the right config still resumes
    assert "Resumed from checkpoint 20 " in proc.stderr


def test_a_diverging_loss_stops_the_run_and_names_a_checkpoint_it_vouches_for(tmp_path):
    # The learning rate ramps up to 30 over 10 steps: the loss explodes (finite) at step 4.
    workdir = str(tmp_path / "diverge")
    proc = _sgd_run(workdir, "30", "--config.optim.warmup_steps=10",
                    "--config.optim.momentum=0.0", "--config.divergence_factor=10")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    line = [x for x in proc.stderr.splitlines() if x.startswith("error: Loss")][0]
    bad = int(line.split(" at step ")[1].split(" ")[0])
    assert "is over config.divergence_factor=10.0 times the lowest so far" in line
    # Checkpoint bad - 1 holds the params that gave the bad loss: it is not named good.
    assert max(checkpoint_steps(workdir)) == bad - 1
    assert f"The newest good checkpoint is {bad - 2} (rerun with --step={bad - 2})" in line


def test_the_error_line_stays_last_when_the_failed_run_leaves_a_pending_coroutine():
    """A coroutine that was never awaited, left by a failed restore, printed its warning
    after the `error:` line once (two test workers, under load) when the collector freed
    it at exit. `print_error` collects first, quietly."""
    code = textwrap.dedent("""
        import gc, sys
        from bigjax.main import print_error
        async def pending():
            pass
        class Holder:
            pass
        gc.disable()  # no collection between the failure and the error line
        h = Holder(); h.me = h; h.coro = pending(); del h  # freed only by the collector
        if sys.argv[1] == "plain":
            print("error: boom", file=sys.stderr)
        else:
            print_error(ValueError("boom"))
    """)
    env = {**os.environ, "PYTHONPATH": REPO}
    env.pop("BIGJAX_TRACEBACK", None)
    lines = {}
    for how in ("plain", "print_error"):
        proc = subprocess.run([sys.executable, "-c", code, how], capture_output=True,
                              text=True, env=env, timeout=120)
        lines[how] = proc.stderr.strip().splitlines()
    assert lines["plain"][0] == "error: boom" and "never awaited" in lines["plain"][-1]
    assert lines["print_error"] == ["error: boom"]
