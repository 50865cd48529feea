"""Generate text from a language model's checkpoint:

    python -m bigjax.predict --workdir=DIR [--step=N] [--max_new_tokens=N]
        [--temperature=T] [--top_k=K] [--top_p=P] [--seed=S] "ROMEO:" ["JULIET:" ...]

Reads `DIR/config.json` (`--config.KEY=VALUE` overrides apply on top) and the run's
`tokenizer.json`, restores the newest (or the given) checkpoint onto the current devices,
decodes every prompt in one batch with the KV cache, prints each prompt with its
continuation, and ends with one JSON line: `{"step": N, "samples": [...]}`.
Temperature 0 (the default) is greedy decoding.
"""

from __future__ import annotations

import argparse
import logging
import sys

from bigjax import config_cli, run_files
from bigjax.main import init_distributed, parse_args, print_error, run_and_print, setup_logging

log = logging.getLogger("bigjax")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompts", nargs="+", help="texts to continue")
    parser.add_argument("--max_new_tokens", type=int, default=100,
                        help="tokens generated per prompt at most (default 100)")
    parser.add_argument("--temperature", type=float, default=0.0,
                        help="sampling temperature; 0 = greedy (default)")
    parser.add_argument("--top_k", type=int, default=None,
                        help="sample among the k likeliest tokens")
    parser.add_argument("--top_p", type=float, default=None,
                        help="sample among the likeliest tokens holding this probability")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")


def predict(config, workdir: str, args: argparse.Namespace) -> dict:
    """The continuations of `args.prompts` by checkpoint `args.step` of `workdir`."""
    import jax
    import numpy as np

    from bigjax import sharding
    from bigjax.datasets.array_dataset import ArrayDataset
    from bigjax.evaluate import restore_model_variables
    from bigjax.experiment import build_model_parts
    from bigjax.generate import generate

    if not config.data.get("lm"):
        raise ValueError(f"{workdir} holds a {config.model.name!r} model trained for task "
                         f"{config.task!r}; bigjax.predict generates text from language "
                         "models (config.data.lm), use bigjax.evaluate for the others.")
    if args.temperature < 0 or (args.top_k is not None and args.top_k < 1) or \
            (args.top_p is not None and not 0 < args.top_p <= 1):
        raise ValueError("--temperature must be >= 0, --top_k >= 1 and --top_p in (0, 1].")
    parts = build_model_parts(config, workdir)
    # One all-zero window gives the shapes: the corpus is not read.
    window = np.zeros((1, config.data.lm.context + 1), np.int32)
    shapes = ArrayDataset({"input_ids": window, "weights": np.ones((1, window.shape[1] - 1),
                                                                   np.float32)})
    step, variables = restore_model_variables(parts, workdir, args.step, shapes,
                                              doing="Generating from")
    tokenizer = parts.tokenizer
    encoded = [tokenizer.encode(p) if p else [tokenizer.eot_id] for p in args.prompts]
    encoded = [ids if len(ids) else [tokenizer.eot_id] for ids in encoded]
    with sharding.mesh_context(parts.mesh, parts.rules):
        outputs = generate(parts.model, variables["params"], encoded,
                           max_new_tokens=args.max_new_tokens, eot_id=tokenizer.eot_id,
                           rng=jax.random.PRNGKey(args.seed), temperature=args.temperature,
                           top_k=args.top_k, top_p=args.top_p,
                           batch_multiple=sharding.num_batch_shards(parts.mesh))
    samples = [p + tokenizer.decode(ids) for p, ids in zip(args.prompts, outputs, strict=True)]
    for text in samples:
        print(text, end="\n\n----------\n\n", flush=True)
    return {"step": step, "samples": samples}


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    try:
        args, overrides = parse_args(sys.argv[1:] if argv is None else argv,
                                     "Generate text from a bigjax language model.",
                                     need_config=False, add_arguments=add_arguments)
        config = config_cli.config_from_json(run_files.join(args.workdir, "config.json"))
        config = config_cli.apply_overrides(config, overrides)
    except config_cli.ConfigError as err:
        print_error(err)
        return 2
    init_distributed(args)
    return run_and_print(lambda: predict(config, args.workdir, args))


if __name__ == "__main__":
    sys.exit(main())
