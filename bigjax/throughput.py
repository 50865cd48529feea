"""Tokens per second, FLOP/s per device and MFU of a language model's training.

`Throughput.for_experiment(exp)` fixes, once per run, the tokens and analytic FLOPs of
one train step (`model_flops.gpt_train_flops_per_token`, causal attention halved) and
the peak FLOP/s of one device (`config.peak_flops_per_device`, else the table by device
kind, else a matmul measured at start-up on CPU). `scalars(steps_per_sec)` turns a
measured step rate into `perf/tokens_per_sec`, `perf/tflops_per_sec_per_device` and
`perf/mfu`. `xla_flops_per_step` is XLA's own count of the compiled step
(`cost_analysis`), logged beside the analytic one as a cross-check.
"""

from __future__ import annotations

import dataclasses
import functools
import logging

import jax

from bigjax import model_flops, peak_flops

log = logging.getLogger("bigjax")


@dataclasses.dataclass(frozen=True)
class Throughput:
    """Per-step constants of a run: `tokens_per_step` (global), `flops_per_step` (analytic,
    global), `peak_per_device` FLOP/s and where it comes from, `num_devices`."""

    tokens_per_step: int
    flops_per_step: float
    peak_per_device: float
    peak_source: str
    num_devices: int

    @classmethod
    def for_experiment(cls, exp) -> Throughput | None:
        """The throughput constants of `exp`, or None for models without an analytic FLOP
        count (only language models, `config.data.lm`, have one)."""
        lm = exp.config.data.get("lm")
        if not lm or not hasattr(exp.model, "init_cache"):
            return None
        tokens = exp.config.batch_size * lm.context
        per_token = model_flops.gpt_train_flops_per_token(exp.model, lm.context)["total"]
        peak, source = _peak(exp.config.get("peak_flops_per_device"), exp.config.model.dtype)
        return cls(tokens, float(per_token * tokens), peak, source, jax.device_count())

    def scalars(self, steps_per_sec: float) -> dict[str, float]:
        """`perf/tokens_per_sec` (all devices), `perf/tflops_per_sec_per_device` (model
        FLOPs: remat's recomputation not counted) and `perf/mfu` (their share of peak)."""
        flops_per_device = steps_per_sec * self.flops_per_step / self.num_devices
        return {"perf/tokens_per_sec": steps_per_sec * self.tokens_per_step,
                "perf/tflops_per_sec_per_device": flops_per_device / 1e12,
                "perf/mfu": flops_per_device / self.peak_per_device}

    def describe(self, xla_flops_per_step: float | None) -> str:
        """A log line: the analytic FLOPs per step beside XLA's count, and the peak."""
        xla = ("XLA's cost_analysis: n/a" if xla_flops_per_step is None else
               f"XLA's cost_analysis {xla_flops_per_step:.4g} (analytic / XLA = "
               f"{self.flops_per_step / xla_flops_per_step:.3f}; XLA counts the whole "
               "attention square, the analytic figure half)")
        return (f"Train FLOPs per step: analytic {self.flops_per_step:.4g} "
                f"({self.tokens_per_step} tokens); {xla}. Peak per device "
                f"{self.peak_per_device / 1e12:.4g} TFLOP/s ({self.peak_source}).")


@functools.cache
def _peak(configured: float | None, dtype: str) -> tuple[float, str]:
    """`peak_flops.peak_flops_per_device`, measured at most once per process."""
    return peak_flops.peak_flops_per_device(configured, dtype)


def xla_flops_per_step(train_step, state, batch, steps_per_call: int, scanned: bool,
                       grad_accum_steps: int = 1) -> float | None:
    """XLA's FLOPs for one step of the jitted `train_step(state, batch)` (None when XLA
    counts a loop body once: several steps per call, scanned layers or microbatches)."""
    if steps_per_call != 1 or scanned or grad_accum_steps != 1:
        return None
    return model_flops.cost_analysis_flops(train_step.lower(state, batch))
