"""scripts/bad_input_catalogue.py --quick: each bad input whose message no in-process
test checks, through the CLI, ends in one `error:` line without a traceback and leaves
the user's workdir as it was (15 of the 29 cases, two at a time; the full catalogue is
run by hand for experiments/reliability)."""

import json
import os
import subprocess
import sys

from conftest import REPO, cli_env


def test_every_case_is_one_clear_error_and_keeps_the_workdir():
    proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "bad_input_catalogue.py"),
                           "--quick"],
                          cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=900)
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0 and summary["failed"] == [], proc.stdout[-4000:]
    assert summary["cases"] == 15
    assert "| input | exit | message shown | what was kept |" in proc.stdout
    assert "workdir unchanged (byte for byte)" in proc.stdout  # cases on a saved run
