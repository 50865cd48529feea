"""Generate text from a language model's checkpoint, or translate with a translation
model's:

    python -m bigjax.predict --workdir=DIR [--step=N] [--max_new_tokens=N]
        [--temperature=T] [--top_k=K] [--top_p=P] [--seed=S] "ROMEO:" ["JULIET:" ...]
    python -m bigjax.predict --workdir=DIR [--beam_size=K] [--alpha=A]
        [--input_file=FILE] ["A man rides a bike." ...]

Reads `DIR/config.json` (`--config.KEY=VALUE` overrides apply on top) and the run's
`tokenizer.json`, restores the newest (or the given) checkpoint onto the current devices,
and decodes every text in one batch with the KV cache. A language model continues each
prompt (temperature 0, the default, is greedy) and prints it with its continuation; a
translation model translates each sentence (given on the command line, or one per line
of `--input_file`) by beam search (`--beam_size=1`: greedy) and prints one translation a
line. The output ends with one JSON line: `{"step": N, "samples": [...]}` or
`{"step": N, "translations": [...]}`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from bigjax import config_cli, run_files
from bigjax.main import parse_args, print_error, run_and_print, setup_logging, start_runtime

log = logging.getLogger("bigjax")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompts", nargs="*", help="texts to continue, or to translate")
    parser.add_argument("--max_new_tokens", type=int, default=100,
                        help="tokens generated per prompt at most (default 100)")
    parser.add_argument("--temperature", type=float, default=0.0,
                        help="sampling temperature; 0 = greedy (default)")
    parser.add_argument("--top_k", type=int, default=None,
                        help="sample among the k likeliest tokens")
    parser.add_argument("--top_p", type=float, default=None,
                        help="sample among the likeliest tokens holding this probability")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--beam_size", type=int, default=4,
                        help="translation: beams (1: greedy; default 4)")
    parser.add_argument("--alpha", type=float, default=0.6,
                        help="translation: length penalty ((5 + length) / 6) ** alpha "
                             "(default 0.6)")
    parser.add_argument("--input_file", default=None,
                        help="translation: a text file of sentences, one per line")


def predict(config, workdir: str, args: argparse.Namespace) -> dict:
    """The continuations of `args.prompts` by checkpoint `args.step` of `workdir`."""
    import jax
    import numpy as np

    from bigjax import sharding
    from bigjax.datasets.array_dataset import ArrayDataset
    from bigjax.evaluate import restore_model_variables
    from bigjax.experiment import build_model_parts
    from bigjax.generate import generate

    if config.data.get("translation"):
        return translate(config, workdir, args)
    if not config.data.get("lm"):
        raise ValueError(f"{workdir} holds a {config.model.name!r} model trained for task "
                         f"{config.task!r}; bigjax.predict generates text from language "
                         "models (config.data.lm) and translates with translation models "
                         "(config.data.translation); use bigjax.evaluate for the others.")
    if not args.prompts:
        raise ValueError("Give at least one prompt to continue.")
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


def translate(config, workdir: str, args: argparse.Namespace) -> dict:
    """The translations of `args.prompts` (and of the lines of `args.input_file`) by
    checkpoint `args.step` of `workdir`."""
    import jax
    import numpy as np

    from bigjax import sharding
    from bigjax.datasets.array_dataset import ArrayDataset
    from bigjax.datasets.translation_data import pad_rows
    from bigjax.evaluate import restore_model_variables
    from bigjax.experiment import build_model_parts
    from bigjax.translate import beam_search, greedy_decode

    sentences = list(args.prompts)
    if args.input_file:
        from etils import epath

        sentences += epath.Path(args.input_file).read_text(encoding="utf-8").splitlines()
    if not sentences:
        raise ValueError("Give sentences to translate on the command line or with "
                         "--input_file.")
    if args.beam_size < 1 or args.alpha < 0:
        raise ValueError("--beam_size must be >= 1 and --alpha >= 0.")
    lengths = config.data.translation
    parts = build_model_parts(config, workdir)
    # All-zero rows give the shapes: no data is read.
    shapes = ArrayDataset({"source_ids": np.zeros((1, lengths.max_source_len), np.int32),
                           "target_ids": np.zeros((1, lengths.max_target_len), np.int32)})
    step, variables = restore_model_variables(parts, workdir, args.step, shapes,
                                              doing="Translating with")
    tokenizer = parts.tokenizer
    rows = -(-len(sentences) // sharding.num_batch_shards(parts.mesh)) * \
        sharding.num_batch_shards(parts.mesh)
    source, cut = pad_rows(tokenizer.encode_batch(sentences + [""] * (rows - len(sentences))),
                           lengths.max_source_len, [], [tokenizer.eos_id])
    if cut:
        log.warning("%d sentences are longer than max_source_len=%d tokens and were cut.",
                    cut, lengths.max_source_len)
    ids = dict(max_len=lengths.max_target_len - 1, bos_id=tokenizer.bos_id,
               eos_id=tokenizer.eos_id, alpha=args.alpha)
    with sharding.mesh_context(parts.mesh, parts.rules):
        params = variables["params"]
        if args.beam_size == 1:
            tokens, _ = greedy_decode(parts.model, params, source, **ids)
        else:
            tokens, _ = beam_search(parts.model, params, source, beam_size=args.beam_size,
                                    **ids)
    translations = tokenizer.decode_batch(np.asarray(jax.device_get(tokens))[:len(sentences)])
    for text in translations:
        print(text, flush=True)
    return {"step": step, "translations": translations}


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
    start_runtime(args)
    return run_and_print(lambda: predict(config, args.workdir, args))


if __name__ == "__main__":
    sys.exit(main())
