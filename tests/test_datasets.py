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


def test_digits_split_is_sklearns_kept_and_read_back_without_sklearn(tmp_path, monkeypatch,
                                                                      caplog):
    from bigjax.datasets import digits

    monkeypatch.setenv("BIGJAX_CACHE_DIR", str(tmp_path))
    digits._kept_split.cache_clear()
    made = []
    real_split = digits.split_with_sklearn
    monkeypatch.setattr(digits, "split_with_sklearn", lambda: made.append(1) or real_split())
    first = datasets.load("digits", "test")
    assert made == [1] and os.path.exists(digits.kept_copy_path())
    digits._kept_split.cache_clear()  # as a new process: the kept copy, not scikit-learn
    again = datasets.load("digits", "test")
    assert made == [1]
    for column in ("image", "label"):
        np.testing.assert_array_equal(again.features[column], first.features[column])
        np.testing.assert_array_equal(again.features[column], real_split()[f"test_{column}"])
    with open(digits.kept_copy_path(), "r+b") as f:  # damaged: made again, with a warning
        f.truncate(50)
    digits._kept_split.cache_clear()
    np.testing.assert_array_equal(datasets.load("digits", "train").features["label"],
                                  real_split()["train_label"])
    assert made == [1, 1] and "kept digits split" in caplog.text and "is damaged" in caplog.text
    digits._kept_split.cache_clear()


def test_labels_out_of_range_are_refused():
    with pytest.raises(ValueError, match="label 12 at example 1 is outside"):
        ArrayDataset({"label": np.array([1, 12, 3])}, num_classes=10, name="bad")


def test_unknown_data_set_lists_the_known_ones():
    with pytest.raises(ValueError, match="known: .*mnist"):
        datasets.load("mnist2", "train")
