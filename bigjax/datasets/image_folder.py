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

from bigjax import run_files
from bigjax.datasets import record_files

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
NAME = "image_folder"


def _is_image(parts: list[str]) -> bool:
    """`split/class/file` of an image, no part hidden (`.ipynb_checkpoints`, `._x.jpg`)."""
    return (len(parts) == 3 and parts[2].lower().endswith(IMAGE_SUFFIXES)
            and not any(p.startswith(".") for p in parts))


def _listing(path: str) -> list[tuple[str, str, str, int, int]]:
    """`(split, class, member, size, mtime)` of every image under `path` (a folder, whose
    links are followed, or a tar), sorted."""
    found = []
    if os.path.isdir(path):
        for root, _, files in os.walk(path, followlinks=True):
            for file in files:
                full = os.path.join(root, file)
                parts = os.path.relpath(full, path).split(os.sep)
                if _is_image(parts):
                    stat = os.stat(full)
                    found.append((parts[0], parts[1], full, stat.st_size, stat.st_mtime_ns))
    elif os.path.isfile(path) and tarfile.is_tarfile(path):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                name = member.name[2:] if member.name.startswith("./") else member.name
                parts = name.split("/")
                if member.isfile() and _is_image(parts):
                    found.append((parts[0], parts[1], member.name, member.size,
                                  int(member.mtime)))
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
                # Looked up once: `extractfile(name)` would search the member list each time.
                infos = {info.name: info for info in tar.getmembers()}
                for member in members:
                    yield tar.extractfile(infos[member]).read(), f"{path}:{member}"

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


def _fingerprint(path: str, listing: list[tuple[str, str, str, int, int]]) -> str:
    """Names the prepared copy: the source's path and every image's name, size and
    modification time (a changed image is prepared again, into a new folder)."""
    digest = hashlib.sha256(json.dumps([os.path.abspath(path), listing]).encode())
    return digest.hexdigest()[:20]


def _summary(path: str, prepared_dir: str) -> tuple[dict, list | None]:
    """`({"fingerprint", "splits", "classes"}, listing)` of the images under `path`; the
    listing is None when the summary was read from the cache.

    A tar's summary is kept in `prepared_dir` under the tar's own path, size and
    modification time: listing CIFAR-10's 60,000 members takes seconds, and every run
    needs the summary (the copies of a tar on several hosts share fingerprints, which
    name the prepared folder and the hosts' barrier). A folder is listed each time (a
    file changed inside it changes no stat of the folder).
    """
    cached = None
    if os.path.isfile(path):
        stat = os.stat(path)
        key = json.dumps([os.path.abspath(path), stat.st_size, stat.st_mtime_ns])
        cached = os.path.join(prepared_dir, NAME, "tar_summaries",
                              hashlib.sha256(key.encode()).hexdigest()[:20] + ".json")
        try:
            with open(cached) as f:
                return json.load(f), None
        except (OSError, ValueError):
            pass  # absent or unreadable: list the tar again
    listing = _listing(path)
    summary = {"fingerprint": _fingerprint(path, listing),
               "splits": sorted({entry[0] for entry in listing}),
               "classes": sorted({entry[1] for entry in listing})}
    if cached is not None:
        try:
            os.makedirs(os.path.dirname(cached), exist_ok=True)
            run_files.write_text(cached, json.dumps(summary))
        except OSError:
            pass  # a read-only prepared_dir: the tar is listed again next time
    return summary, listing


def load(split: str, path: str | None, prepared_dir: str) -> record_files.RecordDataset:
    """Split `split` of the image folder at `path`, prepared on first use."""
    if not path:
        raise ValueError('config.data.name="image_folder" needs config.data.path: the folder '
                         "(or .tar) holding <split>/<class>/<image> files.")
    path = record_files.check_local(path, "config.data.path")
    summary, listing = _summary(path, prepared_dir)
    splits, classes = summary["splits"], summary["classes"]
    if split not in splits:
        raise ValueError(f"{path} has no images under {split}/<class>/; its splits are "
                         f"{', '.join(map(repr, splits)) or 'none'}. Set "
                         "config.data.train_split / eval_split to one of them.")
    folder = os.path.join(prepared_dir, NAME, summary["fingerprint"])

    def prepare() -> None:
        members_listing = listing
        if members_listing is None:  # the summary came from the cache
            members_listing = _listing(path)
            if _fingerprint(path, members_listing) != summary["fingerprint"]:
                raise ValueError(f"{path} changed since it was listed; run again.")
        members = [(c, m) for s, c, m, _, _ in members_listing if s == split]
        labels = [classes.index(c) for c, _ in members]
        images = _images(path, [m for _, m in members])
        record_files.write(
            folder, split,
            ({"image": image, "label": np.int32(label)} for image, label in zip(
                images, labels, strict=True)),
            NAME, len(classes), classes)

    record_files.prepare_once(folder, split, prepare)
    return record_files.RecordDataset(folder, split)
