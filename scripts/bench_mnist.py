"""Train-step speed of bigjax's MNIST MLP and CNN against PyTorch and Keras 3 (JAX backend).

    pip install -e '.[bench]' && python scripts/bench_mnist.py [--steps 300]

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
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mnist_batches(batch_size: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` batches `[count, batch, 28, 28, 1]` uint8 and labels, from MNIST when the
    offline files are there, else random pixels (speed does not depend on the values)."""
    from bigjax import datasets

    try:
        data = datasets.load("mnist", "train")
        images, labels = data.features["image"], data.features["label"]
    except (FileNotFoundError, ImportError, ValueError) as err:
        print(f"batches: random pixels ({err})", file=sys.stderr)
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (batch_size * count, 28, 28, 1), dtype=np.uint8)
        labels = rng.integers(0, 10, batch_size * count).astype(np.int32)
    n = batch_size * count
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
                 adam_impl: str) -> float:
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

    return time_loop(step, calls, warmup=max(2, 20 // k)) * k


def bench_torch(model_name: str, images, labels) -> float:
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

    return time_loop(step, len(x))


def bench_keras(model_name: str, images, labels) -> float:
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
    model.fit(flat_x[: batch * 20], flat_y[: batch * 20], **fit)  # compile + warm up
    start = time.perf_counter()
    model.fit(flat_x, flat_y, **fit)  # Keras's fastest path: its own compiled fit loop
    return count / (time.perf_counter() - start)


MODELS = {"mlp": ("mnist_mlp.py", 64), "cnn": ("mnist_cnn.py", 32)}


def measure(framework: str, model_name: str, steps: int, steps_per_call: int,
            adam_impl: str) -> float:
    config_name, batch_size = MODELS[model_name]
    images, labels = mnist_batches(batch_size, steps)
    if framework == "bigjax":
        return bench_bigjax(config_name, images, labels, 1, adam_impl)
    if framework == "bigjax_multi":
        return bench_bigjax(config_name, images, labels, steps_per_call, adam_impl)
    if framework == "pytorch":
        return bench_torch(model_name, images, labels)
    return bench_keras(model_name, images, labels)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=1000, help="timed steps per measurement")
    parser.add_argument("--steps-per-call", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds over all frameworks; each reports its best round")
    parser.add_argument("--bigjax-xla-flags", default="",
                        help="XLA_FLAGS for the bigjax measurements only, e.g. "
                        "--xla_cpu_experimental_xnn_fusion_type=LIBRARY_FUSION_TYPE_DOT")
    parser.add_argument("--adam", choices=("bigjax", "optax"), default="bigjax",
                        help="Adam implementation for the bigjax measurements")
    parser.add_argument("--only", default=None, help=argparse.SUPPRESS)  # FRAMEWORK:MODEL
    args = parser.parse_args()
    if args.only:  # one measurement, in a process of its own
        framework, model_name = args.only.split(":")
        print(json.dumps(measure(framework, model_name, args.steps, args.steps_per_call,
                                 args.adam)))
        return 0
    # Each measurement runs in a fresh process, so no framework's thread pool competes
    # with another's.
    results = {}
    for model_name, (_, batch_size) in MODELS.items():
        row = {}
        for framework in [f for _ in range(args.repeats)
                          for f in ("bigjax", "bigjax_multi", "pytorch", "keras_jax")]:
            env = dict(os.environ)
            if framework.startswith("bigjax") and args.bigjax_xla_flags:
                env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {args.bigjax_xla_flags}"
            out = subprocess.run(
                [sys.executable, __file__, f"--only={framework}:{model_name}",
                 f"--steps={args.steps}", f"--steps-per-call={args.steps_per_call}",
                 f"--adam={args.adam}"],
                capture_output=True, text=True, check=True, env=env).stdout
            rate = json.loads(out.strip().splitlines()[-1])
            row[framework] = max(rate, row.get(framework, 0.0))
        best = max(row["bigjax"], row["bigjax_multi"])
        row["ratio_vs_pytorch"] = best / row["pytorch"]
        row["ratio_vs_keras"] = best / row["keras_jax"]
        results[model_name] = row
        print(f"{model_name} (batch {batch_size}), steps/s: bigjax {row['bigjax']:.0f}, "
              f"bigjax x{args.steps_per_call} steps/call {row['bigjax_multi']:.0f}, "
              f"pytorch {row['pytorch']:.0f}, keras (jax) {row['keras_jax']:.0f}")
        print(f"  bigjax (best) / pytorch = {row['ratio_vs_pytorch']:.2f}x, "
              f"bigjax (best) / keras = {row['ratio_vs_keras']:.2f}x", flush=True)
    mlp_ok = results["mlp"]["ratio_vs_pytorch"] >= 2.0
    cnn_ok = results["cnn"]["ratio_vs_keras"] >= 1.0
    print(f"targets: MLP >= 2x PyTorch: {'met' if mlp_ok else 'MISSED'}; "
          f"CNN >= Keras: {'met' if cnn_ok else 'MISSED'}")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
