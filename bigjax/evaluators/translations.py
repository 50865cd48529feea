"""Evaluator type "translations": an encoder-decoder translates a split; corpus BLEU.

    config.evals.test_beam = dict(type="translations", split="test", beam_size=4, alpha=0.6)

Every source sentence of the split is decoded (greedy with `beam_size=1`, else beam
search; `bigjax/translate.py`) in batches sharded over the mesh; the tokens come back
replicated, so every process detokenizes the whole split and computes the same corpus
BLEU with sacrebleu against the raw reference sentences (the data's `target_text`,
never re-tokenized; sacrebleu's tokenizer for the target language: 13a, or zh / ja-mecab /
ko-mecab). Each translation's whitespace is collapsed to single spaces (one line each;
13a scores are unchanged by it). Returns `bleu`, its brevity penalty and length ratio, the mean
decoding score, and as texts the sacrebleu signature and `num_samples` sample
translations. Process 0 writes every translation, in split order, to
`workdir/translations/<name>_step_<N>.txt` (one line each: `sacrebleu REF < FILE`
reproduces the score, REF being the split's references, or the evaluator's `examples`
subset of them) and the samples beside it.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from etils import epath

from bigjax import run_files, sharding
from bigjax.evaluators.base import BatchedEvaluator, EvalSettings
from bigjax.translate import beam_search, greedy_decode

# Option keys of a translations evaluator and their defaults.
DEFAULTS = {"beam_size": 4, "alpha": 0.6, "max_decode_len": None, "num_samples": 10}


class TranslationsEvaluator(BatchedEvaluator):
    """`run(variables, step) -> {"bleu": ..., ...}` over the evaluator's split."""

    def __init__(self, settings: EvalSettings, model, task, preprocess, data, mesh, rules,
                 tokenizer=None):
        super().__init__(settings, model, task, preprocess, data, mesh, rules)
        if not hasattr(model, "encode") or not hasattr(tokenizer, "eos_id"):
            raise ValueError(f"Evaluator {settings.name!r} has type 'translations', which "
                             "needs an encoder-decoder (config.model.name='transformer') and "
                             "translation data (config.data.translation).")
        options = settings.resolved_options(DEFAULTS)
        self.tokenizer = tokenizer
        self.beam_size, self.alpha = int(options["beam_size"]), float(options["alpha"])
        self.num_samples = int(options["num_samples"])
        self.target_language = settings.options.get("target_language")
        self.max_len = int(options["max_decode_len"] or data.features["target_ids"].shape[1] - 1)
        if self.max_len > model.max_length():
            raise ValueError(f"config.evals.{settings.name}.max_decode_len={self.max_len} is "
                             f"more than the model's {model.max_length()} positions.")
        ids = dict(bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id, max_len=self.max_len,
                   alpha=self.alpha)

        def decode(params, batch):
            if self.beam_size == 1:
                tokens, scores = greedy_decode(model, params, batch["source_ids"], **ids)
            else:
                tokens, scores = beam_search(model, params, batch["source_ids"],
                                             beam_size=self.beam_size, **ids)
            return tokens, scores, batch["index"], batch["mask"]

        self._decode = jax.jit(decode, out_shardings=sharding.replicated(mesh))

    def translate(self, params) -> tuple[np.ndarray, list[str]]:
        """`(scores [n], translations [n])` of every example of the split, in split order."""
        n = len(self.data)
        scores, texts = np.zeros(n, np.float32), [""] * n
        with sharding.mesh_context(self.mesh, self.rules):
            for batch, _ in self.batches(with_index=True):
                tokens, batch_scores, index, mask = jax.device_get(self._decode(params, batch))
                mask = np.asarray(mask)
                rows = np.asarray(index)[mask]
                decoded = self.tokenizer.decode_batch(np.asarray(tokens)[mask])
                scores[rows] = np.asarray(batch_scores)[mask]
                for i, text in zip(rows, decoded, strict=True):
                    texts[i] = " ".join(text.split())
        return scores, texts

    def run(self, variables: dict, step: int = 0) -> dict[str, Any]:
        scores, hypotheses = self.translate(variables["params"])
        references = [str(t) for t in self.data.features["target_text"]]
        import sacrebleu  # here: its import costs every run ~0.2 s, and only this scores

        metric = sacrebleu.metrics.BLEU(trg_lang=self.target_language or "")
        bleu = metric.corpus_score(hypotheses, [references])
        sources = self.data.features["source_text"]
        samples = [f"{sources[i]}\n  reference:   {references[i]}\n  translation: "
                   f"{hypotheses[i]}" for i in range(min(self.num_samples, len(references)))]
        if self.settings.workdir and jax.process_index() == 0:
            folder = run_files.join(self.settings.workdir, "translations")
            epath.Path(folder).mkdir(parents=True, exist_ok=True)
            stem = f"{self.settings.name or 'eval'}_step_{step}"
            run_files.write_text(run_files.join(folder, f"{stem}.txt"),
                                 "".join(h + "\n" for h in hypotheses))
            run_files.write_text(run_files.join(folder, f"{stem}_samples.txt"),
                                 f"BLEU {bleu.score:.2f} ({metric.get_signature()})\n\n"
                                 + "\n\n".join(samples) + "\n")
        return {"bleu": float(bleu.score), "bleu_brevity_penalty": float(bleu.bp),
                "bleu_length_ratio": float(bleu.sys_len / max(bleu.ref_len, 1)),
                "mean_score": float(scores.mean()) if len(scores) else 0.0,
                "num_sentences": len(hypotheses),
                "bleu_signature": [str(metric.get_signature())], "samples": samples}
