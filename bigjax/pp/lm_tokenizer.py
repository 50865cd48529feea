"""Language-model tokenizers: character-level or byte-level BPE, trained on the training
split with the Hugging Face `tokenizers` library, or a pretrained `tokenizer.json`.

Every kind is one `tokenizers.Tokenizer` saved as `tokenizer.json` in the workdir, so
evaluation, generation and a resumed run use exactly the tokenizer the run trained.
Each has an end-of-text token that separates documents and stops generation.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np
from etils import epath
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

EOT = "<|endoftext|>"
CONFIG_FILE = "tokenizer_config.json"  # names the end-of-text token ("eos_token")
UNK = "<unk>"
KINDS = ("char", "bpe")
# The char tokenizer reads text in pieces of at most this many characters (a BPE model
# with no merges splits each piece into characters; one huge piece would be slow).
_CHAR_PIECE = 1024


class LMTokenizer:
    """Text <-> token ids, with an end-of-text token.

    Attributes:
      vocab_size: number of token ids.
      eot_id: id of the end-of-text token.
      is_char: every ordinary token is one character (bits per character = per token).
    """

    def __init__(self, tokenizer: Tokenizer, eot: str = EOT):
        eot_id = tokenizer.token_to_id(eot)
        if eot_id is None:
            raise ValueError(f"The tokenizer has no end-of-text token {eot!r}; add it as a "
                             "special token, or name the one it has.")
        self._tok = tokenizer
        self.eot = eot
        self.eot_id: int = eot_id
        self.vocab_size: int = tokenizer.get_vocab_size()
        specials = {eot, UNK}
        self.is_char = all(len(t) == 1 for t in tokenizer.get_vocab() if t not in specials)

    def encode(self, text: str) -> np.ndarray:
        """Token ids of `text`, int32 [n] (no end-of-text token added)."""
        return np.asarray(self._tok.encode(text).ids, np.int32)

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        """`encode` of each text, on the library's thread pool."""
        return [np.asarray(e.ids, np.int32) for e in self._tok.encode_batch(texts)]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of token ids (the end-of-text token reads as itself)."""
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def token_bytes(self) -> np.ndarray:
        """UTF-8 bytes of text each token stands for, int32 [vocab_size] (0 for special
        tokens): a split's bytes are the sum over its tokens (bits per byte).

        Byte-level tokenizers (GPT-2's scheme) spell each byte as one character of their
        alphabet, so a token's bytes are its length; a piece of a multi-byte character
        decodes to nothing whole on its own. Byte-fallback tokens (``<0x0A>``) are one
        byte; any other token counts the UTF-8 bytes of its text, SentencePiece's ``▁``
        read as the space it stands for.
        """
        byte_level = json.loads(self._tok.to_str()).get("decoder", {}) or {}
        byte_level = byte_level.get("type") == "ByteLevel"
        special = {t.content for t in self._tok.get_added_tokens_decoder().values()
                   if t.special} | {UNK, self.eot}
        sizes = np.zeros(self.vocab_size, np.int32)
        for token, i in self._tok.get_vocab().items():
            if token in special or i >= self.vocab_size:
                continue
            if byte_level:
                sizes[i] = len(token)
            elif len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
                sizes[i] = 1
            else:  # SentencePiece's "▁" is a space (decoding one token alone strips it)
                sizes[i] = len(token.replace("\u2581", " ").encode("utf-8"))
        return sizes

    def to_json(self) -> str:
        """The `tokenizer.json` text (the Hugging Face format)."""
        return self._tok.to_str()

    @classmethod
    def from_json(cls, text: str, eot: str = EOT) -> LMTokenizer:
        return cls(Tokenizer.from_str(text), eot)


def train_char(texts: Iterable[str]) -> LMTokenizer:
    """One token per character seen in `texts` (sorted), plus `<unk>` for characters it
    never saw and the end-of-text token."""
    chars: set[str] = set()
    for text in texts:
        chars.update(text)
    vocab = {c: i for i, c in enumerate(sorted(chars))}
    vocab[UNK] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(f"[\\s\\S]{{1,{_CHAR_PIECE}}}"), "isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens([EOT])
    return LMTokenizer(tok)


def train_bpe(texts: Iterable[str], vocab_size: int) -> LMTokenizer:
    """Byte-level BPE (GPT-2's scheme: any text encodes, no unknown tokens) of
    `vocab_size` tokens, the end-of-text token included, trained on `texts`."""
    if vocab_size < 257:
        raise ValueError(f"config.data.lm.vocab_size={vocab_size}: byte-level BPE needs at "
                         "least 257 tokens (256 bytes and the end-of-text token).")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return LMTokenizer(tok)


def load_pretrained(folder: str) -> LMTokenizer:
    """The `tokenizer.json` of a model folder (e.g. a Hugging Face GPT-2 or Llama, or a
    bigjax workdir); the end-of-text token is the `eos_token` of its
    `tokenizer_config.json`, else `<|endoftext|>`."""
    path = epath.Path(folder) / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: config.data.lm.tokenizer names a "
                                "folder holding a tokenizer.json, 'char' or 'bpe'.")
    tok = Tokenizer.from_str(path.read_text())
    eot = EOT
    config = epath.Path(folder) / CONFIG_FILE
    if config.is_file():
        eos = json.loads(config.read_text()).get("eos_token")
        eot = (eos.get("content") if isinstance(eos, dict) else eos) or EOT
        if tok.token_to_id(eot) is None and tok.token_to_id(EOT) is not None:
            eot = EOT
    return LMTokenizer(tok, eot)
