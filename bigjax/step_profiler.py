"""`config.profile_steps = (a, b)`: a `jax.profiler` trace of training steps a..b.

The trace goes to `workdir/tensorboard/plugins/profile/<time>/` (TensorBoard's profile
tab shows it beside the run's scalars: `tensorboard --logdir=WORKDIR/tensorboard`), with
a `perfetto_trace.json.gz` that ui.perfetto.dev opens. Steps count from 1; with several
steps per call, the trace covers the calls that hold steps a..b. The trace stops only
once the devices have finished step b (the state is blocked on), so step b's device
work is in it. `config.profile_memory = True` also saves the device memory at the end,
`workdir/profile/memory_step_<b>.prof` (pprof format: `pprof -http=: FILE`).
"""

from __future__ import annotations

import logging
from typing import Any

import jax
from etils import epath

from bigjax import run_files

log = logging.getLogger("bigjax")


def check_profile_steps(steps: tuple[int, ...], total_steps: int | None = None) -> None:
    """ValueError unless ``steps`` is (first, last) with 1 <= first <= last (<=
    ``total_steps`` when given): a trace that would never start or never stop."""
    if len(steps) != 2 or not 1 <= steps[0] <= steps[1]:
        raise ValueError(f"config.profile_steps={steps}: give (first, last) steps to trace, "
                         "1 <= first <= last, e.g. --config.profile_steps=10,12.")
    if total_steps is not None and steps[1] > total_steps:
        raise ValueError(f"config.profile_steps={steps} ends after the run's {total_steps} "
                         "steps: trace steps the run trains.")


class StepProfiler:
    """Starts and stops the trace around the loop's calls (`before_call`, `after_call`)."""

    def __init__(self, steps: tuple[int, int] | None, memory: bool, workdir: str):
        if steps is not None:
            check_profile_steps(tuple(steps))
        self.steps = steps
        self.memory = memory
        self.workdir = workdir
        self.tracing = False
        self.done = False

    def before_call(self, step: int, steps_in_call: int) -> None:
        """Before the call that trains steps `step + 1 .. step + steps_in_call`."""
        if self.steps is None or self.tracing or self.done:
            return
        first, last = self.steps
        if step + steps_in_call >= first and step < last:
            folder = run_files.join(self.workdir, "tensorboard")
            jax.profiler.start_trace(folder, create_perfetto_trace=True)
            self.tracing = True
            log.info("Tracing steps %d-%d into %s/plugins/profile.", step + 1,
                     max(last, step + steps_in_call), folder)

    def after_call(self, step: int, state: Any) -> None:
        """After a call; `step` is the number of steps done."""
        if not self.tracing or step < self.steps[1]:
            return
        jax.block_until_ready(state)
        jax.profiler.stop_trace()
        self.tracing, self.done = False, True
        if self.memory:
            folder = epath.Path(run_files.join(self.workdir, "profile"))
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"memory_step_{step}.prof"
            path.write_bytes(jax.profiler.device_memory_profile())
            log.info("Saved the device memory profile at step %d to %s.", step, path)

    def close(self) -> None:
        """Stops a trace the run ended inside (preempted or failed before step b)."""
        if self.tracing:
            self.tracing = False
            try:
                jax.profiler.stop_trace()
            except Exception as err:  # never hide why the run ended
                log.warning("Could not stop the profiler trace: %s", err)
