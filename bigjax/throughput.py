"""Examples and tokens per second, FLOP/s per device and MFU of a run's training.

`Throughput.for_experiment(exp)` fixes, once per run, the examples, tokens and analytic
FLOPs of one train step (`model_flops.train_flops_per_example`: every model family) and
the peak FLOP/s of one device (`config.peak_flops_per_device`, else the table by device
kind, else a matmul measured at start-up on CPU). `scalars(steps_per_sec)` turns a
measured step rate into `perf/examples_per_sec`, `perf/tokens_per_sec` (models of
tokens), `perf/tflops_per_sec_per_device` and `perf/mfu`. `xla_flops_per_step` is XLA's
own count of the compiled step (`cost_analysis`), logged beside the analytic one as a
cross-check.
"""

from __future__ import annotations

import dataclasses
import functools
import logging

import jax
import numpy as np

from bigjax import model_flops, peak_flops
from bigjax.input_pipeline import device_columns

log = logging.getLogger("bigjax")


@dataclasses.dataclass(frozen=True)
class Throughput:
    """Per-step constants of a run: `examples_per_step` and `tokens_per_step` (global;
    tokens None for models not of tokens), `flops_per_step` (analytic, global), how it
    was counted, `peak_per_device` FLOP/s and where it comes from, `num_devices`."""

    examples_per_step: int
    tokens_per_step: int | None
    flops_per_step: float | None
    flops_basis: str
    peak_per_device: float
    peak_source: str
    num_devices: int

    @classmethod
    def for_experiment(cls, exp) -> Throughput:
        """The throughput constants of `exp` (an `experiment.Experiment`). For a model
        whose FLOPs cannot be counted, `flops_per_step` is None (with a warning): its
        runs log examples/s but no MFU, and train on."""
        batch = int(exp.config.batch_size)
        peak, source = _peak(exp.config.get("peak_flops_per_device"), exp.config.model.dtype)
        try:
            count = model_flops.train_flops_per_example(exp, _typical_sample(exp))
        except Exception as err:  # counting must never stop a run
            log.warning("No analytic FLOP count for this model (%s: %s): perf/mfu and "
                        "perf/tflops_per_sec_per_device are not logged.",
                        type(err).__name__, err)
            return cls(batch, None, None, "not counted", peak, source, jax.device_count())
        tokens = None if count["tokens"] is None else batch * count["tokens"]
        return cls(batch, tokens, float(count["flops"] * batch), count["basis"], peak, source,
                   jax.device_count())

    def scalars(self, steps_per_sec: float) -> dict[str, float]:
        """`perf/examples_per_sec` and `perf/tokens_per_sec` (all devices; tokens only for
        models of tokens), `perf/tflops_per_sec_per_device` (model FLOPs: remat's
        recomputation not counted) and `perf/mfu` (their share of peak; both only when
        the FLOPs were counted)."""
        scalars = {"perf/examples_per_sec": steps_per_sec * self.examples_per_step}
        if self.tokens_per_step is not None:
            scalars["perf/tokens_per_sec"] = steps_per_sec * self.tokens_per_step
        if self.flops_per_step is not None:
            flops_per_device = steps_per_sec * self.flops_per_step / self.num_devices
            scalars.update({"perf/tflops_per_sec_per_device": flops_per_device / 1e12,
                            "perf/mfu": flops_per_device / self.peak_per_device})
        return scalars

    def describe(self, xla_flops_per_step: float | None) -> str:
        """A log line: the analytic FLOPs per step beside XLA's count, and the peak."""
        if self.flops_per_step is None:
            return "Train FLOPs per step: not counted (see the warning above); no MFU."
        xla = ("XLA's cost_analysis: n/a" if xla_flops_per_step is None else
               f"XLA's cost_analysis {xla_flops_per_step:.4g} (analytic / XLA = "
               f"{self.flops_per_step / xla_flops_per_step:.3f}; XLA also counts "
               "elementwise ops, and a causal model's whole attention square)")
        what = f"{self.examples_per_step} examples" + (
            "" if self.tokens_per_step is None else f", {self.tokens_per_step} tokens")
        return (f"Train FLOPs per step: analytic {self.flops_per_step:.4g} ({what}; "
                f"{self.flops_basis}); {xla}. Peak per device "
                f"{self.peak_per_device / 1e12:.4g} TFLOP/s ({self.peak_source}).")


def _typical_sample(exp) -> dict:
    """One preprocessed example for counting a step's FLOPs: with length buckets, its
    token columns padded or cut to their mean width over an epoch's batches (the FLOPs of
    a step grow about linearly with its widths), else at full width."""
    data = exp.train_batches.data
    widths = exp.train_batches.mean_widths()
    if not widths:
        return exp.sample(data)
    example = device_columns(data.take(np.arange(1)))
    for column, width in widths.items():
        ids = example[column][:, :max(int(round(width)), 1)]
        example[column] = np.pad(ids, [(0, 0), (0, int(round(width)) - ids.shape[1])])
    log.info("FLOPs are counted at the mean widths of the length buckets: %s.",
             ", ".join(f"{c} {w:.1f}" for c, w in widths.items()))
    return exp.preprocess(example, None, train=False)


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
