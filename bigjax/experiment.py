"""Everything a config builds before training or evaluating: mesh, data, model, task,
preprocessing, optimizer and the abstract (born-sharded) train state.

`build_model_parts(config)` is what evaluation needs (no train split is read);
`build_experiment(config)` adds the training data, optimizer and train state.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import optax

from bigjax import datasets, durations, models, optim, pp, sharding, tasks
from bigjax.datasets import cv_folds, lm_data, tokenized, translation_data
from bigjax.datasets.array_dataset import Examples
from bigjax.input_pipeline import TrainBatches, device_columns
from bigjax.pp.host_crop import HostCrop
from bigjax.pp.lm_tokenizer import LMTokenizer
from bigjax.pp.subword_tokenizer import SubwordTokenizer
from bigjax.tasks.base import Task
from bigjax.train_state import abstract_state, init_opt_state, make_init_fn, make_variables_init

DATA_INIT_EXAMPLES = 5000  # training examples a data-dependent init looks at


@dataclasses.dataclass
class ModelParts:
    """The mesh and rules, the model, task and preprocessing of a config."""

    config: ml_collections.ConfigDict
    mesh: jax.sharding.Mesh
    rules: tuple
    model: nn.Module
    task: Task
    preprocess: pp.Preprocess
    tokenizer: Any  # the data's tokenizer (text: WordPiece; language models: LMTokenizer)

    def load_split(self, split: str, examples: int | None = None) -> Examples:
        """Split `split` of the config's data set, optionally a fixed random subset of
        `examples`, tokenized when `config.data.tokenizer` is set."""
        return load_split(self.config, split, examples, self.tokenizer)

    def sample(self, data: Examples) -> dict:
        """One preprocessed example `[1, ...]` of `data` (for shapes)."""
        return self.preprocess(device_columns(data.take(np.arange(1))), None, train=False)

    def variables_init(self, data: Examples):
        """`init(rng) -> model variables` (boxed) with shapes from `data`."""
        sample = self.sample(data)
        return make_variables_init(self.model, sample["inputs"], self.task.model_kwargs(sample))


@dataclasses.dataclass
class Experiment(ModelParts):
    """ModelParts plus training: batches, schedule, optimizer, the state's layout."""

    train_batches: TrainBatches = None
    total_steps: int = 0
    tx: optax.GradientTransformation = None
    schedule: optax.Schedule = None
    init_fn: Any = None  # init(rng) -> boxed TrainState
    abstract_state: Any = None  # TrainState of ShapeDtypeStructs with shardings
    state_shardings: Any = None

    def init_state_with_data(self, state: Any) -> Any:
        """A fresh train state with its params passed through `init_params_with_data`
        and the optimizer state initialised again from them (optimizers that keep a copy
        of the params, like lookahead, start from the data-dependent values). Models
        without `init_with_data`: `state` unchanged."""
        if not hasattr(self.model, "init_with_data"):
            return state
        params = self.init_params_with_data(state.params)
        opt_state = jax.jit(functools.partial(init_opt_state, self.tx),
                            out_shardings=self.state_shardings.opt_state)(params,
                                                                          state.model_state)
        return state.replace(params=params, opt_state=opt_state)

    def init_params_with_data(self, params: Any) -> Any:
        """Fresh `params` passed through the model's `init_with_data(params, inputs)`
        when it has one (a data-dependent init, e.g. `SpeedResNet`'s patch whitening):
        `inputs` are the first DATA_INIT_EXAMPLES examples of a fixed shuffle of the
        training split, preprocessed without augmentation. Every process computes the
        same. Other models: `params` unchanged."""
        if not hasattr(self.model, "init_with_data"):
            return params
        data = self.train_batches.data
        order = np.random.default_rng(0).permutation(len(data))[:DATA_INIT_EXAMPLES]
        batch = self.preprocess(device_columns(data.take(np.sort(order))), None, train=False)
        return self.model.init_with_data(params, batch["inputs"])


def build_model_parts(config: ml_collections.ConfigDict, workdir: str | None = None
                      ) -> ModelParts:
    """Mesh, rules, model, task and preprocessing; the tokenizer is built once here (a
    language model's from `workdir/tokenizer.json` when the workdir has one). A model
    whose vocabulary size is left None gets the tokenizer's."""
    mesh = sharding.make_mesh(config.mesh)
    model = models.build(config.model)
    _check_family(config, model)  # before any tokenizer is trained
    tokenizer = None
    if config.data.get("lm"):
        tokenizer = lm_data.make_tokenizer(config, workdir)
    elif config.data.get("translation"):
        tokenizer = translation_data.make_tokenizer(config, workdir)
    elif config.data.get("tokenizer"):
        tokenizer = tokenized.make_tokenizer(config.data.tokenizer)
    if tokenizer is not None and hasattr(model, "with_data_vocab"):
        model = model.with_data_vocab(tokenizer.vocab_size)
    _check_length(config, model)
    return ModelParts(config, mesh, sharding.rules_from_config(config), model,
                      tasks.get(config, tokenizer), pp.make(config.pp, tokenizer), tokenizer)


def build_experiment(config: ml_collections.ConfigDict, workdir: str | None = None
                     ) -> Experiment:
    """Builds (but does not initialise) everything the loop needs (`workdir`: see
    `build_model_parts`)."""
    parts = build_model_parts(config, workdir)
    sharding.check_batch_size(parts.mesh, config.batch_size, "config.batch_size")
    accum = int(config.get("grad_accum_steps") or 1)
    if accum < 1 or config.batch_size % (accum * sharding.num_batch_shards(parts.mesh)):
        raise ValueError(
            f"config.grad_accum_steps={accum} must be positive, and config.batch_size="
            f"{config.batch_size} a multiple of it times the "
            f"{sharding.num_batch_shards(parts.mesh)} devices on the batch axes.")
    train_data = parts.load_split(config.data.train_split, config.data.get("train_examples"))
    crop = config.data.get("host_crop_scale")
    host_transform = HostCrop(tuple(crop)) if crop else None
    if host_transform is not None:  # refuse a data set it cannot crop now, not in a reader
        host_transform(train_data.take(np.arange(1)), [np.random.default_rng(0)])
    train_batches = TrainBatches(train_data, config.batch_size, config.seed,
                                 sharding.process_rows(parts.mesh, config.batch_size),
                                 host_transform=host_transform,
                                 length_buckets=config.data.get("length_buckets"))
    steps_per_epoch = train_batches.steps_per_epoch
    total_steps = durations.resolve_steps(config, "total", steps_per_epoch)
    if not total_steps or total_steps <= 0:
        raise ValueError("Set config.total_steps or config.total_epochs to a positive value.")
    optim_config = ml_collections.ConfigDict(config.optim.to_dict())
    warmup = durations.resolve_steps(config.optim, "warmup", steps_per_epoch, 0)
    optim_config.warmup_steps, optim_config.warmup_epochs = warmup, None
    optim_config.frozen_after_steps = durations.resolve_step_map(
        config.optim, "frozen_after", steps_per_epoch)
    optim_config.frozen_after_epochs = None
    tx, schedule = optim.make_optimizer(optim_config, total_steps)
    sample = parts.sample(train_data)
    _check_inputs(config, sample["inputs"])
    init_fn = make_init_fn(parts.model, tx, sample["inputs"], parts.task.model_kwargs(sample))
    abstract, shardings = abstract_state(init_fn, parts.mesh, parts.rules)
    return Experiment(**{f.name: getattr(parts, f.name) for f in dataclasses.fields(parts)},
                      train_batches=train_batches, total_steps=total_steps, tx=tx,
                      schedule=schedule, init_fn=init_fn, abstract_state=abstract,
                      state_shardings=shardings)


def load_split(config: ml_collections.ConfigDict, split: str, examples: int | None = None,
               tokenizer=None) -> Examples:
    """See `ModelParts.load_split`. Under `config.data.cv_folds` the training split is
    all folds but `config.data.cv_fold`, and split "cv_holdout" is that fold
    (`datasets/cv_folds.py`). A data set whose number of classes differs from
    `config.model.num_classes` is refused."""
    folds = config.data.get("cv_folds")
    if config.data.get("lm"):
        if folds:
            raise ValueError("config.data.cv_folds cross-validates small data sets of "
                             "examples, not a language model's token stream: unset it.")
        return datasets.subset_examples(lm_data.load_split(config, split, tokenizer),
                                        examples, split)
    if config.data.get("translation"):
        if folds:
            raise ValueError("config.data.cv_folds is not supported for translation data; "
                             "unset it.")
        return datasets.subset_examples(translation_data.load_split(config, split, tokenizer),
                                        examples, split)
    if split == cv_folds.HOLDOUT and not folds:
        raise ValueError(f"Split {split!r} is a cross-validation fold: set "
                         "config.data.cv_folds (and config.data.cv_fold).")
    in_folds = bool(folds) and split in (cv_folds.HOLDOUT, config.data.train_split)
    data = datasets.load(config.data.name, config.data.train_split if in_folds else split,
                         config.data.get("data_dir"), None if in_folds else examples,
                         path=config.data.get("path"), on_disk=config.data.get("on_disk", False),
                         prepared_dir=config.data.get("prepared_dir"),
                         image_size=config.data.get("image_size"))
    if in_folds:  # the folds are cut from the whole split, then subset
        train_rows, held_rows = cv_folds.fold_rows(len(data), folds, config.data.cv_fold,
                                                   config.data.cv_seed)
        data = data.subset(held_rows if split == cv_folds.HOLDOUT else train_rows)
        data = datasets.subset_examples(data, examples, split)
    if config.data.get("tokenizer"):
        data = tokenized.tokenize(data, config.data.tokenizer, tokenizer=tokenizer)
    expected = config.model.get("num_classes")
    if data.num_classes is not None and expected is not None and data.num_classes != expected:
        raise ValueError(f"config.model.num_classes={expected} but data set {data.name!r} has "
                         f"{data.num_classes} classes.")
    return data


def save_tokenizer(tokenizer, workdir: str) -> None:
    """Writes a trained tokenizer to the workdir (language models, translation), where
    evaluation, generation and a resumed run read it back; other tokenizers are files
    the config names already."""
    if isinstance(tokenizer, LMTokenizer):
        lm_data.save_tokenizer(tokenizer, workdir)
    elif isinstance(tokenizer, SubwordTokenizer):
        translation_data.save_tokenizer(tokenizer, workdir)


def _check_family(config, model) -> None:
    """Language-model (translation) data, preprocessing, task and a causal (an
    encoder-decoder) model go together."""
    encoder_decoder = hasattr(model, "encode")
    families = {
        "A language model": {
            "config.data.lm": bool(config.data.get("lm")),
            "config.pp.kind='lm'": config.pp.kind == "lm",
            "config.task='causal_lm'": config.task == "causal_lm",
            "a causal model (config.model.name='gpt')":
                hasattr(model, "init_cache") and not encoder_decoder},
        "A translation model": {
            "config.data.translation": bool(config.data.get("translation")),
            "config.pp.kind='translation'": config.pp.kind == "translation",
            "config.task='translation'": config.task == "translation",
            "an encoder-decoder (config.model.name='transformer')": encoder_decoder},
    }
    # The family the config is nearest to (its data key first) names what is missing.
    for family, parts in sorted(families.items(), key=lambda f: (not next(iter(
            f[1].values())), -sum(f[1].values()))):
        if any(parts.values()) and not all(parts.values()):
            missing = [k for k, v in parts.items() if not v]
            raise ValueError(f"{family} needs {', '.join(parts)} together; this config "
                             f"lacks {', '.join(missing)}.")


def _check_length(config, model) -> None:
    """Refuses token sequences longer than the model has positions for (a lookup past the
    last position would silently clamp)."""
    lm = config.data.get("lm")
    if lm and hasattr(model, "max_length") and lm.context > model.max_length():
        raise ValueError(f"config.data.lm.context={lm.context} is longer than the "
                         f"{model.max_length()} positions of the model; lower it or raise "
                         "config.model.max_len.")
    pairs = config.data.get("translation")
    if pairs and hasattr(model, "max_length"):
        for key in ("max_source_len", "max_target_len"):
            if pairs[key] > model.max_length():
                raise ValueError(f"config.data.translation.{key}={pairs[key]} is longer than "
                                 f"the {model.max_length()} positions of the model; lower it "
                                 "or raise config.model.max_len.")
    tokenizer = config.data.get("tokenizer")
    if tokenizer and hasattr(model, "max_length") and tokenizer.max_len > model.max_length():
        raise ValueError(f"config.data.tokenizer.max_len={tokenizer.max_len} is longer than the "
                         f"{model.max_length()} positions of the model; lower it, or raise "
                         "config.model.max_len (new position embeddings are trained from "
                         "scratch).")


def _check_inputs(config, inputs) -> None:
    expected = config.data.get("input_shape")
    if expected is not None and tuple(inputs.shape[1:]) != tuple(expected):
        raise ValueError(f"Data set {config.data.name!r} gives inputs of shape "
                         f"{tuple(inputs.shape[1:])}, but config.data.input_shape is "
                         f"{tuple(expected)}.")
