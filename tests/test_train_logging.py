"""Logged train rows average every step since the previous row, whatever checkpoints and
evals happen in between."""

import json
import os
import time

import numpy as np

from bigjax import config_cli, model_flops
from bigjax.experiment import build_experiment
from bigjax.train import train_and_evaluate

from conftest import REPO


def _train_losses(workdir, *overrides) -> dict[int, float]:
    config = config_cli.load_config_file(os.path.join(REPO, "configs", "digits_cnn.py:runlocal"))
    config = config_cli.apply_overrides(config, [("total_steps", "8"), *overrides])
    train_and_evaluate(config, str(workdir))
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}


def test_rows_average_every_step_since_the_last_row(tmp_path):
    every = _train_losses(tmp_path / "a", ("log_every_steps", "1"))
    four = _train_losses(tmp_path / "b", ("log_every_steps", "4"),
                         ("checkpoint.every_steps", "3"), ("eval_every_steps", "2"))
    assert sorted(four) == [4, 8]
    np.testing.assert_allclose(four[4], np.mean([every[s] for s in (1, 2, 3, 4)]), rtol=1e-6)
    np.testing.assert_allclose(four[8], np.mean([every[s] for s in (5, 6, 7, 8)]), rtol=1e-6)


def test_several_steps_per_call_train_the_same_steps(tmp_path):
    one = _train_losses(tmp_path / "one", ("log_every_steps", "1"))
    four = _train_losses(tmp_path / "four", ("log_every_steps", "1"), ("steps_per_call", "4"))
    assert sorted(four) == [4, 8]  # a row per call: the mean of its 4 steps
    for end in (4, 8):
        np.testing.assert_allclose(four[end], np.mean([one[s] for s in range(end - 3, end + 1)]),
                                   rtol=1e-5)


def _wait_fractions(workdir, monkeypatch=None, delay: float = 0.0, *overrides) -> list[float]:
    if delay:
        from bigjax.input_pipeline import TrainBatches

        plain = TrainBatches.iterate

        def slow(self, *args, **kwargs):
            for batch in plain(self, *args, **kwargs):
                time.sleep(delay)  # a reader that cannot keep up with the step
                yield batch

        monkeypatch.setattr(TrainBatches, "iterate", slow)
    config = config_cli.load_config_file(os.path.join(REPO, "configs", "digits_cnn.py:runlocal"))
    config = config_cli.apply_overrides(config, [("total_steps", "12"), ("log_every_steps", "4"),
                                                 ("eval_every_steps", "0"), *overrides])
    train_and_evaluate(config, str(workdir))
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return [r["perf/data_wait_fraction"] for r in rows if "train/loss" in r]


def test_the_input_wait_fraction_shows_a_slow_input_pipeline(tmp_path, monkeypatch):
    normal = _wait_fractions(tmp_path / "normal")
    starved = _wait_fractions(tmp_path / "starved", monkeypatch, delay=0.2)
    assert len(normal) == len(starved) == 3
    assert all(0.0 <= f <= 1.0 for f in normal)
    # 0.2 s per batch dwarfs the digits CNN's step (a few ms): the loop mostly waits.
    assert min(starved[1:]) > 0.8 and max(normal[1:]) < min(starved[1:])


def test_a_wait_while_the_devices_still_compute_is_not_counted(tmp_path, monkeypatch):
    """Dispatch is asynchronous: a reader slower than the loop but faster than the step
    costs the devices nothing, and the fraction says so. Only the waits right after the
    loop synchronised (to log) leave the devices idle."""
    wide = (("model.conv_features", "(256,256)"), ("log_every_steps", "8"))

    def rates(workdir) -> list[float]:
        with open(workdir / "metrics.jsonl") as f:
            return [json.loads(line)["train/steps_per_sec"] for line in f
                    if "train/loss" in line]

    # The reader's delay is a third of this machine's fastest step (measured without one,
    # over 4 log intervals), so the loop waits about a third of the time whatever the CPU,
    # less when the other test worker slows the step down, and the devices never do.
    _wait_fractions(tmp_path / "plain", None, 0.0, ("total_steps", "40"), *wide)
    delay = 0.3 / max(rates(tmp_path / "plain")[1:])
    fractions = _wait_fractions(tmp_path / "busy", monkeypatch, delay, ("total_steps", "24"),
                                *wide)
    for fraction, steps_per_sec in list(zip(fractions, rates(tmp_path / "busy"),
                                            strict=True))[1:]:
        loop_wait = delay * steps_per_sec  # the share of the time the loop waited
        assert loop_wait > 0.05, (delay, steps_per_sec)  # a reader slower than the loop
        assert fraction < 0.5 * loop_wait, (fractions, delay, steps_per_sec)


def test_a_cnn_run_logs_examples_per_second_and_mfu(tmp_path):
    """MFU for a family no other JAX codebase reports it for: the digits CNN's rows carry
    perf/examples_per_sec = steps/s x batch, the analytic FLOP/s and its share of peak."""
    config = config_cli.load_config_file(os.path.join(REPO, "configs", "digits_cnn.py:runlocal"))
    config = config_cli.apply_overrides(config, [("total_steps", "8"), ("log_every_steps", "4"),
                                                 ("peak_flops_per_device", "1e12")])
    train_and_evaluate(config, str(tmp_path))
    exp = build_experiment(config)
    per_example = model_flops.train_flops_per_example(exp, exp.sample(exp.train_batches.data))
    per_example = per_example["flops"]
    with open(os.path.join(tmp_path, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f if "perf/mfu" in line]
    assert len(rows) == 2
    for row in rows:
        rate = row["train/steps_per_sec"]
        np.testing.assert_allclose(row["perf/examples_per_sec"], rate * config.batch_size)
        assert "perf/tokens_per_sec" not in row  # images: no tokens
        # FLOP/s = steps/s x (the model's training FLOPs per example x batch), over the
        # configured 1 TFLOP/s peak.
        np.testing.assert_allclose(row["perf/tflops_per_sec_per_device"] * 1e12,
                                   rate * per_example * config.batch_size, rtol=1e-6)
        np.testing.assert_allclose(row["perf/mfu"], rate * per_example * config.batch_size
                                   / 1e12, rtol=1e-6)


def test_a_model_whose_flops_cannot_be_counted_still_trains(tmp_path, monkeypatch, caplog):
    def broken(*args):
        raise NotImplementedError("a primitive the counter does not know")

    monkeypatch.setattr(model_flops, "train_flops_per_example", broken)
    config = config_cli.load_config_file(os.path.join(REPO, "configs", "digits_cnn.py:runlocal"))
    config = config_cli.apply_overrides(config, [("total_steps", "4"), ("log_every_steps", "2")])
    with caplog.at_level("WARNING", logger="bigjax"):
        train_and_evaluate(config, str(tmp_path))
    assert "No analytic FLOP count" in caplog.text
    with open(os.path.join(tmp_path, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    logged = [r for r in rows if "train/loss" in r]
    assert logged and not any("perf/mfu" in r for r in rows)
    assert all(r["perf/examples_per_sec"] > 0 for r in logged)  # needs no FLOP count
