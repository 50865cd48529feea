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

    def rates(self, step: int) -> dict[str, float]:
        """`steps_per_sec` and `examples_per_sec` since the previous call; resets the clock."""
        now = time.perf_counter()
        elapsed = max(now - self._last_time, 1e-9)
        steps_per_sec = (step - self._last_step) / elapsed
        self._last_step, self._last_time = step, now
        return {"steps_per_sec": steps_per_sec,
                "examples_per_sec": steps_per_sec * self.global_batch_size}

    def line(self, step: int, loss: float, rates: dict[str, float]) -> str:
        left = (self.total_steps - step) / max(rates["steps_per_sec"], 1e-9)
        eta = time.strftime("%H:%M:%S", time.gmtime(left))
        return (f"step {step}/{self.total_steps}  loss {loss:.4f}  "
                f"{rates['steps_per_sec']:.1f} steps/s  {rates['examples_per_sec']:.0f} ex/s  "
                f"ETA {eta}")
