"""scripts/record.py: a record is made and regenerated from its record.json (`--smoke`:
two runlocal runs, a table between the markers, plots copied), every record in
experiments/ follows the convention, and a record that does not is told what to fix."""

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO, cli_env

SCRIPT = os.path.join(REPO, "scripts", "record.py")
_spec = importlib.util.spec_from_file_location("record_script", SCRIPT)
record = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(record)

README = """# R

## Question
Q?

## Reproduce
    python scripts/record.py experiments/r

## Results
<!-- record:a -->
old table
<!-- /record:a -->
![curves](a_curves.png)

## Conclusion
C.
"""


def test_smoke_makes_a_record_from_its_runs():
    done = subprocess.run([sys.executable, SCRIPT, "--smoke"], cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "group 'lr': table and 2 plots updated." in out
    table = out.split("<!-- record:lr -->")[1].split("<!-- /record:lr -->")[0]
    rows = [line for line in table.splitlines() if line.startswith("| 0.00")]
    assert [r.split(" | ")[0] for r in rows] == ["| 0.001", "| 0.003"]
    assert all(" 1/1 " in r for r in rows)


def test_every_record_in_experiments_follows_the_convention():
    problems = record.check_all(os.path.join(REPO, "experiments"))
    assert problems == []


def _record(tmp_path, readme=README, groups=None):
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "README.md").write_text(readme)
    (folder / "a_curves.png").write_bytes(b"png")
    spec = {"groups": groups if groups is not None else
            {"a": {"config": "configs/digits_cnn.py:runlocal"}}}
    (folder / "record.json").write_text(json.dumps(spec))
    return str(folder)


def test_a_good_record_passes(tmp_path):
    assert record.check_all(_record(tmp_path)) == []


@pytest.mark.parametrize("readme, groups, message", [
    (README.replace("## Conclusion", "## Summary"), None, r"lacks the sections \['Conclusion'\]"),
    (README.replace("<!-- /record:a -->", ""), None, "lacks the markers"),
    (README.replace("a_curves.png", "missing.png"), None, "links missing.png"),
    (README, {"a": {"config": "configs/nope.py"}}, "does not exist"),
    (README, {"a": {"config": "configs/digits_cnn.py", "points": [{"optim.lr": 1}]}},
     "Unknown config key --config.optim.lr"),
    (README, {"a": {"config": "configs/digits_cnn.py", "script": "scripts/bench.py"}},
     "exactly one of 'config' or 'script'"),
    (README, {"a": {"script": "scripts/nope.py"}}, "does not exist"),
    (README, {}, "expected"),
])
def test_a_record_off_the_convention_is_told_what_to_fix(tmp_path, readme, groups, message):
    problems = record.check_all(_record(tmp_path, readme, groups))
    assert len(problems) == 1 and re.search(message, problems[0]), problems


def test_a_group_whose_runs_did_not_finish_leaves_the_table_alone(tmp_path, capsys):
    folder = _record(tmp_path)
    before = open(os.path.join(folder, "README.md")).read()
    unfinished = record.update(folder, str(tmp_path / "no_workdirs"), collect_only=True)
    assert unfinished == ["a"]
    assert open(os.path.join(folder, "README.md")).read() == before
    assert "left as they were" in capsys.readouterr().out
