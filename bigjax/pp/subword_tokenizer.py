"""A joint subword vocabulary for translation: byte-level BPE over source and target text.

One Hugging Face `tokenizers.Tokenizer`, saved as `tokenizer.json`, with four special
tokens at fixed ids: `<pad>`=0, `<s>`=1 (begin), `</s>`=2 (end), `<unk>`=3.

The scheme is GPT-2's byte-level BPE (every text encodes, no unknown tokens), with one
change: GPT-2's `add_prefix_space` adds a space only to a text that does not start with
one, so a text starting with a space would lose it on a round trip. Here a `Prepend(" ")`
normalizer adds the space to every text and `decode` strips exactly one, so
`decode(encode(t)) == t` for every text (leading, trailing or repeated whitespace too).
Special tokens written in a text (a literal "</s>") are encoded as text, never as the
special ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from etils import epath
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from bigjax import run_files

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)  # token i has id i
NUM_BYTES = 256
MIN_VOCAB_SIZE = NUM_BYTES + len(SPECIALS)
TOKENIZER_FILE = "tokenizer.json"


class SubwordTokenizer:
    """Text <-> token ids of one joint source/target vocabulary.

    Attributes:
      pad_id, bos_id, eos_id, unk_id: 0, 1, 2, 3.
      vocab_size: number of token ids (specials included).
    """

    def __init__(self, tokenizer: Tokenizer):
        _check_specials(tokenizer)
        tokenizer.encode_special_tokens = True  # "</s>" in a text is text (not saved in json)
        self._tok = tokenizer
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = range(len(SPECIALS))
        self.vocab_size: int = tokenizer.get_vocab_size()

    def encode(self, text: str) -> np.ndarray:
        """Token ids of `text`, int32 [n], no special tokens."""
        return np.asarray(self._tok.encode(text, add_special_tokens=False).ids, np.int32)

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        """`encode` of each text (on the library's thread pool): int32 [n_i] each."""
        encodings = self._tok.encode_batch(list(texts), add_special_tokens=False)
        return [np.asarray(e.ids, np.int32) for e in encodings]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of `ids` ([n] ints): up to the first `</s>`, special tokens (and ids
        outside the vocabulary, e.g. a model's padded rows) skipped."""
        return self.decode_batch([ids])[0]

    def decode_batch(self, rows: np.ndarray | Iterable[Iterable[int]]) -> list[str]:
        """`decode` of each row of `rows` ([batch, length] array or lists of ids)."""
        texts = self._tok.decode_batch([self._content_ids(row) for row in rows],
                                       skip_special_tokens=True)
        return [t[1:] if t.startswith(" ") else t for t in texts]  # the prepended space

    def _content_ids(self, ids: Iterable[int]) -> list[int]:
        """`ids` before the first `</s>`, without special or out-of-vocabulary ids."""
        kept = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if len(SPECIALS) <= i < self.vocab_size:
                kept.append(i)
        return kept

    def to_json(self) -> str:
        """The `tokenizer.json` text (the Hugging Face format)."""
        return self._tok.to_str()

    @classmethod
    def from_json(cls, text: str) -> SubwordTokenizer:
        """The tokenizer of a `tokenizer.json` text; ValueError when its special tokens are
        not `<pad>`=0, `<s>`=1, `</s>`=2, `<unk>`=3."""
        return cls(Tokenizer.from_str(text))

    def save(self, folder: str) -> None:
        """Writes `folder/tokenizer.json` (the folder is made when absent; may be gs://)."""
        epath.Path(run_files.resolve(folder)).mkdir(parents=True, exist_ok=True)
        run_files.write_text(run_files.join(folder, TOKENIZER_FILE), self.to_json())

    @classmethod
    def load(cls, folder: str) -> SubwordTokenizer:
        """The `tokenizer.json` of `folder` (a workdir, or a folder `save` wrote)."""
        path = epath.Path(run_files.join(folder, TOKENIZER_FILE))
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} does not exist: config.data.translation.tokenizer is 'bpe' or a "
                "folder holding the tokenizer.json of a translation tokenizer (a workdir of "
                "a translation run has one).")
        try:
            return cls.from_json(path.read_text())
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None


def _check_specials(tokenizer: Tokenizer) -> None:
    """ValueError listing the special tokens and their ids when they are not the fixed ones."""
    found = {token: tokenizer.token_to_id(token) for token in SPECIALS}
    if any(found[token] != i for i, token in enumerate(SPECIALS)):
        expected = ", ".join(f"{t}={i}" for i, t in enumerate(SPECIALS))
        got = ", ".join(f"{t}={'absent' if i is None else i}" for t, i in found.items())
        raise ValueError(f"The tokenizer's special tokens are {got}; a translation tokenizer "
                         f"needs {expected}. Train one with subword_tokenizer.train_bpe "
                         "(config.data.translation.tokenizer='bpe').")


def train_bpe(texts: Iterable[str], vocab_size: int) -> SubwordTokenizer:
    """Byte-level BPE of at most `vocab_size` tokens (the 4 special tokens and 256 bytes
    included; fewer when `texts` allow fewer merges), trained on `texts` (pass source and
    target sentences together for one joint vocabulary)."""
    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(f"config.data.translation.vocab_size={vocab_size}: byte-level BPE "
                         f"needs at least {MIN_VOCAB_SIZE} tokens ({NUM_BYTES} bytes and the "
                         f"{len(SPECIALS)} special tokens {', '.join(SPECIALS)}).")
    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizers.Prepend(" ")  # GPT-2's prefix space, for every text
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return SubwordTokenizer(tok)
