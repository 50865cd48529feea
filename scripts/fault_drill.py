#!/usr/bin/env python
"""Fault drill: kill a small bigjax run at random moments, resume it, check nothing is lost.

    python scripts/fault_drill.py --kills=N [--config=configs/digits_cnn.py:runlocal]
        [--workdir_root=DIR] [--seed=S] [--quick] [--config.KEY=VALUE ...]

Every run is `python -m bigjax.main --config=... --workdir=...` in a subprocess on fake
CPU devices (`XLA_FLAGS=--xla_force_host_platform_device_count=8`; the config's mesh
`data=-1` takes them all), with overrides that make it short, checkpoint every few steps,
log every step and evaluate only at the end:

1. `reference/`: the run, never interrupted (in the background);
2. `drilled/`: the same command, stopped once by SIGTERM (it must save and exit 75,
   `bigjax.main.EXIT_PREEMPTED`), then SIGKILLed N times, rerunning the
   same command after each stop, then left to finish. Each signal aims within its own
   slice of the train steps, so they spread over the run; the kills alternate between a
   save in flight (Orbax writes `checkpoints/<step>.orbax-checkpoint-tmp/` and renames it
   when complete; the drill waits for such a folder of this attempt, then 0-100 ms) and
   a random step (then 0-200 ms); the last kill lands right after the last train step
   (final save, eval or exit);
3. `resharded/`: a copy of `drilled/` taken right after its first SIGKILL, resumed on 4
   fake devices instead of 8.

The drill follows each attempt through the rows it appends to `metrics.jsonl` (one per
step): the first tells where it resumed (step k + 1 after checkpoint k), the newest how
far it got. `--compile_cache` (default: with `--quick` only) shares JAX's persistent
compilation cache between the runs (a rerun then takes 4-5 s instead of 6-9 s on 2 CPU
cores).

Each rerun must resume from the newest complete checkpoint that existed after the kill.
Counts: `survived` (the rerun resumed from it and trained on, or finished), `lost` (a
complete checkpoint vanished, or the rerun started from an older one or from scratch
without saying why), `corrupt` (the rerun failed, or fell back to an older checkpoint
because the newest could not be restored: "not the newest" in its log). The drilled run's
final train state (params, optimizer state, step, RNG), final metrics (the last stdout
line) and `metrics.jsonl` rows (timings aside) must be bit-identical to the reference's.
Across device counts bit identity is not expected (the batch is split and its sums
reduced in another order): the resharded run reports max abs differences instead.

The last line is `kills=N survived=N lost=0 corrupt=0 bit_identical=yes`; the exit code is
1 when a kill was not survived, anything was lost or corrupt, the SIGTERM stop misbehaved
or the drilled run is not bit-identical. Logs of every attempt and `drill.json` (all
figures) stay in the workdir root (a temporary one is removed after a passing drill).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICES, RESHARD_DEVICES = 8, 4
PREEMPTED_EXIT_CODES = (75,)  # bigjax.main.EXIT_PREEMPTED (EX_TEMPFAIL): requeue me
TMP_MARK = ".orbax-checkpoint-tmp"
FALLBACK_MARKS = ("not the newest", "cannot be restored")
TIMING_KEY = re.compile(r"per_sec|^perf/|mfu|wait|time")  # differ from run to run by design
POLL_S = 0.003
ATTEMPT_TIMEOUT_S = 600


# ------------------------------------------------------------------------- the runs
@dataclasses.dataclass(frozen=True)
class RunSpec:
    """What every attempt runs: the config file and the drill's overrides."""

    config: str
    steps: int
    checkpoint_every: int
    extra_overrides: tuple[str, ...] = ()
    compile_cache: str | None = None  # folder of JAX's persistent compilation cache

    def command(self, workdir: str) -> list[str]:
        """`python -m bigjax.main ...` for `workdir`: `steps` steps, a checkpoint every
        `checkpoint_every`, a metrics row every step, evaluation only at the end."""
        return [sys.executable, "-m", "bigjax.main", f"--config={self.config}",
                f"--workdir={workdir}", "--config.total_epochs=None",
                f"--config.total_steps={self.steps}",
                f"--config.checkpoint.every_steps={self.checkpoint_every}",
                "--config.log_every_steps=1", "--config.eval_every_epochs=None",
                "--config.eval_every_steps=None", *self.extra_overrides]


def child_env(devices: int, compile_cache: str | None) -> dict[str, str]:
    """This process's environment with `devices` fake CPU devices for the child, and JAX's
    persistent compilation cache in `compile_cache` when given (reruns then skip the
    compiles: the same executables, the same bits)."""
    from bigjax.fake_cpu_devices import xla_flags_with_devices

    env = dict(os.environ)
    env["XLA_FLAGS"] = xla_flags_with_devices(env.get("XLA_FLAGS"), devices)
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONUNBUFFERED"] = "1"
    if compile_cache:
        env["JAX_COMPILATION_CACHE_DIR"] = compile_cache
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    return env


class Attempt:
    """One `bigjax.main` subprocess (stdout and stderr to files), watched through the rows
    it appends to `workdir/metrics.jsonl` (one per train step, as the drill configures
    it): the first tells where it resumed, the newest how far it got."""

    started: list[Attempt] = []  # every attempt of this drill, to stop on the way out

    def __init__(self, name: str, spec: RunSpec, workdir: str, log_dir: str,
                 devices: int = DEVICES):
        self.name, self.workdir, self.devices = name, workdir, devices
        self.out_path = os.path.join(log_dir, f"{name}.out")
        self.err_path = os.path.join(log_dir, f"{name}.err")
        self.metrics_path = os.path.join(workdir, "metrics.jsonl")
        self._read = os.path.getsize(self.metrics_path) if os.path.exists(
            self.metrics_path) else 0  # rows before this offset are earlier attempts'
        self._partial = ""
        self.leftovers = temporary_folders(workdir)  # of saves killed before this attempt
        self.first_row: tuple[int, str] | None = None  # (step, "train" | "eval")
        self.max_step: int | None = None  # the newest train step it wrote
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(spec.command(workdir), cwd=REPO,
                                         env=child_env(devices, spec.compile_cache),
                                         stdout=out, stderr=err)
        self.began_at, self.wall_s = time.monotonic(), None  # wall_s: once it ended
        threading.Thread(target=self._time, daemon=True).start()
        Attempt.started.append(self)

    def _time(self) -> None:
        self.proc.wait()
        self.wall_s = round(time.monotonic() - self.began_at, 1)

    @classmethod
    def stop_all(cls) -> None:
        """Kills the attempts still running (the drill failed or was interrupted)."""
        for attempt in cls.started:
            if attempt.proc.poll() is None:
                attempt.proc.kill()
                attempt.proc.wait()

    @property
    def begun(self) -> bool:
        """Whether it restored (or initialised) and wrote its first metrics row."""
        return self.first_row is not None

    def poll(self) -> bool:
        """Reads the metrics rows written since the last poll; True while it runs."""
        running = self.proc.poll() is None
        if os.path.exists(self.metrics_path):
            with open(self.metrics_path, errors="replace") as f:
                f.seek(self._read)
                chunk = f.read()
                self._read = f.tell()
            text, _, self._partial = (self._partial + chunk).rpartition("\n")
            for line in text.splitlines():
                self._see(line)
        return running

    def _see(self, line: str) -> None:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            return  # a row cut by an earlier kill; read_metrics counts it
        kind = "eval" if any(k.startswith("eval/") for k in row) else "train"
        if self.first_row is None:
            self.first_row = (int(row["step"]), kind)
        if kind == "train":
            self.max_step = max(int(row["step"]), self.max_step or 0)

    def wait_for(self, ready: Callable[[], bool], timeout: float = ATTEMPT_TIMEOUT_S) -> bool:
        """Polls until `ready()`; False when the process ended (or time ran out) first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = self.poll()
            if ready():
                return True
            if not running:
                return False
            time.sleep(POLL_S)
        return False

    def finish(self, timeout: float = ATTEMPT_TIMEOUT_S) -> int:
        """Waits for the process to end; its exit code (negative: killed by that signal)."""
        code = self.proc.wait(timeout=timeout)
        self.poll()
        return code

    def stderr(self) -> str:
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def final_json(self) -> dict | None:
        """The last stdout line as JSON (the run's final metrics), or None."""
        with open(self.out_path, errors="replace") as f:
            lines = f.read().strip().splitlines()
        try:
            return json.loads(lines[-1]) if lines else None
        except json.JSONDecodeError:
            return None

    def resumed_from(self) -> int | None:
        """The checkpoint step it resumed from (0: it started afresh), from its first
        metrics row: train step k + 1 after checkpoint k, or the final eval row when it
        resumed from the last checkpoint; None before that row."""
        if self.first_row is None:
            return None
        step, kind = self.first_row
        return step - 1 if kind == "train" else step

    def error_line(self) -> str:
        """Its `error:` line, else the last line of stderr."""
        lines = self.stderr().strip().splitlines()
        errors = [line for line in lines if line.startswith("error:")]
        return (errors or lines or [""])[-1][:300]


# -------------------------------------------------------------------- checkpoints
def list_checkpoints(workdir: str) -> tuple[list[int], list[str]]:
    """`(complete steps, temporary folders)` under `workdir/checkpoints`: Orbax writes
    `<step>.orbax-checkpoint-tmp` and renames it to `<step>` once complete."""
    folder = os.path.join(workdir, "checkpoints")
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return (sorted(int(n) for n in names if n.isdigit()),
            sorted(n for n in names if TMP_MARK in n))


def temporary_folders(workdir: str) -> set[tuple[str, int, int]]:
    """`(name, inode, ctime)` of each temporary checkpoint folder: a leftover of a killed
    save keeps its identity; Orbax removes it and makes a new one when it saves that step
    again."""
    folder = os.path.join(workdir, "checkpoints")
    found = set()
    for name in list_checkpoints(workdir)[1]:
        try:
            info = os.stat(os.path.join(folder, name))
        except FileNotFoundError:  # renamed (complete) or removed meanwhile
            continue
        found.add((name, info.st_ino, info.st_ctime_ns))
    return found


def saves_in_flight(attempt: Attempt) -> list[str]:
    """Temporary folders of saves `attempt` started (not leftovers of earlier kills)."""
    return sorted({name for name, *_ in temporary_folders(attempt.workdir) - attempt.leftovers})


# ------------------------------------------------------------------------ strikes
@dataclasses.dataclass
class Strike:
    """One signal sent to an attempt, and what the attempt after it made of it."""

    index: int
    signal: str
    aim: str  # "step", "mid-save" or "end"
    at_step: int | None = None  # the newest train step logged before the signal
    in_flight: list[str] = dataclasses.field(default_factory=list)  # saves being written
    newest_before: int | None = None  # newest complete checkpoint just before the signal
    newest_after: int | None = None  # ... once the process was gone
    exit_code: int | None = None
    preempted_at: int | None = None  # SIGTERM: the step the run said it stopped at
    resumed_from: int | None = None  # where the next attempt resumed
    verdict: str = "pending"  # survived / lost / corrupt / missed / failed (SIGTERM stop)
    note: str = ""

    def add_note(self, text: str) -> None:
        self.note = f"{self.note}; {text}" if self.note else text


def aim_and_signal(attempt: Attempt, strike: Strike, rng: random.Random,
                   window: tuple[int, int], sig: signal.Signals) -> bool:
    """Waits for the moment `strike.aim` picks within the train steps `window` (first,
    last), then sends `sig` and waits for the process to end; fills `strike`. False
    (verdict "missed") when the run ended first.

    - "step": a step drawn from `window`, then 0-200 ms more;
    - "mid-save": the first save in flight once the window's first step is done, then
      0-100 ms (a save of the small model takes ~0.2 s on 2 idle CPU cores); at the
      window's last step without one seen, the signal goes anyway;
    - "end": the window's last step (the run's last), then 0-30 ms: the final save,
      the final eval or the exit.
    """
    first, last = window
    if strike.aim == "step":
        target = rng.randint(first, last)
        reached = attempt.wait_for(lambda: (attempt.max_step or 0) >= target)
        delay = rng.uniform(0.0, 0.2)
    elif strike.aim == "mid-save":
        reached = attempt.wait_for(lambda: (attempt.max_step or 0) >= last or (
            (attempt.max_step or 0) >= first and bool(saves_in_flight(attempt))))
        delay = rng.uniform(0.0, 0.1)
    else:
        reached = attempt.wait_for(lambda: (attempt.max_step or 0) >= last)
        delay = rng.uniform(0.0, 0.03)
    if reached:
        time.sleep(delay)
    attempt.poll()
    complete, _ = list_checkpoints(attempt.workdir)
    strike.newest_before = max(complete, default=None)
    strike.at_step = attempt.max_step
    strike.in_flight = saves_in_flight(attempt)
    if attempt.proc.poll() is not None:
        strike.exit_code, strike.verdict = attempt.finish(), "missed"
        strike.add_note("the run ended before the signal")
        return False
    attempt.proc.send_signal(sig)
    strike.exit_code = attempt.finish()
    strike.newest_after = max(list_checkpoints(attempt.workdir)[0], default=None)
    left = saves_in_flight(attempt)  # the process is gone: its unfinished saves
    if sig == signal.SIGKILL and left:
        strike.add_note(f"left {', '.join(left)}")
    return True


def judge_resume(strike: Strike, attempt: Attempt) -> None:
    """Sets `strike.verdict` from how `attempt` (the rerun after `strike`) started: it must
    resume from `strike.newest_after` (or start afresh when there was none) without any
    fallback, then train on (or finish). A verdict already set (a failed SIGTERM stop)
    is kept unless the rerun lost or broke something."""
    attempt.wait_for(lambda: attempt.begun)
    log = attempt.stderr()
    strike.resumed_from = attempt.resumed_from()
    expected = strike.newest_after
    if strike.signal == "SIGTERM" and strike.preempted_at is not None:
        expected = strike.preempted_at
    if not attempt.begun:
        strike.verdict = "corrupt"
        strike.add_note(f"rerun failed (exit {attempt.finish()}): {attempt.error_line()}")
    elif any(mark in log for mark in FALLBACK_MARKS):
        strike.verdict = "corrupt"
        strike.add_note(next(line for line in log.splitlines()
                             if any(m in line for m in FALLBACK_MARKS))[:300])
    elif (strike.newest_before or 0) > (strike.newest_after or 0):
        strike.verdict = "lost"
        strike.add_note(f"checkpoint {strike.newest_before} was complete before the signal "
                        "and gone after it")
    elif (strike.resumed_from or 0) != (expected or 0):
        strike.verdict = "lost"
        strike.add_note(f"resumed from {strike.resumed_from or 'scratch'}, expected {expected}")
    elif strike.verdict == "pending":
        strike.verdict = "survived"


def confirm_progress(strike: Strike, attempt: Attempt, exit_code: int | None) -> None:
    """A survived strike stays survived only if its rerun `attempt` then finished cleanly
    (`exit_code` 0) or trained past its resume step before the drill stopped it (-9);
    a rerun that failed turns it to corrupt."""
    if strike.verdict != "survived":
        return
    progressed = (attempt.max_step or 0) > (strike.resumed_from or 0)
    if not (exit_code == 0 or (exit_code == -signal.SIGKILL and progressed)):
        strike.verdict = "corrupt"
        strike.add_note(f"rerun ended with exit {exit_code}: {attempt.error_line()}")


# ------------------------------------------------------------------- comparisons
def read_state(workdir: str, step: int) -> dict[str, np.ndarray]:
    """Checkpoint `step` of `workdir` (the whole train state) as `{path: array}`, read with
    bigjax's own reader (works for any saving mesh)."""
    import jax

    from bigjax.checkpoint import read_state_to_host

    logging.getLogger("absl").setLevel(logging.ERROR)  # Orbax's notes on older layouts
    flat = jax.tree_util.tree_flatten_with_path(read_state_to_host(workdir, step))[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in flat}


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return math.inf
    if not np.issubdtype(a.dtype, np.number) or not np.issubdtype(b.dtype, np.number):
        return 0.0 if np.array_equal(a, b) else math.inf
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)), initial=0.0))


@dataclasses.dataclass
class Diff:
    """How one thing compares with the reference."""

    identical: bool
    max_abs: float
    detail: str = ""


def compare_states(ref: dict[str, np.ndarray], other: dict[str, np.ndarray],
                   prefix: str = "") -> Diff:
    """Bit identity and max abs difference over the arrays whose path starts with
    `prefix` (e.g. "['params']")."""
    keys = sorted(k for k in ref if k.startswith(prefix))
    if keys != sorted(k for k in other if k.startswith(prefix)):
        return Diff(False, math.inf, "the trees differ")
    identical = all(ref[k].dtype == other[k].dtype and ref[k].shape == other[k].shape
                    and ref[k].tobytes() == other[k].tobytes() for k in keys)
    worst = max(keys, key=lambda k: _max_abs(ref[k], other[k]))
    largest = _max_abs(ref[worst], other[worst])
    detail = f"{len(keys)} arrays, {sum(ref[k].size for k in keys):,} values"
    return Diff(identical, largest, detail + (f"; largest difference in {worst}"
                                              if largest else ""))


@dataclasses.dataclass
class MetricsLog:
    """`metrics.jsonl` by (step, "train" | "eval"), timing columns dropped; a step written
    twice (retrained after a kill) keeps its last row."""

    rows: dict[tuple[int, str], dict[str, float]]
    duplicates: int = 0
    disagreeing: int = 0  # a step written twice with different values
    malformed: int = 0  # lines that are not JSON (a write cut by a kill)


def read_metrics(workdir: str) -> MetricsLog:
    """Reads `workdir/metrics.jsonl` into a MetricsLog."""
    log = MetricsLog(rows={})
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                log.malformed += 1
                continue
            step = row.pop("step")
            values = {k: v for k, v in row.items() if not TIMING_KEY.search(k)}
            key = (step, "eval" if any(k.startswith("eval/") for k in values) else "train")
            if key in log.rows:
                log.duplicates += 1
                log.disagreeing += log.rows[key] != values
            log.rows[key] = values
    return log


def compare_metrics(ref: MetricsLog, other: MetricsLog) -> Diff:
    """Rows present in both with equal values (max abs difference over shared values)."""
    missing = sorted(set(ref.rows) - set(other.rows))
    extra = sorted(set(other.rows) - set(ref.rows))
    worst = 0.0
    for key in set(ref.rows) & set(other.rows):
        a, b = ref.rows[key], other.rows[key]
        if set(a) != set(b):
            worst = math.inf
            continue
        worst = max([worst] + [abs(a[k] - b[k]) for k in a])
    identical = (not missing and not extra and worst == 0.0 and other.disagreeing == 0
                 and other.malformed == 0)
    detail = (f"{len(other.rows)} rows ({other.duplicates} steps written again after a "
              f"resume, {other.disagreeing} of them different; {other.malformed} malformed)")
    if missing or extra:
        detail += f"; missing {missing[:5]}, extra {extra[:5]}"
    return Diff(identical, worst, detail)


def compare_final(ref: dict | None, other: dict | None) -> Diff:
    """The final-metrics JSON lines: equal, and max abs difference of their numbers."""
    if ref is None or other is None or set(ref) != set(other):
        return Diff(False, math.inf, "missing or different keys")
    worst = max(_max_abs(np.asarray(ref[k], np.float64), np.asarray(other[k], np.float64))
                for k in ref)
    accuracy = ""
    if "accuracy" in ref:
        accuracy = f"accuracy {other['accuracy']:.4f} vs {ref['accuracy']:.4f}"
    return Diff(ref == other, worst, accuracy)


# ------------------------------------------------------------------------ the drill
@dataclasses.dataclass
class Drill:
    """Everything the drill measured."""

    strikes: list[Strike] = dataclasses.field(default_factory=list)
    attempts: int = 0  # reruns of the drilled workdir

    def count(self, verdict: str, kills_only: bool = False) -> int:
        """Strikes (only SIGKILLs with `kills_only`) with this verdict."""
        return sum(s.verdict == verdict for s in self.strikes
                   if s.signal == "SIGKILL" or not kills_only)


def plan_aims(kills: int) -> list[str]:
    """The aim of each SIGKILL: alternately a save in flight and a random step; the last
    one after the last train step (when there are at least two)."""
    aims = ["mid-save" if i % 2 == 0 else "step" for i in range(kills)]
    if kills >= 2:
        aims[-1] = "end"
    return aims


def strike_windows(steps: int, aims: list[str]) -> list[tuple[int, int]]:
    """The train steps (first, last) each strike aims within: the steps before the last
    one split evenly between the strikes not aimed at the "end" (the run's last step), so
    the kills spread over the whole run."""
    spread = [i for i, aim in enumerate(aims) if aim != "end"]
    windows = [(steps, steps)] * len(aims)
    for k, i in enumerate(spread):
        first = 1 + (steps - 1) * k // len(spread)
        windows[i] = (first, max(first, (steps - 1) * (k + 1) // len(spread)))
    return windows


def drill_run(spec: RunSpec, root: str, kills: int, rng: random.Random,
              on_first_kill: Callable[[str], None]) -> tuple[Drill, Attempt]:
    """Runs the drilled workdir through SIGTERM, `kills` SIGKILLs and a final rerun;
    `on_first_kill(workdir)` is called right after the first SIGKILL. Returns the drill
    record and the last attempt (finished)."""
    workdir, logs = os.path.join(root, "drilled"), os.path.join(root, "logs")
    drill = Drill()
    plan = [("SIGTERM", "step")] + [("SIGKILL", aim) for aim in plan_aims(kills)]
    windows = strike_windows(spec.steps, [aim for _, aim in plan])
    attempt = Attempt("drilled-0", spec, workdir, logs)
    previous: Strike | None = None  # the strike whose rerun is `attempt`
    start = 0
    for index, (name, aim) in enumerate(plan):
        sig = signal.Signals[name]
        strike = Strike(index=index, signal=name, aim=aim)
        drill.strikes.append(strike)
        first, last = windows[index]
        window = (max(first, start + 1), max(last, start + 1))
        sent = aim_and_signal(attempt, strike, rng, window, sig)
        if previous is not None:
            confirm_progress(previous, attempt, strike.exit_code)
            previous = None
        if not sent:
            break
        if sig == signal.SIGTERM:
            check_sigterm(strike, attempt)
        elif index == 1:
            on_first_kill(workdir)
        drill.attempts += 1
        attempt = Attempt(f"drilled-{drill.attempts}", spec, workdir, logs)
        judge_resume(strike, attempt)
        if not attempt.begun:
            break  # the rerun failed before training: the run cannot go on
        previous, start = strike, strike.resumed_from or 0
    exit_code = attempt.finish()
    if previous is not None:
        confirm_progress(previous, attempt, exit_code)
    return drill, attempt


def check_sigterm(strike: Strike, attempt: Attempt) -> None:
    """A SIGTERMed run must save the step it stopped at and exit 75, its last line
    `{"preempted_at_step": N}` with checkpoint N complete."""
    final = attempt.final_json() or {}
    strike.preempted_at = final.get("preempted_at_step")
    complete, _ = list_checkpoints(attempt.workdir)
    problems = []
    if strike.exit_code not in PREEMPTED_EXIT_CODES:
        problems.append(f"exit code {strike.exit_code}")
    if strike.preempted_at is None:
        problems.append("no preempted_at_step in its last line")
    elif strike.preempted_at not in complete:
        problems.append(f"checkpoint {strike.preempted_at} missing")
    strike.add_note("; ".join(problems)
                    or f"saved step {strike.preempted_at}, exit {strike.exit_code}")
    if problems:
        strike.verdict = "failed"  # the drill fails; the rerun is still judged below


def run_reshard(spec: RunSpec, root: str, snapshot: str) -> Attempt:
    """Starts the copy of the drilled workdir (taken after its first SIGKILL) on
    RESHARD_DEVICES devices."""
    workdir = os.path.join(root, "resharded")
    shutil.copytree(snapshot, workdir, symlinks=True)
    return Attempt("resharded", spec, workdir, os.path.join(root, "logs"),
                   devices=RESHARD_DEVICES)


def judge_reshard(attempt: Attempt, ref_state: dict, ref_final: dict | None,
                  ref_metrics: MetricsLog, newest: int | None) -> dict:
    """How the 8 -> 4 device resume went: its verdict (like a strike's) and its max abs
    differences from the reference."""
    code = attempt.finish()
    log = attempt.stderr()
    result: dict = {"devices": f"{DEVICES} -> {RESHARD_DEVICES}", "exit_code": code,
                    "resumed_from": attempt.resumed_from(), "newest": newest,
                    "verdict": "survived", "note": ""}
    fallback = [line for line in log.splitlines() if any(m in line for m in FALLBACK_MARKS)]
    if code != 0:
        result.update(verdict="corrupt", note=f"exit {code}: {attempt.error_line()}")
    elif fallback:
        result.update(verdict="corrupt", note=fallback[0][:300])
    elif result["resumed_from"] != newest:
        result.update(verdict="lost", note=f"resumed from {result['resumed_from']}, "
                                           f"expected {newest}")
    if code != 0:
        return result
    state = read_state(attempt.workdir, final_step(attempt))
    params = compare_states(ref_state, state, "['params']")
    metrics = compare_metrics(ref_metrics, read_metrics(attempt.workdir))
    final = compare_final(ref_final, attempt.final_json())
    result.update(params_bit_identical=params.identical, params_max_abs=params.max_abs,
                  state_max_abs=compare_states(ref_state, state).max_abs,
                  metrics_max_abs=metrics.max_abs, final_max_abs=final.max_abs,
                  final_detail=final.detail)
    return result


def final_step(attempt: Attempt) -> int:
    """The final step of a finished attempt (its last line's "step")."""
    return int((attempt.final_json() or {}).get("step", -1))


def compare_with_reference(ref: Attempt, drilled: Attempt, steps: int) -> tuple[dict, dict]:
    """Bit identity of the drilled run against the reference; returns (figures, reference
    state) for the reshard comparison."""
    ref_state, drilled_state = read_state(ref.workdir, steps), read_state(drilled.workdir, steps)
    state = compare_states(ref_state, drilled_state)
    params = compare_states(ref_state, drilled_state, "['params']")
    metrics = compare_metrics(read_metrics(ref.workdir), read_metrics(drilled.workdir))
    final = compare_final(ref.final_json(), drilled.final_json())
    figures = {"state": dataclasses.asdict(state), "params": dataclasses.asdict(params),
               "metrics_jsonl": dataclasses.asdict(metrics),
               "final_metrics": dataclasses.asdict(final),
               "all": state.identical and metrics.identical and final.identical}
    return figures, ref_state


# --------------------------------------------------------------------- reporting
def print_report(record: dict) -> None:
    """The table of signals and the comparisons (everything but the last line)."""
    print("| # | signal | aimed at | at step | save in flight | newest ckpt before/after | "
          "exit | rerun resumed from | verdict | note |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for s in record["strikes"]:
        print(f"| {s['index']} | {s['signal']} | {s['aim']} | {s['at_step']} | "
              f"{', '.join(s['in_flight']) or '-'} | {s['newest_before']}/{s['newest_after']}"
              f" | {s['exit_code']} | {s['resumed_from']} | {s['verdict']} | {s['note']} |")
    kills = [s for s in record["strikes"] if s["signal"] == "SIGKILL"
             and s["verdict"] != "missed"]
    print(f"SIGKILLs that interrupted a save (its temporary folder left behind): "
          f"{sum('left' in s['note'] for s in kills)} of {len(kills)}; a save was in flight "
          f"just before the signal in {sum(bool(s['in_flight']) for s in kills)}")
    for s in record["strikes"]:
        if s["signal"] == "SIGTERM":
            print(f"SIGTERM: {s['verdict']}; {s['note']} (exit {s['exit_code']}; 75 is the "
                  "preemption exit code)")
    for part, d in record["comparison"].items():
        if isinstance(d, dict):
            print(f"drilled vs reference, {part}: bit-identical={d['identical']}, max abs "
                  f"diff {d['max_abs']:.3g} ({d['detail']})")
    r = record["reshard"]
    if r:
        print(f"device count {r['devices']} after the first SIGKILL: {r['verdict']} (resumed "
              f"from {r['resumed_from']}, newest {r['newest']}, exit {r['exit_code']}) "
              f"{r['note']}")
        if "params_max_abs" in r:
            print(f"  vs reference: params bit-identical={r['params_bit_identical']}, max abs "
                  f"diff params {r['params_max_abs']:.3g}, whole state "
                  f"{r['state_max_abs']:.3g}, metrics.jsonl {r['metrics_max_abs']:.3g}, "
                  f"final metrics {r['final_max_abs']:.3g} ({r['final_detail']}); bit "
                  "identity is not expected across device counts (each device's share of "
                  "the batch changes, so sums are reduced in another order)")
    for problem in record["problems"]:
        print(f"problem: {problem}")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The drill's flags; `--config.KEY=VALUE` arguments are passed on to every run."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Other --config.KEY=VALUE arguments are passed on to every run.")
    parser.add_argument("--kills", type=int, required=True, help="SIGKILLs of the drilled run")
    parser.add_argument("--config", default="configs/digits_cnn.py:runlocal",
                        help="configs/NAME.py[:ARG] of the run (default: %(default)s)")
    parser.add_argument("--workdir_root", default=None,
                        help="new or empty folder for the workdirs and logs (default: a "
                             "temporary folder, removed after a passing drill)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--quick", action="store_true",
                        help="seconds-long CI mode: fewer steps")
    parser.add_argument("--steps", type=int, default=None,
                        help="train steps of the run (default 200, --quick 40)")
    parser.add_argument("--checkpoint_every", type=int, default=5,
                        help="config.checkpoint.every_steps of the run (default 5)")
    parser.add_argument("--compile_cache", action=argparse.BooleanOptionalAction,
                        default=None, help="share JAX's persistent compilation cache between "
                        "the runs (default: with --quick only)")
    args, rest = parser.parse_known_args(argv)
    unknown = [a for a in rest if not a.startswith("--config.")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.kills < 1:
        parser.error("--kills must be at least 1")
    return args, rest


def prepare_root(path: str | None) -> tuple[str, bool]:
    """`(root, temporary)`: the given folder (must be new or empty) or a temporary one."""
    if path is None:
        return tempfile.mkdtemp(prefix="fault_drill-"), True
    if os.path.isdir(path) and os.listdir(path):
        raise SystemExit(f"error: --workdir_root={path} is not empty; the drill needs fresh "
                         "workdirs.")
    os.makedirs(path, exist_ok=True)
    return os.path.abspath(path), False


def run_all(spec: RunSpec, root: str, kills: int, seed: int) -> dict:
    """The three runs and their comparisons; returns the figures (also in drill.json)."""
    logs = os.path.join(root, "logs")
    reference = Attempt("reference", spec, os.path.join(root, "reference"), logs)
    resharded: list[tuple[Attempt, int | None]] = []

    def on_first_kill(workdir: str) -> None:
        newest = max(list_checkpoints(workdir)[0], default=None)
        resharded.append((run_reshard(spec, root, workdir), newest))

    drill, last = drill_run(spec, root, kills, random.Random(seed), on_first_kill)
    figures: dict = {"all": False}
    reshard: dict = {}
    problems = []
    ref_code, last_code = reference.finish(), last.finish()
    if ref_code != 0:
        problems.append(f"the reference run failed (exit {ref_code}): "
                        f"{reference.error_line()}")
    elif last_code != 0 or final_step(last) != spec.steps:
        problems.append(f"the drilled run did not finish (exit {last_code}): "
                        f"{last.error_line()}")
    else:
        figures, ref_state = compare_with_reference(reference, last, spec.steps)
        if resharded:
            reshard = judge_reshard(resharded[0][0], ref_state, reference.final_json(),
                                    read_metrics(reference.workdir), resharded[0][1])
    for attempt, _ in resharded:
        attempt.finish()
    survived = drill.count("survived", kills_only=True)
    lost, corrupt = drill.count("lost"), drill.count("corrupt")
    if reshard.get("verdict") in ("lost", "corrupt"):
        problems.append(f"the resharded rerun: {reshard.get('note')}")
        lost, corrupt = lost + (reshard["verdict"] == "lost"), corrupt + (
            reshard["verdict"] == "corrupt")
    sigterm = next((s for s in drill.strikes if s.signal == "SIGTERM"), None)
    sent = [s for s in drill.strikes if s.signal == "SIGKILL" and s.verdict != "missed"]
    identical = bool(figures.get("all"))
    passed = (len(sent) == kills and survived == kills and lost == 0 and corrupt == 0
              and identical and sigterm is not None and sigterm.verdict == "survived"
              and not problems)
    return {"config": spec.config, "steps": spec.steps,
            "checkpoint_every": spec.checkpoint_every, "seed": seed, "kills": len(sent),
            "survived": survived, "lost": lost, "corrupt": corrupt,
            "bit_identical": identical, "runs": drill.attempts + 2 + len(resharded),
            "run_seconds": {a.name: a.wall_s for a in Attempt.started},
            "problems": problems, "strikes": [dataclasses.asdict(s) for s in drill.strikes],
            "comparison": figures, "reshard": reshard, "passed": passed}


def main(argv: list[str] | None = None) -> int:
    """Runs the drill; prints the report and the summary line; 0 when it passed."""
    args, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    steps = args.steps or (40 if args.quick else 200)
    root, temporary = prepare_root(args.workdir_root)
    cache = args.quick if args.compile_cache is None else args.compile_cache
    spec = RunSpec(args.config, steps, args.checkpoint_every, tuple(overrides),
                   os.path.join(root, "jax_cache") if cache else None)
    os.makedirs(os.path.join(root, "logs"))
    began = time.monotonic()
    print(f"fault drill: {args.config}, {steps} steps, checkpoint every "
          f"{args.checkpoint_every}, {DEVICES} fake CPU devices, {args.kills} SIGKILLs + 1 "
          f"SIGTERM, seed {args.seed}, compilation cache {'on' if cache else 'off'}; "
          f"workdirs in {root}", flush=True)
    try:
        record = run_all(spec, root, args.kills, args.seed)
    finally:
        Attempt.stop_all()
    record["wall_s"] = round(time.monotonic() - began, 1)
    record["compile_cache"] = bool(cache)
    with open(os.path.join(root, "drill.json"), "w") as f:
        json.dump(record, f, indent=1, default=str)
    print_report(record)
    print(f"wall time {record['wall_s']} s for {record['runs']} runs; "
          f"{'drill passed' if record['passed'] else 'DRILL FAILED'}; details in "
          f"{'(removed)' if record['passed'] and temporary else os.path.join(root, 'drill.json')}")
    if record["passed"] and temporary:
        shutil.rmtree(root, ignore_errors=True)
    print(f"kills={record['kills']} survived={record['survived']} lost={record['lost']} "
          f"corrupt={record['corrupt']} bit_identical={'yes' if record['bit_identical'] else 'no'}")
    return 0 if record["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
