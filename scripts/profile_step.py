"""Where a config's train step spends its time: one step traced with `jax.profiler`, each
XLA op's time mapped to the JAX source op that produced it and summed by kind.

    python scripts/profile_step.py --config=configs/imdb_bert.py [--config.KEY=VALUE ...]
        [--trace_dir=DIR] [--top=N]
    python scripts/profile_step.py --smoke     # CI: configs/digits_cnn.py:runlocal

The step is built as training builds it (`train.build_experiment`, `make_train_step`,
`init_state`), compiled and run twice, then traced once (a Perfetto trace under
`--trace_dir`, which TensorBoard's profile plugin also opens). The compiled HLO's
`op_name` metadata names the source of every fused op, so the op times of the trace are
grouped into kinds: matmul, dropout / random bits, softmax, layernorm, gelu, optimizer,
other. Op time is summed over the CPU's threads (it can exceed the step's wall time).
Prints a markdown table and, last, a JSON line with the step time and the kinds.
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# (kind, words any of which in an op's source path puts it there), first match wins.
KINDS = (
    ("dropout", ("dropout", "bernoulli", "threefry", "random_bits")),
    ("matmul", ("dot_general", "einsum", "conv_general")),
    ("softmax", ("softmax", "reduce_max", "logsumexp")),
    ("layernorm", ("layernorm", "_norm/", "batchnorm")),
    ("gelu", ("gelu", "erf")),
    ("optimizer", ("adam", "clip", "sgd", "scale_by")),
)


def kind_of(op_name: str) -> str:
    """The kind of an op from its source path (`jit(one_step)/.../attention/einsum`)."""
    lowered = op_name.lower()
    for kind, words in KINDS:
        if any(w in lowered for w in words):
            return kind
    return "other"


def op_sources(hlo_text: str) -> dict[str, str]:
    """`{HLO instruction name: op_name metadata}` of a compiled module's text."""
    sources = {}
    for line in hlo_text.splitlines():
        found = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = .*?op_name=\"([^\"]*)\"", line)
        if found:
            sources[found.group(1)] = found.group(2)
    return sources


def op_times(trace_dir: str) -> dict[str, float]:
    """`{event name: total microseconds}` of the complete events of the newest trace."""
    path = sorted(glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"),
                            recursive=True))[-1]
    with gzip.open(path) as f:
        events = json.load(f)["traceEvents"]
    totals: dict[str, float] = collections.Counter()
    for event in events:
        if event.get("ph") == "X" and "dur" in event:
            totals[event["name"]] += event["dur"]
    return totals


def profile(config, trace_dir: str, trace_steps: int = 1, top_n: int = 3) -> dict:
    """Step time (best of 2 after compiling) and op time per kind of `config`'s step
    (summed over `trace_steps` traced steps), with each kind's `top_n` largest source ops."""
    import jax

    from bigjax import sharding, train
    from bigjax.train_state import init_state

    exp = train.build_experiment(config)
    step = train.make_train_step(exp, 1)
    state = init_state(exp.init_fn, config.seed, exp.state_shardings, exp.rules)
    with sharding.mesh_context(exp.mesh, exp.rules):
        batch = sharding.put_batch(exp.train_batches[0], exp.mesh)
        times = []
        for _ in range(3):  # the first compiles
            start = time.perf_counter()
            state, metrics = step(state, batch)
            jax.block_until_ready(metrics)
            times.append(time.perf_counter() - start)
        jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
        for _ in range(trace_steps):
            state, metrics = step(state, batch)
        jax.block_until_ready(metrics)
        jax.profiler.stop_trace()
        sources = op_sources(step.lower(state, batch).compile().as_text())
    kinds: dict[str, float] = collections.Counter()
    top: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for name, micros in op_times(trace_dir).items():
        if name in sources:  # XLA ops only (not the runtime's own events)
            kind = kind_of(sources[name])
            kinds[kind] += micros / 1e3
            top[kind][sources[name]] += micros / 1e3
    return {"step_s": min(times[1:]), "batch_size": config.batch_size,
            "op_ms": dict(kinds.most_common()),
            "top": {k: v.most_common(top_n) for k, v in top.items()}}


def markdown(result: dict) -> str:
    total = sum(result["op_ms"].values())
    rows = ["| kind | op time (ms) | share | largest source op |", "|---|---|---|---|"]
    for kind, ms in result["op_ms"].items():
        largest = result["top"][kind][0][0].rsplit("/", 3)[-3:]
        rows.append(f"| {kind} | {ms:,.1f} | {100 * ms / total:.1f}% | {'/'.join(largest)} |")
    return "\n".join(rows)


def top_ops(result: dict) -> str:
    """The largest source ops of every kind, as a markdown table."""
    rows = ["| kind | source op | op time (ms) |", "|---|---|---:|"]
    for kind in result["op_ms"]:
        rows += [f"| {kind} | {name} | {ms:,.1f} |" for name, ms in result["top"][kind]]
    return "\n".join(rows)


def main() -> int:
    from bigjax import config_cli

    argv = sys.argv[1:]
    rest, overrides = config_cli.split_override_args(argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/imdb_bert.py")
    parser.add_argument("--smoke", action="store_true", help="digits CNN, seconds (CI)")
    parser.add_argument("--trace_dir", default=None, help="default: a temporary folder")
    parser.add_argument("--trace_steps", type=int, default=None,
                        help="steps traced (default 1; 5 with --smoke)")
    parser.add_argument("--top", type=int, default=0,
                        help="also list the N largest source ops of every kind")
    args = parser.parse_args(rest)
    spec = "configs/digits_cnn.py:runlocal" if args.smoke else args.config
    config = config_cli.apply_overrides(config_cli.load_config_file(os.path.join(REPO, spec)),
                                        overrides)
    trace_dir = args.trace_dir or tempfile.mkdtemp(prefix="bigjax-profile-")
    from bigjax import host_malloc

    host_malloc.keep_freed_memory()  # as bigjax's command line does
    result = profile(config, trace_dir, args.trace_steps or (5 if args.smoke else 1),
                     max(args.top, 1))
    print(f"{spec}: step {result['step_s']:.3f} s at batch {result['batch_size']} "
          f"(trace in {trace_dir})")
    print(markdown(result))
    if args.top:
        print(top_ops(result))
    print(json.dumps({k: v for k, v in result.items() if k != "top"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
