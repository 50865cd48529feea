"""Language-model data of a config: its tokenizer and its splits as token windows.

`config.data.lm` turns a data set into a language-modelling corpus (see
`text_corpora`): the tokenizer is trained on the training split ("char", "bpe") or read
from a model folder, and saved as `tokenizer.json` in the workdir, where evaluation,
generation and a resumed run read it back. Splits are tokenized once into token files
(`token_stream`) under `config.data.prepared_dir` and read as windows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

import jax
import ml_collections
import numpy as np
from etils import epath

from bigjax import run_files
from bigjax.datasets import local_files, record_files, text_corpora, token_stream
from bigjax.pp import lm_tokenizer
from bigjax.pp.lm_tokenizer import LMTokenizer
from bigjax.user_cache import cache_dir

log = logging.getLogger("bigjax")
TOKENIZER_FILE = "tokenizer.json"


def corpus(config: ml_collections.ConfigDict, split: str) -> text_corpora.Corpus:
    data = config.data
    return text_corpora.load(data.name, split, local_files.data_dir(data.get("data_dir")),
                             data.get("path"), data.lm.get("text_key"))


def tokenizer_path(workdir: str) -> str:
    return run_files.join(workdir, TOKENIZER_FILE)


def make_tokenizer(config: ml_collections.ConfigDict, workdir: str | None = None
                   ) -> LMTokenizer:
    """The run's tokenizer: `workdir/tokenizer.json` when the workdir has one, else
    `config.data.lm.tokenizer`: "char" or "bpe" trained on the training split, or a
    folder holding a `tokenizer.json`."""
    if workdir is not None and epath.Path(tokenizer_path(workdir)).is_file():
        return lm_tokenizer.load_pretrained(workdir)  # with its end-of-text token
    kind = config.data.lm.tokenizer
    if kind not in lm_tokenizer.KINDS:
        return lm_tokenizer.load_pretrained(kind)
    train = corpus(config, config.data.train_split)
    if kind == "char":
        tokenizer = lm_tokenizer.train_char(train.documents())
    else:
        tokenizer = lm_tokenizer.train_bpe(train.documents(), config.data.lm.vocab_size)
    log.info("Trained a %s tokenizer of %d tokens on %s (%s).", kind, tokenizer.vocab_size,
             train.name, train.split)
    if jax.process_count() > 1:  # every process trained its own: they must be one tokenizer
        from jax.experimental import multihost_utils

        digest = hashlib.sha256(tokenizer.to_json().encode()).digest()[:8]
        multihost_utils.assert_equal(np.frombuffer(digest, np.int32),
                                     "The processes trained different tokenizers on the same "
                                     "text; pass a tokenizer folder as config.data.lm.tokenizer.")
    return tokenizer


def save_tokenizer(tokenizer: LMTokenizer, workdir: str) -> None:
    """Writes `workdir/tokenizer.json` and `tokenizer_config.json` (its end-of-text token,
    as Hugging Face folders name it) unless the workdir has them (a resumed run keeps its
    own)."""
    path = tokenizer_path(workdir)
    if not epath.Path(path).exists():
        run_files.write_text(run_files.join(workdir, lm_tokenizer.CONFIG_FILE),
                             json.dumps({"eos_token": tokenizer.eot}))
        run_files.write_text(path, tokenizer.to_json())


def load_split(config: ml_collections.ConfigDict, split: str, tokenizer: LMTokenizer
               ) -> token_stream.TokenWindows:
    """Split `split` as windows of `context + 1` tokens: training windows every
    `train_stride` tokens on the training split, covering windows on any other."""
    lm = config.data.lm
    source = corpus(config, split)
    root = record_files.check_local(config.data.get("prepared_dir") or
                                    os.path.join(cache_dir(), "prepared"),
                                    "config.data.prepared_dir")
    folder = token_stream.cache_folder(os.path.join(root, "tokens"), source, tokenizer)
    token_stream.prepare(source, tokenizer, folder)
    return token_stream.TokenWindows(folder, split, lm.context, lm.get("train_stride"),
                                     for_eval=split != config.data.train_split,
                                     name=config.data.name)
