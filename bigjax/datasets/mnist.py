"""MNIST (tfds name `mnist`): from local IDX files when present, else from tfds."""

from __future__ import annotations

import gzip
import os

import numpy as np

from bigjax.datasets import local_files
from bigjax.datasets.array_dataset import ArrayDataset

IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path: str) -> np.ndarray:
    """Parses one (optionally gzipped) IDX file into a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number).")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path} holds {data.size} bytes of data, its header says {shape}.")
    return data.reshape(shape)


def load(split: str, data_dir: str | None = None) -> ArrayDataset:
    """`image: uint8 [n, 28, 28, 1]`, `label: int32 [n]` for split "train" or "test"."""
    if split not in IDX_FILES:
        raise ValueError(f"mnist has splits 'train' and 'test', not {split!r}.")
    all_files = [f for pair in IDX_FILES.values() for f in pair]
    folder = local_files.local_folder("mnist", all_files, data_dir)
    if folder is not None:
        images_file, labels_file = IDX_FILES[split]
        images = read_idx(os.path.join(folder, images_file))
        labels = read_idx(os.path.join(folder, labels_file)).astype(np.int32)
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{folder}: {images.shape[0]} images but {labels.shape[0]} labels.")
        return ArrayDataset({"image": images[..., None], "label": labels}, 10, "mnist")
    return _load_with_tfds(split)


def _load_with_tfds(split: str) -> ArrayDataset:
    import tensorflow_datasets as tfds

    builder = tfds.builder("mnist", file_format="array_record")
    if not builder.is_prepared():
        local_files.require_network("mnist", "mnist/" + ", mnist/".join(IDX_FILES["train"]))
        builder.download_and_prepare()
    source = builder.as_data_source(split=split)
    examples = [source[i] for i in range(len(source))]
    images = np.stack([np.asarray(e["image"], np.uint8) for e in examples])
    labels = np.asarray([e["label"] for e in examples], np.int32)
    return ArrayDataset({"image": images, "label": labels}, 10, "mnist")
