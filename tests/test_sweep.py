"""Sweep points from a config's get_sweep: products, names, seeds and folds (in-process)."""

import pytest

from bigjax import config_cli, sweep_points
from bigjax.sweep_points import axis, expand, point_name, product, zipped

from conftest import REPO

DIGITS = f"{REPO}/configs/digits_cnn.py:runlocal"


def test_product_and_zip_build_points_like_get_hyper():
    lr = axis("optim.learning_rate", [1e-3, 3e-3])
    width = axis("model.conv_features", [(16,), (32,)])
    assert product(lr, width) == [
        {"optim.learning_rate": 1e-3, "model.conv_features": (16,)},
        {"optim.learning_rate": 1e-3, "model.conv_features": (32,)},
        {"optim.learning_rate": 3e-3, "model.conv_features": (16,)},
        {"optim.learning_rate": 3e-3, "model.conv_features": (32,)}]
    assert zipped(lr, width) == [
        {"optim.learning_rate": 1e-3, "model.conv_features": (16,)},
        {"optim.learning_rate": 3e-3, "model.conv_features": (32,)}]
    with pytest.raises(ValueError, match="different lengths"):
        zipped(lr, axis("seed", [0, 1, 2]))


def test_names_are_short_unique_and_parse_back():
    keys = ["optim.learning_rate", "model.name", "data.name"]
    assert point_name({"optim.learning_rate": 0.001}, keys) == "learning_rate=0.001"
    # "name" is ambiguous among the swept keys: the whole key is used.
    assert point_name({"model.name": "mlp", "data.name": "digits"}, keys) == \
        "model.name=mlp,data.name=digits"
    assert point_name({"model.conv_features": (16, 32)}, ["model.conv_features"]) == \
        "conv_features=16-32"
    assert point_name({}, []) == "default"
    config = config_cli.load_config_file(DIGITS)
    for key, value in [("optim.learning_rate", 0.003), ("model.conv_features", (16, 32)),
                       ("optim.nesterov", True), ("model.padding", "VALID"),
                       ("model.norm", None), ("total_steps", 7)]:
        text = sweep_points.override_text(value)
        got = config_cli.apply_overrides(config, [(key, text)])
        for part in key.split("."):
            got = got[part]
        assert got == value and type(got) is type(value), (key, text, got)


def test_seeds_and_folds_multiply_the_runs():
    points = product(axis("optim.learning_rate", [1e-3, 3e-3]))
    runs = expand(points, seeds=3, cv_folds=2)
    assert len(runs) == 12 and len({r.name for r in runs}) == 12
    first = runs[0]
    assert first.name == "learning_rate=0.001,seed=0,fold=0"
    assert dict(first.args) == {"optim.learning_rate": "0.001", "seed": "0",
                                "data.cv_folds": "2", "data.cv_fold": "0",
                                "data.eval_split": "cv_holdout"}
    assert {r.point for r in runs} == {"learning_rate=0.001", "learning_rate=0.003"}
    plain = expand(points)
    assert [r.name for r in plain] == ["learning_rate=0.001", "learning_rate=0.003"]
    assert all(r.seed is None and r.fold is None for r in plain)
    with pytest.raises(config_cli.ConfigError, match="same point twice"):
        expand(points + points)
    with pytest.raises(config_cli.ConfigError, match=r"sets \['seed'\], which --seeds"):
        expand(product(axis("seed", [0, 1])), seeds=2)


def test_a_bad_point_is_refused_before_anything_runs():
    with pytest.raises(config_cli.ConfigError, match=r"sweep point 1 .*Unknown config key"):
        sweep_points.check_points([{"optim.learning_rate": 1e-3}, {"optim.lr": 1e-3}],
                                  DIGITS, [])
    with pytest.raises(config_cli.ConfigError, match="non-empty list of dicts"):
        sweep_points.check_points([], DIGITS, [])
    with pytest.raises(config_cli.ConfigError, match="defines no get_sweep"):
        config_cli.load_sweep(f"{REPO}/configs/mnist_mlp.py")


def test_the_digits_config_defines_a_2x2_sweep():
    points = sweep_points.check_points(config_cli.load_sweep(DIGITS), DIGITS, [])
    assert len(points) == 4 and {len(p) for p in points} == {2}


def test_parallel_runs_split_the_gpus_between_them():
    from bigjax.sweep_runner import gpu_groups

    assert gpu_groups(4, "0,1,2,3,4,5,6,7") == [
        {"CUDA_VISIBLE_DEVICES": "0,1"}, {"CUDA_VISIBLE_DEVICES": "2,3"},
        {"CUDA_VISIBLE_DEVICES": "4,5"}, {"CUDA_VISIBLE_DEVICES": "6,7"}]
    assert gpu_groups(2, "3,5") == [{"CUDA_VISIBLE_DEVICES": "3"},
                                    {"CUDA_VISIBLE_DEVICES": "5"}]
    with pytest.raises(ValueError, match="must divide the 3 GPUs"):
        gpu_groups(2, "0,1,2")
    assert gpu_groups(2, "") is None  # hidden on purpose: no split


def test_a_run_another_live_process_trains_is_skipped(tmp_path):
    import os
    import socket
    import subprocess
    import time

    from bigjax import sweep_runner

    (run,) = expand([{"optim.learning_rate": 1e-3}])
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / f"{run.name}.lock").write_text(f"{socket.gethostname()} {os.getpid()}")
    said = []
    results = sweep_runner.run_all([run], str(tmp_path), DIGITS, [], say=said.append)
    assert results[run.name] is None and "skipped" in said[-1]
    assert not (logs / f"{run.name}.log").exists()  # nothing was started
    # A lock whose process has ended is stale, also while it is a zombie (killed with the
    # sweep, not yet reaped): the rerun of a killed sweep takes the run over.
    (logs / f"{run.name}.lock").write_text(f"{socket.gethostname()} 999999999")
    assert sweep_runner.running_in(logs / f"{run.name}.lock") is None
    child = subprocess.Popen(["sleep", "0.05"])
    time.sleep(0.5)  # ended, not waited for: a zombie
    (logs / f"{run.name}.lock").write_text(f"{socket.gethostname()} {child.pid}")
    assert sweep_runner.running_in(logs / f"{run.name}.lock") is None
    child.wait()
    # A lock written before a reboot, or for a pid reused since, names a live process
    # that started at another time (or boot): stale too. The same start: still running.
    started = sweep_runner._started(os.getpid())
    if started is not None:  # Linux's /proc
        lock = logs / f"{run.name}.lock"
        lock.write_text(f"{socket.gethostname()} {os.getpid()} {started}")
        assert sweep_runner.running_in(lock) == f"process {os.getpid()} on {socket.gethostname()}"
        lock.write_text(f"{socket.gethostname()} {os.getpid()} another-boot:1")
        assert sweep_runner.running_in(lock) is None
