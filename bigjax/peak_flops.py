"""Peak FLOP/s of one device: the denominator of MFU (model FLOPs utilization).

``peak_flops_per_device`` gives, in order: a configured value; the published dense peak
of the chip (``PEAK_FLOPS``, matched on ``jax.Device.device_kind``); else (CPU, or a chip
the table lacks) the measured rate of a large jit-compiled matmul
(``measure_matmul_flops``), which is what the device achieves, not its peak; measured
once per machine and kept (``measured_peak_cache``).

The table holds dense (no 2:4 sparsity) tensor-core / MXU figures per chip (per jax
device: on TPU v4 and later one device is one chip) from the vendors' datasheets:

- ``bf16``: bfloat16 (float16 too: the same rate on these chips).
- ``f32``: float32 matmuls at jax's default precision: on NVIDIA GPUs from Ampere on
  XLA runs them as TF32 on the tensor cores (the TF32 dense peak is given); on TPU they
  are one bfloat16 pass on the MXU (the bf16 peak). With
  ``jax_default_matmul_precision="highest"`` float32 matmuls are several times slower
  than these figures.
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bigjax import measured_peak_cache


@dataclasses.dataclass(frozen=True)
class ChipPeak:
    """Dense peak FLOP/s of one chip. ``pattern``: regex searched in the lower-cased
    ``device_kind``; the first entry of ``PEAK_FLOPS`` that matches wins."""

    name: str
    pattern: str
    bf16: float
    f32: float


# More specific patterns first ("h100 ... pcie" before "h100", "tpu v5 lite" before "tpu v5").
PEAK_FLOPS: tuple[ChipPeak, ...] = (
    # Google Cloud TPU docs. device_kind: "TPU v4", "TPU v5 lite", "TPU v5" (v5p),
    # "TPU v6 lite". f32 at default precision is one bf16 MXU pass.
    ChipPeak("TPU v4", r"tpu v4(?! ?lite|i\b)", 275e12, 275e12),
    ChipPeak("TPU v5e", r"tpu v5( ?lite|e\b)", 197e12, 197e12),
    ChipPeak("TPU v5p", r"tpu v5p?\b", 459e12, 459e12),
    ChipPeak("TPU v6e", r"tpu v6( ?lite|e\b)", 918e12, 918e12),
    # NVIDIA datasheets, dense (half the "with sparsity" figures); f32 = TF32 tensor core.
    # device_kind: "NVIDIA H100 80GB HBM3" (SXM), "NVIDIA H100 PCIe", "NVIDIA H100 NVL",
    # "NVIDIA H200", "NVIDIA H200 NVL", "NVIDIA GH200 480GB", "NVIDIA A100-SXM4-80GB",
    # "NVIDIA A100-PCIE-40GB", "NVIDIA A100 80GB PCIe", "NVIDIA L4".
    ChipPeak("NVIDIA H100 PCIe", r"h100.*pcie", 756e12, 378e12),
    ChipPeak("NVIDIA H100 NVL", r"h100.*nvl", 835e12, 417.5e12),
    ChipPeak("NVIDIA H100", r"h100", 989e12, 494.7e12),  # SXM5
    ChipPeak("NVIDIA H200 NVL", r"h200.*nvl", 835e12, 417.5e12),
    ChipPeak("NVIDIA H200", r"h200", 989e12, 494.7e12),  # SXM; GH200 too
    ChipPeak("NVIDIA A100", r"a100", 312e12, 156e12),  # SXM4 and PCIe, 40 and 80 GB
    ChipPeak("NVIDIA L4", r"\bl4\b", 121e12, 60e12),  # not L40 / L40S
)


def _is_float32(dtype: Any) -> bool:
    return jnp.dtype(dtype) == jnp.float32


def table_peak_flops(device_kind: str, dtype: Any = jnp.bfloat16) -> tuple[float, str] | None:
    """(dense peak FLOP/s, the table's chip name) of the chip ``device_kind`` names for
    matmuls in ``dtype`` (float32: the ``f32`` column, any other: ``bf16``); None when
    ``PEAK_FLOPS`` has no entry for it (e.g. "cpu")."""
    kind = device_kind.lower()
    for chip in PEAK_FLOPS:
        if re.search(chip.pattern, kind):
            return (chip.f32 if _is_float32(dtype) else chip.bf16), chip.name
    return None


def measure_matmul_flops(dtype: Any = jnp.float32, size: int = 2048, repeats: int = 3,
                         chain: int = 1, device: jax.Device | None = None) -> float:
    """Measured FLOP/s of jit-compiled ``size x size`` matmuls in ``dtype`` on ``device``
    (default: the default device): ``chain`` dependent matmuls per call (more on a fast
    accelerator, so that the dispatch does not dominate), timed ``repeats`` times after a
    warm-up call (compile), each to ``block_until_ready``; the best time counts. About a
    second on a 2-core CPU with the defaults (float32)."""
    if size < 1 or repeats < 1 or chain < 1:
        raise ValueError(f"size={size}, repeats={repeats}, chain={chain} must all be >= 1.")
    device = device or jax.devices()[0]
    rng = np.random.default_rng(0)
    # b scaled by 1/sqrt(size): the chain's products keep their magnitude (no overflow).
    a, b = (jax.device_put(jnp.asarray(rng.standard_normal((size, size)) * scale, dtype), device)
            for scale in (1.0, size ** -0.5))

    @jax.jit
    def matmuls(a, b):
        for _ in range(chain):
            a = a @ b
        return a

    matmuls(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmuls(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size ** 3 * chain / max(best, 1e-9)


def peak_flops_per_device(configured: float | None = None, dtype: Any = jnp.bfloat16,
                          device: jax.Device | None = None, keep: bool = True
                          ) -> tuple[float, str]:
    """(peak FLOP/s of one device, where the figure comes from) for matmuls in ``dtype``
    (the model's compute dtype; a name like "bfloat16" works too).

    ``configured`` > 0 wins ("config"); else the table's figure for ``device``'s
    (default: the first device's) ``device_kind`` ("table: NVIDIA H100"); else (CPU, or
    a chip the table lacks) ``measure_matmul_flops`` on it ("measured: 2048^2 float32
    matmul"; about a second on a CPU). A measured rate is kept per machine
    (``measured_peak_cache``) and read back by later calls ("..., kept in PATH");
    ``keep=False`` measures afresh and keeps nothing (benchmarks that compare runs
    measured in the same conditions).
    """
    if configured is not None and configured > 0:
        return float(configured), "config"
    device = device or jax.devices()[0]
    found = table_peak_flops(device.device_kind, dtype)
    if found is not None:
        return found[0], f"table: {found[1]}"
    name = jnp.dtype(dtype).name
    if device.platform == "cpu":
        size, chain = 2048, 1
    else:  # an accelerator the table lacks: big enough to keep it busy
        size, chain = 8192, 4
    source = f"measured: {size}^2 {name} matmul"
    key = measured_peak_cache.machine_key(device, name, size, chain)
    kept = measured_peak_cache.kept_rate(key) if keep else None
    if kept is not None:
        return kept, f"{source}, kept in {measured_peak_cache.path()}"
    flops = measure_matmul_flops(dtype, size=size, chain=chain, device=device)
    if keep:
        measured_peak_cache.keep_rate(key, flops)
    return flops, source
