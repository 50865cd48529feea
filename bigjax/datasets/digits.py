"""scikit-learn's bundled 8x8 digits (1,797 images, no download), split 80/20."""

from __future__ import annotations

import numpy as np

from bigjax.datasets import local_files
from bigjax.datasets.array_dataset import ArrayDataset

TEST_FRACTION = 0.2
SPLIT_SEED = 0


def load(split: str) -> ArrayDataset:
    """`split` is "train" or "test": a fixed, stratified 80/20 split.

    Images are rescaled from the set's 0..16 gray levels to uint8 0..255:
    `image: uint8 [n, 8, 8, 1]`, `label: int32 [n]`.
    """
    from sklearn.datasets import load_digits  # here: importing sklearn takes ~1 s
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.clip(np.round(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    labels = digits.target.astype(np.int32)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels
    )
    indices = {"train": np.sort(train_idx), "test": np.sort(test_idx)}
    local_files.check_split("digits", split, list(indices))
    idx = indices[split]
    return ArrayDataset({"image": images[idx, :, :, None], "label": labels[idx]}, 10, "digits")
