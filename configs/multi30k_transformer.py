"""An encoder-decoder Transformer translating Multi30k English -> German.

    python -m bigjax.main --config=configs/multi30k_transformer.py --workdir=workdirs/m30k
    python -m bigjax.predict --workdir=workdirs/m30k "A man is riding a bike."
    ...:de_en                                      # German -> English
    ...:runlocal                                   # smoke run (seconds)

The "small" Transformer (3 + 3 pre-LN layers, 256 wide, 4 heads, ReLU feed-forward of
1,024; 7.6M params with the shared 8,000-token byte-level BPE vocabulary of both
languages), dropout 0.1, label smoothing 0.1, AdamW with warmup and an inverse-square-root
decay, 20 epochs of 128 sentence pairs per batch, in length buckets. Evaluates the
validation loss every epoch, and BLEU on test_2016_flickr with greedy decoding every 5
epochs and beam search (4 beams, alpha 0.6) every 10; sample translations are written
to workdir/translations/.
"""

import _common
import ml_collections


def get_config(arg=None):
    args = _common.variant_args(arg, {"de_en"})
    source, target = ("de", "en") if "de_en" in args else ("en", "de")
    config = ml_collections.ConfigDict()
    config.data = dict(
        name="multi30k", eval_split="validation",
        translation=dict(source=source, target=target, vocab_size=8000, max_source_len=64,
                         max_target_len=64),
        length_buckets=(16, 24, 32, 48, 64))
    config.pp = dict(kind="translation")
    config.model = dict(name="transformer", variant="small", max_len=64)
    config.task = "translation"
    config.label_smoothing = 0.1
    config.optim = dict(learning_rate=1e-3, schedule="warmup_rsqrt", warmup_steps=1000,
                        b2=0.98, eps=1e-9, weight_decay=0.0001, grad_clip_norm=1.0)
    config.batch_size = 128
    config.eval_batch_size = 256
    config.eval_trim_multiple = 8
    config.total_epochs = 20
    config.log_every_steps = 50
    config.checkpoint = dict(every_steps=500, keep=2)
    config.evals = dict(
        val=dict(type="metrics", split="validation", every_epochs=1.0),
        test_greedy=dict(type="translations", split="test", beam_size=1, every_epochs=5.0),
        test_beam=dict(type="translations", split="test", beam_size=4, alpha=0.6,
                       every_epochs=10.0),
    )
    if "runlocal" in args:
        _common.shrink_for_runlocal(config, steps=20)
        config.data.update(train_examples=512, eval_examples=48)
        config.data.translation.update(vocab_size=400, max_source_len=24, max_target_len=24)
        config.data.length_buckets = (8, 16, 24)
        config.model.update(encoder_layers=1, decoder_layers=1, hidden=32, heads=2,
                            mlp_dim=64, max_len=24)
        config.batch_size = 16
        config.eval_batch_size = 16
        config.optim.warmup_steps = 5
        for entry in config.evals.values():
            entry.update(every_epochs=None, every_steps=10)
        config.evals.test_greedy.update(num_samples=3)
        config.evals.test_beam.update(num_samples=3, max_decode_len=12)
    return config
