"""scripts/profile_step.py --smoke: the digits CNN's step is traced and its op time mapped to
source ops: the convolutions (matmul kind, a large share), dropout and softmax are found."""

import json
import os
import subprocess
import sys

from conftest import REPO, cli_env


def test_smoke_profile_maps_op_time_to_kinds(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "profile_step.py"),
                           "--smoke", f"--trace_dir={tmp_path}", "--top=2"], cwd=REPO,
                          env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["step_s"] > 0 and result["batch_size"] == 64
    op_ms = result["op_ms"]
    # The CNN's convolutions, its dropout and the loss's max are found by their source.
    assert op_ms["matmul"] > 0.25 * sum(op_ms.values())
    assert op_ms["dropout"] > 0 and op_ms["softmax"] > 0
    assert "| kind | op time (ms) | share | largest source op |" in proc.stdout
    top = proc.stdout.split("| kind | source op | op time (ms) |")[1]  # --top=2
    assert top.count("| matmul | ") == 2 and "conv_general" in top
    assert list(tmp_path.glob("**/*.trace.json.gz"))  # the trace is kept for TensorBoard
