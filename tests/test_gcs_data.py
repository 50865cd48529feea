"""Raw data files read from a bucket (config.data.data_dir=gs://...), through epath."""

import gzip

import numpy as np
import pytest
from etils import epath

from bigjax import datasets

import fake_gcs

BUCKET = "bigjax-data"


def _idx(array: np.ndarray) -> bytes:
    """`array` (uint8) as a gzipped IDX file."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    return gzip.compress(header + array.tobytes())


@pytest.fixture()
def bucket(monkeypatch):
    with fake_gcs.serving(BUCKET) as env:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield f"gs://{BUCKET}"


def test_mnist_files_in_a_bucket_load_like_local_ones(bucket, tmp_path):
    rng = np.random.default_rng(0)
    files = {}
    for split, n in (("train", 12), ("test", 5)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        prefix = "t10k" if split == "test" else "train"
        files[f"{prefix}-images-idx3-ubyte.gz"] = _idx(images)
        files[f"{prefix}-labels-idx1-ubyte.gz"] = _idx(labels)
    for name, data in files.items():
        (tmp_path / "mnist").mkdir(exist_ok=True)
        (tmp_path / "mnist" / name).write_bytes(data)
        epath.Path(f"{bucket}/raw/mnist/{name}").write_bytes(data)
    for split in ("train", "test"):
        remote = datasets.load("mnist", split, f"{bucket}/raw")
        local = datasets.load("mnist", split, str(tmp_path))
        assert len(remote) == len(local) == (12 if split == "train" else 5)
        for key in ("image", "label"):
            np.testing.assert_array_equal(remote.features[key], local.features[key])
    # A missing folder in the bucket fails at once, naming it (never a tfds download).
    with pytest.raises(FileNotFoundError, match=f"{bucket}/elsewhere does not exist"):
        datasets.load("mnist", "test", f"{bucket}/elsewhere")


def test_a_vocab_in_a_bucket_tokenizes_like_the_local_file(bucket):
    from bigjax.datasets.tokenized import vocab_file
    from bigjax.pp.tokenizer import WordPieceTokenizer

    local = vocab_file("minilm")
    remote = f"{bucket}/vocab/vocab.txt"
    epath.Path(remote).write_bytes(epath.Path(local).read_bytes())
    assert vocab_file(f"{bucket}/vocab") == remote  # a folder holding vocab.txt
    texts = ["Tokenizers read local files; this one came from a bucket.", "Short."]
    np.testing.assert_array_equal(WordPieceTokenizer(remote).encode(texts)["input_ids"],
                                  WordPieceTokenizer(local).encode(texts)["input_ids"])


def test_line_logs_in_a_bucket_upload_in_batches_and_on_flush(bucket):
    from bigjax import run_files

    # An interval longer than any machine's uptime (time.monotonic() counts from boot):
    # the first line must still go up at once.
    log = run_files.LineLog(f"{bucket}/run/metrics.jsonl", upload_every_s=1e9)
    file = epath.Path(f"{bucket}/run/metrics.jsonl")
    log.append('{"step": 1}')  # the first line goes up at once (nothing uploaded yet)
    log.append('{"step": 2}')  # within the interval: kept for the next upload
    assert file.read_text() == '{"step": 1}\n'
    log.flush()
    assert file.read_text() == '{"step": 1}\n{"step": 2}\n'
    log.append('{"step": 3}')
    log.close()
    again = run_files.LineLog(str(file))  # a resumed run appends after the rows
    again.append('{"step": 4}')
    again.close()
    assert file.read_text().splitlines()[-2:] == ['{"step": 3}', '{"step": 4}']
