"""Train-step speed of MLM pretraining with and without `pp.max_predictions`.

    python scripts/bench_mlm_head.py [--steps 20] [--repeats 3]

Builds configs/mlm_bert.py's model, masking, task and optimizer (the tiny BERT,
batch 64 x 128 tokens, WordPiece vocab of 30,522) and times bigjax's compiled
train step on random token ids (speed does not depend on the values; no data
is read), once with the config's `max_predictions` (the MLM head computes
vocabulary logits at the picked positions only) and once with None (logits at
every position, as before). Rounds are interleaved and each reports its best;
prints steps/s and the ratio.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

from bigjax import config_cli, models, optim, pp, sharding, tasks, train
from bigjax.datasets import tokenized
from bigjax.train_state import abstract_state, init_state, make_init_fn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_step(max_predictions: int | None):
    """(train_step, state, batches) for configs/mlm_bert.py with this cap."""
    config = config_cli.load_config_file(os.path.join(REPO, "configs", "mlm_bert.py"))
    config.pp.max_predictions = max_predictions
    config.optim.warmup_steps, config.optim.warmup_epochs = 100, None
    mesh = sharding.make_mesh(config.mesh)
    rules = sharding.rules_from_config(config)
    tokenizer = tokenized.make_tokenizer(config.data.tokenizer)
    preprocess = pp.make(config.pp, tokenizer)
    model = models.build(config.model)
    tx, schedule = optim.make_optimizer(config.optim, 1000)
    rng = np.random.default_rng(0)
    shape = (4, config.batch_size, config.data.tokenizer.max_len)
    ids = rng.integers(1000, tokenizer.vocab_size, shape).astype(np.int32)
    ids[:, :, 0], ids[:, :, -1] = tokenizer.cls_id, tokenizer.sep_id
    batches = [sharding.put_batch({"input_ids": b}, mesh) for b in ids]
    sample = preprocess({"input_ids": ids[0, :1]}, None, train=False)["inputs"]
    init_fn = make_init_fn(model, tx, sample)
    abstract, shardings = abstract_state(init_fn, mesh, rules)
    exp = train.Experiment(config, mesh, rules, model, tasks.get(config), preprocess, tokenizer,
                           total_steps=1000, tx=tx, schedule=schedule, init_fn=init_fn,
                           abstract_state=abstract, state_shardings=shardings)
    return train.make_train_step(exp), init_state(init_fn, 0, shardings, rules), batches


def steps_per_sec(step_fn, state, batches, steps: int):
    state, metrics = step_fn(state, batches[0])  # compile
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for i in range(steps):
        state, metrics = step_fn(state, batches[i % len(batches)])
    jax.block_until_ready(metrics)
    return steps / (time.perf_counter() - start), state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    default = config_cli.load_config_file(
        os.path.join(REPO, "configs", "mlm_bert.py")).pp.max_predictions
    runs = {f"max_predictions={default}": build_step(default),
            "every position": build_step(None)}
    best = dict.fromkeys(runs, 0.0)
    for _ in range(args.repeats):
        for name, (step_fn, state, batches) in runs.items():
            rate, state = steps_per_sec(step_fn, state, batches, args.steps)
            runs[name] = (step_fn, state, batches)
            best[name] = max(best[name], rate)
    for name, rate in best.items():
        print(f"{name:>22}: {rate:6.2f} steps/s")
    gathered, full = best.values()
    print(f"ratio: {gathered / full:.2f}x")


if __name__ == "__main__":
    main()
