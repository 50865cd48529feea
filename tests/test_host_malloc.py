"""host_malloc.keep_freed_memory: a large buffer that is freed and allocated again (what
XLA:CPU does with a compiled call's temporaries on every call) is reused, not mapped and
page-faulted in afresh. Checked in fresh processes: the setting is process-wide."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO

# malloc a 48 MiB buffer (above glibc's largest mmap threshold, 32 MiB), touch every page,
# free it, and count the minor page faults of doing it again. Transparent huge pages are
# off for the probe (prctl PR_SET_THP_DISABLE = 41): a host with THP "always" would back
# the fresh mapping with 2 MiB pages and fault 512 times fewer.
PROBE = """
import ctypes, json, resource, sys
sys.path.insert(0, {repo!r})
from bigjax import host_malloc
libc = ctypes.CDLL("libc.so.6")
libc.prctl(41, 1, 0, 0, 0)
applied = host_malloc.keep_freed_memory()
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
size = 48 << 20
def touch_and_free():
    buf = libc.malloc(size)
    ctypes.memset(buf, 1, size)
    libc.free(buf)
touch_and_free()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
touch_and_free()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({{"applied": applied, "faults": faults, "pages": size // 4096}}))
"""


def probe(keep: str) -> dict:
    env = {**os.environ, "BIGJAX_KEEP_FREED_MEMORY": keep, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", PROBE.format(repo=REPO)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_a_freed_large_buffer_is_reused_instead_of_faulted_in_again():
    off, on = probe("0"), probe("1")
    assert not off["applied"] and on["applied"]
    assert off["faults"] > 0.9 * off["pages"], off  # mapped afresh, every page faulted
    assert on["faults"] < 0.01 * on["pages"], on  # the same memory again


def test_only_the_cpu_backend_gets_the_settings(monkeypatch):
    from bigjax import host_malloc

    monkeypatch.setenv("JAX_PLATFORMS", "cuda,cpu")
    assert not host_malloc.cpu_is_the_only_backend()
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    assert host_malloc.cpu_is_the_only_backend()


def test_the_command_line_entry_points_set_malloc_before_joining_the_runtime(monkeypatch):
    """`bigjax.main`, `bigjax.evaluate` and `bigjax.predict` start through
    `main.start_runtime`, which sets malloc first (before any backend starts)."""
    import argparse

    from bigjax import evaluate, host_malloc, main, predict

    calls = []
    monkeypatch.setattr(host_malloc, "keep_freed_memory", lambda: calls.append("malloc"))
    monkeypatch.setattr(main, "init_distributed", lambda args: calls.append("distributed"))
    main.start_runtime(argparse.Namespace(distributed=False, coordinator_address=None))
    assert calls == ["malloc", "distributed"]
    assert evaluate.start_runtime is main.start_runtime is predict.start_runtime
