"""scripts/launch_tpu.sh and scripts/launch_slurm.sh: --print shows the commands; without
it they run exactly those (checked with stand-ins for gcloud and srun on PATH)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess

from conftest import REPO

TRICKY = "--config.optim.decay_exclude=^(?!x).*(bias|scale)$ it's"  # quotes, spaces, $


def run(script: str, *args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if path:
        env["PATH"] = f"{path}:{env['PATH']}"
    return subprocess.run(["bash", os.path.join(REPO, "scripts", script), *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=60)


def bigjax_args(shell_text: str) -> list[str]:
    """The argv of the `python -m bigjax.main ...` part of a shell command string."""
    return shlex.split(shell_text[shell_text.index("python -m bigjax.main"):])


def recording_stand_in(folder, name: str) -> str:
    """An executable `name` in `folder` that appends its argv (one JSON list) to a log."""
    log = folder / f"{name}.log"
    script = folder / name
    script.write_text(f'#!/usr/bin/env python3\nimport json, sys\n'
                      f'open({str(log)!r}, "a").write(json.dumps(sys.argv[1:]) + "\\n")\n')
    script.chmod(0o755)
    return str(log)


def test_tpu_print_and_run(tmp_path):
    args = ["--tpu=pod", "--zone=us-central2-b", "--config=configs/mnist_cnn.py",
            "--workdir=/shared/runs/a", "--", "--config.seed=3", TRICKY]
    printed = run("launch_tpu.sh", "--print", *args)
    assert printed.returncode == 0, printed.stderr
    archive, scp, ssh = printed.stdout.strip().splitlines()
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.strip()
    assert shlex.split(archive)[-1] == "HEAD" and f"bigjax-{commit}.tar.gz" in archive
    assert shlex.split(scp)[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "scp",
                                    f"/tmp/bigjax-{commit}.tar.gz"]
    ssh_argv = shlex.split(ssh)
    assert ssh_argv[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "pod"]
    assert "--worker=all" in ssh_argv and "--zone=us-central2-b" in ssh_argv
    remote = next(a for a in ssh_argv if a.startswith("--command="))
    assert "pip install -q -e '.[tpu,gcs]'" in remote
    assert bigjax_args(remote) == ["python", "-m", "bigjax.main", "--distributed",
                                   "--config=configs/mnist_cnn.py",
                                   "--workdir=/shared/runs/a", "--config.seed=3", TRICKY]

    # Without --print: the same commands run (gcloud is a stand-in; git archive is real).
    log = recording_stand_in(tmp_path, "gcloud")
    ran = run("launch_tpu.sh", *args, path=str(tmp_path))
    assert ran.returncode == 0, ran.stderr
    calls = [json.loads(line) for line in open(log)]
    assert calls == [shlex.split(scp)[1:], ssh_argv[1:]]
    assert os.path.getsize(f"/tmp/bigjax-{commit}.tar.gz") > 0
    os.remove(f"/tmp/bigjax-{commit}.tar.gz")


def test_slurm_print_and_run(tmp_path):
    args = ["--nodes=2", "--gpus_per_node=4", "--config=configs/mnist_cnn.py",
            "--workdir=/shared/runs/b", "--setup=source ~/venv/bin/activate", "--",
            TRICKY]
    printed = run("launch_slurm.sh", "--print", *args)
    assert printed.returncode == 0, printed.stderr
    argv = shlex.split(printed.stdout.strip())
    assert argv[0] == "srun" and "--nodes=2" in argv and "--ntasks-per-node=4" in argv
    assert "--gpus-per-task=1" in argv and argv[-3:-1] == ["bash", "-c"]
    assert argv[-1].startswith("source ~/venv/bin/activate && ")
    assert bigjax_args(argv[-1]) == ["python", "-m", "bigjax.main", "--distributed",
                                     "--config=configs/mnist_cnn.py",
                                     "--workdir=/shared/runs/b", TRICKY]
    per_node = shlex.split(run("launch_slurm.sh", "--print", "--per_node", *args).stdout)
    assert "--ntasks-per-node=1" in per_node and "--gpus-per-node=4" in per_node

    log = recording_stand_in(tmp_path, "srun")
    ran = run("launch_slurm.sh", *args, path=str(tmp_path))
    assert ran.returncode == 0, ran.stderr
    assert json.loads(open(log).read()) == argv[1:]


def test_missing_or_bad_arguments_are_one_clear_error():
    missing = run("launch_tpu.sh", "--zone=z", "--config=c.py", "--workdir=w")
    assert missing.returncode == 2 and "error: --tpu is required." in missing.stderr
    bad = run("launch_slurm.sh", "--nodes=two", "--gpus_per_node=8", "--config=c.py",
              "--workdir=w")
    assert bad.returncode == 2 and "--nodes=two must be a positive integer" in bad.stderr
    unknown = run("launch_slurm.sh", "--config.seed=1")
    assert unknown.returncode == 2 and "overrides go after --" in unknown.stderr
