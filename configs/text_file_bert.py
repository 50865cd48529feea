"""BERT on your own texts: a folder of <split>.csv (columns text,label) or <split>.jsonl.

    python -m bigjax.main --config=configs/text_file_bert.py --workdir=DIR \\
        --config.data.path=FOLDER --config.model.num_classes=N
    ...:tiny (a tiny BERT from scratch), ...:runlocal, ...:tiny,runlocal (smoke runs)

Labels may be class names (sorted order gives their indices) or 0-based numbers. The
default fine-tunes the pretrained all-MiniLM-L6-v2; see _common.bert_classification.
"""

import _common


def get_config(arg=None):
    config = _common.bert_classification("text_file", "test", num_classes=2, max_len=128,
                                         arg=arg)
    config.data.path = None
    return config
