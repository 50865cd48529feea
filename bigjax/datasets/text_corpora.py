"""Text corpora for language modelling: a split is a stream of documents (strings).

- `tiny_shakespeare` (tfds name): offline from `DATA_DIR/tiny_shakespeare/input.txt`,
  cut as tfds cuts it (train: the first 1,003,854 characters, validation and test: the
  next two blocks of 55,770); else tfds.
- `text_folder`: your own `.txt` files at `config.data.path`: `<path>/<split>/**/*.txt`
  (each file a document, in sorted path order) or one file `<path>/<split>.txt`.
- tfds text data sets by name (`TFDS_TEXT`: `lm1b`, `wiki40b/en`, `c4/en`), their text
  feature named by `config.data.lm.text_key` (default "text").

A split may join several with "+" (e.g. "validation+test"). Documents are read as the
stream is consumed: a corpus is never held whole in memory. Each corpus also has a
`fingerprint`, which changes when its files do (it keys the token cache).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator

from etils import epath

from bigjax.datasets import local_files, tfds_builders

SHAKESPEARE_SPLITS = {"train": (0, 1003854), "validation": (1003854, 1059624),
                      "test": (1059624, None)}
SHAKESPEARE_FILE = "input.txt"
# tfds text data sets read as corpora (through tfds, with a network).
TFDS_TEXT = ("lm1b", "wiki40b/en", "c4/en")
NAMES = ("tiny_shakespeare", "text_folder", *TFDS_TEXT)


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Split `split` of corpus `name`: `documents()` streams its texts."""

    name: str
    split: str
    documents: Callable[[], Iterator[str]]
    fingerprint: str


def load(name: str, split: str, data_dir: str | None = None, path: str | None = None,
         text_key: str | None = None) -> Corpus:
    """Split `split` (or "a+b") of corpus `name`."""
    parts = [_load_one(name, s, data_dir, path, text_key) for s in split.split("+")]
    if len(parts) == 1:
        return parts[0]

    def documents() -> Iterator[str]:
        for part in parts:
            yield from part.documents()

    digest = hashlib.sha256("+".join(p.fingerprint for p in parts).encode()).hexdigest()
    return Corpus(name, split, documents, digest[:24])


def _load_one(name: str, split: str, data_dir: str | None, path: str | None,
              text_key: str | None) -> Corpus:
    if name == "tiny_shakespeare":
        return _tiny_shakespeare(split, data_dir)
    if name == "text_folder":
        return _text_folder(split, path)
    if name not in TFDS_TEXT:
        raise ValueError(f"config.data.name={name!r} is not a language-modelling corpus; "
                         f"choose one of {list(NAMES)}.")
    return _tfds_corpus(name, split, text_key or "text")


def _fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:24]


def _file_id(file: epath.Path) -> list:
    stat = file.stat()
    return [str(file), stat.length, stat.mtime]


def _tiny_shakespeare(split: str, data_dir: str | None) -> Corpus:
    local_files.check_split("tiny_shakespeare", split, list(SHAKESPEARE_SPLITS))
    folder = local_files.local_folder("tiny_shakespeare", [SHAKESPEARE_FILE], data_dir)
    if folder is None:
        return _tfds_corpus("tiny_shakespeare", split, "text",
                            f"tiny_shakespeare/{SHAKESPEARE_FILE}")
    file = epath.Path(folder) / SHAKESPEARE_FILE
    start, stop = SHAKESPEARE_SPLITS[split]

    def documents() -> Iterator[str]:
        with local_files.reading(str(file)):
            text = file.read_text(encoding="utf-8")[start:stop]
        local_files.require_examples(len(text), "tiny_shakespeare", split, str(file))
        yield text

    return Corpus("tiny_shakespeare", split, documents,
                  _fingerprint("tiny_shakespeare", split, _file_id(file)))


def _text_folder(split: str, path: str | None) -> Corpus:
    if not path:
        raise ValueError('config.data.name="text_folder" needs config.data.path: a folder '
                         "of <split>/**/*.txt files or <split>.txt files.")
    root = epath.Path(path)
    single = root / f"{split}.txt"
    files = [single] if single.is_file() else sorted(_txt_files(root / split))
    if not files:
        raise FileNotFoundError(f"No text for split {split!r} in {path}: expected "
                                f"{single} or .txt files under {root / split}/.")

    def documents() -> Iterator[str]:
        for file in files:
            with local_files.reading(str(file)):
                yield file.read_text(encoding="utf-8-sig")

    return Corpus("text_folder", split, documents,
                  _fingerprint("text_folder", split, [_file_id(f) for f in files]))


def _txt_files(folder: epath.Path) -> list[epath.Path]:
    """The .txt files under `folder`, at any depth (epath's glob has no `**` for buckets)."""
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        if child.is_dir():
            found.extend(_txt_files(child))
        elif child.name.endswith(".txt"):
            found.append(child)
    return found


def _tfds_corpus(name: str, split: str, text_key: str, offline: str | None = None) -> Corpus:
    builder, source = tfds_builders.prepared_split(name, split,
                                                   offline or f"{name}/ (its raw files)")

    def documents() -> Iterator[str]:
        for i in range(len(source)):
            text = source[i][text_key]
            yield text.decode("utf-8") if isinstance(text, bytes) else str(text)

    return Corpus(name, split, documents,
                  _fingerprint("tfds", name, split, str(builder.info.version), len(source)))
