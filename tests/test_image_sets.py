"""Image sets by tfds name (datasets/image_sets.py): CIFAR-10 offline from the JPEG tar,
ImageNet-style sets resized on read, and clear errors."""

import numpy as np
import pytest

from bigjax import datasets
from bigjax.datasets import image_sets
from bigjax.datasets.tfds_source import TfdsDataset

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck"]


def test_cifar10_reads_offline_from_the_jpeg_tar(real_data_dir, tmp_path):
    data = datasets.load("cifar10", "test", real_data_dir, prepared_dir=str(tmp_path))
    assert len(data) == 10_000 and data.num_classes == 10
    assert data.class_names == CIFAR_CLASSES
    batch = data.take(np.array([0, 9_999]))
    assert batch["image"].shape == (2, 32, 32, 3) and batch["image"].dtype == np.uint8
    assert batch["label"].tolist() == [0, 9]
    counts = np.bincount(data.take(np.arange(0, 10_000, 7))["label"], minlength=10)
    assert counts.min() > 100  # every class present
    with pytest.raises(ValueError, match="train.*test"):
        datasets.load("cifar10", "validation", real_data_dir, prepared_dir=str(tmp_path))


def test_sets_of_varied_image_sizes_need_image_size():
    with pytest.raises(ValueError, match="config.data.image_size"):
        datasets.load("imagenet2012", "train")


def test_resize_and_centre_crop():
    image = np.zeros((100, 60, 3), np.uint8)
    image[:, 20:40] = 255  # a bright vertical band in the middle
    out = image_sets.ResizeAndCentreCrop(30)(image)
    assert out.shape == (30, 30, 3)
    assert out[:, 15].min() == 255 and out[:, 0].max() == 0  # the centre kept, the sides dark


class _Source(list):
    pass


def test_tfds_dataset_applies_transforms_on_take_and_keeps_them_in_subsets():
    rng = np.random.default_rng(0)
    source = _Source({"image": rng.integers(0, 255, (h, 40, 3), dtype=np.uint8), "label": i}
                     for i, h in enumerate((50, 80, 64)))
    data = TfdsDataset(source, "x", 3, {"image": ("image", np.uint8),
                                        "label": ("label", np.int32)},
                       transforms={"image": image_sets.ResizeAndCentreCrop(16)})
    assert data.take(np.arange(3))["image"].shape == (3, 16, 16, 3)
    sub = data.subset(np.array([2, 0]))
    batch = sub.take(np.arange(2))
    assert batch["image"].shape == (2, 16, 16, 3) and batch["label"].tolist() == [2, 0]
