"""metrics.jsonl and TensorBoard events, and tensorboardX imported without PyTorch."""

import glob
import json
import os
import subprocess
import sys

from conftest import REPO

PROBE = """
import json, sys
from bigjax.metric_writers import MetricWriter
writer = MetricWriter(sys.argv[1])
writer.write(3, {"train/loss": 0.5})
writer.close()
torch_after_writer = "torch" in sys.modules
try:
    import torch  # still importable when installed
    importable = torch.ones(2).sum().item() == 2.0
except ImportError:
    importable = None
print(json.dumps([torch_after_writer, importable]))
"""


def test_writer_writes_jsonl_and_events_without_importing_torch(tmp_path):
    proc = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    torch_after_writer, importable = json.loads(proc.stdout.strip().splitlines()[-1])
    assert torch_after_writer is False
    assert importable in (True, None)  # None: torch is not installed here
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows == [{"step": 3, "train/loss": 0.5}]
    (events,) = glob.glob(str(tmp_path / "tensorboard" / "events.out.tfevents*"))
    assert os.path.getsize(events) > 0


def test_torch_is_not_left_blocked(monkeypatch):
    from bigjax import metric_writers

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    metric_writers.summary_writer_class()
    assert "torch" not in sys.modules  # None there would make every later import fail
