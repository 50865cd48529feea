import gzip
import os
import time

import numpy as np
import pytest

from bigjax import datasets
from bigjax.datasets import mnist
from bigjax.datasets.array_dataset import ArrayDataset


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_idx_round_trip(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (4, 28, 28))
    _write_idx(tmp_path / "x.gz", array)
    np.testing.assert_array_equal(mnist.read_idx(str(tmp_path / "x.gz")), array)


def test_mnist_from_a_folder_of_idx_files(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for images, labels, n in [(*mnist.IDX_FILES["train"], 6), (*mnist.IDX_FILES["test"], 3)]:
        _write_idx(folder / images, rng.integers(0, 256, (n, 28, 28)))
        _write_idx(folder / labels, rng.integers(0, 10, (n,)))
    train = datasets.load("mnist", "train", str(tmp_path))
    assert train.features["image"].shape == (6, 28, 28, 1) and len(train) == 6


def test_missing_mnist_file_fails_fast_naming_it(tmp_path):
    (tmp_path / "mnist").mkdir()
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        datasets.load("mnist", "train", str(tmp_path))
    assert time.perf_counter() - start < 5


def test_real_mnist_offline(real_data_dir):
    if not os.path.isdir(os.path.join(real_data_dir, "mnist")):
        pytest.skip(f"{real_data_dir}/mnist absent")
    train = datasets.load("mnist", "train", real_data_dir)
    test = datasets.load("mnist", "test", real_data_dir)
    assert train.features["image"].shape == (60000, 28, 28, 1)
    assert test.features["image"].shape == (10000, 28, 28, 1)
    assert np.bincount(test.features["label"]).tolist()[:2] == [980, 1135]


def test_digits_split_is_fixed_stratified_and_disjoint():
    train, test = datasets.load("digits", "train"), datasets.load("digits", "test")
    assert len(train) + len(test) == 1797 and len(test) == 360
    again = datasets.load("digits", "test")
    np.testing.assert_array_equal(test.features["image"], again.features["image"])
    share = np.bincount(test.features["label"]) / np.bincount(train.features["label"])
    assert share.min() > 0.2 and share.max() < 0.3
    assert train.features["image"].dtype == np.uint8 and train.features["image"].max() == 255


def test_labels_out_of_range_are_refused():
    with pytest.raises(ValueError, match="label 12 at example 1 is outside"):
        ArrayDataset({"label": np.array([1, 12, 3])}, num_classes=10, name="bad")


def test_unknown_data_set_lists_the_known_ones():
    with pytest.raises(ValueError, match="known: .*mnist"):
        datasets.load("mnist2", "train")
