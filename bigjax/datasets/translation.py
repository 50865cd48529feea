"""Parallel text for translation: sentence pairs as raw strings.

`load_pairs` returns `ArrayDataset({"source_text": object [n] of str, "target_text":
object [n] of str})`, example i of one column the translation of example i of the other.

- `multi30k` (Multi30k task 1, English / German / French image captions): offline only,
  from `DATA_DIR/multi30k/{train,val,test_2016_flickr}.{en,de,fr}.gz` (one sentence per
  line, line i of each language aligned). bigjax's splits "train", "validation", "test"
  are the files' "train", "val", "test_2016_flickr" (29,000 / 1,014 / 1,000 pairs). Lines
  are kept byte for byte but for their newline: BLEU references are these strings.
- tfds's WMT sets, `wmtNN_translate/xx-yy` (e.g. `wmt14_translate/de-en`), with a network:
  splits "train", "validation", "test"; source and target are the pair's two languages.
"""

from __future__ import annotations

import gzip
import logging
import re

import numpy as np
from etils import epath

from bigjax import run_files
from bigjax.datasets import local_files, tfds_builders
from bigjax.datasets.array_dataset import ArrayDataset

log = logging.getLogger("bigjax")

MULTI30K = "multi30k"
# bigjax split -> the name of Multi30k's files.
MULTI30K_SPLITS = {"train": "train", "validation": "val", "test": "test_2016_flickr"}
MULTI30K_LANGUAGES = ("en", "de", "fr")
TFDS_SPLITS = ("train", "validation", "test")
_WMT = re.compile(r"^wmt\d\d_translate/([a-z]{2,3})-([a-z]{2,3})$")
# The names config.data.name accepts: Multi30k and tfds's WMT pairs (`load_pairs` reads
# any `wmtNN_translate/xx-yy`).
NAMES = (MULTI30K, *(f"wmt14_translate/{p}-en" for p in ("cs", "de", "fr", "hi", "ru")),
         *(f"wmt19_translate/{p}" for p in ("de-en", "fr-de", "ru-en", "zh-en")))
LANGUAGE_KEYS = "config.data.translation.source / .target"


def is_translation_name(name: str) -> bool:
    """Whether `load_pairs` reads data set `name` (`multi30k` or `wmtNN_translate/xx-yy`)."""
    return name == MULTI30K or _WMT.match(name) is not None


def load_pairs(name: str, split: str, source: str, target: str,
               data_dir: str | None = None) -> ArrayDataset:
    """Split `split` of data set `name` as `source` -> `target` sentence pairs.

    `data_dir` is `config.data.data_dir` (else `$BIGJAX_DATA_DIR` is used for Multi30k).
    Returns `ArrayDataset({"source_text": object [n], "target_text": object [n]}, None,
    name)`.
    """
    if name == MULTI30K:
        return _load_multi30k(split, source, target, data_dir)
    match = _WMT.match(name)
    if match is None:
        raise ValueError(f"config.data.name={name!r} is not a translation data set; choose "
                         f"{MULTI30K!r} or a tfds WMT pair such as 'wmt14_translate/de-en'.")
    return _load_wmt(name, split, source, target, (match.group(1), match.group(2)))


def _pairs(source_text: list[str], target_text: list[str], name: str) -> ArrayDataset:
    return ArrayDataset({"source_text": _object_array(source_text),
                         "target_text": _object_array(target_text)}, None, name)


def _object_array(texts: list[str]) -> np.ndarray:
    """`texts` as an object array [n] (np.asarray would make a fixed-width str array)."""
    array = np.empty(len(texts), dtype=object)
    array[:] = texts
    return array


def _check_languages(dataset: str, source: str, target: str, languages: tuple[str, ...]
                     ) -> None:
    """ValueError naming the languages of `dataset` when source / target are not two
    different ones of them."""
    for role, language in (("source", source), ("target", target)):
        if language not in languages:
            raise ValueError(
                f"Data set {dataset!r} has no language {language!r} (the {role}); its "
                f"languages are {', '.join(map(repr, languages))}. Set {LANGUAGE_KEYS} to "
                "two of them.")
    if source == target:
        raise ValueError(f"{LANGUAGE_KEYS} are both {source!r}: translation needs two "
                         f"different languages of {dataset!r} "
                         f"({', '.join(map(repr, languages))}).")


# ----------------------------------------------------------------------------- Multi30k

def multi30k_files(split: str, languages: tuple[str, ...]) -> list[str]:
    """The file names of `split` ("train", "validation", "test") in `languages`."""
    return [f"{MULTI30K_SPLITS[split]}.{language}.gz" for language in languages]


def _load_multi30k(split: str, source: str, target: str, data_dir: str | None
                   ) -> ArrayDataset:
    local_files.check_split(MULTI30K, split, list(MULTI30K_SPLITS))
    _check_languages(MULTI30K, source, target, MULTI30K_LANGUAGES)
    files = multi30k_files(split, (source, target))
    folder = _multi30k_folder(files, data_dir)
    paths = [run_files.join(folder, f) for f in files]
    source_text, target_text = (read_lines(p) for p in paths)
    if len(source_text) != len(target_text):
        raise ValueError(
            f"{paths[0]} has {len(source_text)} lines and {paths[1]} {len(target_text)}: "
            "line i of one must be the translation of line i of the other. One of them is "
            "truncated or from another data set; re-download or copy them again.")
    local_files.require_examples(len(source_text), MULTI30K, split, paths[0])
    return _pairs(source_text, target_text, MULTI30K)


def _multi30k_folder(files: list[str], configured: str | None) -> str:
    """`DATA_DIR/multi30k` when it holds every one of `files`; else FileNotFoundError
    saying which folder or file is missing and what to do (there is no tfds builder to
    fall back on)."""
    expected = ", ".join(f"{MULTI30K}/{f}" for f in files)
    how = (f"Multi30k is read from offline files only (no tfds builder): put {expected} "
           f"under ${local_files.DATA_DIR_ENV} or config.data.data_dir (the layout of "
           f"{local_files.LAYOUT_DOC}).")
    root = local_files.data_dir(configured)
    if root is None:
        raise FileNotFoundError(f"Neither config.data.data_dir nor ${local_files.DATA_DIR_ENV} "
                                f"is set. {how}")
    where = (f"config.data.data_dir={root}" if configured
             else f"${local_files.DATA_DIR_ENV}={root}")
    folder = run_files.join(root, MULTI30K)
    if not epath.Path(folder).is_dir():
        raise FileNotFoundError(f"{where} has no {MULTI30K}/ folder (looked for {folder}). "
                                f"{how}")
    for filename in files:
        path = run_files.join(folder, filename)
        if not epath.Path(path).is_file():
            raise FileNotFoundError(f"{path} is missing ({where}). {how}")
    return folder


def read_lines(path: str) -> list[str]:
    """The lines of a gzipped UTF-8 text file, without their newline ("\\n") and otherwise
    unchanged; a damaged file raises ValueError naming it."""
    with local_files.reading(path):
        with local_files.open_binary(path) as file, gzip.GzipFile(fileobj=file) as unzipped:
            text = unzipped.read().decode("utf-8")
    if not text:
        return []
    return text.removesuffix("\n").split("\n")


# ----------------------------------------------------------------------------- tfds WMT

def _load_wmt(name: str, split: str, source: str, target: str,
              languages: tuple[str, str]) -> ArrayDataset:
    """A tfds WMT pair read through `tfds.data_source` (prepared by tfds when needed)."""
    local_files.check_split(name, split, TFDS_SPLITS)
    _check_languages(name, source, target, languages)
    examples = _tfds_source(name, split)
    source_text, target_text = [], []
    for i in range(len(examples)):
        example = examples[i]
        source_text.append(as_str(example[source]))
        target_text.append(as_str(example[target]))
    return _pairs(source_text, target_text, name)


def _tfds_source(name: str, split: str):
    """The data source of split `split` of tfds data set `name`; fails within seconds when
    it is not prepared and there is no network (tfds would retry for minutes)."""
    tfds = tfds_builders.import_tfds()
    _check_tfds_config(tfds, name)
    builder = tfds.builder(name, file_format="array_record")
    if not builder.is_prepared():
        try:
            local_files.require_network(name, name)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"tfds data set {name!r} is not prepared in {builder.data_dir} and there is "
                "no network to download it. Prepare it (with the array_record file format) "
                "on a machine with a network and copy the folder to $TFDS_DATA_DIR, or use "
                f"{MULTI30K!r}, which reads offline files. ({err.__context__ or err})") from None
        builder.download_and_prepare()
    examples = builder.as_data_source(split=split)
    local_files.require_examples(len(examples), name, split, "tfds")
    return examples


def _check_tfds_config(tfds, name: str) -> None:
    """ValueError naming the pairs tfds has when `name`'s data set or pair is not one."""
    base, _, pair = name.partition("/")
    try:
        configs = [c.name for c in tfds.builder_cls(base).BUILDER_CONFIGS]
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(f"tfds has no data set {base!r} (config.data.name={name!r}); tfds's "
                         "WMT sets are wmt14_translate, wmt15_translate, ..., "
                         "wmt19_translate.") from None
    if pair not in configs:
        raise ValueError(f"tfds data set {base!r} has no language pair {pair!r}; its pairs are "
                         f"{', '.join(configs)}. Set config.data.name to {base}/<pair>.")


def as_str(value: bytes | str) -> str:
    """tfds text (bytes when read from files) as str."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
