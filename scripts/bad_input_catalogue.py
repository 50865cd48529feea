"""Runs the catalogue of bad inputs through the CLI, as a user meets them, and checks each
fails with one clear `error:` line (no traceback) and keeps what the user saved.

    python scripts/bad_input_catalogue.py [--quick] [--markdown=PATH] [--parallel=2]

Every case is a `python -m bigjax.main` / `bigjax.evaluate` command on a workdir that is
absent, a file, or a copy of one finished digits run. A case passes when the exit code
is the expected one, stderr holds the expected words and no "Traceback", and the workdir
is as the case demands: not created, or unchanged byte for byte (`kept`). Prints a
markdown table (input | exit | message shown | what was kept) and, last, one JSON line
`{"cases": N, "ok": N, "failed": [...]}`; exits 1 if any case failed. `--quick` (CI)
runs 15 of the 29: the workdir, resume, data and evaluate cases, and four schema ones
(a config-file typo, batch size None, an empty split, keep=0 on a saved run); the
schema's other messages (batch sizes, rates, names) are checked in-process by
tests/test_config_cli.py and test_config_schema.py and reach the user the same way. The
full catalogue is recorded in experiments/reliability/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = "--config=configs/digits_cnn.py:runlocal"
BAD_CONFIG = """
import ml_collections

def get_config(arg=None):
    config = ml_collections.ConfigDict()
    config.data = dict(name="digits")
    config.pp = dict(kind="image")
    config.model = dict(name="mlp", num_classes=10, hidden=(256, 256))
    config.task = "classification"
    config.optim = dict(name="sgd", learning_rate=0.05, {optim})
    config.total_steps = 30
    {extra}
    return config
"""


@dataclasses.dataclass
class Case:
    """One bad input. `workdir`: "absent", "file" or "run" (a copy of a finished run);
    `args` may hold {W} (the workdir), {R} (another finished run), {T} (a temp folder);
    `expect`: words the last stderr line must hold; `kept`: "unchanged" or "absent"."""

    name: str
    args: list[str]
    expect: str
    code: int = 2
    workdir: str = "absent"
    kept: str = "unchanged"
    module: str = "main"
    quick: bool = False
    setup: str = ""


CASES = [
    Case("typo in a config file (`momentun=0.9`)", ["--config={T}/typo.py"],
         "Unknown config key config.optim.momentun. Did you mean 'momentum'?", quick=True,
         setup="typo"),
    Case("key the config does not have (`num_epochs`)", ["--config={T}/epochs.py"],
         "Unknown config key config.num_epochs.", setup="epochs"),
    Case("ValueError inside get_config", ["--config={T}/raises.py"],
         "line 12 (raise ValueError(\"width must be even\")): ValueError: width must be even",
         setup="raises"),
    Case("typo in an override", [DIGITS, "--config.optim.lr=0.1"],
         "Unknown config key --config.optim.lr."),
    Case("batch size 0", [DIGITS, "--config.batch_size=0"],
         "config.batch_size=0 must be int >= 1"),
    Case("batch size None", [DIGITS, "--config.batch_size=None"],
         "config.batch_size must be set (int >= 1)", quick=True),
    Case("batch size -8", [DIGITS, "--config.batch_size=-8"],
         "config.batch_size=-8 must be int >= 1"),
    Case("a float for an int key", [DIGITS, "--config.batch_size=32.5"],
         "--config.batch_size expects an integer (int >= 1), got '32.5'."),
    Case("mesh.tensor=0", [DIGITS, "--config.mesh.tensor=0"],
         "config.mesh.tensor=0 must be int >= 1 (or -1)"),
    Case("negative learning rate", [DIGITS, "--config.optim.learning_rate=-1"],
         "config.optim.learning_rate=-1.0 must be float >= 0"),
    Case("NaN learning rate", [DIGITS, "--config.optim.learning_rate=nan"],
         "--config.optim.learning_rate expects a number (float >= 0), got 'nan'."),
    Case("unknown task", [DIGITS, "--config.task=clasification"],
         "config.task='clasification' is not one of 'classification', 'mlm', 'causal_lm', "
         "'translation'. Did you mean 'classification'?"),
    Case("unknown pp.kind", [DIGITS, "--config.pp.kind=images"],
         "config.pp.kind='images' is not one of 'image', 'text', 'text_mlm', 'lm', "
         "'translation'."),
    Case("unknown schedule", [DIGITS, "--config.optim.schedule=cosine"],
         "config.optim.schedule='cosine' is not one of 'constant', 'warmup_cosine', "
         "'warmup_linear', 'warmup_rsqrt'."),
    Case("checkpoint.keep=0 on a finished run", [DIGITS, "--config.checkpoint.keep=0",
                                                 "--config.total_steps=30"],
         "config.checkpoint.keep=0 must be int >= 1 | None", workdir="run", quick=True),
    Case("workdir is a file", [DIGITS], "is a file: pass a folder", code=1, workdir="file",
         quick=True),
    Case("workdir under a file", [DIGITS, "--workdir={T}/a_file/run"],
         "is under a file", code=1, setup="a_file", kept="absent", quick=True),
    Case("missing config file", ["--config=configs/nope.py"],
         "Config file 'configs/nope.py' does not exist"),
    Case("unknown config variant", ["--config=configs/digits_cnn.py:tunde"],
         "Unknown config variant(s) ['tunde']"),
    Case("changed config on resume", [DIGITS, "--config.optim.learning_rate=0.5"],
         "holds a run with a different config (optim.learning_rate differ)", code=1,
         workdir="run", quick=True),
    Case("another model's checkpoint (config.json missing)",
         [DIGITS, "--config.model.conv_features=(16,)", "--config.total_steps=30"],
         "can be restored into this model", code=1, workdir="run", setup="no_config_json",
         quick=True),
    Case("init_from whose body does not match",
         [DIGITS, "--config.init_from={R}", "--config.model.conv_features=(16, 64)"],
         "does not match the model's body", code=1, kept="absent", quick=True),
    Case("data_dir without the data set's folder",
         ["--config=configs/mnist_mlp.py:runlocal", "--config.data.data_dir={T}"],
         "has no mnist/ folder", code=1, kept="absent", quick=True),
    Case("text longer than the model's positions",
         ["--config=configs/imdb_bert.py:tiny,runlocal",
          "--config.data.tokenizer.max_len=1024"],
         "config.data.tokenizer.max_len=1024 is longer than the 512 positions", code=1,
         kept="absent", quick=True),
    Case("empty split", [DIGITS, "--config.data.train_examples=0"],
         "config.data.train_examples=0 must be int >= 1", quick=True),
    Case("unknown split", [DIGITS, "--config.data.eval_split=dev"],
         "has no split 'dev'", code=1, kept="absent", quick=True),
    Case("steps_per_call not dividing the steps", [DIGITS, "--config.steps_per_call=3"],
         "config.steps_per_call=3 must be positive and divide the 20 total steps", code=1,
         kept="absent", quick=True),
    Case("evaluate a workdir with no run", ["--workdir={T}/empty"],
         "config.json not found: is the workdir one that bigjax.main trained into?",
         module="evaluate", quick=True),
    Case("evaluate a checkpoint that does not exist", ["--step=7"], "7", code=1,
         workdir="run", module="evaluate", quick=True),
]


def _fingerprint(path: str) -> dict[str, str] | None:
    """`{relative file: sha256}` of everything under `path` (None if it does not exist)."""
    if not os.path.exists(path):
        return None
    if os.path.isfile(path):
        return {"": hashlib.sha256(open(path, "rb").read()).hexdigest()}
    found = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                found[os.path.relpath(full, path)] = hashlib.sha256(f.read()).hexdigest()
    return found


def _cli(module: str, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}
    env.pop("BIGJAX_TRACEBACK", None)
    return subprocess.run([sys.executable, "-m", f"bigjax.{module}", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def _setup(case: Case, tmp: str, run: str) -> str:
    """Prepares the case's files in `tmp`; returns its workdir."""
    workdir = os.path.join(tmp, "workdir")
    if case.workdir == "file":
        with open(workdir, "w") as f:
            f.write("a file the user saved\n")
    elif case.workdir == "run":
        shutil.copytree(run, workdir)
    if case.setup in ("typo", "epochs", "raises"):
        extra = {"typo": "", "epochs": "config.num_epochs = 3",
                 "raises": 'raise ValueError("width must be even")'}[case.setup]
        optim = "momentun=0.9" if case.setup == "typo" else "momentum=0.9"
        with open(os.path.join(tmp, f"{case.setup}.py"), "w") as f:
            f.write(BAD_CONFIG.replace("{optim}", optim).replace("{extra}", extra))
    elif case.setup == "a_file":
        with open(os.path.join(tmp, "a_file"), "w") as f:
            f.write("x\n")
    elif case.setup == "no_config_json":
        os.remove(os.path.join(workdir, "config.json"))
    return workdir


def run_case(case: Case, run: str) -> dict:
    """Runs one case in a fresh temp folder; returns its row."""
    with tempfile.TemporaryDirectory(prefix="bigjax-catalogue-") as tmp:
        workdir = _setup(case, tmp, run)
        args = [a.replace("{T}", tmp).replace("{R}", run).replace("{W}", workdir)
                for a in case.args]
        if not any(a.startswith("--workdir") for a in args):
            args.append(f"--workdir={workdir}")
        watched = next(a.split("=", 1)[1] for a in args if a.startswith("--workdir"))
        before = _fingerprint(watched)
        proc = _cli(case.module, args)
        after = _fingerprint(watched)
    lines = proc.stderr.strip().splitlines()
    shown = (lines[-1] if lines else "").replace(run, "<run>").replace(tmp, "<tmp>")
    problems = []
    if proc.returncode != case.code:
        problems.append(f"exit {proc.returncode}, expected {case.code}")
    if case.expect not in shown or not shown.startswith("error: "):
        problems.append("the last stderr line is not the expected error")
    if "Traceback" in proc.stderr:
        problems.append("a traceback was printed")
    if sum(line.startswith("error:") for line in lines) != 1:
        problems.append("not exactly one error line")
    if case.kept == "absent" and after is not None and before is None:
        problems.append("a workdir was left behind")
    if case.kept == "unchanged" and after != before:
        problems.append("the workdir changed")
    kept = {"absent": "no workdir created", "unchanged": "workdir unchanged"}[case.kept]
    if before is not None:
        kept = "workdir unchanged (byte for byte)" if after == before else "workdir CHANGED"
    return {"case": case.name, "exit": proc.returncode, "shown": shown, "kept": kept,
            "ok": not problems, "problems": problems}


def _finished_run(root: str) -> str:
    run = os.path.join(root, "finished")
    proc = _cli("main", [DIGITS, f"--workdir={run}"])
    if proc.returncode != 0:
        raise SystemExit(f"the reference run failed:\n{proc.stderr[-3000:]}")
    return run


def markdown(rows: list[dict]) -> str:
    out = ["| input | exit | message shown | what was kept |", "|---|---|---|---|"]
    for r in rows:
        shown = r["shown"].removeprefix("error: ").replace("|", "\\|")
        if len(shown) > 220:
            shown = shown[:217] + "..."
        out.append(f"| {r['case']} | {r['exit']} | {shown} | {r['kept']}"
                   f"{'' if r['ok'] else ' — FAILED: ' + '; '.join(r['problems'])} |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="15 of the cases (CI)")
    parser.add_argument("--parallel", type=int, default=2, help="cases run at once")
    parser.add_argument("--markdown", default=None, help="also write the table to this file")
    args = parser.parse_args()
    cases = [c for c in CASES if c.quick or not args.quick]
    with tempfile.TemporaryDirectory(prefix="bigjax-catalogue-run-") as root:
        run = _finished_run(root)
        with ThreadPoolExecutor(args.parallel) as pool:
            rows = list(pool.map(lambda c: run_case(c, run), cases))
    table = markdown(rows)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    failed = [r["case"] for r in rows if not r["ok"]]
    print(json.dumps({"cases": len(rows), "ok": len(rows) - len(failed), "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
