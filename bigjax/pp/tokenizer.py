"""BERT WordPiece tokenizer (Hugging Face ``tokenizers``) returning padded numpy batches."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence

import numpy as np
from etils import epath
from tokenizers import BertWordPieceTokenizer

from bigjax import run_files

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


class WordPieceTokenizer:
    """``[CLS] a [SEP] (b [SEP])`` WordPiece encoding, truncated and padded to ``max_len``.

    Long single texts keep their first ``max_len`` tokens; with ``head_tokens`` set they
    keep their first ``head_tokens`` tokens (``[CLS]`` included) and their last
    ``max_len - head_tokens`` (``[SEP]`` included) instead: "head+tail" truncation, which
    keeps a long review's closing verdict (Sun et al. 2019, "How to Fine-Tune BERT for
    Text Classification?").

    Attributes:
      vocab_file, max_len, head_tokens: the constructor arguments.
      vocab_size, pad_id, unk_id, cls_id, sep_id, mask_id: vocabulary facts.
      special_ids: ids of all special tokens, e.g. for ``mlm_masking.mask_tokens``.
    """

    def __init__(self, vocab_file: str, *, lowercase: bool = True, max_len: int = 128,
                 head_tokens: int | None = None):
        if head_tokens is not None and not 2 <= head_tokens < max_len:
            raise ValueError(f"head_tokens={head_tokens} must be in [2, max_len={max_len}) "
                             "(or None to keep only the start of long texts).")
        if not epath.Path(vocab_file).is_file():
            raise FileNotFoundError(f"WordPiece vocab file {vocab_file!r} does not exist.")
        self.vocab_file = vocab_file
        self.max_len = max_len
        self.head_tokens = head_tokens
        # A file in a bucket is read through epath: the tokenizers library reads local paths.
        vocab = (vocab_file if not run_files.is_url(vocab_file) else
                 {t: i for i, t in enumerate(epath.Path(vocab_file).read_text().splitlines())})
        self._tok = BertWordPieceTokenizer(vocab, lowercase=lowercase)
        ids = {t: self._tok.token_to_id(t) for t in SPECIAL_TOKENS}
        missing = [t for t, i in ids.items() if i is None]
        if missing:
            raise ValueError(f"Vocab {vocab_file!r} lacks special tokens {missing}.")
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (
            ids[t] for t in SPECIAL_TOKENS
        )
        self.special_ids: tuple[int, ...] = tuple(ids.values())
        self.vocab_size: int = self._tok.get_vocab_size()
        self._tok.enable_padding(pad_id=self.pad_id, pad_token="[PAD]")

    @classmethod
    def from_folder(cls, folder: str, *, max_len: int = 128) -> WordPieceTokenizer:
        """From a HF model folder: ``vocab.txt`` (+ ``do_lower_case`` of tokenizer_config.json)."""
        lowercase = True
        config_path = epath.Path(folder) / "tokenizer_config.json"
        if config_path.is_file():
            lowercase = json.loads(config_path.read_text()).get("do_lower_case", True)
        return cls(run_files.join(folder, "vocab.txt"), lowercase=lowercase, max_len=max_len)

    def encode(
        self,
        texts: Sequence[str],
        pairs: Sequence[str] | None = None,
        *,
        max_len: int | None = None,
    ) -> dict[str, np.ndarray]:
        """Encodes a batch of texts (or text pairs).

        Args:
          texts: n strings.
          pairs: optional n second segments (token type 1).
          max_len: output length; default ``self.max_len``. Longer inputs are truncated
            (the longest segment first, or head+tail with ``head_tokens``), shorter ones
            padded with ``pad_id``.

        Returns:
          {"input_ids": [n, max_len] int32, "token_type_ids": [n, max_len] int32}.
        """
        max_len = max_len or self.max_len
        if self.head_tokens is not None:
            if pairs is not None:
                raise ValueError("head_tokens (head+tail truncation) is for single texts, "
                                 "not text pairs.")
            return self._encode_head_tail(texts, max_len)
        self._tok.enable_truncation(max_length=max_len)
        self._tok.enable_padding(pad_id=self.pad_id, pad_token="[PAD]", length=max_len)
        inputs = list(texts) if pairs is None else list(zip(texts, pairs, strict=True))
        encodings = self._tok.encode_batch(inputs)
        return {
            "input_ids": np.array([e.ids for e in encodings], np.int32).reshape(-1, max_len),
            "token_type_ids": np.array([e.type_ids for e in encodings], np.int32).reshape(
                -1, max_len
            ),
        }

    def _encode_head_tail(self, texts: Sequence[str], max_len: int) -> dict[str, np.ndarray]:
        """Single texts, long ones cut to their head and tail (see the class docstring)."""
        head = self.head_tokens
        if not head < max_len:
            raise ValueError(f"head_tokens={head} must be below max_len={max_len}.")
        self._tok.no_truncation()
        self._tok.no_padding()
        ids = np.full((len(texts), max_len), self.pad_id, np.int32)
        for row, encoding in enumerate(self._tok.encode_batch(list(texts))):
            tokens = encoding.ids
            if len(tokens) > max_len:
                tokens = tokens[:head] + tokens[len(tokens) - (max_len - head):]
            ids[row, : len(tokens)] = tokens
        return {"input_ids": ids, "token_type_ids": np.zeros_like(ids)}

    def decode(self, ids: Iterable[int], *, skip_special_tokens: bool = True) -> str:
        """Token ids (e.g. one row of ``input_ids``) -> text, merging ``##`` pieces."""
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def decode_batch(self, ids: np.ndarray, *, skip_special_tokens: bool = True) -> list[str]:
        """[n, length] ids -> n texts."""
        return [self.decode(row, skip_special_tokens=skip_special_tokens) for row in ids]


def train_wordpiece_vocab(
    texts: Iterable[str],
    out_dir: str,
    *,
    vocab_size: int = 8000,
    lowercase: bool = True,
    min_frequency: int = 2,
) -> str:
    """Learns a WordPiece vocab from ``texts``; writes and returns ``out_dir/vocab.txt``.

    Special tokens come first, so ``[PAD]`` has id 0.
    """
    tok = BertWordPieceTokenizer(lowercase=lowercase)
    tok.train_from_iterator(
        texts,
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
    )
    os.makedirs(out_dir, exist_ok=True)
    return tok.save_model(out_dir)[0]
