"""A corpus split tokenized once into a flat token file on disk, read as windows.

`prepare(corpus, tokenizer, folder)` writes `<split>.tokens` (raw uint16 or uint32 ids,
every document followed by the end-of-text token) and `<split>.json` (count, dtype),
streaming documents through the tokenizer: neither the text nor the tokens are ever
held whole. `TokenWindows` memory-maps the file and serves windows of `context + 1`
tokens by index, so the input pipeline reads them like any other data set
(deterministic in (seed, index), per process, resumable).

Training windows start every `stride` tokens (`stride = 1`: every offset, as nanoGPT
samples them; `stride = context`: disjoint windows). Evaluation windows cover the split
so that every token but the first is predicted exactly once: disjoint windows, then one
last window ending at the split's end whose `weights` count only the tokens the others
did not.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

import numpy as np

from bigjax.datasets import record_files
from bigjax.datasets.text_corpora import Corpus
from bigjax.pp.lm_tokenizer import LMTokenizer

log = logging.getLogger("bigjax")
FORMAT = "bigjax-tokens-1"
_BATCH_DOCS = 256  # documents tokenized per call (the library's thread pool)


def token_path(folder: str, split: str) -> str:
    return os.path.join(folder, f"{split}.tokens")


def info_path(folder: str, split: str) -> str:
    return os.path.join(folder, f"{split}.json")


def is_prepared(folder: str, split: str) -> bool:
    """Whether `folder` holds a complete token file of `split` (the info file is last)."""
    if not (os.path.isfile(info_path(folder, split)) and os.path.isfile(token_path(folder, split))):
        return False
    try:
        with open(info_path(folder, split)) as f:
            return json.load(f).get("format") == FORMAT
    except (OSError, ValueError):  # unreadable: prepared again (and rewritten whole)
        return False


def cache_folder(root: str, corpus: Corpus, tokenizer: LMTokenizer) -> str:
    """`root/<corpus>/<key>`: the key hashes the corpus fingerprint and the tokenizer."""
    digest = hashlib.sha256((corpus.fingerprint + tokenizer.to_json()).encode()).hexdigest()
    return os.path.join(root, corpus.name.replace("/", "__"), digest[:20])


def prepare(corpus: Corpus, tokenizer: LMTokenizer, folder: str) -> None:
    """Tokenizes split `corpus.split` into `folder` (once; see `record_files.prepare_once`)."""

    def write() -> None:
        os.makedirs(folder, exist_ok=True)
        dtype = np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.uint32
        tmp = f"{token_path(folder, corpus.split)}.{os.getpid()}.tmp"
        count = documents = 0
        with open(tmp, "wb") as out:
            pending: list[str] = []

            def flush() -> int:
                written = 0
                for ids in tokenizer.encode_batch(pending):
                    out.write(np.append(ids, tokenizer.eot_id).astype(dtype).tobytes())
                    written += len(ids) + 1
                pending.clear()
                return written

            for text in corpus.documents():
                pending.append(text)
                documents += 1
                if len(pending) == _BATCH_DOCS:
                    count += flush()
            count += flush()
        os.replace(tmp, token_path(folder, corpus.split))
        info = {"format": FORMAT, "tokens": count, "documents": documents,
                "dtype": np.dtype(dtype).name, "vocab_size": tokenizer.vocab_size}
        with open(f"{tmp}.json", "w") as f:  # the info file last, and whole
            json.dump(info, f)
        os.replace(f"{tmp}.json", info_path(folder, corpus.split))
        log.info("Tokenized %s (%s): %d documents, %d tokens, into %s.", corpus.name,
                 corpus.split, documents, count, folder)

    record_files.prepare_once(folder, corpus.split, write, is_ready=is_prepared)


class TokenWindows:
    """Windows of a token file: `take(indices)` gives `input_ids: int32 [k, context + 1]`
    and `weights: float32 [k, context]` (1 where the target token counts).

    `for_eval=False`: windows start at `i * stride`, all full weight. `for_eval=True`:
    the disjoint windows that cover the split, every target counted once (see the module
    docstring); `stride` is ignored.
    """

    num_classes = None

    def __init__(self, folder: str, split: str, context: int, stride: int | None = None,
                 for_eval: bool = False, name: str = "", indices: np.ndarray | None = None):
        with open(info_path(folder, split)) as f:
            info = json.load(f)
        self.folder, self.split, self.context, self.name = folder, split, context, name
        self.for_eval = for_eval
        self.num_tokens = int(info["tokens"])
        self._dtype = np.dtype(info["dtype"])
        self._tokens: np.ndarray | None = None
        window = context + 1
        if self.num_tokens < window:
            raise ValueError(f"Split {split!r} of {name!r} has {self.num_tokens} tokens, fewer "
                             f"than one window of context + 1 = {window}; lower "
                             "config.data.lm.context.")
        if for_eval:
            full = (self.num_tokens - 1) // context  # disjoint windows that fit
            starts = list(range(0, full * context, context))
            self._covered = full * context + 1  # tokens seen (targets up to here counted)
            if self._covered < self.num_tokens:
                starts.append(self.num_tokens - window)
            self._starts = np.asarray(starts, np.int64)
        else:
            stride = stride or context
            self._starts = np.arange(0, self.num_tokens - window + 1, stride, dtype=np.int64)
        self._indices = indices  # a subset's windows, in order

    def _all(self) -> np.ndarray:
        if self._tokens is None:  # opened lazily: a pickled copy (a worker) reopens it
            self._tokens = np.memmap(token_path(self.folder, self.split), self._dtype, "r",
                                     shape=(self.num_tokens,))
        return self._tokens

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tokens": None}

    def __len__(self) -> int:
        return len(self._starts) if self._indices is None else len(self._indices)

    def take(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        indices = np.asarray(indices)
        if self._indices is not None:
            indices = self._indices[indices]
        starts = self._starts[indices]
        window = self.context + 1
        ids = self._all()[starts[:, None] + np.arange(window)].astype(np.int32)
        weights = np.ones((len(starts), self.context), np.float32)
        if self.for_eval and self._covered < self.num_tokens:
            last = indices == len(self._starts) - 1
            if last.any():  # targets at token positions < covered were counted before
                seen = (starts[last, None] + 1 + np.arange(self.context)) < self._covered
                weights[last] = np.where(seen, 0.0, 1.0)
        return {"input_ids": ids, "weights": weights}

    def subset(self, indices: np.ndarray, name: str | None = None) -> TokenWindows:
        """The windows at `indices` (of this view)."""
        indices = np.asarray(indices)
        chosen = indices if self._indices is None else self._indices[indices]
        view = TokenWindows.__new__(TokenWindows)
        view.__dict__.update(self.__getstate__())
        view._indices, view.name = chosen, name or self.name
        return view
