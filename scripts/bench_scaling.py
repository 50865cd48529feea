"""Sharding strategies on 8 fake CPU devices against one device: losses, bytes, step time.

    python scripts/bench_scaling.py --config=configs/NAME.py[:ARG] [--config.KEY=VALUE ...]
        [--steps 20] [--strategies ref,dp8,fsdp8,dp2tp4,fsdp4tp2] [--variants bf16,accum4]
        [--variant_strategies ref,fsdp8] [--tolerance 1e-5] [--bf16_tolerance 5e-2]
        [--out FILE.json]
    python scripts/bench_scaling.py --quick      # CI: digits_cnn.py:runlocal, 3 steps, seconds
    python scripts/bench_scaling.py --plot OUT.png RESULT.json [RESULT.json ...]

Every run is a fresh subprocess (JAX_PLATFORMS=cpu, XLA_FLAGS with the device count)
that builds the config's experiment (`bigjax.train.build_experiment`, dropout keys of
`config.model` set to 0 so runs are comparable; `config.init_from` is applied), then
takes `--steps` train steps on the same fixed batches `exp.train_batches[0..N-1]`, and
prints one JSON line: the losses and gradient norms, the norm of the total parameter
change, params / optimizer-state bytes per device (from the state's shardings,
`bigjax.dry_run.bytes_per_device`), XLA's memory analysis of the compiled step
(temporary bytes per device), the compile time and the step times (the step is compiled
ahead of time, so every timed step is a run of the compiled executable).

Strategies (`--strategies`):
  ref       1 device (a process with device count 1, mesh data=1): the reference
  dp8       data=8                  (8 devices, params replicated)
  fsdp8     fsdp=8                  (params and optimizer state split 8 ways)
  dp2tp4    data=2 x tensor=4
  fsdp4tp2  fsdp=4 x tensor=2
Variants (`--variants`, each run on every strategy of `--variant_strategies`):
  bf16      --config.model.dtype=bfloat16 (bf16 compute, float32 params)
  accum4    --config.grad_accum_steps=4   (4 microbatches per step, same update)

The parent prints a markdown table and then one JSON line (the rows): per run, the
largest relative deviations max_i |x_i - ref_i| / |ref_i| over the N steps from the
reference (`ref`, or the first strategy listed when `ref` is not) of the loss and the
gradient norm, and that of the parameter-change norm; whether all three are within the
tolerance (float32: `--tolerance`; bf16 runs: `--bf16_tolerance`); bytes per device and
their ratio to the reference's; the compiled step's temporary bytes; the median (min)
step time. `--out` writes the runs and rows as JSON (and the table beside it as .md).
Step times on fake CPU devices share the host's cores: they measure partitioning
overhead, not speed-ups.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name -> (devices, mesh axes)
STRATEGIES = {
    "ref": (1, dict(data=1, fsdp=1, tensor=1)),
    "dp8": (8, dict(data=8, fsdp=1, tensor=1)),
    "fsdp8": (8, dict(data=1, fsdp=8, tensor=1)),
    "dp2tp4": (8, dict(data=2, fsdp=1, tensor=4)),
    "fsdp4tp2": (8, dict(data=1, fsdp=4, tensor=2)),
}
VARIANTS = {
    "bf16": [("model.dtype", "bfloat16")],
    "accum4": [("grad_accum_steps", "4")],
}
DEFAULT_STRATEGIES = "ref,dp8,fsdp8,dp2tp4,fsdp4tp2"
QUICK = dict(config="configs/digits_cnn.py:runlocal", steps=3, strategies="ref,dp8,fsdp8",
             variants="", variant_strategies="")


# --------------------------------------------------------------------------- child
def measure(config_spec: str, overrides: list[tuple[str, str]], steps: int) -> dict:
    """Builds the experiment, runs `steps` steps on batches 0..steps-1; the JSON record."""
    import jax
    import numpy as np

    from bigjax import config_cli, dry_run, sharding, train

    config = config_cli.load_config_file(config_spec)
    dropout_off = [(f"model.{k}", "0.0") for k in config.model if "dropout" in k]
    config = config_cli.apply_overrides(config, [*dropout_off, *overrides])
    start = time.perf_counter()
    exp = train.build_experiment(config)
    state = train.fresh_state(exp)
    batches = [exp.train_batches[i] for i in range(steps)]
    jax.block_until_ready(state)
    setup_s = time.perf_counter() - start

    step_fn = train.make_train_step(exp)
    with sharding.mesh_context(exp.mesh, exp.rules):
        start = time.perf_counter()
        compiled = step_fn.lower(exp.abstract_state, dry_run.abstract_batch(exp)).compile()
        compile_s = time.perf_counter() - start
        memory = compiled.memory_analysis()
        before = jax.tree.map(lambda x: np.asarray(x, np.float64), jax.device_get(state.params))
        losses, grad_norms, times = [], [], []
        for batch in batches:
            batch = sharding.put_batch(batch, exp.mesh)
            start = time.perf_counter()
            state, metrics = compiled(state, batch)
            jax.block_until_ready(metrics)
            times.append(time.perf_counter() - start)
            losses.append(metrics["loss"])
            grad_norms.append(metrics["grad_norm"])
    losses, grad_norms = ([float(x) for x in jax.device_get(v)] for v in (losses, grad_norms))
    after = jax.device_get(state.params)
    update_norm = float(np.sqrt(sum(np.sum((np.asarray(a, np.float64) - b) ** 2) for a, b in zip(
        jax.tree.leaves(after), jax.tree.leaves(before), strict=True))))
    mismatched = [str(x.sharding.spec) for x, s in zip(
        jax.tree.leaves(state), jax.tree.leaves(exp.state_shardings), strict=True)
        if x.sharding != s]
    params = exp.abstract_state.params
    return {
        "mesh": dict(exp.mesh.shape),
        "devices": len(jax.devices()),
        "param_count": int(sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))),
        "params_bytes": int(sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(params))),
        "params_bytes_per_device": dry_run.bytes_per_device(params),
        "opt_state_bytes_per_device": dry_run.bytes_per_device(exp.abstract_state.opt_state),
        "step_argument_bytes_per_device": int(getattr(memory, "argument_size_in_bytes", -1)),
        "step_temp_bytes_per_device": int(getattr(memory, "temp_size_in_bytes", -1)),
        "losses": losses,
        "grad_norms": grad_norms,
        "update_norm": update_norm,  # |params after N steps - initial params|
        "step_times_s": times,
        "median_step_s": statistics.median(times),
        "min_step_s": min(times),
        "compile_s": compile_s,
        "setup_s": setup_s,
        "state_layout_mismatches": mismatched,
        "batch_size": int(config.batch_size),
        "grad_accum_steps": int(config.get("grad_accum_steps") or 1),
        "dtype": str(config.model.get("dtype")),
    }


def child_main(args, overrides) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from bigjax import host_malloc

    host_malloc.keep_freed_memory()  # as bigjax's command line does
    result = measure(args.config, overrides, args.steps)
    print(json.dumps(result), flush=True)
    return 0


# -------------------------------------------------------------------------- parent
def run_child(name: str, variant: str | None, args, overrides) -> dict:
    devices, mesh = STRATEGIES[name]
    extra = [(f"mesh.{axis}", str(size)) for axis, size in mesh.items()]
    extra += VARIANTS[variant] if variant else []
    from bigjax.fake_cpu_devices import xla_flags_with_devices

    env = dict(os.environ)
    env["XLA_FLAGS"] = xla_flags_with_devices(env.get("XLA_FLAGS"), devices)
    env["JAX_PLATFORMS"] = "cpu"
    cmd = [sys.executable, os.path.abspath(__file__), "--child", f"--config={args.config}",
           f"--steps={args.steps}",
           *[f"--config.{k}={v}" for k, v in [*overrides, *extra]]]
    label = name + (f"+{variant}" if variant else "")
    print(f"[{label}] {devices} device(s), mesh {mesh}" + (f", {variant}" if variant else ""),
          file=sys.stderr, flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"run {label} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(name=label, strategy=name, variant=variant,
                  wall_s=time.perf_counter() - start)
    print(f"[{label}] done in {result['wall_s']:.1f} s: median step "
          f"{result['median_step_s'] * 1e3:.1f} ms, losses {result['losses'][:3]}...",
          file=sys.stderr, flush=True)
    return result


def relative_deviation(losses: list[float], reference: list[float]) -> float:
    return max(abs(a - b) / abs(b) for a, b in zip(losses, reference, strict=True))


def _mib(n: int) -> str:
    return f"{n / 2**20:.3f}" if n < 2**20 else f"{n / 2**20:.1f}"


def summarize(runs: list[dict], ref: dict, args) -> list[dict]:
    """One row per run: deviations, tolerance check, bytes and their ratios, times."""
    by_name = {r["name"]: r for r in runs}
    rows = []
    for r in runs:
        tol = args.bf16_tolerance if r["variant"] == "bf16" else args.tolerance
        base = by_name.get(r["strategy"]) if r["variant"] else None
        devs = {
            "max_loss_dev": relative_deviation(r["losses"], ref["losses"]),
            "max_grad_norm_dev": relative_deviation(r["grad_norms"], ref["grad_norms"]),
            "update_norm_dev": relative_deviation([r["update_norm"]], [ref["update_norm"]]),
        }
        rows.append({
            "run": r["name"],
            "mesh": "x".join(f"{a}={s}" for a, s in r["mesh"].items() if s > 1) or "1 device",
            "first_loss_dev": abs(r["losses"][0] - ref["losses"][0]) / abs(ref["losses"][0]),
            **devs,
            "max_loss_dev_vs_base": (relative_deviation(r["losses"], base["losses"])
                                     if base else None),
            "tolerance": tol,
            "within_tolerance": max(devs.values()) <= tol,
            "params_bytes_per_device": r["params_bytes_per_device"],
            "params_ratio": r["params_bytes_per_device"] / ref["params_bytes_per_device"],
            "opt_state_bytes_per_device": r["opt_state_bytes_per_device"],
            "opt_ratio": r["opt_state_bytes_per_device"] / ref["opt_state_bytes_per_device"],
            "step_temp_bytes_per_device": r["step_temp_bytes_per_device"],
            "temp_ratio": r["step_temp_bytes_per_device"] / ref["step_temp_bytes_per_device"],
            "median_step_ms": r["median_step_s"] * 1e3,
            "min_step_ms": r["min_step_s"] * 1e3,
            "compile_s": r["compile_s"],
            "layout_ok": not r["state_layout_mismatches"],
        })
    return rows


def markdown(rows: list[dict], ref_name: str, steps: int) -> str:
    head = ("| run | mesh | loss dev. step 1 | max loss dev. | max grad-norm dev. "
            "| update-norm dev. | tol. | ok | params MiB/dev | × ref | opt. state MiB/dev "
            "| × ref | step temp MiB/dev | × ref | step ms median (min) | compile s |")
    lines = [head, "|" + "---|" * 16]
    for r in rows:
        lines.append(
            f"| {r['run']} | {r['mesh']} | {r['first_loss_dev']:.1e} | {r['max_loss_dev']:.1e} "
            f"| {r['max_grad_norm_dev']:.1e} | {r['update_norm_dev']:.1e} "
            f"| {r['tolerance']:.0e} | {'yes' if r['within_tolerance'] else '**no**'} "
            f"| {_mib(r['params_bytes_per_device'])} | {r['params_ratio']:.3f} "
            f"| {_mib(r['opt_state_bytes_per_device'])} | {r['opt_ratio']:.3f} "
            f"| {_mib(r['step_temp_bytes_per_device'])} | {r['temp_ratio']:.2f} "
            f"| {_ms(r['median_step_ms'])} ({_ms(r['min_step_ms'])}) | {r['compile_s']:.1f} |")
    lines.append(f"\nReference: `{ref_name}`; {steps} steps. Deviations are relative to the "
                 "reference: max over the steps of |x_i - ref_i| / |ref_i| for the loss and "
                 "the gradient norm; update norm: |params_N - params_0|.")
    return "\n".join(lines)


def _ms(ms: float) -> str:
    return f"{ms:,.0f}" if ms >= 100 else f"{ms:.1f}"


def parent_main(args, overrides) -> int:
    strategies = [s for s in args.strategies.split(",") if s]
    variants = [v for v in args.variants.split(",") if v]
    variant_strategies = [s for s in args.variant_strategies.split(",") if s]
    unknown = ({*strategies, *variant_strategies} - set(STRATEGIES)) | (set(variants) - set(
        VARIANTS))
    if unknown or not strategies:
        raise SystemExit(f"unknown strategies/variants {sorted(unknown)}; strategies: "
                         f"{sorted(STRATEGIES)}, variants: {sorted(VARIANTS)}")
    plan = [(s, None) for s in strategies]
    plan += [(s, v) for v in variants for s in variant_strategies]
    runs = [run_child(s, v, args, overrides) for s, v in plan]
    ref = runs[0] if "ref" not in strategies else next(r for r in runs if r["name"] == "ref")
    rows = summarize(runs, ref, args)
    table = markdown(rows, ref["name"], args.steps)
    print(table)
    summary = {
        "config": os.path.relpath(args.config, REPO), "overrides": overrides, "steps": args.steps,
        "reference": ref["name"], "tolerance": args.tolerance,
        "bf16_tolerance": args.bf16_tolerance, "rows": rows, "runs": runs,
        "all_within_tolerance": all(r["within_tolerance"] for r in rows),
    }
    print(json.dumps({k: summary[k] for k in ("reference", "tolerance", "bf16_tolerance",
                                                "all_within_tolerance", "rows")}))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=1)
        with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
            f.write(table + "\n")
    return 0


def plot(png: str, result_files: list[str]) -> None:
    """Per-step relative loss deviation from the reference of every run in each result file
    (one panel per file), on a log scale (exact agreement drawn at 1e-10)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(result_files), figsize=(6 * len(result_files), 4),
                             squeeze=False)
    for ax, path in zip(axes[0], result_files, strict=True):
        with open(path) as f:
            result = json.load(f)
        runs = {r["name"]: r for r in result["runs"]}
        ref = runs[result["reference"]]["losses"]
        for name, r in runs.items():
            if name == result["reference"]:
                continue
            devs = [max(abs(a - b) / abs(b), 1e-10) for a, b in zip(r["losses"], ref,
                                                                     strict=True)]
            ax.semilogy(range(1, len(devs) + 1), devs, marker=".",
                        linestyle="--" if r["variant"] else "-", label=name)
        ax.axhline(result["tolerance"], color="gray", linewidth=0.8,
                   label=f"float32 tolerance {result['tolerance']:.0e}")
        ax.set(title=f"{os.path.basename(result['config'])}: |loss - ref| / ref "
                     "(1e-10 = equal)", xlabel="step", ylim=(5e-11, 1e-1))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=100)


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, REPO)
    from bigjax import config_cli

    rest, overrides = config_cli.split_override_args(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/mnist_cnn.py",
                        help="configs/NAME.py[:ARG] (relative to the repo root)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--strategies", default=DEFAULT_STRATEGIES)
    parser.add_argument("--variants", default="bf16,accum4")
    parser.add_argument("--variant_strategies", default="ref,fsdp8")
    parser.add_argument("--tolerance", type=float, default=1e-5,
                        help="largest relative loss deviation allowed for float32 runs")
    parser.add_argument("--bf16_tolerance", type=float, default=5e-2,
                        help="the same for bfloat16-compute runs")
    parser.add_argument("--out", default=None, help="write the runs and table here (JSON)")
    parser.add_argument("--quick", action="store_true",
                        help=f"CI smoke run: {QUICK}")
    parser.add_argument("--plot", nargs="+", metavar=("PNG", "RESULT_JSON"), default=None,
                        help="instead of running: plot the per-step loss deviations of "
                             "--out files into PNG")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(rest)
    if args.plot:
        plot(args.plot[0], args.plot[1:])
        return 0
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if not os.path.isabs(args.config.partition(":")[0]):
        args.config = os.path.join(REPO, args.config)
    if args.child:
        return child_main(args, overrides)
    return parent_main(args, overrides)


if __name__ == "__main__":
    sys.exit(main())
