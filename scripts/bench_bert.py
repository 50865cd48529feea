"""bigjax's BERT train step against the same model in Hugging Face transformers (PyTorch).

    python scripts/bench_bert.py [--workload finetune|mlm|all] [--steps N] [--rounds R]
        [--batch_size B] [--max_len L] [--data auto|imdb|random]
    python scripts/bench_bert.py --smoke     # CI: tiny BERT, 32 tokens, batch 4, 2 steps, 1 round
                                             # (no bigjax_all_positions row)

Workloads (sizes default to the config's; `--batch_size` / `--max_len` override them):
  finetune  configs/imdb_bert.py: `bert_classifier` MiniLM-L6 (6 layers, hidden 384, 12
            heads, MLP 1536) with a 2-class head, 256 tokens, batch 32, AdamW (lr 5e-5,
            weight decay 0.01, gradient clipping 1.0), dropout 0.1 on. Both sides start from
            the all-MiniLM-L6-v2 weights (`config.init_from="minilm"`; Hugging Face:
            `BertForSequenceClassification.from_pretrained`) with a fresh classifier.
  mlm       configs/mlm_bert.py: `bert_mlm` tiny (2 layers, hidden 128, 2 heads, MLP 512),
            128 tokens, batch 64, AdamW, dropout 0.1, random init. Three rows:
              bigjax                 the config's step: 15% of the real tokens masked on
                                     device inside the step, vocabulary logits at the
                                     `pp.max_predictions=32` picked positions only;
              bigjax_all_positions   the same with `pp.max_predictions=None`: logits at
                                     every position (what Hugging Face computes);
              torch                  `BertForMaskedLM`: logits at every position, loss on
                                     the masked ones (labels -100 elsewhere); the same
                                     80/10/10 masking in torch ops, inside the timed step.

bigjax side (a fresh process): the config is loaded with `config_cli.load_config_file`
and the sizes applied with `config_cli.apply_overrides`; `train.build_experiment`,
`train_state.init_state` (+ `train.load_init_from` when the config sets `init_from`)
and `train.make_train_step` build the step as training does, and it runs under
`sharding.mesh_context` on batches `exp.train_batches[0..3]` (placed on device once).
Only `data.train_examples` (4 batches' worth), the run length (1000 steps, 100 warmup:
the learning rate is never 0) and, for a shorter `--max_len`, `head_tokens` and
`max_predictions` (a quarter of the tokens) differ from the config.
PyTorch side (a fresh process): `transformers.BertFor...` built from a `BertConfig` with
the sizes bigjax's model resolved (same vocabulary, positions, exact GELU, LayerNorm
eps, dropout rates; default attention implementation, i.e. SDPA), in train mode,
`torch.set_num_threads` to the cores this process may use, AdamW (same lr and weight decay, on all
params), a linear warmup/decay LambdaLR, `clip_grad_norm_`, `zero_grad(set_to_none=True)`.
Both sides get the same token ids: the first bigjax process of a workload writes the
batches it trains on (IMDb train reviews tokenized by bigjax's WordPiece tokenizer;
with `--data=random`, or `auto` without the offline data, random vocabulary words)
and the torch process reads them. Attention masks come from the padding on both sides.

Timing: each measurement is a fresh subprocess; rounds are interleaved (bigjax, torch,
bigjax, torch, ...) and each side reports its best round. A round's time covers
`--steps` steps after the compile step and one warm-up step (bigjax: until
`jax.block_until_ready` of the state and metrics). examples/s = steps x batch / time.
Each round also records CPU/wall: the process's CPU seconds (all threads) per second of
the timed steps. On a shared machine it shows how many cores a round really got (about
the cores the process may use when it had them to itself): compare rounds that got alike.

Peak: every round also measures, in fresh processes, a 2048x2048 float32 matmul in
numpy, jax (jit) and torch (best of several); the peak is the best GFLOP/s seen.
Useful FLOPs of a step (counted analytically; a multiply-add is 2 FLOPs), per example:
forward = layers x (8*L*H^2 [Q, K, V, output projections] + 4*L*H*F [MLP]
+ 4*L^2*H [Q K^T and attention x V]) + head, with the head = 2*H^2 + 2*H*C (pooler,
classifier) or 2*P*(H^2 + H*V) (MLM dense + tied decoder at P positions: P = L for
logits at every position, else max_predictions; V = the real vocabulary, 30,522: the
padding columns of bigjax's `vocab_multiple` are not counted); a train step counts
3 x forward (backward = 2 x forward). Not counted: embedding lookups, softmax,
LayerNorm, GELU, dropout, masking, the optimizer (elementwise work). The fraction of
the peak is (useful FLOPs / step time) / peak. Per CPU-second: the same with the step's
and the matmul's process CPU time instead of wall time (robust to a machine shared with
other work, which hands a process fewer cores than it has threads; threads that spin
while waiting count as CPU time on both sides).

Prints a markdown table, the load average, and last one JSON line with every number.
Without torch or transformers installed it says so and measures bigjax alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # measure this checkout's bigjax, not another installed one
SHARED_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))
NUM_BATCHES = 4  # distinct batches each side cycles through
WARMUP_STEPS, TOTAL_STEPS = 100, 1000  # the learning-rate schedule of both sides
PEAK_SIZE = 2048


@dataclasses.dataclass(frozen=True)
class Workload:
    """A benchmarked train step: its config and default sizes."""

    name: str
    config: str  # configs/NAME.py[:ARG], relative to the repo
    smoke_config: str
    batch_size: int
    max_len: int
    steps: int
    sides: tuple[str, ...]  # bigjax sides; "torch" is added when it is importable


WORKLOADS = {
    "finetune": Workload("finetune", "configs/imdb_bert.py", "configs/imdb_bert.py:tiny",
                         batch_size=32, max_len=256, steps=3, sides=("bigjax",)),
    "mlm": Workload("mlm", "configs/mlm_bert.py", "configs/mlm_bert.py",
                    batch_size=64, max_len=128, steps=10,
                    sides=("bigjax", "bigjax_all_positions")),
}
SMOKE = dict(batch_size=4, max_len=32, steps=2, rounds=1)
WHAT = {
    ("finetune", "bigjax"): "bigjax step (configs/imdb_bert.py)",
    ("finetune", "torch"): "HF BertForSequenceClassification",
    ("mlm", "bigjax"): "bigjax step, logits at max_predictions positions",
    ("mlm", "bigjax_all_positions"): "bigjax step, logits at every position",
    ("mlm", "torch"): "HF BertForMaskedLM, logits at every position",
}


# ------------------------------------------------------------------------------ FLOPs
def forward_flops(sizes: dict, length: int, head: str, positions: int | None,
                  num_classes: int) -> float:
    """Matmul FLOPs of one example's forward pass (see the module docstring)."""
    h, f = sizes["hidden"], sizes["mlp_dim"]
    layer = 8 * length * h * h + 4 * length * h * f + 4 * length * length * h
    if head == "classifier":
        head_flops = 2 * h * h + 2 * h * num_classes
    else:
        p = positions or length
        head_flops = 2 * p * (h * h + h * sizes["vocab_size"])
    return float(sizes["num_layers"] * layer + head_flops)


def step_flops(meta: dict, side: str) -> float:
    """Useful FLOPs of one train step of `side` (3 x forward, whole batch)."""
    head = "classifier" if meta["workload"] == "finetune" else "mlm"
    positions = meta["max_predictions"] if side == "bigjax" else None
    return 3.0 * meta["batch_size"] * forward_flops(
        meta["sizes"], meta["max_len"], head, positions, meta.get("num_classes") or 0)


# ------------------------------------------------------------------------ children
def child_peak(spec: dict) -> dict:
    """Best GFLOP/s of a PEAK_SIZE^2 float32 matmul in the libraries `spec["libs"]` names,
    and best GFLOP per CPU-second (process CPU time, all threads)."""
    import numpy as np

    n, reps = spec["size"], spec["reps"]
    flops = 2.0 * n ** 3
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    out, per_cpu = {}, {}

    def best(lib: str, fn) -> None:
        fn()  # warm-up (and compile)
        times, cpu_times = [], []
        for _ in range(reps):
            start, cpu = time.perf_counter(), time.process_time()
            fn()
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu)
        out[lib] = flops / min(times) / 1e9
        per_cpu[lib] = flops / max(min(cpu_times), 1e-9) / 1e9

    if "numpy" in spec["libs"]:
        best("numpy", lambda: a @ b)
    if "jax" in spec["libs"]:
        import jax
        import jax.numpy as jnp

        dot = jax.jit(jnp.dot)
        ja, jb = jnp.asarray(a), jnp.asarray(b)
        best("jax", lambda: dot(ja, jb).block_until_ready())
    if "torch" in spec["libs"]:
        import torch

        from bigjax import host_cpu

        torch.set_num_threads(host_cpu.usable_cores())
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        best("torch", lambda: torch.mm(ta, tb))
    return {"gflops": out, "gflops_per_cpu_s": per_cpu}


def _bigjax_config(spec: dict):
    """The workload's config with the benchmark's sizes applied (resolved)."""
    from bigjax import config_cli

    config = config_cli.load_config_file(os.path.join(REPO, spec["config"]))
    length, batch = spec["max_len"], spec["batch_size"]
    overrides = [("batch_size", str(batch)), ("data.train_examples", str(NUM_BATCHES * batch)),
                 ("data.tokenizer.max_len", str(length)),
                 ("total_epochs", "None"), ("total_steps", str(TOTAL_STEPS)),
                 ("optim.warmup_epochs", "None"), ("optim.warmup_steps", str(WARMUP_STEPS))]
    head = config.data.tokenizer.get("head_tokens")
    if head is not None and length != config.data.tokenizer.max_len:
        scaled = max(1, head * length // config.data.tokenizer.max_len)
        overrides.append(("data.tokenizer.head_tokens", str(scaled)))
    if config.pp.kind == "text_mlm":
        cap = config.pp.get("max_predictions")
        if spec["side"] == "bigjax_all_positions":
            overrides.append(("pp.max_predictions", "None"))
        elif cap is not None and cap > length // 4:
            overrides.append(("pp.max_predictions", str(max(1, length // 4))))
    return config_cli.apply_overrides(config, overrides)


def _use_random_texts(config, count: int) -> None:
    """Replaces (in this process only) the loader of `config.data.name` with `count`
    texts of random vocabulary words, long enough to fill every row."""
    import numpy as np

    from bigjax import datasets
    from bigjax.datasets.array_dataset import ArrayDataset
    from bigjax.datasets.tokenized import vocab_file

    with open(vocab_file(config.data.tokenizer.vocab), encoding="utf-8") as f:
        words = [w.strip() for w in f if w.strip().isalpha()]
    length = config.data.tokenizer.max_len

    def load(split: str, data_dir: str | None) -> ArrayDataset:
        rng = np.random.default_rng(0)
        texts = [" ".join(rng.choice(words, length)) for _ in range(count)]
        labels = rng.integers(0, 2, count).astype(np.int32)
        return ArrayDataset({"text": np.asarray(texts, dtype=object), "label": labels}, 2,
                            config.data.name)

    datasets.LOADERS[config.data.name] = load


def _write_batches(path: str, exp, host_batches: list[dict], config) -> None:
    """Writes the token batches (npz) and what the torch side needs (json), atomically."""
    import numpy as np

    sizes = exp.model.config()
    tokenizer = exp.tokenizer
    meta = {
        "workload": "finetune" if config.task == "classification" else "mlm",
        "sizes": sizes, "batch_size": int(config.batch_size),
        "max_len": int(config.data.tokenizer.max_len),
        "num_classes": config.model.get("num_classes"),
        "init_from": _init_folder(config.get("init_from") or ""),
        "learning_rate": float(config.optim.learning_rate),
        "weight_decay": float(config.optim.get("weight_decay") or 0.0),
        "grad_clip_norm": config.optim.get("grad_clip_norm"),
        "mask_prob": float(config.pp.get("mask_prob", 0.15)),
        "max_predictions": config.pp.get("max_predictions"),
        "pad_id": int(tokenizer.pad_id), "mask_id": int(tokenizer.mask_id),
        "special_ids": sorted(int(i) for i in tokenizer.special_ids),
        "tokenizer_vocab_size": int(tokenizer.vocab_size),
    }
    arrays = {k: np.stack([b[k] for b in host_batches]) for k in ("input_ids", "label")
              if k in host_batches[0]}
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **arrays)
    with open(f"{path}.json.tmp", "w") as f:
        json.dump(meta, f)
    os.replace(f"{path}.json.tmp", f"{path}.json")
    os.replace(tmp, path)


def _init_folder(init_from: str) -> str:
    """The Hugging Face folder the torch side loads for `config.init_from` ("" if none)."""
    if init_from == "minilm":
        from bigjax.models.hf_bert_import import minilm_folder

        return minilm_folder()
    return init_from if os.path.isfile(os.path.join(init_from, "config.json")) else ""


def child_bigjax(spec: dict) -> dict:
    """Builds the config's train step as training does and times `spec["steps"]` steps."""
    import jax
    import numpy as np

    from bigjax import host_malloc, sharding, train

    host_malloc.keep_freed_memory()  # as bigjax's command line does

    config = _bigjax_config(spec)
    if spec["data"] == "random":
        _use_random_texts(config, NUM_BATCHES * spec["batch_size"])
    exp = train.build_experiment(config)
    state = train.fresh_state(exp)
    host_batches = [exp.train_batches[i] for i in range(NUM_BATCHES)]
    if spec["side"] == "bigjax" and not os.path.exists(spec["batches"]):
        _write_batches(spec["batches"], exp, host_batches, config)
    step_fn = train.make_train_step(exp)
    with sharding.mesh_context(exp.mesh, exp.rules):
        batches = [sharding.put_batch(b, exp.mesh) for b in host_batches]
        start = time.perf_counter()
        state, metrics = step_fn(state, batches[0])
        jax.block_until_ready((state, metrics))
        compile_s = time.perf_counter() - start
        state, metrics = step_fn(state, batches[1 % NUM_BATCHES])  # warm-up
        jax.block_until_ready((state, metrics))
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(spec["steps"]):
            state, metrics = step_fn(state, batches[i % NUM_BATCHES])
        jax.block_until_ready((state, metrics))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"seconds": elapsed, "cpu_per_wall": cpu / elapsed, "compile_s": compile_s,
            "loss": float(np.asarray(jax.device_get(metrics["loss"])).mean()),
            "ids_checksum": int(sum(int(b["input_ids"].sum()) for b in host_batches)),
            "devices": len(jax.devices()), "backend": jax.default_backend()}


def _hf_model(meta: dict):
    """The Hugging Face BERT with bigjax's sizes, from `meta["init_from"]` when set."""
    import transformers

    transformers.logging.set_verbosity_error()
    s = meta["sizes"]
    config = transformers.BertConfig(
        vocab_size=s["vocab_size"], hidden_size=s["hidden"], num_hidden_layers=s["num_layers"],
        num_attention_heads=s["heads"], intermediate_size=s["mlp_dim"], hidden_act="gelu",
        hidden_dropout_prob=s["dropout_rate"],
        attention_probs_dropout_prob=s["attention_dropout_rate"],
        max_position_embeddings=s["max_len"], type_vocab_size=s["type_vocab_size"],
        layer_norm_eps=s["layer_norm_eps"], pad_token_id=meta["pad_id"],
        num_labels=meta["num_classes"] or 2)
    cls = (transformers.BertForSequenceClassification if meta["workload"] == "finetune"
           else transformers.BertForMaskedLM)
    if meta["init_from"]:
        return cls.from_pretrained(meta["init_from"], config=config)
    return cls(config)


def _mask_tokens(ids, meta: dict, gen):
    """BERT's dynamic masking in torch ops (as bigjax's `mlm_masking.mask_tokens`, no cap):
    (corrupted ids, labels with -100 where nothing is predicted)."""
    import torch

    excluded = torch.tensor(sorted({*meta["special_ids"], meta["pad_id"]}))
    picked = (torch.rand(ids.shape, generator=gen) < meta["mask_prob"]) & \
        ~torch.isin(ids, excluded)
    how = torch.rand(ids.shape, generator=gen)
    random_ids = torch.randint(0, meta["tokenizer_vocab_size"], ids.shape, generator=gen)
    masked = torch.where(picked & (how < 0.8), meta["mask_id"], ids)
    masked = torch.where(picked & (how >= 0.8) & (how < 0.9), random_ids, masked)
    return masked, torch.where(picked, ids, -100)


def child_torch(spec: dict) -> dict:
    """The same model and batches in Hugging Face transformers; times `spec["steps"]` steps."""
    import numpy as np
    import torch

    from bigjax import host_cpu

    torch.set_num_threads(host_cpu.usable_cores())
    torch.manual_seed(0)
    with open(spec["batches"] + ".json") as f:
        meta = json.load(f)
    data = np.load(spec["batches"])
    ids = [torch.from_numpy(b.astype(np.int64)) for b in data["input_ids"]]
    masks = [(b != meta["pad_id"]).long() for b in ids]
    labels = ([torch.from_numpy(b.astype(np.int64)) for b in data["label"]]
              if meta["workload"] == "finetune" else None)
    model = _hf_model(meta)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=meta["learning_rate"],
                            weight_decay=meta["weight_decay"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(
        (k + 1) / WARMUP_STEPS, max(0.0, (TOTAL_STEPS - k) / (TOTAL_STEPS - WARMUP_STEPS))))
    gen = torch.Generator().manual_seed(0)

    def step(i: int) -> torch.Tensor:
        j = i % len(ids)
        if labels is not None:
            inputs, targets = ids[j], labels[j]
        else:
            inputs, targets = _mask_tokens(ids[j], meta, gen)
        loss = model(input_ids=inputs, attention_mask=masks[j], labels=targets).loss
        loss.backward()
        if meta["grad_clip_norm"]:
            torch.nn.utils.clip_grad_norm_(model.parameters(), meta["grad_clip_norm"])
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        return loss

    start = time.perf_counter()
    step(0)
    first_s = time.perf_counter() - start
    step(1)  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(spec["steps"]):
        loss = step(i)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"seconds": elapsed, "cpu_per_wall": cpu / elapsed, "compile_s": first_s,
            "loss": float(loss.detach()),
            "ids_checksum": int(sum(int(b.sum()) for b in ids)),
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "attn_implementation": model.config._attn_implementation}


def child_main(spec: dict) -> int:
    """Runs one measurement (`spec["kind"]`) and prints its JSON line."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    load = os.getloadavg()[0]
    kinds = {"peak": child_peak, "bigjax": child_bigjax, "torch": child_torch}
    result = kinds[spec["kind"]](spec)
    result["load1_at_start"] = load
    print(json.dumps(result), flush=True)
    return 0


# -------------------------------------------------------------------------- parent
def run_child(spec: dict, env: dict) -> dict:
    """Runs `spec` in a fresh process of this script; its JSON result (plus `wall_s`, the
    process's whole run time)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child",
                           json.dumps(spec)], cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{spec['kind']} run ({spec.get('workload', '')} "
                           f"{spec.get('side', '')}) failed with exit {proc.returncode}:\n"
                           f"{proc.stderr[-4000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]),
            "wall_s": time.perf_counter() - start}


def torch_missing() -> str | None:
    """Why the PyTorch side cannot run here (None when it can)."""
    missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        return (f"{' and '.join(missing)} not installed (pip install -e '.[bench]'): "
                "measuring bigjax alone.")
    return None


def data_source(choice: str) -> tuple[str, dict]:
    """('imdb' | 'random', environment additions) for `--data`."""
    root = os.environ.get("BIGJAX_DATA_DIR") or SHARED_DATA
    found = os.path.isfile(os.path.join(root, "imdb", "aclImdb_v1.tar.gz"))
    if choice == "imdb" and not found:
        raise SystemExit(f"--data=imdb: {root}/imdb/aclImdb_v1.tar.gz not found; set "
                         "BIGJAX_DATA_DIR to a copy of shared/data, or use --data=random.")
    if choice == "random" or not found:
        return "random", {}
    return "imdb", {"BIGJAX_DATA_DIR": root}


def plan(args) -> list[dict]:
    """One spec per (workload, side) measured in each round."""
    names = list(WORKLOADS) if args.workload == "all" else [args.workload]
    specs = []
    for name in names:
        w = WORKLOADS[name]
        sizes = dict(batch_size=args.batch_size or (SMOKE["batch_size"] if args.smoke
                                                    else w.batch_size),
                     max_len=args.max_len or (SMOKE["max_len"] if args.smoke else w.max_len),
                     steps=args.steps or (SMOKE["steps"] if args.smoke else w.steps))
        bigjax_sides = w.sides[:1] if args.smoke else w.sides  # smoke: the config's step
        sides = [*bigjax_sides, *(["torch"] if args.torch else [])]
        for side in sides:
            specs.append(dict(kind="torch" if side == "torch" else "bigjax", workload=name,
                              side=side, config=w.smoke_config if args.smoke else w.config,
                              data=args.data, batches=os.path.join(args.tmp, f"{name}.npz"),
                              **sizes))
    return specs


def summarize(specs: list[dict], runs: dict, peaks: list[dict]) -> dict:
    """Best round per side, ratios, GFLOP/s and fractions of the peak (per second of wall
    time, and per CPU-second)."""
    per_lib: dict[str, float] = {}
    per_lib_cpu: dict[str, float] = {}
    for p in peaks:
        for lib, value in p["gflops"].items():
            per_lib[lib] = max(per_lib.get(lib, 0.0), value)
            per_lib_cpu[lib] = max(per_lib_cpu.get(lib, 0.0), p["gflops_per_cpu_s"][lib])
    peak, peak_cpu = max(per_lib.values()), max(per_lib_cpu.values())
    workloads: dict[str, Any] = {}
    for spec in specs:
        name, side = spec["workload"], spec["side"]
        with open(spec["batches"] + ".json") as f:
            meta = json.load(f)
        rounds = runs[(name, side)]
        best = min(rounds, key=lambda r: r["seconds"])
        step_s = best["seconds"] / spec["steps"]
        flops = step_flops(meta, side)
        per_cpu_s = flops / (step_s * best["cpu_per_wall"]) / 1e9
        entry = workloads.setdefault(name, {
            "config": spec["config"], "batch_size": spec["batch_size"],
            "max_len": spec["max_len"], "steps": spec["steps"], "rounds": len(rounds),
            "max_predictions": meta["max_predictions"], "sizes": meta["sizes"],
            "init_from": meta["init_from"], "sides": {}})
        entry["sides"][side] = {
            "what": WHAT[(name, side)],
            "examples_per_s": spec["batch_size"] / step_s,
            "round_examples_per_s": [spec["batch_size"] * spec["steps"] / r["seconds"]
                                     for r in rounds],
            "round_cpu_per_wall": [r["cpu_per_wall"] for r in rounds],
            "step_s": step_s, "gflop_per_step": flops / 1e9,
            "gflops_per_s": flops / step_s / 1e9, "peak_fraction": flops / step_s / 1e9 / peak,
            "cpu_per_wall": best["cpu_per_wall"], "gflops_per_cpu_s": per_cpu_s,
            "peak_fraction_per_cpu_s": per_cpu_s / peak_cpu,
            "first_step_s": min(r["compile_s"] for r in rounds),
            "final_loss": rounds[-1]["loss"],
            "ids_checksum": rounds[-1]["ids_checksum"],
            **{k: rounds[-1][k] for k in ("attn_implementation", "threads", "backend")
               if k in rounds[-1]}}
    for entry in workloads.values():
        sides = entry["sides"]
        torch_rate = sides.get("torch", {}).get("examples_per_s")
        entry["ratios"] = {s: (v["examples_per_s"] / torch_rate if torch_rate else None)
                           for s, v in sides.items() if s != "torch"}
        entry["ratio"] = entry["ratios"].get("bigjax")
        entry["same_batches"] = len({v["ids_checksum"] for v in sides.values()}) == 1
    return {"peak_gflops": peak, "peak_gflops_by_lib": per_lib,
            "peak_gflops_per_cpu_s": peak_cpu, "peak_gflops_per_cpu_s_by_lib": per_lib_cpu,
            "workloads": workloads}


def table(summary: dict) -> str:
    """The markdown table of `summary`."""
    lines = ["| workload | side | what it computes | examples/s | s/step | vs torch | "
             "GFLOP/step | GFLOP/s | of peak | CPU/wall | of peak per CPU-s |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, entry in summary["workloads"].items():
        for side, v in entry["sides"].items():
            ratio = entry["ratios"].get(side)
            lines.append(
                f"| {name} | {side} | {v['what']} | {v['examples_per_s']:.2f} | "
                f"{v['step_s']:.3f} | {f'{ratio:.2f}x' if ratio else '-'} | "
                f"{v['gflop_per_step']:.1f} | {v['gflops_per_s']:.1f} | "
                f"{100 * v['peak_fraction']:.1f}% | {v['cpu_per_wall']:.2f} | "
                f"{100 * v['peak_fraction_per_cpu_s']:.1f}% |")
    return "\n".join(lines)


def parent_main(args) -> int:
    """Runs the interleaved rounds in fresh processes and prints the report."""
    reason = torch_missing()
    args.torch = reason is None
    if reason:
        print(f"PyTorch side skipped: {reason}", flush=True)
    args.data, data_env = data_source(args.data)
    env = {**os.environ, **data_env, "PYTHONUNBUFFERED": "1"}
    env.setdefault("JAX_PLATFORMS", "cpu")
    rounds = args.rounds or (SMOKE["rounds"] if args.smoke else 3)
    # One process per library family (smoke: one in all); torch's threads never overlap
    # a jax measurement.
    libs = [["numpy", "jax"], *([["torch"]] if args.torch else [])]
    if args.smoke:
        libs = [sum(libs, [])]
    peak_specs = [dict(kind="peak", libs=group, size=PEAK_SIZE, reps=3 if args.smoke else 5)
                  for group in libs]
    load_start, start = os.getloadavg(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_bert-") as tmp:
        args.tmp = tmp
        specs = plan(args)
        runs: dict = {(s["workload"], s["side"]): [] for s in specs}
        peaks, loads = [], []
        for r in range(rounds):
            for spec in peak_specs:
                peaks.append(run_child(spec, env))
            for spec in specs:
                result = run_child(spec, env)
                runs[(spec["workload"], spec["side"])].append(result)
                loads.append(result["load1_at_start"])
                print(f"round {r + 1}/{rounds} {spec['workload']:>8} {spec['side']:<20} "
                      f"{spec['batch_size'] * spec['steps'] / result['seconds']:8.2f} "
                      f"examples/s  (CPU/wall {result['cpu_per_wall']:.2f}, process "
                      f"{result['wall_s']:.1f} s, load {result['load1_at_start']:.2f})",
                      flush=True)
        summary = summarize(specs, runs, peaks)
    summary.update({
        "data": args.data, "smoke": args.smoke, "torch_available": args.torch,
        "torch_skipped_reason": reason, "cpu_count": os.cpu_count(),
        "loadavg_start": list(load_start), "loadavg_end": list(os.getloadavg()),
        "load1_during": [min(loads), max(loads)], "wall_s": time.perf_counter() - start})
    print()
    print(table(summary))
    print()
    by_lib = ", ".join(f"{k} {v:.1f}" for k, v in summary["peak_gflops_by_lib"].items())
    print(f"Matmul peak ({PEAK_SIZE}x{PEAK_SIZE} float32): {summary['peak_gflops']:.1f} "
          f"GFLOP/s (best of {by_lib}); {summary['peak_gflops_per_cpu_s']:.1f} GFLOP per "
          "CPU-second. Load average (1 min) during the runs: "
          f"{min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} CPUs; data: {args.data}.")
    print(json.dumps(summary), flush=True)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=["finetune", "mlm", "all"], default="all")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per round (default: finetune 3, mlm 10; smoke 2)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved rounds (default 3; smoke 1)")
    parser.add_argument("--batch_size", type=int, default=None,
                        help="default: the workload's (finetune 32, mlm 64; smoke 4)")
    parser.add_argument("--max_len", type=int, default=None,
                        help="tokens per row (default: finetune 256, mlm 128; smoke 32)")
    parser.add_argument("--data", choices=["auto", "imdb", "random"], default="auto",
                        help="token ids: IMDb train reviews (auto: when the offline data is "
                             "found) or random vocabulary words")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds-long CI mode: tiny BERT, 32 tokens, batch 4, 2 steps, "
                             "1 round")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for key in ("steps", "rounds", "batch_size", "max_len"):
        value = getattr(args, key)
        if value is not None and value < 1:
            parser.error(f"--{key} must be positive, got {value}.")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(json.loads(args.child))
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
