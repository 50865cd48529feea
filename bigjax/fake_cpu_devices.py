"""XLA_FLAGS for a child process that should see `devices` fake CPU devices.

XLA:CPU shows one device per process unless `--xla_force_host_platform_device_count=N`
is in XLA_FLAGS when the backend starts; that is how tests, drills and benchmarks run an
8-device mesh on one CPU. The helper keeps every other flag already set (a user's dump or
debug flags, say) and replaces only an earlier device count.
"""

from __future__ import annotations

DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


def xla_flags_with_devices(flags: str | None, devices: int) -> str:
    """`flags` (an XLA_FLAGS value, may be None) with the device count set to `devices`."""
    if devices < 1:
        raise ValueError(f"devices={devices}: a process needs at least one CPU device.")
    kept = [f for f in (flags or "").split() if not f.startswith(DEVICE_COUNT_FLAG)]
    return " ".join([*kept, f"{DEVICE_COUNT_FLAG}={devices}"])
