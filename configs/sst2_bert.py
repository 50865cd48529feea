"""SST-2 sentiment (tfds `glue/sst2`: 67,349 train sentences, 872 dev) with BERT.

    python -m bigjax.main --config=configs/sst2_bert.py --workdir=DIR         # fine-tune MiniLM
    python -m bigjax.main --config=configs/sst2_bert.py:tiny --workdir=DIR    # tiny, from scratch
    ...:runlocal, ...:tiny,runlocal                                           # smoke runs

Reports dev ("validation") accuracy, as GLUE does. See _common.bert_classification.
"""

import _common


def get_config(arg=None):
    config = _common.bert_classification("glue/sst2", "validation", num_classes=2, max_len=64,
                                         arg=arg)
    if "runlocal" not in _common.variant_args(arg, {"tiny"}):
        config.log_every_steps = 50
        config.eval_every_steps = 500
        config.checkpoint.every_steps = 250
    return config
