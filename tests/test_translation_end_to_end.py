"""The Multi30k translation config as a user runs it: train, translate, evaluate on a
mesh (subprocesses)."""

from __future__ import annotations

import json

import pytest
import sacrebleu

from bigjax import datasets
from bigjax.datasets import translation

from conftest import data_dir, last_json_line, run_cli

pytestmark = pytest.mark.slow


def _train_losses(workdir) -> list[float]:
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [r["train/loss"] for r in rows if "train/loss" in r]


@pytest.fixture(scope="module")
def runlocal(tmp_path_factory):
    """`(workdir, final metrics)` of the runlocal config on one device (shared)."""
    if data_dir() is None:
        pytest.skip("offline data folder absent: set BIGJAX_DATA_DIR to a copy of shared/data")
    workdir = tmp_path_factory.mktemp("m30k") / "run"
    final = last_json_line(run_cli("main", "--config=configs/multi30k_transformer.py:runlocal",
                                   f"--workdir={workdir}").stdout)
    return workdir, final


def test_multi30k_runlocal_trains_translates_and_evaluates(tmp_path, runlocal, real_data_dir):
    workdir, final = runlocal
    assert final["step"] == 20
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    losses = _train_losses(workdir)
    assert losses[-1] < losses[0]
    perf = next(r for r in rows if "perf/mfu" in r)
    assert 0 < perf["perf/mfu"] < 1 and perf["perf/tokens_per_sec"] > 0
    assert final["val/perplexity"] > 1 and 0 <= final["val/accuracy"] <= 1
    # BLEU: the evaluator's number is sacrebleu's on the written translations against the
    # raw references (the same 48-sentence subset of the test split).
    references = datasets.subset_examples(
        translation.load_pairs("multi30k", "test", "en", "de", real_data_dir), 48, "test")
    references = [str(t) for t in references.features["target_text"]]
    for name in ("test_greedy", "test_beam"):
        written = (workdir / "translations" / f"{name}_step_20.txt").read_text().splitlines()
        assert len(written) == final[f"{name}/num_sentences"] == 48
        assert final[f"{name}/bleu"] == pytest.approx(
            sacrebleu.corpus_bleu(written, [references]).score, abs=1e-9)
        assert len(final[f"{name}/samples"]) == 3
    assert (workdir / "translations" / "test_beam_step_20_samples.txt").exists()
    tokenizer = json.loads((workdir / "tokenizer.json").read_text())
    assert [t["content"] for t in tokenizer["added_tokens"][:4]] == ["<pad>", "<s>", "</s>",
                                                                     "<unk>"]
    # Translation from the checkpoint: sentences on the command line and in a file,
    # greedy and by beam search.
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("Two dogs play in the snow.\nA woman reads a book.\n")
    proc = run_cli("predict", f"--workdir={workdir}", "A man rides a bike.",
                   f"--input_file={sentences}", "--beam_size=3")
    out = last_json_line(proc.stdout)
    assert out["step"] == 20 and len(out["translations"]) == 3
    # Greedy: what the test_greedy evaluator wrote for the same sentence (its first).
    first = final["test_greedy/samples"][0].split("\n")[0]
    greedy = last_json_line(run_cli("predict", f"--workdir={workdir}", first,
                                    "--beam_size=1").stdout)
    written = (workdir / "translations" / "test_greedy_step_20.txt").read_text()
    assert " ".join(greedy["translations"][0].split()) == written.splitlines()[0]
    # Decoding sharded over 8 devices (each decodes its rows; the tokens come back whole)
    # gives the one-device run's translations and BLEU.
    again = last_json_line(run_cli("evaluate", f"--workdir={workdir}", "--config.mesh.data=8",
                                   "--config.eval_batch_size=16", devices=8).stdout)
    for name in ("test_greedy", "test_beam"):
        assert again[f"{name}/bleu"] == pytest.approx(final[f"{name}/bleu"], abs=1e-6)
        assert again[f"{name}/samples"] == final[f"{name}/samples"]
    assert again["val/loss"] == pytest.approx(final["val/loss"], rel=1e-5)


def test_multi30k_trains_the_same_on_a_data_fsdp_tensor_mesh(tmp_path, runlocal):
    """8 fake devices as data 2 x fsdp 2 x tensor 2: the same losses as one device (the
    same batches; only the order of the sums differs), with the params really split."""
    one = _train_losses(runlocal[0])
    proc = run_cli("main", "--config=configs/multi30k_transformer.py:runlocal",
                   f"--workdir={tmp_path / 'mesh'}", "--config.evals.test_beam.every_steps=100",
                   "--config.evals.test_greedy.every_steps=100", "--config.mesh.data=2",
                   "--config.mesh.fsdp=2", "--config.mesh.tensor=2", devices=8)
    sharded, log = _train_losses(tmp_path / "mesh"), proc.stderr
    assert len(one) == 4 and one[-1] < one[0]
    assert sharded == pytest.approx(one, rel=2e-4)
    # Heads over tensor, embed over fsdp (the log lists the first params' shardings).
    assert "['cross_attention']['query']['kernel'] (32, 2, 16) P('fsdp', 'tensor', None)" in log
    assert "['attention']['out']['kernel'] (2, 16, 32) P('tensor', None, 'fsdp')" in log
