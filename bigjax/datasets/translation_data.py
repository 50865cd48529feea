"""Translation data of a config: its joint subword tokenizer and its splits as token ids.

`config.data.translation` names the languages (`source`, `target`), the tokenizer
("bpe": byte-level BPE of `vocab_size` tokens trained on the training split's source and
target sentences together; or a folder holding a `tokenizer.json`) and the lengths of the
token rows. The tokenizer is saved as `workdir/tokenizer.json`, where evaluation and a
resumed run read it back.

A split's examples (`tokenize_pairs`):
  source_ids  int32 [n, max_source_len]: tokens, `</s>`, then 0 (`<pad>`)
  target_ids  int32 [n, max_target_len]: `<s>`, tokens, `</s>`, then 0
  source_text, target_text  object [n]: the raw sentences (BLEU references)
A sentence too long for its row is cut, keeping `<s>` and ending with `</s>`. A decoder
reads `target_ids[:, :-1]` and predicts `target_ids[:, 1:]`.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import os
import time
from collections.abc import Sequence

import jax
import ml_collections
import numpy as np
from etils import epath

from bigjax import run_files
from bigjax.datasets import local_files, translation
from bigjax.datasets.array_dataset import ArrayDataset
from bigjax.pp import subword_tokenizer
from bigjax.pp.subword_tokenizer import SubwordTokenizer

log = logging.getLogger("bigjax")
TRAINED_KINDS = ("bpe",)


def tokenizer_path(workdir: str) -> str:
    return run_files.join(workdir, subword_tokenizer.TOKENIZER_FILE)


def make_tokenizer(config: ml_collections.ConfigDict, workdir: str | None = None
                   ) -> SubwordTokenizer:
    """The run's tokenizer: `workdir/tokenizer.json` when the workdir has one, else
    `config.data.translation.tokenizer`: "bpe" trained on the training split's source and
    target sentences, or a folder holding a `tokenizer.json`."""
    if workdir is not None and epath.Path(tokenizer_path(workdir)).is_file():
        return SubwordTokenizer.load(workdir)
    settings = config.data.translation
    if settings.tokenizer not in TRAINED_KINDS:
        return SubwordTokenizer.load(settings.tokenizer)
    pairs = _load_pairs(config, config.data.train_split)
    start = time.perf_counter()
    tokenizer = subword_tokenizer.train_bpe(
        itertools.chain(pairs.features["source_text"], pairs.features["target_text"]),
        settings.vocab_size)
    log.info("Trained a byte-level BPE tokenizer of %d tokens (asked for %d) on the %d %s "
             "and %s sentences of %s (%s) in %.1f s.", tokenizer.vocab_size,
             settings.vocab_size, len(pairs), settings.source, settings.target, pairs.name,
             config.data.train_split, time.perf_counter() - start)
    if jax.process_count() > 1:  # every process trained its own: they must be one tokenizer
        from jax.experimental import multihost_utils

        digest = hashlib.sha256(tokenizer.to_json().encode()).digest()[:8]
        multihost_utils.assert_equal(
            np.frombuffer(digest, np.int32),
            "The processes trained different tokenizers on the same text; pass a tokenizer "
            "folder as config.data.translation.tokenizer.")
    return tokenizer


def save_tokenizer(tokenizer: SubwordTokenizer, workdir: str) -> None:
    """Writes `workdir/tokenizer.json` unless the workdir has one (a resumed run keeps its
    own)."""
    path = tokenizer_path(workdir)
    if not epath.Path(path).exists():
        run_files.write_text(path, tokenizer.to_json())


def load_split(config: ml_collections.ConfigDict, split: str, tokenizer: SubwordTokenizer
               ) -> ArrayDataset:
    """Split `split` of `config.data.name` as token rows (see `tokenize_pairs`)."""
    settings = config.data.translation
    return tokenize_pairs(_load_pairs(config, split), tokenizer, settings.max_source_len,
                          settings.max_target_len)


def _load_pairs(config: ml_collections.ConfigDict, split: str) -> ArrayDataset:
    settings = config.data.translation
    return _read_pairs(config.data.name, split, settings.source, settings.target,
                       config.data.get("data_dir") or None,
                       os.environ.get(local_files.DATA_DIR_ENV))


@functools.lru_cache(maxsize=2)
def _read_pairs(name: str, split: str, source: str, target: str, data_dir: str | None,
                env_data_dir: str | None) -> ArrayDataset:
    """`translation.load_pairs`, remembered: training the tokenizer and tokenizing the
    training split read it once (a WMT training split is millions of pairs).
    `env_data_dir` ($BIGJAX_DATA_DIR, where `data_dir` is None) is only part of the key."""
    return translation.load_pairs(name, split, source, target, data_dir)


def tokenize_pairs(data: ArrayDataset, tokenizer: SubwordTokenizer, max_source_len: int,
                   max_target_len: int) -> ArrayDataset:
    """`data`'s sentence pairs as token rows: `source_ids` int32 [n, max_source_len]
    (tokens, `</s>`, padding), `target_ids` int32 [n, max_target_len] (`<s>`, tokens,
    `</s>`, padding), and the `source_text` / `target_text` columns unchanged."""
    if max_source_len < 2 or max_target_len < 3:
        raise ValueError(
            f"config.data.translation.max_source_len={max_source_len} / max_target_len="
            f"{max_target_len}: a source row needs at least 2 places (a token and </s>), a "
            "target row 3 (<s>, a token and </s>).")
    texts = data.features
    source_ids, source_cut = pad_rows(tokenizer.encode_batch(texts["source_text"]),
                                      max_source_len, [], [tokenizer.eos_id])
    target_ids, target_cut = pad_rows(tokenizer.encode_batch(texts["target_text"]),
                                      max_target_len, [tokenizer.bos_id], [tokenizer.eos_id])
    if source_cut or target_cut:
        log.info("%s: cut %d of %d source sentences to max_source_len=%d and %d target "
                 "sentences to max_target_len=%d tokens.", data.name, source_cut, len(data),
                 max_source_len, target_cut, max_target_len)
    return ArrayDataset({**texts, "source_ids": source_ids, "target_ids": target_ids},
                        data.num_classes, data.name)


def pad_rows(tokens: Sequence[np.ndarray], length: int, prefix: list[int], suffix: list[int]
             ) -> tuple[np.ndarray, int]:
    """`prefix + tokens + suffix` of each row, padded with 0 to `length`: int32
    [n, length]; a row too long loses its last tokens (never the prefix or suffix). Also
    returns how many rows were cut."""
    room = length - len(prefix) - len(suffix)
    ids = np.zeros((len(tokens), length), np.int32)
    cut = 0
    for row, row_tokens in enumerate(tokens):
        if len(row_tokens) > room:
            cut += 1
            row_tokens = row_tokens[:room]
        full = np.concatenate([prefix, row_tokens, suffix]).astype(np.int32)
        ids[row, :len(full)] = full
    return ids, cut
