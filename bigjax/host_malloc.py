"""glibc malloc tuned for XLA:CPU: freed memory stays in the process, so a compiled
call's buffers are not page-faulted in afresh on every call.

XLA:CPU allocates the temporaries of each call of a compiled function as one buffer
(44.7 MiB for the GPT recipe's train step, `compiled.memory_analysis()`), with malloc,
and frees it when the call returns. glibc serves a request that large with a fresh
``mmap`` (its mmap threshold cannot be raised above 32 MiB) and unmaps it on free, so
every call touches new pages, which the kernel zeroes on first touch: 28 of the 85 ms
of the GPT recipe's one-step call on a 2-core CPU (experiments/shakespeare). With mmap
off for malloc and the heap never trimmed, the buffer is reused: 85 -> 53 ms. (One
arena for all threads, ``M_ARENA_MAX=1``, made the faults rarer still in small probes
but XLA's compiles 1.5-2x slower: not used.)

The price: the process's resident memory stays at its peak instead of shrinking after a
large allocation is freed (freed memory is reused by later allocations, not returned to
the OS; `scripts/measure_data_rss.py --quick`: a peak of 898 MB instead of 810 MB).
The command-line entry points (`bigjax.main`,
`bigjax.evaluate`, `bigjax.predict`) and the benchmark scripts call `keep_freed_memory`
at start-up; it acts only when JAX will run on the CPU. `BIGJAX_KEEP_FREED_MEMORY=0`
turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.metadata
import importlib.util
import logging
import os

log = logging.getLogger(__name__)

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
NEVER_TRIM = 2**31 - 1  # the largest value mallopt takes: free heap top is never returned


def cpu_is_the_only_backend() -> bool:
    """Whether JAX will run on the CPU, decided without starting a backend (malloc must
    be set before the threads that allocate exist): the first of ``JAX_PLATFORMS`` /
    ``jax_platforms`` when set, else whether no accelerator plugin is installed (the
    ``jax_plugins`` entry points and namespace package JAX discovers, or ``libtpu``)."""
    import jax

    platforms = os.environ.get("JAX_PLATFORMS") or jax.config.jax_platforms
    if platforms:
        return platforms.split(",")[0].strip() == "cpu"
    if importlib.metadata.entry_points(group="jax_plugins"):
        return False
    return all(importlib.util.find_spec(name) is None for name in ("jax_plugins", "libtpu"))


def keep_freed_memory() -> bool:
    """``mallopt(M_MMAP_MAX, 0)`` (no allocation is served by its own mmap)
    and ``mallopt(M_TRIM_THRESHOLD, 2**31 - 1)`` (the heap is not trimmed), when JAX runs on
    the CPU (`cpu_is_the_only_backend`), the C library is glibc and
    ``BIGJAX_KEEP_FREED_MEMORY`` is not "0". Returns whether the settings were applied.

    Affects the whole process from this call on. Call it once, at start-up, before JAX
    computes anything."""
    if os.environ.get("BIGJAX_KEEP_FREED_MEMORY", "1") == "0" or not cpu_is_the_only_backend():
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    applied = all(mallopt(param, value) == 1 for param, value in
                  ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, NEVER_TRIM)))
    if not applied:
        log.warning("mallopt refused the malloc settings; XLA:CPU's per-call buffers will "
                    "be page-faulted in on every call.")
    return applied
