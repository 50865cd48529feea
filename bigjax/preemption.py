"""Preemption: every process learns, at the same step, that the run must stop and save.

Multi-process runs use JAX's coordination service: `jax.distributed` installs a
preemption notifier (SIGTERM by default, as TPU VMs and most schedulers send), and
`multihost_utils.reached_preemption_sync_point(step)` — a host-side check, no
device round-trip — turns True on every process at the same step once any of them
was notified. A single process (no `jax.distributed`) turns its own SIGTERM, or
Ctrl-C (SIGINT), into a flag: it saves and stops like a preempted run.
"""

from __future__ import annotations

import logging
import signal
import threading

import jax
from jax.experimental import multihost_utils

log = logging.getLogger("bigjax")


class PreemptionCheck:
    """`should_stop()` after each train-step call: True when the run must save and stop.

    Every process calls it once per call of the train step (the sync point is counted
    in calls, so several steps per call work too).
    """

    def __init__(self):
        self.requested = False
        self._calls = 0
        self._distributed = jax.distributed.is_initialized()
        self._previous = {}
        if not self._distributed and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        log.warning("%s received: saving a checkpoint and stopping (rerun the same command "
                    "to resume).", signal.Signals(signum).name)
        self.requested = True

    def should_stop(self) -> bool:
        self._calls += 1
        if self._distributed and not self.requested:
            if multihost_utils.reached_preemption_sync_point(self._calls):
                log.warning("Preemption sync point reached: saving a checkpoint and stopping.")
                self.requested = True
        return self.requested

    def close(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
