"""metrics.jsonl and TensorBoard events, and tensorboardX imported without PyTorch (nor,
for a local folder, the S3 and Cloud Storage clients)."""

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
clients_after_writer = [name in sys.modules for name in ("boto3", "google.cloud.storage")]
from bigjax.metric_writers import summary_writer_class  # then a bucket, in the same process
from tensorboardX import record_writer
gcs_after_local = record_writer.GCS_ENABLED
summary_writer_class("gs://bucket/run/tensorboard")
gcs_for_a_bucket = record_writer.GCS_ENABLED
try:
    import torch  # still importable when installed
    importable = torch.ones(2).sum().item() == 2.0
except ImportError:
    importable = None
print(json.dumps([torch_after_writer, importable, clients_after_writer,
                  [gcs_after_local, gcs_for_a_bucket]]))
"""


def test_writer_writes_jsonl_and_events_without_importing_torch(tmp_path):
    proc = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    torch_after_writer, importable, clients_after_writer, gcs = json.loads(
        proc.stdout.strip().splitlines()[-1])
    assert torch_after_writer is False
    assert clients_after_writer == [False, False]
    assert gcs == [False, True]  # a bucket's writer still finds the Cloud Storage client
    assert importable in (True, None)  # None: torch is not installed here
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows == [{"step": 3, "train/loss": 0.5}]
    (events,) = glob.glob(str(tmp_path / "tensorboard" / "events.out.tfevents*"))
    assert os.path.getsize(events) > 0


def test_torch_and_the_storage_clients_are_not_left_blocked(monkeypatch):
    from bigjax import metric_writers

    names = ("torch", "boto3", "google.cloud.storage")
    for name in names:
        monkeypatch.delitem(sys.modules, name, raising=False)
    metric_writers.summary_writer_class("/tmp/tensorboard")  # a local folder blocks all three
    for name in names:
        assert name not in sys.modules  # None there would make every later import fail
