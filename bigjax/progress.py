"""Progress lines with throughput and ETA."""

from __future__ import annotations

import time


class Progress:
    """Measures steps/s and examples/s between reports and estimates the time left."""

    def __init__(self, total_steps: int, global_batch_size: int, start_step: int):
        self.total_steps = total_steps
        self.global_batch_size = global_batch_size
        self._last_step = start_step
        self._last_time = time.perf_counter()
        self._input_wait = 0.0  # seconds the loop waited for batches since the last report

    def waited_for_input(self, seconds: float) -> None:
        """Adds time the devices waited while the loop got and placed the next batch."""
        self._input_wait += seconds

    def rates(self, step: int) -> dict[str, float]:
        """Since the previous call (then resets): `steps_per_sec`, `examples_per_sec`, and
        `data_wait_fraction`, the share of the wall time the devices waited for input: the
        time the loop spent getting and placing a batch while the previous step had
        already finished (a step that finished during the wait counts whole, so this
        bounds the stall from above)."""
        now = time.perf_counter()
        elapsed = max(now - self._last_time, 1e-9)
        steps_per_sec = (step - self._last_step) / elapsed
        wait_fraction = min(self._input_wait / elapsed, 1.0)
        self._last_step, self._last_time, self._input_wait = step, now, 0.0
        return {"steps_per_sec": steps_per_sec,
                "examples_per_sec": steps_per_sec * self.global_batch_size,
                "data_wait_fraction": wait_fraction}

    def line(self, step: int, loss: float, rates: dict[str, float]) -> str:
        left = (self.total_steps - step) / max(rates["steps_per_sec"], 1e-9)
        eta = time.strftime("%H:%M:%S", time.gmtime(left))
        return (f"step {step}/{self.total_steps}  loss {loss:.4f}  "
                f"{rates['steps_per_sec']:.1f} steps/s  {rates['examples_per_sec']:.0f} ex/s  "
                f"ETA {eta}")
