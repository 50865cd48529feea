"""Every model family's train step at a few sizes: step time, examples/s, tokens/s, TFLOP/s
per device and MFU, as training measures them; with `--peers`, the PyTorch and Keras
comparisons of the other bench scripts.

    python scripts/bench.py [--steps 50] [--families mlp,cnn,bert,gpt,transformer,resnet,vit]
                            [--peers] [--sizes cpu|accelerator] [--rows 'batch 32,Llama']
    python scripts/bench.py --smoke      # CI: each family's runlocal config, 5 steps
    python scripts/bench.py --smoke --peers   # also the peer scripts' own --smoke runs

Families and sizes (`SIZES`: a real config of configs/ with overrides for the size):
  mlp   configs/mnist_mlp.py on MNIST: hidden 128-64 batch 64 (the config as written),
        1024-1024 batch 128, 2048-2048 batch 256.
  cnn   configs/mnist_cnn.py on MNIST: as written (conv 32, dense 128, batch 32); the
        `tuned` variant (conv 32-64, dense 128, dropout, random shifts, batch 64); the same
        with conv 64-128, dense 256, batch 128.
  bert  configs/imdb_bert.py:tiny (a classifier trained from scratch on IMDb reviews, AdamW,
        dropout 0.1) at 128 tokens (head+tail truncation: 32 + 96): variant tiny (2 layers
        x 128) at batch 32, mini (4 x 256) at batch 16.
  gpt   configs/shakespeare_char.py (character-level Tiny Shakespeare, batch 12): nano
        (4 layers x 128, context 64: the config) and 4 x 256 (MLP 1024) at context 128.
  transformer  configs/multi30k_transformer.py (the encoder-decoder, Multi30k en->de) at
        full rows of 32 source + 32 decoder tokens (no length buckets, so the timed shape
        is the counted one): small (3+3 layers x 256) at batch 32 and 128 (the config),
        base (6+6 x 512) at batch 32.
  resnet configs/cifar10_resnet.py on CIFAR-10: the speed-run ResNet at batch 32 and 256,
        ResNet-18 with the CIFAR stem (`:resnet18`) at batch 64.
  vit   configs/cifar10_vit.py on CIFAR-10: the config's Ti/4 (6 x 192) at batch 16 and
        128, S/4 (12 x 384) at batch 32.
`--sizes accelerator` measures one GPU/TPU chip's rows instead (`ACCELERATOR_SIZES`, all
bfloat16): GPT-2 small at batch 16 and 32, medium at batch 16 (context 1024) and the
Llama-1B shape at batch 8 and 16 x 2048 (all unrolled layers, cuDNN attention, no remat,
configs/gpt_pretrain.py), the speed-run ResNet at its batch 1024, ResNet-50 and
ViT-B/16 at 224 px, batch 128 (configs/imagenet_*.py, on synthetic images: ImageNet has
no offline copy).
MLP and CNN use MNIST rather than the 8x8 digits so the images have a realistic size; the
digits set would make every convolution 12x smaller.

Every row is one train step exactly as training builds it, in a fresh process of its own,
one after the other (never two at once: they would share the cores): the config is loaded
with `config_cli.load_config_file` and the size set with `config_cli.apply_overrides`
(plus a 1,000-step schedule with 10 warmup steps, one step per call, and for text a few
batches' worth of examples); `train.build_experiment`, `train.make_train_step(exp, 1)`,
`train_state.init_state` under `sharding.mesh_context`; the batches are
`exp.train_batches.chunk(0, warmup + steps)`, every one placed on the mesh with
`sharding.put_batch` before any timing (data loading is never timed). The step is
compiled with `.lower(...).compile()` (`compile s`, reported apart; the persistent
compilation cache is off), run for 2 warm-up steps, then `--steps` steps are timed from
the first call to `jax.block_until_ready` of the last state and metrics.

Numbers of a row:
  step ms        the timed wall time / `--steps`: the mean step, dispatch overlapped as in
                 the training loop (not a median: the steps are not synchronised one by one).
  examples/s     batch / step time; tokens/s = tokens per step / step time, for models of
                 tokens only (GPT: batch x context; BERT: batch x max_len, padding included:
                 the step computes it).
  GFLOP/step     `throughput.Throughput.for_experiment(exp).flops_per_step`: the analytic
                 model FLOPs training divides by (`model_flops`: 6N + causal attention per
                 token for GPT; the forward's and backward's matmuls and convolutions,
                 counted from the jaxpr, for the others; remat not counted).
  TFLOP/s/device, MFU  `Throughput.scalars(1 / step time)`: what training logs as
                 `perf/tflops_per_sec_per_device` and `perf/mfu`. The peak per device is
                 `peak_flops.peak_flops_per_device` of the rows' compute dtype: on a CPU a
                 measured 2048^2 matmul (the source is printed). It is measured once, in
                 its own process before the rows, and handed to every row as
                 `config.peak_flops_per_device`, so all rows share one denominator.
  CPU/wall       the process's CPU seconds (all threads) per wall second of the timed steps:
                 about the core count when the row had the machine to itself.

Data: the offline copies in $BIGJAX_DATA_DIR (else ../shared/data beside the repo): MNIST,
IMDb, Tiny Shakespeare. A family whose files are absent runs on synthetic data of the same
shapes (random pixels, random vocabulary words, pseudo-words for GPT: a different character
vocabulary, so slightly other logits FLOPs) and its rows say "synthetic".

`--peers` then runs scripts/bench_mnist.py (MLP and CNN vs PyTorch and Keras),
scripts/bench_bert.py (BERT vs Hugging Face transformers) and scripts/bench_gpt.py (GPT vs
PyTorch), each in its own process with few steps (`PEER_ARGS`; `--smoke` passes their
`--smoke`), reads the JSON line each prints last and prints a second table of bigjax's
rate over each peer's. A peer that is not installed is skipped by those scripts with the
reason printed; its ratio reads "skipped".

`--smoke`: the smallest size of each family on its config's `runlocal` variant (tiny
models), 5 timed steps; only shows that every row runs and its numbers agree.
Prints a markdown table, the peak and machine lines and, last, one JSON line with every
number.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # measure this checkout's bigjax, not another installed one
from bigjax import host_cpu  # noqa: E402  (no jax: the parent process stays light)

SHARED_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))
FAMILIES = ("mlp", "cnn", "bert", "gpt", "transformer", "resnet", "vit")
WARMUP = 2  # untimed steps after the compile
SMOKE_STEPS = 5
TOTAL_STEPS, WARMUP_STEPS = 1000, 10  # the schedule of every row (the lr never 0 when timed)
TEXT_BATCHES = 8  # distinct batches of a text row (its data is tokenized at start-up)
# A family's offline file (relative to the data folder); absent: synthetic data.
DATA_FILES = {"mlp": "mnist/train-images-idx3-ubyte.gz",
              "cnn": "mnist/train-images-idx3-ubyte.gz",
              "bert": "imdb/aclImdb_v1.tar.gz", "gpt": "tiny_shakespeare/input.txt",
              "transformer": "multi30k/train.en.gz",
              "resnet": "cifar10_jpg/cifar10_jpg.tar", "vit": "cifar10_jpg/cifar10_jpg.tar"}


@dataclasses.dataclass(frozen=True)
class Size:
    """One row: `config` (configs/NAME.py[:ARG]) with `overrides` (dotted key -> value, as
    on the command line); `name` says what the size is."""

    family: str
    name: str
    config: str
    overrides: tuple[tuple[str, str], ...] = ()


BERT = "configs/imdb_bert.py:tiny"
BERT_LENGTH = (("data.tokenizer.max_len", "128"), ("data.tokenizer.head_tokens", "32"))
GPT = "configs/shakespeare_char.py"
TRANSFORMER = "configs/multi30k_transformer.py"
PAIR_ROWS = (("data.length_buckets", "None"), ("data.translation.max_source_len", "32"),
             ("data.translation.max_target_len", "33"))
SIZES: tuple[Size, ...] = (
    Size("mlp", "784-128-64-10 (config)", "configs/mnist_mlp.py"),
    Size("mlp", "784-1024-1024-10", "configs/mnist_mlp.py",
         (("model.hidden", "(1024, 1024)"), ("batch_size", "128"))),
    Size("mlp", "784-2048-2048-10", "configs/mnist_mlp.py",
         (("model.hidden", "(2048, 2048)"), ("batch_size", "256"))),
    Size("cnn", "conv 32, dense 128 (config)", "configs/mnist_cnn.py"),
    Size("cnn", "conv 32-64, dense 128 (tuned)", "configs/mnist_cnn.py:tuned"),
    Size("cnn", "conv 64-128, dense 256", "configs/mnist_cnn.py:tuned",
         (("model.conv_features", "(64, 128)"), ("model.dense", "(256,)"),
          ("batch_size", "128"))),
    Size("bert", "tiny 2x128, 128 tokens", BERT, (("model.variant", "tiny"), *BERT_LENGTH)),
    Size("bert", "mini 4x256, 128 tokens", BERT,
         (("model.variant", "mini"), *BERT_LENGTH, ("batch_size", "16"))),
    Size("gpt", "nano 4x128, context 64 (config)", GPT),
    Size("gpt", "4x256, context 128", GPT,
         (("model.hidden", "256"), ("model.mlp_dim", "1024"), ("model.max_len", "128"),
          ("data.lm.context", "128"))),
    Size("transformer", "small 3+3x256, 32+32 tokens, batch 32", TRANSFORMER,
         (*PAIR_ROWS, ("batch_size", "32"))),
    Size("transformer", "small 3+3x256, 32+32 tokens (config)", TRANSFORMER, PAIR_ROWS),
    Size("transformer", "base 6+6x512, 32+32 tokens", TRANSFORMER,
         (("model.variant", "base"), *PAIR_ROWS, ("batch_size", "32"))),
    Size("resnet", "speed-run ResNet, CIFAR-10, batch 32", "configs/cifar10_resnet.py",
         (("batch_size", "32"),)),
    Size("resnet", "speed-run ResNet, CIFAR-10, batch 256", "configs/cifar10_resnet.py",
         (("batch_size", "256"),)),
    Size("resnet", "ResNet-18 (CIFAR stem), batch 64", "configs/cifar10_resnet.py:resnet18",
         (("batch_size", "64"),)),
    Size("vit", "Ti/4 6x192 (config), CIFAR-10, batch 16", "configs/cifar10_vit.py",
         (("batch_size", "16"),)),
    Size("vit", "Ti/4 6x192 (config), CIFAR-10, batch 128", "configs/cifar10_vit.py",
         (("batch_size", "128"),)),
    Size("vit", "S/4 12x384, CIFAR-10, batch 32", "configs/cifar10_vit.py:s4",
         (("batch_size", "32"),)),
)
# `--sizes accelerator`: one GPU/TPU chip's sizes, in bfloat16 (ImageNet rows on synthetic
# images unless tfds has imagenet2012 prepared: no offline copy exists).
GPT2 = "configs/gpt_pretrain.py"
GPT2_ROW = (("model.remat", "False"), ("model.scan_layers", "False"),
            ("model.attention_impl", "cudnn"), ("mesh.fsdp", "1"))
ACCELERATOR_SIZES: tuple[Size, ...] = (
    Size("gpt", "GPT-2 small 12x768, context 1024, batch 16", f"{GPT2}:gpt2",
         (*GPT2_ROW, ("batch_size", "16"))),
    Size("gpt", "GPT-2 small 12x768, context 1024, batch 32", f"{GPT2}:gpt2",
         (*GPT2_ROW, ("batch_size", "32"))),
    Size("gpt", "GPT-2 medium 24x1024, context 1024, batch 16", f"{GPT2}:gpt2-medium",
         (*GPT2_ROW, ("batch_size", "16"))),
    Size("gpt", "Llama-1B 16x2048, context 2048, batch 8", f"{GPT2}:llama-1b",
         (*GPT2_ROW, ("batch_size", "8"))),
    Size("gpt", "Llama-1B 16x2048, context 2048, batch 16", f"{GPT2}:llama-1b",
         (*GPT2_ROW, ("batch_size", "16"))),
    Size("resnet", "speed-run ResNet, CIFAR-10, batch 1024", "configs/cifar10_resnet.py",
         (("model.dtype", "bfloat16"),)),
    Size("resnet", "ResNet-50, 224px, batch 128", "configs/imagenet_resnet50.py",
         (("batch_size", "128"),)),
    Size("vit", "ViT-B/16, 224px, batch 128", "configs/imagenet_vit.py:b16",
         (("batch_size", "128"),)),
)
# The peer scripts and their few-steps options (`--smoke` replaces them by `--smoke`).
PEER_ARGS = {
    "bench_mnist.py": ["--steps", "200", "--steps-per-call", "50", "--repeats", "1"],
    "bench_bert.py": ["--rounds", "1"],
    "bench_gpt.py": ["--steps", "200", "--warmup-steps", "20", "--eval-examples", "256"],
}


# ------------------------------------------------------------------------- config
def size_config(size: Size, peak: float | None = None, synthetic_text: str | None = None):
    """`size`'s config, resolved: its overrides, the benchmark's schedule (`TOTAL_STEPS`
    steps, `WARMUP_STEPS` warmup unless the schedule is constant), one step per call, a
    text data set cut to `TEXT_BATCHES` batches, `peak` as `peak_flops_per_device` and,
    for GPT, `synthetic_text` (a folder of pseudo-words) in place of Tiny Shakespeare."""
    from bigjax import config_cli

    config = config_cli.load_config_file(os.path.join(REPO, size.config))
    config = config_cli.apply_overrides(config, size.overrides)
    overrides = [("total_epochs", "None"), ("total_steps", str(TOTAL_STEPS)),
                 ("steps_per_call", "1"), ("optim.warmup_epochs", "None"),
                 ("optim.warmup_steps", "None" if config.optim.schedule == "constant"
                  else str(WARMUP_STEPS))]
    if config.data.get("tokenizer") or config.data.get("translation"):
        overrides.append(("data.train_examples", str(TEXT_BATCHES * config.batch_size)))
    if peak is not None:
        overrides.append(("peak_flops_per_device", repr(peak)))
    if synthetic_text:
        overrides += [("data.name", "text_folder"), ("data.path", synthetic_text)]
    return config_cli.apply_overrides(config, overrides)


def use_synthetic_data(family: str, config, folder: str) -> str | None:
    """Replaces `family`'s data set by synthetic data of the same shapes, in this process
    only (MNIST: random pixels; IMDb: random vocabulary words filling every row), or
    writes pseudo-words to `folder` for GPT and returns it (for `size_config`); sentence
    pairs of pseudo-words for the encoder-decoder."""
    import numpy as np

    from bigjax import datasets
    from bigjax.datasets.array_dataset import ArrayDataset

    rng = np.random.default_rng(0)
    if family in ("mlp", "cnn"):
        def images(split: str, data_dir: str | None) -> ArrayDataset:
            n = 4096
            return ArrayDataset({"image": rng.integers(0, 256, (n, 28, 28, 1), np.uint8),
                                 "label": rng.integers(0, 10, n).astype(np.int32)}, 10, "mnist")

        datasets.LOADERS["mnist"] = images
        return None
    if family == "bert":
        from bigjax.datasets.tokenized import vocab_file

        with open(vocab_file(config.data.tokenizer.vocab), encoding="utf-8") as f:
            words = [w.strip() for w in f if w.strip().isalpha()]

        def texts(split: str, data_dir: str | None) -> ArrayDataset:
            n = 1024
            return ArrayDataset({"text": np.asarray([" ".join(rng.choice(words, 200))
                                                     for _ in range(n)], dtype=object),
                                 "label": rng.integers(0, 2, n).astype(np.int32)}, 2,
                                config.data.name)

        datasets.LOADERS[config.data.name] = texts
        return None
    if family in ("resnet", "vit"):
        from bigjax.datasets import image_sets

        def image_set(name, split, data_dir, prepared_dir, image_size=None) -> ArrayDataset:
            n, side = 1024, image_size or 32
            classes = image_sets.SETS[name].num_classes
            return ArrayDataset({"image": rng.integers(0, 256, (n, side, side, 3), np.uint8),
                                 "label": rng.integers(0, classes, n).astype(np.int32)},
                                classes, name)

        image_sets.load = image_set
        return None
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    if family == "transformer":
        from bigjax.datasets import translation

        def sentence() -> str:
            return " ".join("".join(rng.choice(letters, rng.integers(1, 8)))
                            for _ in range(rng.integers(8, 20)))

        def pairs(name, split, source, target, data_dir=None) -> ArrayDataset:
            n = 2048
            return translation._pairs([sentence() for _ in range(n)],
                                      [sentence() for _ in range(n)], name)

        translation.load_pairs = pairs
        return None
    for split, count in (("train", 20000), ("validation", 2000)):
        words = " ".join("".join(rng.choice(letters, rng.integers(1, 8))) for _ in range(count))
        with open(os.path.join(folder, f"{split}.txt"), "w", encoding="utf-8") as f:
            f.write(words.upper()[:40] + ":\n" + words + "\n")
    return folder


# ------------------------------------------------------------------------ children
def child_peak(spec: dict) -> dict:
    """`peak_flops.peak_flops_per_device` for each dtype of `spec["dtypes"]`."""
    import jax

    from bigjax import peak_flops

    peaks = {}
    for dtype in spec["dtypes"]:
        # measured afresh: the rows are timed now, on this machine as it is now
        value, source = peak_flops.peak_flops_per_device(None, dtype, keep=False)
        peaks[dtype] = {"flops": value, "source": source}
    return {"peaks": peaks, "device_kind": jax.devices()[0].device_kind,
            "backend": jax.default_backend(), "devices": jax.device_count()}


def child_row(spec: dict) -> dict:
    """Builds `spec`'s train step as training does and times it (see the module doc)."""
    import jax
    import numpy as np

    from bigjax import model_flops, sharding, train
    from bigjax.throughput import Throughput
    from bigjax.train_state import init_state

    size = Size(**{**spec["size"], "overrides": tuple(map(tuple, spec["size"]["overrides"]))})
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:  # synthetic GPT text, if any
        text = None
        if spec["synthetic"]:
            text = use_synthetic_data(size.family, size_config(size), tmp)
        config = size_config(size, spec["peak"], text)
        start = time.perf_counter()
        exp = train.build_experiment(config)
        build_s = time.perf_counter() - start
        throughput = Throughput.for_experiment(exp)
        steps, warmup = spec["steps"], WARMUP
        host = exp.train_batches.chunk(0, warmup + steps)
        step_fn = train.make_train_step(exp, 1)
        with sharding.mesh_context(exp.mesh, exp.rules):
            state = init_state(exp.init_fn, config.seed, exp.state_shardings, exp.rules)
            batches = [sharding.put_batch({k: v[i] for k, v in host.items()}, exp.mesh)
                       for i in range(warmup + steps)]
            jax.block_until_ready((state, batches))
            start = time.perf_counter()
            lowered = step_fn.lower(state, batches[0])
            compiled = lowered.compile()
            compile_s = time.perf_counter() - start
            for batch in batches[:warmup]:
                state, metrics = compiled(state, batch)
            jax.block_until_ready((state, metrics))
            load = os.getloadavg()[0]
            start, cpu = time.perf_counter(), time.process_time()
            for batch in batches[warmup:]:
                state, metrics = compiled(state, batch)
            jax.block_until_ready((state, metrics))
            train_s, cpu = time.perf_counter() - start, time.process_time() - cpu
    step_s = train_s / steps
    scalars = throughput.scalars(1.0 / step_s)
    plain = not config.model.get("scan_layers") and int(config.grad_accum_steps or 1) == 1
    xla = model_flops.cost_analysis_flops(lowered) if plain else None
    params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(exp.abstract_state.params))
    return {
        "family": size.family, "size": size.name, "config": size.config,
        "overrides": dict(size.overrides), "params": params,
        "batch": throughput.examples_per_step, "tokens_per_step": throughput.tokens_per_step,
        "steps": steps, "warmup": warmup, "train_s": train_s, "step_s": step_s,
        "step_ms": 1e3 * step_s, "compile_s": compile_s, "build_s": build_s,
        "examples_per_s": scalars["perf/examples_per_sec"],
        "tokens_per_s": scalars.get("perf/tokens_per_sec"),
        "tflops_per_s_per_device": scalars.get("perf/tflops_per_sec_per_device"),
        "mfu": scalars.get("perf/mfu"), "flops_per_step": throughput.flops_per_step,
        "flops_basis": throughput.flops_basis, "xla_flops_per_step": xla,
        "peak_per_device": throughput.peak_per_device, "peak_source": throughput.peak_source,
        "devices": throughput.num_devices, "dtype": str(config.model.dtype),
        "loss": float(np.mean(jax.device_get(metrics["loss"]))),
        "cpu_per_wall": cpu / train_s, "load1_before_timing": load,
        "data": "synthetic" if spec["synthetic"] else "real",
        "backend": jax.default_backend()}


def child_main(spec: dict) -> int:
    """Runs one measurement (`spec["kind"]`) and prints its JSON line."""
    from bigjax import host_malloc

    host_malloc.keep_freed_memory()  # as bigjax's command line does
    result = {"peak": child_peak, "row": child_row}[spec["kind"]](spec)
    print(json.dumps(result), flush=True)
    return 0


# -------------------------------------------------------------------------- parent
def run_child(spec: dict, env: dict) -> dict:
    """Runs `spec` in a fresh process of this script; its JSON result plus `process_s`.
    A failed measurement ends the script with its stderr."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child",
                           json.dumps(spec)], cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        what = spec["size"]["name"] if spec["kind"] == "row" else "the peak"
        raise SystemExit(f"{spec['kind']} ({what}) failed (exit {proc.returncode}):\n"
                         f"{proc.stderr[-4000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]),
            "process_s": time.perf_counter() - start}


def data_root() -> str | None:
    """The offline data folder ($BIGJAX_DATA_DIR, else ../shared/data), or None."""
    for root in (os.environ.get("BIGJAX_DATA_DIR"), SHARED_DATA):
        if root and os.path.isdir(root):
            return root
    return None


def plan(families: list[str], smoke: bool, accelerator: bool = False,
         names: tuple[str, ...] = ()) -> list[Size]:
    """The rows to measure: every size of `families` among `SIZES`, or `ACCELERATOR_SIZES`
    with `accelerator` (smoke: the first, smallest, of each, on its config's `runlocal`
    variant); with `names`, only the sizes whose name contains one of them
    (case-insensitive)."""
    rows = []
    for family in families:
        sizes = [s for s in (ACCELERATOR_SIZES if accelerator else SIZES) if s.family == family]
        if names:
            sizes = [s for s in sizes if any(n.lower() in s.name.lower() for n in names)]
        rows.extend([runlocal(s) for s in sizes[:1]] if smoke else sizes)
    return rows


# `--smoke` rows: the overrides a config's `runlocal` variant keeps (the timed shape must
# stay fixed: no length buckets).
SMOKE_OVERRIDES = {"transformer": (("data.length_buckets", "None"),)}


def runlocal(size: Size) -> Size:
    """`size`'s config on its `runlocal` variant (a few-layer model on a few examples, as
    each config defines it) instead of its size: what `--smoke` times, in seconds."""
    config, _, arg = size.config.partition(":")
    return Size(size.family, f"{size.family} runlocal",
                f"{config}:{arg + ',' if arg else ''}runlocal",
                SMOKE_OVERRIDES.get(size.family, ()))


def number(value: float | None, spec: str) -> str:
    """`value` formatted, "-" when there is none (tokens/s of an image model)."""
    return "-" if value is None else f"{value:{spec}}"


def table(rows: list[dict]) -> str:
    """The markdown table of the measured rows."""
    lines = ["| family | size | params | batch | step ms | examples/s | tokens/s | GFLOP/step "
             "| TFLOP/s/device | MFU | compile s | CPU/wall | data |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(
            f"| {r['family']} | {r['size']} | {r['params'] / 1e6:.2f}M | {r['batch']} | "
            f"{r['step_ms']:.2f} | {r['examples_per_s']:.0f} | "
            f"{number(r['tokens_per_s'], '.0f')} | {r['flops_per_step'] / 1e9:.3f} | "
            f"{r['tflops_per_s_per_device']:.4f} | {100 * r['mfu']:.1f}% | "
            f"{r['compile_s']:.1f} | {r['cpu_per_wall']:.2f} | {r['data']} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- peers
def run_peer(script: str, smoke: bool, env: dict) -> dict:
    """Runs scripts/`script` in its own process; its last JSON line (None when it failed),
    the command, the lines where it says what it skipped, and its wall time."""
    command = [sys.executable, os.path.join("scripts", script),
               *(["--smoke"] if smoke else PEER_ARGS[script])]
    shown = " ".join(["python", *command[1:]])
    print(f"peers: {shown} ...", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    lines = proc.stdout.strip().splitlines()
    skipped = [line for line in lines[:-1] if "skipped" in line and not line.startswith("|")]
    for line in skipped:
        print(f"  {line}", flush=True)
    result = None
    if proc.returncode == 0 and lines:
        result = json.loads(lines[-1])
    else:
        print(f"  failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}", flush=True)
    return {"command": shown, "result": result, "skipped": skipped, "wall_s": wall,
            "returncode": proc.returncode}


def peer_rows(peers: dict) -> list[dict]:
    """One row per workload of the peer scripts' results: bigjax's rate and each peer's, in
    that script's unit, and the ratios bigjax / peer the script computed (None: skipped)."""
    rows = []
    mnist = peers.get("bench_mnist.py", {}).get("result")
    for model in ("mlp", "cnn") if mnist else ():
        r = mnist[model]
        rows.append({"benchmark": "bench_mnist.py",
                     "workload": f"MNIST {model}: faster of 1 and k steps per call",
                     "unit": "steps/s",
                     "bigjax": max(r["bigjax"], r["bigjax_multi"]), "pytorch": r["pytorch"],
                     "keras": r["keras_jax"], "vs_pytorch": r["ratio_vs_pytorch"],
                     "vs_keras": r["ratio_vs_keras"]})
    bert = peers.get("bench_bert.py", {}).get("result")
    for name, w in (bert["workloads"].items() if bert else ()):
        for side, ratio in w["ratios"].items():
            rows.append({"benchmark": "bench_bert.py",
                         "workload": f"BERT {name}: {w['sides'][side]['what']}",
                         "unit": "examples/s", "bigjax": w["sides"][side]["examples_per_s"],
                         "pytorch": w["sides"].get("torch", {}).get("examples_per_s"),
                         "keras": None, "vs_pytorch": ratio, "vs_keras": None})
    gpt = peers.get("bench_gpt.py", {}).get("result")
    if gpt and gpt.get("best_bigjax"):
        torch_row = gpt["rows"].get("torch")
        rows.append({"benchmark": "bench_gpt.py",
                     "workload": f"GPT nano, Tiny Shakespeare: {gpt['best_bigjax']}",
                     "unit": "tokens/s",
                     "bigjax": gpt["rows"][gpt["best_bigjax"]]["tokens_per_s"],
                     "pytorch": torch_row["tokens_per_s"] if torch_row else None,
                     "keras": None, "vs_pytorch": gpt["ratio"], "vs_keras": None})
    return rows


def peer_table(rows: list[dict], peers: dict) -> str:
    """The markdown table of `peer_rows` (a peer with no number: "skipped", or "-" where
    the script has no such peer)."""
    def cell(row: dict, key: str, spec: str, suffix: str = "") -> str:
        value = row[key]
        if value is not None:
            return f"{value:{spec}}{suffix}"
        has_peer = key in ("pytorch", "vs_pytorch") or row["benchmark"] == "bench_mnist.py"
        return "skipped" if has_peer else "-"

    lines = ["| script | workload | unit | bigjax | PyTorch | Keras (JAX) | bigjax / PyTorch "
             "| bigjax / Keras |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['benchmark']} | {r['workload']} | {r['unit']} | "
                     f"{r['bigjax']:.1f} | {cell(r, 'pytorch', '.1f')} | "
                     f"{cell(r, 'keras', '.1f')} | {cell(r, 'vs_pytorch', '.2f', 'x')} | "
                     f"{cell(r, 'vs_keras', '.2f', 'x')} |")
    for script, peer in peers.items():
        if peer["result"] is None:
            lines.append(f"| {script} | failed (exit {peer['returncode']}) | | | | | | |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main
def parent_main(args: argparse.Namespace) -> int:
    """Measures the peak, then every row in a fresh process; prints the report (and the
    peers' with `--peers`)."""
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown or not families:
        raise SystemExit(f"--families: unknown {unknown}; choose from {list(FAMILIES)}.")
    names = tuple(n.strip() for n in args.rows.split(",") if n.strip())
    sizes = plan(families, args.smoke, args.sizes == "accelerator", names)
    if not sizes:
        raise SystemExit(f"--sizes {args.sizes} has no rows for --families {args.families}"
                         + (f" and --rows {args.rows}" if names else "") + "; see --help.")
    root = data_root()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "JAX_ENABLE_COMPILATION_CACHE": "false"}
    if args.sizes == "cpu":
        env.setdefault("JAX_PLATFORMS", "cpu")
    if root:
        env["BIGJAX_DATA_DIR"] = root
        os.environ["BIGJAX_DATA_DIR"] = root  # this process resolves the configs too
    dtype_of = {s: str(size_config(s).model.dtype) for s in sizes}  # checks every config
    load_start, start = os.getloadavg(), time.perf_counter()
    peak_run = run_child({"kind": "peak", "dtypes": sorted(set(dtype_of.values()))}, env)
    peaks = peak_run["peaks"]
    for dtype, p in peaks.items():
        print(f"peak per device ({dtype}): {p['flops'] / 1e12:.4f} TFLOP/s ({p['source']}, "
              f"{peak_run['device_kind']})", flush=True)
    rows = []
    for size in sizes:
        synthetic = not (root and os.path.isfile(os.path.join(root, DATA_FILES[size.family]))) \
            or "imagenet" in size.config
        dtype = dtype_of[size]
        spec = {"kind": "row", "size": dataclasses.asdict(size), "steps": args.steps,
                "peak": peaks[dtype]["flops"], "synthetic": synthetic}
        row = run_child(spec, env)
        row["peak_source"] = f"{peaks[dtype]['source']}, once for all rows"
        rows.append(row)
        print(f"{row['family']:<5} {row['size']:<32} {row['step_ms']:9.2f} ms/step "
              f"{row['examples_per_s']:9.0f} examples/s  MFU {100 * row['mfu']:5.1f}%  "
              f"(compile {row['compile_s']:.1f} s, process {row['process_s']:.1f} s, CPU/wall "
              f"{row['cpu_per_wall']:.2f}, load {row['load1_before_timing']:.2f})", flush=True)
    peers, peer_summary = {}, None
    if args.peers:
        for script in PEER_ARGS:
            peers[script] = run_peer(script, args.smoke, env)
        peer_summary = peer_rows(peers)
    machine = {"cpu": host_cpu.cpu_model(), "cpu_count": os.cpu_count(),
               "python": platform.python_version(), "jax": jax_version(),
               "backend": peak_run["backend"], "devices": peak_run["devices"],
               "device_kind": peak_run["device_kind"]}
    summary = {"rows": rows, "peaks": peaks, "steps": args.steps, "warmup": WARMUP,
               "smoke": args.smoke, "families": families,
               "sizes": args.sizes,
               "step_time": "mean: wall time of the timed steps / steps",
               "machine": machine, "loadavg_start": list(load_start),
               "loadavg_end": list(os.getloadavg()), "wall_s": time.perf_counter() - start,
               "peers": {k: {kk: v[kk] for kk in ("command", "skipped", "wall_s", "returncode")}
                         for k, v in peers.items()} if args.peers else None,
               "peer_rows": peer_summary}
    print()
    print(table(rows))
    print()
    print(f"Step ms: mean of {args.steps} timed steps after {WARMUP} warm-up steps. Peak per "
          "device: " + "; ".join(f"{d} {p['flops'] / 1e12:.4f} TFLOP/s ({p['source']})"
                                 for d, p in peaks.items()) + ".")
    print(f"Machine: {machine['cpu']}, {machine['cpu_count']} CPUs, jax {machine['jax']} "
          f"({machine['backend']}, {machine['devices']} device); load average (1 min) "
          f"{load_start[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end; "
          f"{summary['wall_s']:.0f} s in all.")
    if args.peers:
        print()
        print(peer_table(peer_summary, peers))
    print(json.dumps(summary), flush=True)
    failed = [k for k, v in peers.items() if v["returncode"] != 0]
    return 1 if failed else 0


def jax_version() -> str:
    """jax's version, read without importing it (the parent never starts a backend)."""
    from importlib.metadata import version

    return version("jax")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; `--smoke` sets the steps to `SMOKE_STEPS` (and one size a family)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50, help="timed steps per row")
    parser.add_argument("--families", default=",".join(FAMILIES),
                        help=f"comma-separated, of {', '.join(FAMILIES)}")
    parser.add_argument("--smoke", action="store_true",
                        help=f"CI: the smallest size of each family, {SMOKE_STEPS} steps; the "
                        "peer scripts (with --peers) in their own --smoke mode")
    parser.add_argument("--peers", action="store_true",
                        help="also run scripts/bench_mnist.py, bench_bert.py and bench_gpt.py "
                        "and print bigjax's ratios against PyTorch and Keras")
    parser.add_argument("--sizes", choices=("cpu", "accelerator"), default="cpu",
                        help="cpu: the rows for a CPU (SIZES); accelerator: one GPU/TPU "
                        "chip's (ACCELERATOR_SIZES: GPT-2 small/medium, Llama-1B, ResNet-50, "
                        "ViT-B/16, bfloat16), on the default backend")
    parser.add_argument("--rows", default="",
                        help="comma-separated parts of size names: only the rows whose name "
                        "contains one (e.g. 'batch 32,Llama')")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps = SMOKE_STEPS
    if args.steps < 1:
        parser.error(f"--steps must be positive, got {args.steps}.")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(json.loads(args.child))
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
