"""MNIST (tfds name `mnist`): from local IDX files when present, else from tfds."""

from __future__ import annotations

import gzip

import numpy as np

from bigjax.datasets import local_files, tfds_builders
from bigjax.datasets.array_dataset import ArrayDataset
from bigjax.datasets.tfds_source import TfdsDataset

IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
ALL_FILES = tuple(f for pair in IDX_FILES.values() for f in pair)


def read_idx(path: str) -> np.ndarray:
    """Parses one (optionally gzipped) IDX file into a numpy array; a damaged file (truncated,
    corrupt, not IDX) raises ValueError naming it."""
    with local_files.reading(path), local_files.open_binary(path) as file:
        raw = gzip.GzipFile(fileobj=file).read() if path.endswith(".gz") else file.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(local_files.damaged_message(
            path, f"not an unsigned-byte IDX file: magic number {raw[:4].hex() or 'absent'}"))
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=min(4 + 4 * ndim, len(raw)))
    if data.size != int(np.prod(shape)):
        raise ValueError(local_files.damaged_message(
            path, f"{data.size} bytes of data, its header says {shape}"))
    return data.reshape(shape)


def load(split: str, data_dir: str | None = None) -> ArrayDataset:
    """`image: uint8 [n, 28, 28, 1]`, `label: int32 [n]` for split "train" or "test"."""
    local_files.check_split("mnist", split, list(IDX_FILES))
    folder = local_files.local_folder("mnist", ALL_FILES, data_dir)
    if folder is None:
        return _load_with_tfds(split)
    images_path, labels_path = (f"{folder}/{f}" for f in IDX_FILES[split])
    images = read_idx(images_path)
    labels = read_idx(labels_path).astype(np.int32)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{images_path} holds images {images.shape} and {labels_path} labels "
            f"{labels.shape}, expected [n, 28, 28] and [n]: one of them is damaged or from "
            "another data set; re-download or copy them again.")
    local_files.require_examples(len(labels), "mnist", split, labels_path)
    return ArrayDataset({"image": images[..., None], "label": labels}, 10, "mnist")


def data_source(split: str, data_dir: str | None = None) -> TfdsDataset | None:
    """Split `split` read by index from tfds's ArrayRecord files (downloaded and prepared
    by tfds when needed), or None when offline IDX files are configured (then they are
    prepared into bigjax's own ArrayRecord files instead)."""
    local_files.check_split("mnist", split, list(IDX_FILES))
    if local_files.local_folder("mnist", ALL_FILES, data_dir) is not None:
        return None
    return TfdsDataset(_tfds_source(split), "mnist", 10,
                       {"image": ("image", np.uint8), "label": ("label", np.int32)})


def _tfds_source(split: str):
    return tfds_builders.prepared_split(
        "mnist", split, ", ".join(f"mnist/{f}" for f in ALL_FILES))[1]


def _load_with_tfds(split: str) -> ArrayDataset:
    source = _tfds_source(split)
    examples = [source[i] for i in range(len(source))]
    images = np.stack([np.asarray(e["image"], np.uint8) for e in examples])
    labels = np.asarray([e["label"] for e in examples], np.int32)
    return ArrayDataset({"image": images, "label": labels}, 10, "mnist")
