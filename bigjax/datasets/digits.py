"""scikit-learn's bundled 8x8 digits (1,797 images, no download), split 80/20.

The split is scikit-learn's (a stratified `train_test_split`). Importing scikit-learn
takes 1-2 s of every run's start on 2 cores, so the split's arrays are kept in the user
cache (`$BIGJAX_CACHE_DIR/digits/`, keyed by scikit-learn's version and the split's
seed and fraction): later runs on the machine read them without importing it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os

import numpy as np

from bigjax import kept_arrays
from bigjax.datasets import local_files
from bigjax.datasets.array_dataset import ArrayDataset
from bigjax.user_cache import cache_dir

TEST_FRACTION = 0.2
SPLIT_SEED = 0
SPLITS = ("train", "test")
_COLUMNS = tuple(f"{split}_{column}" for split in SPLITS for column in ("image", "label"))


def load(split: str) -> ArrayDataset:
    """`split` is "train" or "test": a fixed, stratified 80/20 split.

    Images are rescaled from the set's 0..16 gray levels to uint8 0..255:
    `image: uint8 [n, 8, 8, 1]`, `label: int32 [n]`.
    """
    local_files.check_split("digits", split, list(SPLITS))
    arrays = _kept_split()
    return ArrayDataset({"image": arrays[f"{split}_image"], "label": arrays[f"{split}_label"]},
                        10, "digits")


def kept_copy_path() -> str:
    """Where the split's arrays are kept for this scikit-learn version and split."""
    source = (importlib.metadata.version("scikit-learn"), TEST_FRACTION, SPLIT_SEED)
    key = hashlib.sha256(repr(source).encode()).hexdigest()[:20]
    return os.path.join(cache_dir(), "digits", f"{key}.npz")


@functools.cache
def _kept_split() -> dict[str, np.ndarray]:
    """Both splits' arrays: from the kept copy, else made with scikit-learn and kept."""
    path = kept_copy_path()
    arrays = kept_arrays.read(path, "the kept digits split", _COLUMNS)
    if arrays is None:
        arrays = split_with_sklearn()
        kept_arrays.write(path, arrays, "the digits split")
    for array in arrays.values():  # shared by every load in the process
        array.setflags(write=False)
    return arrays


def split_with_sklearn() -> dict[str, np.ndarray]:
    """`{"<split>_image": uint8 [n, 8, 8, 1], "<split>_label": int32 [n]}` for both
    splits, each in the set's order."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.clip(np.round(digits.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    labels = digits.target.astype(np.int32)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels
    )
    arrays = {}
    for split, idx in zip(SPLITS, (np.sort(train_idx), np.sort(test_idx)), strict=True):
        arrays[f"{split}_image"] = images[idx, :, :, None]
        arrays[f"{split}_label"] = labels[idx]
    return arrays
