"""A machine's measured matmul rate, kept between runs.

Where the peak table has no figure for a device (CPUs), MFU's denominator is a measured
matmul rate (`peak_flops.measure_matmul_flops`: about a second on a 2-core CPU). It is
measured once per machine and kept in `$BIGJAX_CACHE_DIR/peak_flops.json`, one entry per
key naming what the rate depends on: platform, device kind, CPU model, usable cores, dtype,
matmul size, jax version. Later runs on the machine read it, so every run's MFU has the
same denominator (a measurement taken while another process was busy would otherwise
raise one run's MFU) and none pays for the measurement again. Delete the file to measure
again; a damaged file is measured over.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile

import jax

from bigjax import host_cpu
from bigjax.user_cache import cache_dir

log = logging.getLogger("bigjax")
FILE_NAME = "peak_flops.json"


def path() -> str:
    """Where the measured rates are kept: `$BIGJAX_CACHE_DIR/peak_flops.json`."""
    return os.path.join(cache_dir(), FILE_NAME)


def machine_key(device: jax.Device, dtype: str, size: int, chain: int) -> str:
    """The entry of a `size`^2 `dtype` matmul rate (`chain` matmuls per call) on
    `device`: one string naming everything the rate depends on."""
    return (f"{device.platform}|{device.device_kind}|{host_cpu.cpu_model()}|"
            f"{host_cpu.usable_cores()} cores|{dtype}|{size}^2 x{chain}|jax {jax.__version__}")


def _read() -> dict:
    try:
        with open(path(), encoding="utf-8") as f:
            entries = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        log.warning("Ignoring the damaged %s (%s): the matmul rate is measured again.",
                    path(), err)
        return {}
    return entries if isinstance(entries, dict) else {}


def kept_rate(key: str) -> float | None:
    """The rate kept under `key`, or None (never measured, or a damaged entry)."""
    rate = _read().get(key)
    return float(rate) if isinstance(rate, (int, float)) and rate > 0 else None


def keep_rate(key: str, rate: float) -> None:
    """Keeps `rate` under `key` (written to a temporary file, then renamed into place: a
    reader never sees half a file). A cache folder that cannot be written is a warning."""
    entries = {**_read(), key: float(rate)}
    folder = os.path.dirname(path())
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".peak_flops.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(entries, f, indent=1, sort_keys=True)
            os.replace(tmp, path())
        finally:
            if os.path.exists(tmp):  # a failed write leaves no temporary file behind
                os.remove(tmp)
    except OSError as err:
        log.warning("Could not keep the measured matmul rate in %s (%s): the next run "
                    "measures it again.", path(), err)
