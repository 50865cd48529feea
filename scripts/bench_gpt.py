"""nanoGPT's Tiny Shakespeare CPU recipe, trained end to end by bigjax and by PyTorch.

    pip install -e '.[bench]' && python scripts/bench_gpt.py [--steps 2000]
        [--steps-per-call 10] [--frameworks bigjax,bigjax_multi,torch] [--variant tuned]
    python scripts/bench_gpt.py --smoke      # seconds: checks the script runs (CI)

The recipe is configs/shakespeare_char.py: a character-level GPT (variant "nano": 4
layers, 4 heads, 128-d embedding, MLP 512, context 64, bias-free LayerNorms and
projections, exact GELU, tied embeddings, learned positions), batch 12, 2,000 steps, no
dropout, AdamW (lr 1e-3, betas 0.9/0.99, weight decay 0.1 on matrices and embeddings, none
on the norms), warmup 100 steps then cosine to 1e-4, gradient clipping 1.0, float32.
nanoGPT reaches a validation loss of about 1.88 with it. The issue's bar: bigjax reaches
val loss <= 1.88 in less wall time than PyTorch (aim: 1.5x its tokens/s). `--variant tuned`
trains both on the config's `tuned` variant (the learning rate tripled) instead.

Measurements (each in a fresh process, one after the other, so no two compete for cores):
  bigjax        `train.build_experiment` + `train.make_train_step(exp, 1)`: the step the
                training loop compiles, one optimizer step per call.
  bigjax_multi  the same with `steps_per_call = --steps-per-call` (`config.steps_per_call`:
                that many steps scanned in one compiled call).
  torch         the same model written in PyTorch as nanoGPT writes it (`NanoGPT` below:
                one q/k/v Linear, `scaled_dot_product_attention(is_causal=True)`, normal
                0.02 init, out-projections at 0.02 / sqrt(2 * layers), tied lm_head),
                `torch.optim.AdamW` (default foreach) with nanoGPT's two param groups
                (decay on params with dim >= 2), the per-step learning rate of bigjax's
                schedule set on the param groups, `clip_grad_norm_(1.0)`,
                `torch.set_num_threads` to the cores this process may use, eager (no torch.compile).

Same batches: the parent process builds the config's experiment once and writes the
training windows bigjax's pipeline gives (`exp.train_batches.chunk(0, steps)`:
`input_ids` int32 [steps, 12, 65]; inputs `[:, :-1]`, targets `[:, 1:]`) and every
validation window (`exp.load_split("validation")`, with its `weights` column) to a .npz
that each measurement reads: data loading is outside every timing. bigjax gets them placed
on its mesh beforehand (`sharding.put_batch`); torch as int64 tensors.
Same vocabulary: bigjax's character tokenizer (the 65 characters of the text and its
special tokens), so the token ids mean the same on both sides.

Timing: `train s` is the wall time of all `--steps` optimizer steps, from the first call to
the last result (bigjax: until `jax.block_until_ready` of the state and metrics); bigjax's
compile time (`lower(...).compile()` of the step) is reported separately, and `total s`
= compile + train is the wall time a run needs (torch: no compile, total = train).
tokens/s = steps x 12 x 64 / train s. `vs torch` is the row's tokens/s over torch's; the
headline ratio takes the faster bigjax row. Validation loss: after training, the mean
next-token cross-entropy over every counted target of every validation window: bigjax by
its own "metrics" evaluator (`config.evals.val`), torch on the same windows and weights.

A measurement that needs torch is skipped with the reason printed when torch is not
installed. `--smoke`: 10 steps (5 per call), warmup 2, 64 validation windows; without the
offline Tiny Shakespeare it trains on a small synthetic text; its numbers mean nothing.
Prints a markdown table, the target lines and, last, one JSON line with every number.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # measure this checkout's bigjax, not another installed one
SHARED_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))
CONFIG = os.path.join(REPO, "configs", "shakespeare_char.py")
FRAMEWORKS = ("bigjax", "bigjax_multi", "torch")
PEERS = {"torch": "torch"}  # framework -> the package it needs
SMOKE = dict(steps=10, steps_per_call=5, warmup_steps=2, eval_examples=64)
TARGET_LOSS = 1.88  # nanoGPT's validation loss with this recipe
TARGET_RATIO = 1.5  # the aim: bigjax's tokens/s over PyTorch's


# ------------------------------------------------------------------------- config
def bench_config(spec: dict):
    """configs/shakespeare_char.py for `spec`: `steps` steps (the schedule's length), its
    warmup, only the `val` metrics evaluator (on `eval_examples` windows when set), and the
    synthetic text folder when `spec["text_folder"]` is set."""
    from bigjax import config_cli, config_keys

    variant = spec.get("variant")
    raw = config_cli.load_config_file(f"{CONFIG}:{variant}" if variant else CONFIG).to_dict()
    raw["total_steps"] = spec["steps"]
    raw["steps_per_call"] = 1
    raw["optim"]["warmup_steps"] = spec["warmup_steps"]
    raw["evals"] = {"val": {**raw["evals"]["val"], "examples": spec.get("eval_examples"),
                            "every_steps": None}}
    if spec.get("text_folder"):
        raw["data"].update(name="text_folder", path=spec["text_folder"])
    return config_keys.resolve(raw)


def write_synthetic_text(folder: str) -> None:
    """`train.txt` and `validation.txt` of pseudo-words (smoke runs without the data)."""
    import numpy as np

    rng = np.random.default_rng(0)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    for split, words in (("train", 6000), ("validation", 1500)):
        text = " ".join("".join(rng.choice(letters, rng.integers(1, 8))) for _ in range(words))
        with open(os.path.join(folder, f"{split}.txt"), "w", encoding="utf-8") as f:
            f.write(text.upper()[:40] + ":\n" + text + "\n")


def write_data(spec: dict) -> dict:
    """Builds the experiment and writes the training windows, validation windows and the
    bigjax learning rate of every step to `spec["data_file"]`; returns what the
    measurements need to know (vocabulary, sizes, optimizer settings)."""
    import numpy as np

    from bigjax import train

    config = bench_config(spec)
    exp = train.build_experiment(config)
    chunk = exp.train_batches.chunk(0, spec["steps"])
    if not np.all(chunk["weights"] == 1):
        raise AssertionError("training windows with weights other than 1")
    val = exp.load_split(config.evals.val.split, config.evals.val.get("examples"))
    val_arrays = val.take(np.arange(len(val)))
    lrs = np.asarray(exp.schedule(np.arange(spec["steps"])), np.float64)
    np.savez(spec["data_file"], input_ids=chunk["input_ids"].astype(np.int32),
             val_input_ids=val_arrays["input_ids"].astype(np.int32),
             val_weights=val_arrays["weights"].astype(np.float32), learning_rate=lrs)
    sizes = exp.model.config()
    return {"vocab_size": int(sizes["vocab_size"]), "num_layers": sizes["num_layers"],
            "hidden": sizes["hidden"], "heads": sizes["heads"], "mlp_dim": sizes["mlp_dim"],
            "context": int(config.data.lm.context), "batch_size": int(config.batch_size),
            "seed": int(config.seed), "learning_rate": float(config.optim.learning_rate),
            "end_lr_factor": float(config.optim.end_lr_factor),
            "weight_decay": float(config.optim.weight_decay),
            "b1": float(config.optim.get("b1", 0.9)), "b2": float(config.optim.b2),
            "eps": float(config.optim.get("eps", 1e-8)),
            "grad_clip_norm": float(config.optim.grad_clip_norm),
            "norm_eps": float(sizes["norm_eps"]), "val_windows": int(len(val)),
            "val_tokens": int(val_arrays["weights"].sum())}


def lr_at(step: int, base: float, warmup: int, total: int, end_factor: float) -> float:
    """bigjax's `warmup_cosine` rate at `step` (0-based; `optim.make_schedule`: optax's
    warmup_cosine_decay_schedule from 0): linear from 0 to `base` over `warmup` steps, then
    a cosine from `base` to `base * end_factor` at `total`."""
    if step < warmup:
        return base * step / warmup
    done = min(step - warmup, total - warmup) / (total - warmup)
    end = base * end_factor
    return end + (base - end) * 0.5 * (1.0 + math.cos(math.pi * done))


# ---------------------------------------------------------------------- children
def child_bigjax(spec: dict) -> dict:
    """Trains with the config's train step (`spec["steps_per_call"]` steps per call) on the
    parent's batches; times compile and training; evaluates with the config's evaluator."""
    import jax
    import numpy as np

    from bigjax import evaluators, host_malloc, sharding, train
    from bigjax.train_state import init_state

    host_malloc.keep_freed_memory()  # as bigjax's command line does

    config = bench_config(spec)
    exp = train.build_experiment(config)
    data = np.load(spec["data_file"])
    ids = data["input_ids"]
    steps, k = len(ids), spec["steps_per_call"]
    if steps % k:
        raise ValueError(f"--steps-per-call={k} must divide the {steps} steps.")
    weights = np.ones((*ids.shape[:2], ids.shape[2] - 1), np.float32)  # as the pipeline's
    evals = evaluators.build(evaluators.settings_from_config(config, 1), exp.load_split,
                             exp.model, exp.task, exp.preprocess, exp.mesh, exp.rules,
                             exp.tokenizer)
    step_fn = train.make_train_step(exp, k)
    with sharding.mesh_context(exp.mesh, exp.rules):
        state = init_state(exp.init_fn, config.seed, exp.state_shardings, exp.rules)
        if k == 1:
            batches = [sharding.put_batch({"input_ids": ids[i], "weights": weights[i]},
                                          exp.mesh) for i in range(steps)]
        else:
            batches = [sharding.put_batch({"input_ids": ids[i:i + k],
                                           "weights": weights[i:i + k]}, exp.mesh, 1)
                       for i in range(0, steps, k)]
        jax.block_until_ready((state, batches))
        start = time.perf_counter()
        compiled = step_fn.lower(state, batches[0]).compile()
        compile_s = time.perf_counter() - start
        start, cpu = time.perf_counter(), time.process_time()
        metrics = []
        for batch in batches:
            state, m = compiled(state, batch)
            metrics.append(m["loss"])
        jax.block_until_ready((state, metrics))
        train_s, cpu = time.perf_counter() - start, time.process_time() - cpu
        losses = np.concatenate([np.atleast_1d(x) for x in jax.device_get(metrics)])
        start = time.perf_counter()
        val = evals[0].run(state.variables, steps)
        eval_s = time.perf_counter() - start
    return {"train_s": train_s, "compile_s": compile_s, "total_s": compile_s + train_s,
            "cpu_per_wall": cpu / train_s, "eval_s": eval_s, "steps_per_call": k,
            "val_loss": float(val["loss"]), "val_tokens": int(val["num_tokens"]),
            "first_loss": float(losses[0]), "final_train_loss": float(losses[-10:].mean()),
            "steps": int(len(losses)), "ids_checksum": int(ids.astype(np.int64).sum()),
            "jax": jax.__version__, "backend": jax.default_backend()}


def torch_model(meta: dict):
    """nanoGPT's GPT for `meta`'s sizes (bias=False), in PyTorch; initialised as nanoGPT."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    hidden, heads, layers = meta["hidden"], meta["heads"], meta["num_layers"]

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(hidden, eps=meta["norm_eps"], bias=False)
            self.c_attn = nn.Linear(hidden, 3 * hidden, bias=False)
            self.attn_proj = nn.Linear(hidden, hidden, bias=False)
            self.ln_2 = nn.LayerNorm(hidden, eps=meta["norm_eps"], bias=False)
            self.c_fc = nn.Linear(hidden, meta["mlp_dim"], bias=False)
            self.mlp_proj = nn.Linear(meta["mlp_dim"], hidden, bias=False)

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(hidden, dim=2)
            q, k, v = (z.view(b, t, heads, hidden // heads).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(b, t, hidden))
            return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))  # exact GELU

    class NanoGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(meta["vocab_size"], hidden)
            self.wpe = nn.Embedding(meta["context"], hidden)
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.ln_f = nn.LayerNorm(hidden, eps=meta["norm_eps"], bias=False)
            self.lm_head = nn.Linear(hidden, meta["vocab_size"], bias=False)
            self.lm_head.weight = self.wte.weight  # tied
            for module in self.modules():
                if isinstance(module, nn.Linear | nn.Embedding):
                    nn.init.normal_(module.weight, mean=0.0, std=0.02)
            for name, p in self.named_parameters():
                if name.endswith("proj.weight"):  # attn_proj, mlp_proj: GPT-2's scaled init
                    nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * layers))

        def forward(self, idx):
            pos = torch.arange(idx.shape[1], device=idx.device)
            x = self.wte(idx) + self.wpe(pos)
            for block in self.blocks:
                x = block(x)
            return self.lm_head(self.ln_f(x))

    return NanoGPT()


def child_torch(spec: dict) -> dict:
    """Trains the PyTorch model on the parent's batches; times training; evaluates on the
    same validation windows."""
    import numpy as np
    import torch
    from torch.nn import functional as F

    from bigjax import host_cpu

    torch.set_num_threads(host_cpu.usable_cores())
    meta = spec["meta"]
    torch.manual_seed(meta["seed"])
    data = np.load(spec["data_file"])
    ids = torch.from_numpy(data["input_ids"].astype(np.int64))
    steps, vocab = len(ids), meta["vocab_size"]
    lrs = [lr_at(i, meta["learning_rate"], spec["warmup_steps"], steps, meta["end_lr_factor"])
           for i in range(steps)]
    off = float(np.max(np.abs(np.asarray(lrs) - data["learning_rate"])))
    if off > 1e-6 * meta["learning_rate"]:
        raise AssertionError(f"torch's learning rates differ from bigjax's by {off}")
    model = torch_model(meta)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2],
               "weight_decay": meta["weight_decay"]},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lrs[0], betas=(meta["b1"], meta["b2"]),
                            eps=meta["eps"])
    losses = []
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(steps):
        for group in opt.param_groups:
            group["lr"] = lrs[i]
        batch = ids[i]
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, vocab), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), meta["grad_clip_norm"])
        opt.step()
        losses.append(loss.detach())
    train_s, cpu = time.perf_counter() - start, time.process_time() - cpu
    losses = torch.stack(losses).numpy()
    start = time.perf_counter()
    model.eval()
    val_ids = torch.from_numpy(data["val_input_ids"].astype(np.int64))
    val_weights = torch.from_numpy(data["val_weights"])
    total, count = 0.0, 0.0
    with torch.no_grad():
        for i in range(0, len(val_ids), 64):
            batch, w = val_ids[i:i + 64], val_weights[i:i + 64]
            logits = model(batch[:, :-1])
            nll = F.cross_entropy(logits.reshape(-1, vocab), batch[:, 1:].reshape(-1),
                                  reduction="none")
            total += float((nll * w.reshape(-1)).sum())
            count += float(w.sum())
    eval_s = time.perf_counter() - start
    return {"train_s": train_s, "compile_s": 0.0, "total_s": train_s,
            "cpu_per_wall": cpu / train_s, "eval_s": eval_s, "steps_per_call": 1,
            "val_loss": total / max(count, 1.0), "val_tokens": int(round(count)),
            "first_loss": float(losses[0]), "final_train_loss": float(losses[-10:].mean()),
            "steps": steps, "ids_checksum": int(data["input_ids"].astype(np.int64).sum()),
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def child_main(spec: dict) -> int:
    """Runs one measurement and prints its JSON line."""
    load = os.getloadavg()[0]
    result = {"bigjax": child_bigjax, "torch": child_torch}[spec["kind"]](spec)
    result["load1_at_start"], result["load1_at_end"] = load, os.getloadavg()[0]
    print(json.dumps(result), flush=True)
    return 0


# -------------------------------------------------------------------------- parent
def peer_missing(framework: str) -> str | None:
    """Why `framework` cannot be measured here (its package does not import), as the line
    to print; None when it can (bigjax always can)."""
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


def run_child(spec: dict, env: dict) -> dict:
    """Runs `spec` in a fresh process of this script; its JSON result plus `process_s`
    (the whole process: imports, building, compile, training, evaluation)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child",
                           json.dumps(spec)], cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{spec['framework']} failed (exit {proc.returncode}):\n"
                         f"{proc.stderr[-4000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]),
            "process_s": time.perf_counter() - start}


def data_root() -> str | None:
    """The offline data folder holding tiny_shakespeare/input.txt, else None."""
    for root in (os.environ.get("BIGJAX_DATA_DIR"), SHARED_DATA):
        if root and os.path.isfile(os.path.join(root, "tiny_shakespeare", "input.txt")):
            return root
    return None


def summarize(results: dict, tokens_per_step: int) -> dict:
    """Rows with tokens/s and ratios; the headline ratio (best bigjax row / torch)."""
    rows = {}
    for name, result in results.items():
        if result is None:
            rows[name] = None
            continue
        rows[name] = {**result, "tokens_per_s": result["steps"] * tokens_per_step
                      / result["train_s"]}
    torch_row = rows.get("torch")
    for row in rows.values():
        if row is not None:
            row["vs_torch"] = row["tokens_per_s"] / torch_row["tokens_per_s"] \
                if torch_row else None
    measured = [n for n in ("bigjax", "bigjax_multi") if rows.get(n)]
    best = max(measured, key=lambda n: rows[n]["tokens_per_s"]) if measured else None
    fastest_total = min(measured, key=lambda n: rows[n]["total_s"]) if measured else None
    summary = {"rows": rows, "best_bigjax": best,
               "ratio": rows[best]["vs_torch"] if best else None,
               "wall_ratio": (torch_row["total_s"] / rows[fastest_total]["total_s"]
                              if torch_row and fastest_total else None)}
    summary["targets"] = {
        "bigjax_val_loss_at_most_1.88": (rows[best]["val_loss"] <= TARGET_LOSS
                                         if best else None),
        "bigjax_total_wall_below_torch": (summary["wall_ratio"] > 1.0
                                          if summary["wall_ratio"] else None),
        "bigjax_tokens_per_s_1.5x_torch": (summary["ratio"] >= TARGET_RATIO
                                           if summary["ratio"] else None)}
    return summary


def fmt(value, spec: str, unit: str = "") -> str:
    return "skipped" if value is None else f"{value:{spec}}{unit}"


def table(summary: dict) -> str:
    """The markdown table of `summary`."""
    lines = ["| framework | steps/call | train s | compile s | total s | tokens/s | vs torch "
             "| val loss | final train loss | CPU/wall |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in summary["rows"].items():
        if row is None:
            lines.append(f"| {name} | - | skipped | - | - | skipped | - | - | - | - |")
            continue
        ratio = row["vs_torch"]
        lines.append(
            f"| {name} | {row['steps_per_call']} | {row['train_s']:.1f} | "
            f"{row['compile_s']:.1f} | {row['total_s']:.1f} | {row['tokens_per_s']:.0f} | "
            f"{fmt(ratio, '.2f', 'x') if name != 'torch' else '-'} | {row['val_loss']:.4f} | "
            f"{row['final_train_loss']:.4f} | {row['cpu_per_wall']:.2f} |")
    return "\n".join(lines)


def target_text(value: bool | None) -> str:
    return "skipped" if value is None else ("met" if value else "MISSED")


def parent_main(args: argparse.Namespace) -> int:
    """Writes the shared data, runs every measurement in a fresh process, prints the report."""
    wanted = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = sorted(set(wanted) - set(FRAMEWORKS))
    if unknown:
        raise SystemExit(f"--frameworks: unknown {unknown}; choose from {list(FRAMEWORKS)}.")
    skipped = {}
    for name in wanted:
        reason = peer_missing(name)
        if reason:
            print(reason, flush=True)
            skipped[name] = reason
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.setdefault("JAX_PLATFORMS", "cpu")
    root = data_root()
    if root:
        env["BIGJAX_DATA_DIR"] = root
    elif not args.smoke:
        raise SystemExit("Tiny Shakespeare not found: set BIGJAX_DATA_DIR to a copy of "
                         "shared/data (with tiny_shakespeare/input.txt).")
    base = dict(steps=args.steps, warmup_steps=args.warmup_steps,
                eval_examples=args.eval_examples, variant=args.variant)
    load_start, start = os.getloadavg(), time.perf_counter()
    results: dict = {}
    meta = None
    with tempfile.TemporaryDirectory(prefix="bench_gpt-") as tmp:
        if not root:
            folder = os.path.join(tmp, "text")
            os.makedirs(folder)
            write_synthetic_text(folder)
            base["text_folder"] = folder
        base["data_file"] = os.path.join(tmp, "batches.npz")
        if any(name not in skipped for name in wanted):
            if root:
                os.environ["BIGJAX_DATA_DIR"] = root  # this process builds the data too
            meta = write_data(base)
        for name in wanted:
            if name in skipped:
                results[name] = None
                continue
            spec = {**base, "framework": name, "kind": "torch" if name == "torch" else "bigjax",
                    "steps_per_call": args.steps_per_call if name == "bigjax_multi" else 1,
                    "meta": meta}
            results[name] = run_child(spec, env)
            r = results[name]
            tokens = r["steps"] * meta["batch_size"] * meta["context"]
            print(f"{name:<13} {tokens / r['train_s']:9.0f} tokens/s  train "
                  f"{r['train_s']:.1f} s, compile {r['compile_s']:.1f} s, val loss "
                  f"{r['val_loss']:.4f} (process {r['process_s']:.1f} s, load "
                  f"{r['load1_at_start']:.2f}-{r['load1_at_end']:.2f}, CPU/wall "
                  f"{r['cpu_per_wall']:.2f})", flush=True)
    tokens_per_step = (meta["batch_size"] * meta["context"]) if meta else 0
    summary = summarize(results, tokens_per_step)
    measured = [r for r in results.values() if r]
    summary.update({
        "steps": args.steps, "steps_per_call": args.steps_per_call,
        "warmup_steps": args.warmup_steps, "smoke": args.smoke, "variant": args.variant,
        "data": "tiny_shakespeare" if root else "synthetic", "sizes": meta,
        "skipped": skipped, "same_batches": len({r["ids_checksum"] for r in measured}) <= 1,
        "same_val_tokens": len({r["val_tokens"] for r in measured}) <= 1,
        "cpu_count": os.cpu_count(), "loadavg_start": list(load_start),
        "loadavg_end": list(os.getloadavg()), "wall_s": time.perf_counter() - start})
    print()
    print(table(summary))
    print()
    best = summary["best_bigjax"]
    print(f"bigjax ({best}) / torch tokens/s = {fmt(summary['ratio'], '.2f', 'x')}; "
          f"torch wall / bigjax wall (with compile) = {fmt(summary['wall_ratio'], '.2f', 'x')}")
    t = summary["targets"]
    print(f"targets: val loss <= {TARGET_LOSS}: "
          f"{target_text(t['bigjax_val_loss_at_most_1.88'])}; less wall time than torch: "
          f"{target_text(t['bigjax_total_wall_below_torch'])}; tokens/s >= {TARGET_RATIO}x "
          f"torch: {target_text(t['bigjax_tokens_per_s_1.5x_torch'])}")
    print(json.dumps(summary), flush=True)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; `--smoke` replaces the run's sizes by tiny ones."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000,
                        help="optimizer steps (the schedule's length too)")
    parser.add_argument("--steps-per-call", type=int, default=10,
                        help="steps scanned per compiled call in the bigjax_multi row")
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--eval-examples", type=int, default=None,
                        help="validation windows (default: all of them)")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS),
                        help=f"comma-separated, of {', '.join(FRAMEWORKS)}")
    parser.add_argument("--variant", default=None, choices=("tuned",),
                        help="train configs/shakespeare_char.py:VARIANT (both frameworks: "
                        "torch follows the config's learning rate)")
    parser.add_argument("--smoke", action="store_true",
                        help="seconds-long check that every measurement runs: 10 steps (5 "
                        "per call), warmup 2, 64 validation windows")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.steps, args.steps_per_call = SMOKE["steps"], SMOKE["steps_per_call"]
        args.warmup_steps, args.eval_examples = SMOKE["warmup_steps"], SMOKE["eval_examples"]
    if args.steps < 1 or args.steps_per_call < 1 or args.steps % args.steps_per_call:
        parser.error(f"--steps-per-call={args.steps_per_call} must be positive and divide "
                     f"--steps={args.steps}.")
    if not 0 <= args.warmup_steps < args.steps:
        parser.error(f"--warmup-steps={args.warmup_steps} must be below --steps.")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(json.loads(args.child))
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
