"""AG News topics (tfds `ag_news_subset`, 4 classes) with BERT.

    python -m bigjax.main --config=configs/agnews_bert.py --workdir=DIR       # fine-tune MiniLM
    ...:tiny (from scratch), ...:runlocal                                     # variants

With a network, tfds gives the real 120,000 / 7,600 train/test split.
Offline only the 7,600-row test split exists (../shared/data/ag_news): bigjax
then uses a fixed, stratified 80/20 split of it (6,080 train / 1,520 test) —
results on it are not comparable to published AG News numbers.
"""

import _common


def get_config(arg=None):
    config = _common.bert_classification("ag_news_subset", "test", num_classes=4, max_len=96,
                                         arg=arg)
    args = _common.variant_args(arg, {"tiny"})
    if "runlocal" not in args:
        config.total_epochs = 5.0 if "tiny" in args else 2.0
        config.log_every_steps = 50
        config.eval_every_epochs = 1.0
        config.checkpoint.every_steps = 200
    return config
