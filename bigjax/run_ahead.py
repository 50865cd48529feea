"""How far a loop of jitted calls may run ahead of the devices.

JAX dispatches asynchronously: a Python loop that calls a jitted step keeps launching
calls before the earlier ones have run, as many as XLA's queue takes. `RunAhead` bounds
that to one call queued behind the one running, which keeps the devices as busy (the next
step is always waiting for them) and is needed on XLA:CPU: with several devices in one
process, a long queue of steps that each hold several all-reduces deadlocks there. One
device's all-reduce waits for a peer whose program never starts, and after 40 s XLA aborts
the process ("Termination timeout for `all reduce ...`"). Measured with jax 0.10.2 on 2
cores: 2-device digits runs of 1,500-3,000 steps, logging every 500-1,000, aborted in 7 of
7 tries unbounded and finished in every try with the bound (tests/test_run_ahead.py); a
pure-JAX loop with 3 all-reduces per step hung within a few hundred steps unless it waited
for the step before the previous one.
"""

from __future__ import annotations

import collections
from typing import Any

import jax


class RunAhead:
    """Call `launched(outputs)` after each call of a jitted function: it returns once no more
    than `depth` of the calls launched so far are unfinished (it blocks on the outputs of
    the older ones)."""

    def __init__(self, depth: int = 1):
        if depth < 1:
            raise ValueError(f"depth={depth} must be >= 1.")
        self.depth = depth
        self._unfinished: collections.deque[Any] = collections.deque()

    def launched(self, outputs: Any) -> None:
        """`outputs`: the pytree of arrays the call returned (any of its outputs that are
        ready only when the call has run on every device, e.g. replicated metrics)."""
        self._unfinished.append(outputs)
        while len(self._unfinished) > self.depth:
            jax.block_until_ready(self._unfinished.popleft())
