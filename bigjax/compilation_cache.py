"""The persistent XLA compilation cache: a restarted or preempted run loads its compiled
programs from disk instead of compiling them again.

`config.compilation_cache_dir` picks the folder:
- "auto" (the default): `$BIGJAX_CACHE_DIR/xla` when that variable is set; else, for a
  workdir on a remote filesystem (`gs://...`, which outlives the TPU VM that wrote it),
  `.compilation_cache` beside the workdir; else `~/.cache/bigjax/xla`;
- a path: that folder (local or remote);
- "" : off.
A folder already set through JAX itself (`JAX_COMPILATION_CACHE_DIR`) wins. JAX's
own thresholds decide what is cached (programs that took at least
`JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`, default 1 s, to compile). A process keeps
the first folder it used.

The cache is trusted code: share the folder only with people you trust.
"""

from __future__ import annotations

import logging
import os
import time

import jax

from bigjax import run_files
from bigjax.user_cache import CACHE_ENV, cache_dir

log = logging.getLogger("bigjax")
HIT = "/jax/compilation_cache/cache_hits"
WRITE = "/jax/compilation_cache/cache_misses"  # recorded when a compiled program is written


def location(setting: str, workdir: str) -> str | None:
    """The cache folder for `config.compilation_cache_dir = setting` (None: off)."""
    if not setting:
        return None
    if setting != "auto":
        return setting
    if os.environ.get(CACHE_ENV) or not run_files.is_url(workdir):
        return os.path.join(cache_dir(), "xla")
    return workdir.rstrip("/").rsplit("/", 1)[0] + "/.compilation_cache"


def enable(setting: str, workdir: str) -> str | None:
    """Points JAX's persistent cache at `location(setting, workdir)`, unless JAX already
    has a folder (then that one is kept); returns the folder in use (None: off)."""
    current = jax.config.jax_compilation_cache_dir
    if current:
        return current
    folder = location(setting, workdir)
    if folder:
        jax.config.update("jax_compilation_cache_dir", folder)
    return folder


class CacheEvents:
    """Counts the compiled programs loaded from (hits) and written to the cache while
    open: `with CacheEvents() as events: ...; events.hits, events.writes`."""

    def __init__(self):
        self.hits = 0
        self.writes = 0

    def _listen(self, event: str, **_) -> None:
        if event == HIT:
            self.hits += 1
        elif event == WRITE:
            self.writes += 1

    def __enter__(self) -> CacheEvents:
        jax.monitoring.register_event_listener(self._listen)
        return self

    def __exit__(self, *exc) -> None:
        jax.monitoring.unregister_event_listener(self._listen)


def report_first_call(fn, folder: str | None, what: str):
    """`fn` (a jitted function) that logs, on its first call, how long the call took
    (compiling included) and whether the program came from the cache in `folder`."""
    called = False

    def wrapped(*args, **kwargs):
        nonlocal called
        if called:
            return fn(*args, **kwargs)
        called = True
        with CacheEvents() as events:
            started = time.perf_counter()
            out = fn(*args, **kwargs)
            seconds = time.perf_counter() - started
        if folder is None:
            source = "compilation cache off"
        elif events.hits and not events.writes:
            source = f"loaded from the compilation cache {folder}"
        elif events.writes:
            source = f"compiled and written to the compilation cache {folder}"
        else:
            source = (f"compiled; not cached in {folder}: it took less than JAX's threshold "
                      "(JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS)")
        log.info("%s is ready in %.1f s (%s).", what.capitalize(), seconds, source)
        return out

    return wrapped
