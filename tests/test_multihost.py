"""Two processes (jax.distributed on localhost, 2 fake CPU devices each) form one
4-device mesh, each reading its rows of every global batch, and train exactly like
one process with 4 devices."""

import os
import socket
import subprocess
import sys

import pytest

from conftest import REPO, checkpoint_steps, cli_env, last_json_line, run_cli

ARGS = ["--config=configs/digits_cnn.py:runlocal", "--config.model.dropout_rate=0.0"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_like_one(tmp_path):
    workdir = str(tmp_path / "two")
    port = _free_port()
    procs = [subprocess.Popen(
        [sys.executable, "-m", "bigjax.main", *ARGS, f"--workdir={workdir}",
         f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={i}"],
        cwd=REPO, env=cli_env(devices=2), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True) for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    finals = [last_json_line(out) for out, _ in outs]
    assert finals[0] == finals[1]
    assert "'data': 4" in outs[0][1]
    single = last_json_line(run_cli("main", *ARGS, f"--workdir={tmp_path / 'one'}",
                                    devices=4).stdout)
    assert finals[0]["confusion_matrix"] == single["confusion_matrix"]
    assert finals[0]["loss"] == pytest.approx(single["loss"], rel=1e-4)
    assert checkpoint_steps(workdir)[-1] == 20
    assert os.path.exists(os.path.join(workdir, "metrics.jsonl"))
