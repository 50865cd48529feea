"""Train-step speed of bigjax's MNIST MLP and CNN against PyTorch and Keras 3 (JAX backend).

    pip install -e '.[bench]' && python scripts/bench_mnist.py [--steps 300]
    python scripts/bench_mnist.py --smoke      # seconds: checks the script runs (CI)

Each framework is measured `--repeats` times, interleaved, and reports its
best round (the machine's noise only ever slows a round down). All three
frameworks train the same models (the source documents' MLP and
CNN: configs/mnist_mlp.py and configs/mnist_cnn.py as written) on the same
batches, already in memory, each measurement in a fresh process, and the
script prints steps/s and the ratios. Targets: bigjax's MLP >= 2x PyTorch's steps/s
(batch 64), bigjax's CNN >= Keras's steps/s (batch 32).

bigjax is timed per compiled call of 1 step and of `--steps-per-call` steps
(`config.steps_per_call`, several optimizer steps scanned in one call), with
Adam from `bigjax.adam` (`--adam=optax`: optax's own, for comparison).

A peer that is not installed (PyTorch or Keras) is skipped with the reason printed;
the others are still measured, and its numbers and ratios read "skipped".
`--smoke` times 10 steps (5 per call) after 2 warm-up steps, one round, on random
pixels, two measurements at a time: it only shows that every measurement runs, its
numbers mean nothing.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # measure this checkout's bigjax, not another installed one
FRAMEWORKS = ("bigjax", "bigjax_multi", "pytorch", "keras_jax")
PEERS = {"pytorch": "torch", "keras_jax": "keras"}  # framework -> the package it needs
SMOKE = dict(steps=10, steps_per_call=5, repeats=1, jobs=2)


def random_examples(n: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` random 28x28x1 uint8 images and int32 labels (speed does not depend on them)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)
    return images, rng.integers(0, 10, n).astype(np.int32)


def mnist_batches(batch_size: int, count: int,
                  random: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """`count` batches `[count, batch, 28, 28, 1]` uint8 and labels, from MNIST when the
    offline files are there (and not `random`), else random pixels (speed does not depend
    on the values)."""
    n = batch_size * count
    if random:
        images, labels = random_examples(n)
    else:
        from bigjax import datasets

        try:
            data = datasets.load("mnist", "train")
            images, labels = data.features["image"], data.features["label"]
        except (FileNotFoundError, ImportError, ValueError) as err:
            print(f"batches: random pixels ({err})", file=sys.stderr)
            images, labels = random_examples(n)
    reps = -(-n // len(images))
    images, labels = np.concatenate([images] * reps)[:n], np.concatenate([labels] * reps)[:n]
    return (images.reshape(count, batch_size, 28, 28, 1),
            labels.reshape(count, batch_size).astype(np.int32))


def time_loop(step, count: int, warmup: int = 20) -> float:
    """steps/s of `step(i)` over `count` calls after `warmup` calls; `step` blocks at the end."""
    for i in range(warmup):
        step(i, last=i == warmup - 1)
    start = time.perf_counter()
    for i in range(count):
        step(i, last=i == count - 1)
    return count / (time.perf_counter() - start)


def bench_bigjax(config_name: str, images, labels, steps_per_call: int,
                 adam_impl: str, warmup: int = 20) -> float:
    import jax

    from bigjax import config_cli, optim, sharding, train
    from bigjax.train_state import abstract_state, init_state, make_init_fn

    config = config_cli.load_config_file(os.path.join(REPO, "configs", config_name))
    config.data.name = "digits"  # only for building; the timed batches are passed in below
    config.data.input_shape = None
    exp = train.build_experiment(config)
    exp.tx, exp.schedule = optim.make_optimizer(config.optim, exp.total_steps, adam_impl)
    sample = exp.preprocess({"image": images[0, :1]}, None, False)["inputs"]
    exp.init_fn = make_init_fn(exp.model, exp.tx, sample)
    exp.abstract_state, exp.state_shardings = abstract_state(exp.init_fn, exp.mesh, exp.rules)
    state = init_state(exp.init_fn, 0, exp.state_shardings)
    train_step = train.make_train_step(exp, steps_per_call)
    k = steps_per_call
    calls = len(images) // k
    if k == 1:
        batches = [sharding.put_batch({"image": images[i], "label": labels[i]}, exp.mesh)
                   for i in range(calls)]
    else:
        batches = [sharding.put_batch({"image": images[i * k:(i + 1) * k],
                                       "label": labels[i * k:(i + 1) * k]}, exp.mesh, 1)
                   for i in range(calls)]
    holder = {"state": state}

    def step(i, last):
        holder["state"], metrics = train_step(holder["state"], batches[i % calls])
        if last:
            jax.block_until_ready(metrics)

    return time_loop(step, calls, warmup=max(2, warmup // k)) * k


def bench_torch(model_name: str, images, labels, warmup: int = 20) -> float:
    import torch
    from torch import nn

    torch.manual_seed(0)
    if model_name == "mlp":
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64),
                              nn.ReLU(), nn.Linear(64, 10))
        x = torch.tensor(images.astype(np.float32) / 127.5 - 1.0)
    else:
        model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(13 * 13 * 32, 128), nn.ReLU(), nn.Linear(128, 10))
        x = torch.tensor(images.astype(np.float32) / 255.0).permute(0, 1, 4, 2, 3).contiguous()
    y = torch.tensor(labels.astype(np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step(i, last):
        j = i % len(x)
        opt.zero_grad()
        loss = loss_fn(model(x[j]), y[j])
        loss.backward()
        opt.step()

    return time_loop(step, len(x), warmup)


def bench_keras(model_name: str, images, labels, warmup: int = 20) -> float:
    import keras

    keras.utils.set_random_seed(0)
    layers = keras.layers
    if model_name == "mlp":
        model = keras.Sequential([keras.Input((28, 28, 1)), layers.Flatten(),
                                  layers.Dense(128, activation="relu"),
                                  layers.Dense(64, activation="relu"), layers.Dense(10)])
        x = images.astype(np.float32) / 127.5 - 1.0
    else:
        model = keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"),
                                  layers.MaxPooling2D(2), layers.Flatten(),
                                  layers.Dense(128, activation="relu"), layers.Dense(10)])
        x = images.astype(np.float32) / 255.0
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    count, batch = labels.shape
    flat_x, flat_y = x.reshape(count * batch, 28, 28, 1), labels.reshape(-1)
    fit = dict(batch_size=batch, epochs=1, verbose=0, shuffle=False)
    model.fit(flat_x[: batch * warmup], flat_y[: batch * warmup], **fit)  # compile + warm up
    start = time.perf_counter()
    model.fit(flat_x, flat_y, **fit)  # Keras's fastest path: its own compiled fit loop
    return count / (time.perf_counter() - start)


MODELS = {"mlp": ("mnist_mlp.py", 64), "cnn": ("mnist_cnn.py", 32)}


def peer_missing(framework: str) -> str | None:
    """Why `framework` cannot be measured here (the peer package it needs does not
    import), as the line to print; None when it can (bigjax always can)."""
    module = PEERS.get(framework)
    if module is None:
        return None
    try:
        importlib.import_module(module)
    except ImportError as err:
        if getattr(err, "name", None) == module:
            return f"{module}: not installed (pip install -e '.[bench]'), skipped"
        return f"{module}: cannot be imported ({type(err).__name__}: {err}), skipped"
    return None


def measure(framework: str, model_name: str, steps: int, steps_per_call: int,
            adam_impl: str, smoke: bool = False) -> float:
    """steps/s of one framework on one model, in this process."""
    config_name, batch_size = MODELS[model_name]
    images, labels = mnist_batches(batch_size, steps, random=smoke)
    warmup = 2 if smoke else 20
    if framework == "bigjax":
        return bench_bigjax(config_name, images, labels, 1, adam_impl, warmup)
    if framework == "bigjax_multi":
        return bench_bigjax(config_name, images, labels, steps_per_call, adam_impl, warmup)
    if framework == "pytorch":
        return bench_torch(model_name, images, labels, warmup)
    return bench_keras(model_name, images, labels, warmup)


def measure_here(only: str, args: argparse.Namespace) -> dict:
    """`--only=FRAMEWORK:MODEL`: {"steps_per_sec": rate}, or {"skipped": reason} when the
    framework's package is missing."""
    framework, model_name = only.split(":")
    missing = peer_missing(framework)
    if missing:
        return {"skipped": missing}
    if framework == "bigjax":
        from bigjax import host_malloc

        host_malloc.keep_freed_memory()  # as bigjax's command line does
    return {"steps_per_sec": measure(framework, model_name, args.steps, args.steps_per_call,
                                     args.adam, args.smoke)}


def measure_in_fresh_process(framework: str, model_name: str, args: argparse.Namespace) -> dict:
    """One measurement in a process of its own (so no framework's thread pool competes
    with another's); what `measure_here` returns there. A failed measurement ends the
    script with its stderr."""
    env = dict(os.environ)
    if framework.startswith("bigjax") and args.bigjax_xla_flags:
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {args.bigjax_xla_flags}"
    command = [sys.executable, __file__, f"--only={framework}:{model_name}",
               f"--steps={args.steps}", f"--steps-per-call={args.steps_per_call}",
               f"--adam={args.adam}"] + (["--smoke"] if args.smoke else [])
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"{framework}:{model_name} failed (exit {proc.returncode}):\n"
                 f"{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def best_row(results: list[tuple[str, dict]], skipped: dict[str, str]) -> dict:
    """{framework: best steps/s over the rounds (None: skipped), ratio_vs_*: best bigjax /
    peer (None: peer skipped)} from one model's (framework, measurement) pairs. A framework
    found missing is added to `skipped`, its reason printed the first time."""
    row = {}
    for framework, result in results:
        if "skipped" in result:
            if framework not in skipped:
                print(result["skipped"], flush=True)
            skipped[framework] = result["skipped"]
        else:
            row[framework] = max(result["steps_per_sec"], row.get(framework, 0.0))
    row.update({framework: None for framework in FRAMEWORKS if framework not in row})
    best = max(row["bigjax"], row["bigjax_multi"])
    row["ratio_vs_pytorch"] = best / row["pytorch"] if row["pytorch"] else None
    row["ratio_vs_keras"] = best / row["keras_jax"] if row["keras_jax"] else None
    return row


def rate_text(value: float | None, spec: str, unit: str = "") -> str:
    """`value` formatted, or "skipped" for a peer that was not measured."""
    return "skipped" if value is None else f"{value:{spec}}{unit}"


def print_row(model_name: str, row: dict, steps_per_call: int) -> None:
    """The two lines of one model: steps/s of each framework, and the ratios."""
    batch_size = MODELS[model_name][1]
    print(f"{model_name} (batch {batch_size}), steps/s: bigjax {row['bigjax']:.0f}, "
          f"bigjax x{steps_per_call} steps/call {row['bigjax_multi']:.0f}, "
          f"pytorch {rate_text(row['pytorch'], '.0f')}, "
          f"keras (jax) {rate_text(row['keras_jax'], '.0f')}")
    print(f"  bigjax (best) / pytorch = {rate_text(row['ratio_vs_pytorch'], '.2f', 'x')}, "
          f"bigjax (best) / keras = {rate_text(row['ratio_vs_keras'], '.2f', 'x')}", flush=True)


def target_text(ratio: float | None, needed: float) -> str:
    """met / MISSED, or skipped when the peer was not measured."""
    if ratio is None:
        return "skipped"
    return "met" if ratio >= needed else "MISSED"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; `--smoke` replaces steps, steps per call and rounds by tiny ones."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000, help="timed steps per measurement")
    parser.add_argument("--steps-per-call", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds over all frameworks; each reports its best round")
    parser.add_argument("--bigjax-xla-flags", default="",
                        help="XLA_FLAGS for the bigjax measurements only, e.g. "
                        "--xla_cpu_experimental_xnn_fusion_type=LIBRARY_FUSION_TYPE_DOT")
    parser.add_argument("--adam", choices=("bigjax", "optax"), default="bigjax",
                        help="Adam implementation for the bigjax measurements")
    parser.add_argument("--jobs", type=int, default=1,
                        help="measurements run at once; more than 1 only for checks "
                        "(concurrent measurements compete for the cores)")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds-long check that every measurement runs: 10 steps (5 "
                        "per call) after 2 warm-up steps, 1 round, 2 processes at a time, "
                        "random pixels; the numbers mean nothing")
    parser.add_argument("--only", default=None, help=argparse.SUPPRESS)  # FRAMEWORK:MODEL
    args = parser.parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    return args


def measure_all(args: argparse.Namespace) -> dict:
    """{model: best_row} over `args.repeats` rounds of every framework, each measurement in
    a fresh process, `args.jobs` at a time, in the order mlp's rounds, then cnn's; prints
    each model's lines as soon as its measurements are done."""
    results, skipped = {}, {}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs))
    try:
        pending = {model_name: [(framework, pool.submit(measure_in_fresh_process, framework,
                                                        model_name, args))
                                for _ in range(args.repeats) for framework in FRAMEWORKS]
                   for model_name in MODELS}
        for model_name, measurements in pending.items():
            done = [(framework, future.result()) for framework, future in measurements]
            results[model_name] = best_row(done, skipped)
            print_row(model_name, results[model_name], args.steps_per_call)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return results


def main() -> int:
    args = parse_args()
    if args.only:  # one measurement, in a process of its own
        print(json.dumps(measure_here(args.only, args)))
        return 0
    results = measure_all(args)
    print(f"targets: MLP >= 2x PyTorch: {target_text(results['mlp']['ratio_vs_pytorch'], 2.0)}; "
          f"CNN >= Keras: {target_text(results['cnn']['ratio_vs_keras'], 1.0)}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
