"""IMDb sentiment (tfds `imdb_reviews`, 25k train / 25k test) with BERT.

    python -m bigjax.main --config=configs/imdb_bert.py --workdir=DIR       # fine-tune MiniLM
    python -m bigjax.main --config=configs/imdb_bert.py:tiny --workdir=DIR  # tiny, from scratch
    ...:runlocal, ...:tiny,runlocal                                         # smoke runs

Reviews are cut to 256 WordPiece tokens: a long review keeps its first 64 and its last
192 tokens (head+tail truncation keeps the closing verdict). See
_common.bert_classification.
"""

import _common


def get_config(arg=None):
    return _common.bert_classification("imdb_reviews", "test", num_classes=2, max_len=256,
                                       head_tokens=64, arg=arg)
