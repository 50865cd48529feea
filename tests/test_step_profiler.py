"""`config.profile_steps` traces exactly the asked steps into the workdir (a trace that
TensorBoard and Perfetto open), and `profile_memory` saves a device memory profile."""

import glob
import gzip
import json
import os

import pytest

from bigjax import config_cli
from bigjax.step_profiler import StepProfiler
from bigjax.train import train_and_evaluate

from conftest import REPO


def _train(workdir, *overrides):
    config = config_cli.load_config_file(os.path.join(REPO, "configs", "digits_cnn.py:runlocal"))
    config = config_cli.apply_overrides(config, [("total_steps", "8"), *overrides])
    train_and_evaluate(config, str(workdir))


def _step_calls(workdir) -> int:
    """How many train-step calls the Perfetto trace holds: the outermost
    `PjitFunction(one_step)` (or `scanned_steps`: several steps per call) spans (jax
    nests one inside another per call)."""
    (path,) = glob.glob(os.path.join(workdir, "tensorboard", "plugins", "profile", "*",
                                     "perfetto_trace.json.gz"))
    with gzip.open(path) as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    spans = sorted((e["ts"], e["ts"] + e.get("dur", 0)) for e in events
                   if e.get("ph") == "X" and e.get("name") in ("PjitFunction(one_step)",
                                                        "PjitFunction(scanned_steps)"))
    outer, end = 0, -1.0
    for start, stop in spans:
        if start >= end:  # not inside the previous outer span
            outer, end = outer + 1, stop
    return outer


@pytest.mark.parametrize("steps, per_call, calls", [("3,5", "1", 3), ("3,5", "4", 2)])
def test_the_trace_holds_the_asked_steps(tmp_path, steps, per_call, calls):
    _train(tmp_path, ("profile_steps", steps), ("steps_per_call", per_call),
           ("profile_memory", "true"))
    assert glob.glob(os.path.join(tmp_path, "tensorboard", "plugins", "profile", "*",
                                  "*.xplane.pb"))
    assert _step_calls(tmp_path) == calls  # steps 3-5: 3 calls, or the calls of 1-4 and 5-8
    (memory,) = glob.glob(os.path.join(tmp_path, "profile", "memory_step_*.prof"))
    assert os.path.getsize(memory) > 0


def test_no_trace_without_profile_steps(tmp_path):
    _train(tmp_path)
    assert not os.path.exists(os.path.join(tmp_path, "tensorboard", "plugins"))
    assert not os.path.exists(os.path.join(tmp_path, "profile"))


@pytest.mark.parametrize("steps", [(5, 3), (0, 2), (4,)])
def test_bad_profile_steps_are_refused(steps, tmp_path):
    with pytest.raises(ValueError, match="profile_steps"):
        StepProfiler(steps, False, str(tmp_path))


def test_a_trace_past_the_last_step_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="ends after the run's 8 steps"):
        _train(tmp_path / "run", ("profile_steps", "6,9"))
    assert not os.path.exists(tmp_path / "run")  # refused before the workdir was made
