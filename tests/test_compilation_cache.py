"""The persistent compilation cache: where it goes, and a restarted run loads its train
step from it instead of compiling it again."""

from __future__ import annotations

import os
import subprocess
import sys

from bigjax import compilation_cache

from conftest import REPO, cli_env


def test_location_rules(monkeypatch, tmp_path):
    monkeypatch.setenv("BIGJAX_CACHE_DIR", str(tmp_path))
    assert compilation_cache.location("auto", "gs://bucket/runs/a") == f"{tmp_path}/xla"
    assert compilation_cache.location("", "runs/a") is None  # off
    assert compilation_cache.location("/my/cache", "gs://b/r") == "/my/cache"
    monkeypatch.delenv("BIGJAX_CACHE_DIR")
    # A remote workdir outlives its VM: the cache goes beside it, in the same bucket.
    assert compilation_cache.location("auto", "gs://bucket/runs/a/") == \
        "gs://bucket/runs/.compilation_cache"
    assert compilation_cache.location("auto", "runs/a") == os.path.join(
        os.path.expanduser("~"), ".cache", "bigjax", "xla")


def test_a_restarted_run_loads_its_train_step_from_the_cache(tmp_path):
    # JAX caches only programs that took >= 1 s to compile; the digits CNN takes less.
    env = cli_env(BIGJAX_CACHE_DIR=str(tmp_path / "cache"),
                  JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")

    def train(name: str, *flags: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "bigjax.main", "--config=configs/digits_cnn.py:runlocal",
             f"--workdir={tmp_path / name}", *flags], cwd=REPO, env=env, capture_output=True,
            text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stderr

    folder = tmp_path / "cache" / "xla"
    assert f"compiled and written to the compilation cache {folder}" in train("first")
    assert len(os.listdir(folder)) > 0
    assert f"loaded from the compilation cache {folder}" in train("second")
    assert "compilation cache off" in train("off", "--config.compilation_cache_dir=")
