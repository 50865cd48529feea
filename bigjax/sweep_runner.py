"""Runs a sweep's runs as ordinary bigjax runs, each in its own workdir and process.

``run_all`` starts ``python -m bigjax.main --config=SPEC --workdir=ROOT/<run> --config...``
for every run that has not finished, at most ``parallel`` at a time. A run has finished
when ``ROOT/logs/<run>.result.json`` exists: it is written only after the run's process
exited 0 and printed its final metrics. So re-running a sweep skips the finished runs
and resumes the others from their newest checkpoint (bigjax resumes a workdir it
trained into): a sweep killed or preempted half-way continues where it stopped, every
run done once. A run that fails is reported and left unfinished; the others go on.

A run being trained holds ``ROOT/logs/<run>.lock`` (host and pid of its process): a
second sweep on the same root, or a rerun while a killed sweep's child still trains,
skips it instead of training the same workdir twice (local roots).

Devices: on a machine with several GPUs, ``device_groups`` splits them between the runs
that go at once (each process sees its group through ``CUDA_VISIBLE_DEVICES``). On CPU
the runs share the cores.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from etils import epath

from bigjax import metrics_file, run_files
from bigjax.sweep_points import Run

LOGS = "logs"
# bigjax.main's exit statuses for a run that ended by itself without finishing: 1 the run
# failed (diverged, broke), 2 bad config or command line. 75 (preempted) and signals are
# interruptions: the run is resumed.
FAILED_EXITS = (1, 2)


def result_path(root: str, run: Run) -> str:
    """``ROOT/logs/<run>.result.json``: the run's final metrics, once it finished."""
    return run_files.join(root, LOGS, f"{run.name}.result.json")


def read_result(root: str, run: Run) -> dict | None:
    """The ended run's result (see `run_one`: finished, or ``failed``), or None when it
    has not ended."""
    path = epath.Path(result_path(root, run))
    return json.loads(path.read_text()) if path.exists() else None


def command(run: Run, root: str, config_spec: str, base_overrides: Sequence[tuple[str, str]],
            python: str = sys.executable) -> list[str]:
    """The bigjax.main command line of ``run``: the command line's overrides, then the
    run's (which win)."""
    args = [python, "-m", "bigjax.main", f"--config={config_spec}",
            f"--workdir={run_files.join(root, run.name)}"]
    return args + [f"--config.{k}={v}" for k, v in (*base_overrides, *run.args)]


def steps_per_second(workdir: str) -> float | None:
    """Median ``train/steps_per_sec`` of a run's logged rows (the last logged for each
    step, so a resumed run's repeated rows count once), the first row (which includes
    compiling) left out when there are others; None when it logged none."""
    _, rates = metrics_file.series(metrics_file.read_rows(workdir), "train/steps_per_sec")
    rates = rates[1:] or rates
    return float(sorted(rates)[len(rates) // 2]) if rates else None


def run_one(run: Run, root: str, config_spec: str, base_overrides: Sequence[tuple[str, str]],
            env: dict | None = None) -> dict | None:
    """Runs (or resumes) ``run``; its output is appended to ``ROOT/logs/<run>.log``.

    Returns its result, also written to ``result_path``: ``run`` fields, ``final`` (the
    metrics the run printed last), ``wall_s`` (summed over its attempts that ended),
    ``steps_per_sec``, ``attempts``. A run that failed on its own (exit 1: it diverged
    or broke; exit 2: bad config) gets a result too, with ``failed`` (its ``error:``
    line) and no metrics: rerunning would fail the same way, so it is not retried
    (delete the result file to retry). None when it did not end (killed, or exit 75:
    preempted): the next sweep resumes it."""
    logs = epath.Path(run_files.join(root, LOGS))
    logs.mkdir(parents=True, exist_ok=True)
    attempts_file = logs / f"{run.name}.attempts.json"
    attempts = json.loads(attempts_file.read_text()) if attempts_file.exists() else []
    cmd = command(run, root, config_spec, base_overrides)
    start = time.time()
    header = f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n"
    environ = {**os.environ, **(env or {})}
    if run_files.is_url(root):  # a bucket has no appends: the log is written at the end
        proc = subprocess.run(cmd, capture_output=True, text=True, env=environ)
        old = (logs / f"{run.name}.log").read_text() if (logs / f"{run.name}.log").exists() else ""
        (logs / f"{run.name}.log").write_text(old + header + proc.stderr + proc.stdout)
    else:  # the log grows as the run goes (tail -f it)
        lock = logs / f"{run.name}.lock"
        holder = running_in(lock)
        if holder:
            raise RunLocked(f"{run.name} is already running ({holder}; delete {lock} if "
                            "that process no longer runs it)")
        with open(logs / f"{run.name}.log", "a") as log:
            log.write(header)
            log.flush()
            child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True,
                                     env=environ)
            lock.write_text(f"{socket.gethostname()} {child.pid} {_started(child.pid) or '-'}")
            stdout, _ = child.communicate()
            log.write(stdout)
        lock.unlink(missing_ok=True)
        proc = subprocess.CompletedProcess(cmd, child.returncode, stdout, "")
    wall = time.time() - start
    attempts.append({"wall_s": wall, "returncode": proc.returncode})
    attempts_file.write_text(json.dumps(attempts))
    final = _last_json(proc.stdout)
    failed = proc.returncode in FAILED_EXITS or (proc.returncode == 0 and final is None)
    if not failed and (proc.returncode != 0 or final is None):
        return None
    result = {"name": run.name, "point": run.point, "overrides": run.overrides,
              "seed": run.seed, "fold": run.fold, "final": {} if failed else final,
              "wall_s": sum(a["wall_s"] for a in attempts), "attempts": len(attempts),
              "steps_per_sec": steps_per_second(run_files.join(root, run.name))}
    if failed:
        result["failed"] = _error_line((logs / f"{run.name}.log").read_text(),
                                       proc.returncode)
    epath.Path(result_path(root, run)).write_text(json.dumps(result))
    return result


class RunLocked(RuntimeError):
    """Another process is training the run now (its lock file names it)."""


def running_in(lock: os.PathLike) -> str | None:
    """``"process pid on host"`` that holds the run's lock file (``host pid started``), if
    it is alive (or on another host, where it cannot be checked); None when there is no
    lock or it is stale: its process ended (a sweep killed while the run trained), or
    the pid now names another process (`started` differs: the machine rebooted, or the
    pid was reused)."""
    try:
        host, pid, *started = open(lock).read().split()
        pid = int(pid)
    except (OSError, ValueError):
        return None
    if host == socket.gethostname():
        if not _alive(pid):
            return None
        if started and started[0] != "-" and _started(pid) not in (None, started[0]):
            return None
    return f"process {pid} on {host}"


def _started(pid: int) -> str | None:
    """``"<boot id>:<start time>"`` of process `pid` (Linux's /proc): one process's
    identity across pid reuse and reboots; None where /proc does not say."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        with open(f"/proc/{pid}/stat") as f:
            start = f.read().rsplit(")", 1)[1].split()[19]  # field 22: starttime
    except (OSError, IndexError):
        return None
    return f"{boot}:{start}"


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): os.kill said it exists
    return state not in ("Z", "X")


def _error_line(log: str, returncode: int) -> str:
    """The last ``error:`` line of a run's log, else its last line."""
    lines = [line for line in log.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or [f"exit status {returncode}"])[-1][:500]


def _last_json(stdout: str) -> dict | None:
    """The last line of ``stdout`` that is a JSON object (bigjax.main's final metrics)."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def gpu_groups(parallel: int, visible: str | None = None) -> list[dict] | None:
    """``parallel`` environments splitting this machine's GPUs (``CUDA_VISIBLE_DEVICES``,
    else those ``nvidia-smi`` lists) into equal groups; None where there are no GPUs."""
    if visible is None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [i.strip() for i in (visible or "").split(",") if i.strip()]
    if visible is not None and not ids:
        return None  # GPUs hidden on purpose (CUDA_VISIBLE_DEVICES="")
    if not ids:
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        ids = [i.strip() for i in out.splitlines() if i.strip()]
    if not ids:
        return None
    if len(ids) % parallel:
        raise ValueError(f"--parallel={parallel} must divide the {len(ids)} GPUs "
                         f"({','.join(ids)}) so that every run gets as many.")
    size = len(ids) // parallel
    return [{"CUDA_VISIBLE_DEVICES": ",".join(ids[i * size:(i + 1) * size])}
            for i in range(parallel)]


def run_all(runs: Sequence[Run], root: str, config_spec: str,
            base_overrides: Sequence[tuple[str, str]], parallel: int = 1,
            envs: list[dict] | None = None, say: Callable[[str], None] = print
            ) -> dict[str, dict | None]:
    """Runs every run of ``runs`` that has not ended (``parallel`` at a time, the i-th at
    once in ``envs[i]``); returns ``{run name: result, or None (interrupted)}`` for every
    run (a result with ``failed`` for one that failed)."""
    results = {run.name: read_result(root, run) for run in runs}
    todo = [run for run in runs if results[run.name] is None]
    say(f"{len(runs) - len(todo)} of {len(runs)} runs already ended; running "
        f"{len(todo)}, {parallel} at a time, in {root}.")
    slots: queue.Queue = queue.Queue()
    for i in range(parallel):
        slots.put(envs[i] if envs else {})
    lock = threading.Lock()

    def one(run: Run) -> None:
        env = slots.get()
        locked = None
        try:
            result = run_one(run, root, config_spec, base_overrides, env)
        except RunLocked as err:  # a second sweep, or the child of a killed one
            result, locked = None, str(err)
        finally:
            slots.put(env)
        with lock:
            results[run.name] = result
            done = sum(r is not None for r in results.values())
            log = run_files.join(root, LOGS, run.name + ".log")
            if locked:
                state = f"skipped: {locked}"
            elif result is None:
                state = f"interrupted; rerun the sweep to resume it (log: {log})"
            elif "failed" in result:
                state = (f"FAILED: {result['failed']} (log: {log}; delete "
                         f"{result_path(root, run)} to retry it)")
            else:
                state = "finished"
            say(f"[{done}/{len(runs)}] {run.name}: {state}")

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(one, todo))
    return results
