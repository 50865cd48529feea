"""Metric writers: `metrics.jsonl` (one JSON object per logged step) and TensorBoard events."""

from __future__ import annotations

import importlib
import json
import sys
import time

import jax

from bigjax import run_files

# Modules tensorboardX imports when they are installed, only for what bigjax does not use
# here: torch (to accept torch tensors; 2-3 s and its memory) and, for a local folder, the
# S3 and Cloud Storage clients (0.3-0.5 s of every run's start).
_NOT_FOR_BIGJAX = ("torch",)
_NOT_FOR_A_LOCAL_FOLDER = ("boto3", "google.cloud.storage")


def summary_writer_class(logdir: str) -> type:
    """tensorboardX's `SummaryWriter` for event files in `logdir` (a folder or a URL),
    imported without the modules it has no use for there (`_NOT_FOR_BIGJAX`, and for a
    local folder `_NOT_FOR_A_LOCAL_FOLDER`). `None` in `sys.modules` makes an optional import
    fail as if the module were absent; the modules stay importable afterwards (and one
    already imported is used as is). A URL after a local folder in the same process
    re-imports tensorboardX's record writer, so that it finds the storage client."""
    remote = run_files.is_url(logdir)
    names = _NOT_FOR_BIGJAX + (() if remote else _NOT_FOR_A_LOCAL_FOLDER)
    blocked = [name for name in names if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None
    try:
        from tensorboardX import SummaryWriter, record_writer
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    if remote and not (record_writer.GCS_ENABLED or record_writer.S3_ENABLED):
        importlib.reload(record_writer)  # its functions read the reloaded module's globals
    return SummaryWriter


class MetricWriter:
    """Writes scalars for a step to `workdir/metrics.jsonl` and TensorBoard (process 0 only;
    `workdir` may be a bucket URL, see `run_files`)."""

    def __init__(self, workdir: str):
        self.enabled = jax.process_index() == 0
        self._jsonl = None
        self._tb = None
        if self.enabled:
            logdir = run_files.join(workdir, "tensorboard")
            SummaryWriter = summary_writer_class(logdir)  # noqa: N806 (a class)
            self._jsonl = run_files.LineLog(run_files.join(workdir, "metrics.jsonl"))
            self._tb = SummaryWriter(logdir, flush_secs=30)

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
