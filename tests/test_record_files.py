"""On-disk ArrayRecord data sets give exactly the in-memory batches."""

import json
import os

import numpy as np
import pytest

from bigjax import datasets
from bigjax.datasets import record_files
from bigjax.input_pipeline import TrainBatches, eval_batches

from conftest import data_dir


def _assert_same_batches(memory, on_disk, batch_size):
    assert len(memory) == len(on_disk)
    a, b = TrainBatches(memory, batch_size, seed=3), TrainBatches(on_disk, batch_size, seed=3)
    for k in (0, 1, a.steps_per_epoch, 2 * a.steps_per_epoch + 1):  # across epochs
        x, y = a[k], b[k]
        assert x.keys() == y.keys()
        for key in x:
            assert x[key].dtype == y[key].dtype
            np.testing.assert_array_equal(x[key], y[key])
    for x, y in zip(eval_batches(memory, batch_size), eval_batches(on_disk, batch_size),
                    strict=True):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def test_digits_on_disk_give_the_in_memory_batches(tmp_path):
    for split in ("train", "test"):
        memory = datasets.load("digits", split)
        on_disk = datasets.load("digits", split, on_disk=True, prepared_dir=str(tmp_path))
        assert isinstance(on_disk, record_files.RecordDataset)
        _assert_same_batches(memory, on_disk, 64)
    # Subsets pick the same examples, and a second load reuses the prepared files.
    files = sorted(os.listdir(tmp_path / "digits"))
    subset = datasets.load("digits", "train", examples=100, on_disk=True,
                           prepared_dir=str(tmp_path))
    _assert_same_batches(datasets.load("digits", "train", examples=100), subset, 32)
    assert sorted(os.listdir(tmp_path / "digits")) == files


@pytest.mark.skipif(not data_dir() or not os.path.isdir(os.path.join(data_dir(), "mnist")),
                    reason="needs the offline MNIST files ($BIGJAX_DATA_DIR/mnist)")
def test_mnist_through_array_record_gives_the_in_memory_batches(tmp_path):
    memory = datasets.load("mnist", "test", data_dir())
    on_disk = datasets.load("mnist", "test", data_dir(), on_disk=True, prepared_dir=str(tmp_path))
    _assert_same_batches(memory, on_disk, 128)


def test_damaged_or_missing_records_are_refused(tmp_path):
    data = datasets.load("digits", "test")
    record_files.write(str(tmp_path), "test",
                       ({k: v[i] for k, v in data.features.items()} for i in range(10)),
                       "digits", 10)
    with pytest.raises(FileNotFoundError, match="no prepared split 'train'"):
        record_files.RecordDataset(str(tmp_path), "train")
    other = tmp_path / "other"
    record_files.write(str(other), "test",
                       ({k: v[i] for k, v in data.features.items()} for i in range(4)),
                       "digits", 10)
    os.replace(other / "test.array_record", tmp_path / "test.array_record")
    with pytest.raises(ValueError, match="holds 4 records, its test.json says 10"):
        record_files.RecordDataset(str(tmp_path), "test")
    with pytest.raises(ValueError, match="same columns, dtypes and shapes"):
        record_files.write(str(tmp_path), "mixed",
                           iter([{"x": np.zeros(2)}, {"x": np.zeros(3)}]), "mixed")
    assert not record_files.is_prepared(str(tmp_path), "mixed")
    # Files of another layout are never misread: prepared again, or refused by name.
    info = json.loads((tmp_path / "test.json").read_text())
    (tmp_path / "test.json").write_text(json.dumps({**info, "format": "msgpack-0"}))
    assert not record_files.is_prepared(str(tmp_path), "test")
    with pytest.raises(ValueError, match="format 'msgpack-0'.*prepare the data set again"):
        record_files.RecordDataset(str(tmp_path), "test")
    assert not [f for f in os.listdir(tmp_path) if f.startswith("mixed")]  # no leftovers


def test_tfds_data_source_is_read_by_index_like_the_in_memory_copy(monkeypatch, tmp_path):
    """On a machine with no offline copy, `on_disk` reads tfds's own ArrayRecord files
    through `tfds.data_source` (here tfds's mock data: no download)."""
    tfds = pytest.importorskip("tensorflow_datasets")
    from bigjax.datasets import local_files
    from bigjax.datasets.tfds_source import TfdsDataset

    monkeypatch.delenv("BIGJAX_DATA_DIR", raising=False)  # no offline copy: tfds it is
    monkeypatch.setattr(local_files, "require_network", lambda *args: None)  # mock data
    with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
        source = tfds.builder("mnist", file_format="array_record").as_data_source(split="test")
        on_disk = datasets.load("mnist", "test", on_disk=True, prepared_dir=str(tmp_path))
        assert isinstance(on_disk, TfdsDataset) and not os.listdir(tmp_path)  # read in place
        examples = [source[i] for i in range(len(source))]
        memory = datasets.ArrayDataset(
            {"image": np.stack([e["image"] for e in examples]).astype(np.uint8),
             "label": np.asarray([e["label"] for e in examples], np.int32)}, 10, "mnist")
        assert memory.features["image"].shape == (40, 28, 28, 1)
        _assert_same_batches(memory, on_disk, 8)
        _assert_same_batches(memory.subset(np.arange(5, 29)), on_disk.subset(np.arange(5, 29)), 8)
