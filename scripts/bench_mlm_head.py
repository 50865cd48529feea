"""Train-step speed of MLM pretraining with and without `pp.max_predictions`.

    python scripts/bench_mlm_head.py [--steps 20] [--repeats 3]
    python scripts/bench_mlm_head.py --smoke    # seconds: checks the script runs (CI)

Builds configs/mlm_bert.py's model, masking, task and optimizer (the tiny BERT,
batch 64 x 128 tokens, WordPiece vocab of 30,522) and times bigjax's compiled
train step on random token ids (speed does not depend on the values; no data
is read), once with the config's `max_predictions` (the MLM head computes
vocabulary logits at the picked positions only) and once with None (logits at
every position, as before). Rounds are interleaved and each reports its best;
prints steps/s and the ratio. `--smoke` times 2 steps, one round, of the config's
`runlocal` variant (batch 16 x 32 tokens, `max_predictions` 10): it only shows that
the script runs, its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # measure this checkout's bigjax, not another installed one

import jax  # noqa: E402
import numpy as np  # noqa: E402

from bigjax import config_cli, models, optim, pp, sharding, tasks, train  # noqa: E402
from bigjax.datasets import tokenized  # noqa: E402
from bigjax.train_state import abstract_state, init_state, make_init_fn  # noqa: E402

CONFIG = os.path.join(REPO, "configs", "mlm_bert.py")
SMOKE = dict(steps=2, repeats=1, config=f"{CONFIG}:runlocal")


def build_step(max_predictions: int | None, config_spec: str = CONFIG):
    """(train_step, state, batches) for the config `config_spec` (configs/mlm_bert.py)
    with this cap."""
    config = config_cli.load_config_file(config_spec)
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; `--smoke` replaces steps, rounds and config by tiny ones."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true",
                        help="seconds-long check that the script runs (2 steps, 1 round, "
                        "the config's runlocal variant); the numbers mean nothing")
    args = parser.parse_args(argv)
    vars(args).update(SMOKE if args.smoke else dict(config=CONFIG))
    return args


def main() -> None:
    args = parse_args()
    from bigjax import host_malloc

    host_malloc.keep_freed_memory()  # as bigjax's command line does
    default = config_cli.load_config_file(args.config).pp.max_predictions
    runs = {f"max_predictions={default}": build_step(default, args.config),
            "every position": build_step(None, args.config)}
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
