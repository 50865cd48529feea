"""Your own images: a folder (or a .tar of one) with a sub-folder per split and per class.

    PATH/train/cat/0001.jpg        config.data.name = "image_folder"
    PATH/train/dog/0002.png        config.data.path = PATH   (a folder or PATH.tar)
    PATH/test/cat/...

Labels are the class folders' indices in sorted order, over every split's folders, so
the same class has the same label in every split. Images are decoded once with Pillow
(`image: uint8 [height, width, channels]`, 1 channel for grayscale files, else 3) and
prepared into ArrayRecord files (`record_files`) under config.data.prepared_dir; the
training reads them by index. Every image of a split must have the same size.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator

import numpy as np

from bigjax.datasets import record_files

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
NAME = "image_folder"


def _listing(path: str) -> list[tuple[str, str, str]]:
    """`(split, class, member)` of every image under `path` (a folder or a tar), sorted."""
    found = []
    if os.path.isdir(path):
        for root, _, files in os.walk(path):
            for file in files:
                rel = os.path.relpath(os.path.join(root, file), path).split(os.sep)
                if len(rel) == 3 and file.lower().endswith(IMAGE_SUFFIXES):
                    found.append((rel[0], rel[1], os.path.join(root, file)))
    elif os.path.isfile(path) and tarfile.is_tarfile(path):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                parts = member.name.strip("./").split("/")
                if member.isfile() and len(parts) == 3 and \
                        parts[2].lower().endswith(IMAGE_SUFFIXES):
                    found.append((parts[0], parts[1], member.name))
    else:
        raise FileNotFoundError(
            f"config.data.path={path} is neither a folder nor a .tar: point it at a folder "
            "holding <split>/<class>/<image> files (or a tar of one).")
    return sorted(found)


def _images(path: str, members: list[str]) -> Iterator[np.ndarray]:
    """The decoded images `uint8 [h, w, c]` of `members`, in order."""
    from PIL import Image

    def decode(data: bytes, where: str) -> np.ndarray:
        try:
            image = Image.open(io.BytesIO(data))
            image = image.convert("L" if image.mode in ("L", "1", "I;16") else "RGB")
        except Exception as err:  # Pillow raises many kinds for a damaged file
            raise ValueError(f"{where} is not a readable image ({err}); remove or replace "
                             "it.") from None
        array = np.asarray(image, np.uint8)
        return array[..., None] if array.ndim == 2 else array

    def read() -> Iterator[tuple[bytes, str]]:
        if os.path.isdir(path):
            for member in members:
                with open(member, "rb") as f:
                    yield f.read(), member
        else:
            with tarfile.open(path) as tar:
                for member in members:
                    yield tar.extractfile(member).read(), f"{path}:{member}"

    first = None
    for data, where in read():
        image = decode(data, where)
        if first is None:
            first = (image.shape, where)
        elif image.shape != first[0]:
            raise ValueError(f"{where} is {image.shape} (height, width, channels) but "
                             f"{first[1]} is {first[0]}: every image of a split must have "
                             "one size and colour mode; resize or convert them first.")
        yield image


def _fingerprint(path: str, listing: list[tuple[str, str, str]]) -> str:
    """Names the prepared copy: the source's path, size and modification time, and its
    list of images (a changed folder is prepared again, into a new folder)."""
    stat = os.stat(path)
    digest = hashlib.sha256(json.dumps(
        [os.path.abspath(path), stat.st_size, stat.st_mtime_ns, listing]).encode())
    return digest.hexdigest()[:20]


def load(split: str, path: str | None, prepared_dir: str) -> record_files.RecordDataset:
    """Split `split` of the image folder at `path`, prepared on first use."""
    if not path:
        raise ValueError('config.data.name="image_folder" needs config.data.path: the folder '
                         "(or .tar) holding <split>/<class>/<image> files.")
    path = os.path.abspath(os.path.expanduser(path))
    listing = _listing(path)
    splits = sorted({s for s, _, _ in listing})
    if split not in splits:
        raise ValueError(f"{path} has no images under {split}/<class>/; its splits are "
                         f"{', '.join(map(repr, splits)) or 'none'}. Set "
                         "config.data.train_split / eval_split to one of them.")
    classes = sorted({c for _, c, _ in listing})
    folder = os.path.join(prepared_dir, NAME, _fingerprint(path, listing))
    if not record_files.is_prepared(folder, split):
        members = [(c, m) for s, c, m in listing if s == split]
        labels = [classes.index(c) for c, _ in members]
        images = _images(path, [m for _, m in members])
        record_files.write(
            folder, split,
            ({"image": image, "label": np.int32(label)} for image, label in zip(
                images, labels, strict=True)),
            NAME, len(classes), classes)
    return record_files.RecordDataset(folder, split)
