"""Metric writers: `metrics.jsonl` (one JSON object per logged step) and TensorBoard events."""

from __future__ import annotations

import json
import sys
import time

import jax

from bigjax import run_files


def summary_writer_class() -> type:
    """tensorboardX's `SummaryWriter`, imported without PyTorch. tensorboardX imports torch
    whenever it is installed (the `[bench]` and `[test]` extras install it), only so that
    it can accept torch tensors; bigjax writes Python floats, and the import cost every run
    2-3 s and torch's memory. `None` in `sys.modules` makes that optional import fail as if
    torch were absent; torch stays importable afterwards (and is used as is when already
    imported)."""
    blocked = "torch" not in sys.modules
    if blocked:
        sys.modules["torch"] = None
    try:
        from tensorboardX import SummaryWriter
    finally:
        if blocked and sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    return SummaryWriter


class MetricWriter:
    """Writes scalars for a step to `workdir/metrics.jsonl` and TensorBoard (process 0 only;
    `workdir` may be a bucket URL, see `run_files`)."""

    def __init__(self, workdir: str):
        self.enabled = jax.process_index() == 0
        self._jsonl = None
        self._tb = None
        if self.enabled:
            SummaryWriter = summary_writer_class()  # noqa: N806 (a class)
            self._jsonl = run_files.LineLog(run_files.join(workdir, "metrics.jsonl"))
            self._tb = SummaryWriter(run_files.join(workdir, "tensorboard"), flush_secs=30)

    def write(self, step: int, scalars: dict[str, float]) -> None:
        """`scalars` maps names like "train/loss" to numbers (none: no row)."""
        if not self.enabled or not scalars:
            return
        row = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
        self._jsonl.append(json.dumps(row))
        for name, value in scalars.items():
            self._tb.add_scalar(name, float(value), int(step), walltime=time.time())

    def write_texts(self, step: int, texts: dict[str, list[str]]) -> None:
        """Texts (e.g. generated samples) to TensorBoard's text tab, one entry per name."""
        if not self.enabled:
            return
        for name, items in texts.items():
            body = "\n\n---\n\n".join(f"```\n{t}\n```" for t in items)
            self._tb.add_text(name, body, int(step), walltime=time.time())

    def flush(self) -> None:
        """Makes every written row durable (`metrics.jsonl` in a bucket is uploaded in
        batches; TensorBoard's events are flushed on their own schedule)."""
        if self.enabled:
            self._jsonl.flush()

    def close(self) -> None:
        if self.enabled:
            self._jsonl.close()
            self._tb.close()
