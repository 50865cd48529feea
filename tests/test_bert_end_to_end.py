"""BERT configs' `runlocal` variants through the CLI, and MLM pretraining -> fine-tuning."""

import json
import os

import numpy as np
import pytest

from bigjax import checkpoint, init_from, param_paths

from conftest import checkpoint_steps, last_json_line, run_cli

# `imdb_bert.py:tiny,runlocal` runs in test_mlm_pretraining_then_fine_tuning_from_its_checkpoint.
RUNS = ["imdb_bert.py:runlocal", "sst2_bert.py:runlocal", "agnews_bert.py:runlocal"]


@pytest.mark.slow
@pytest.mark.parametrize("config", RUNS)
def test_classification_runlocal(config, tmp_path, real_data_dir, minilm):
    # AG News also fine-tunes with frozen embeddings and layer-wise LR decay.
    extra = (["--config.optim.frozen=bert/embeddings/", "--config.optim.layer_lr_decay=0.8"]
             if config.startswith("agnews") else [])
    proc = run_cli("main", f"--config=configs/{config}", f"--workdir={tmp_path}", *extra)
    final = last_json_line(proc.stdout)
    assert final["num_examples"] == 96 and {"precision", "recall", "f1"} <= set(final)
    line = next(x for x in proc.stderr.splitlines() if "init_from minilm: loaded" in x)
    assert "loaded 103 params" in line and "classifier/kernel" in line
    if config == "sst2_bert.py:runlocal":  # short sentences: eval batches were cut
        _check_trimmed_eval_matches_full_width(str(tmp_path), final)
    if extra:
        assert "5 arrays frozen, 96 arrays scaled, 4 arrays full rate" in proc.stderr
        _check_only_the_frozen_params_kept_their_minilm_values(str(tmp_path))


def _check_only_the_frozen_params_kept_their_minilm_values(workdir: str) -> None:
    step = checkpoint_steps(workdir)[-1]
    trained = param_paths.flatten(checkpoint.read_state_to_host(workdir, step)["params"])
    source = param_paths.flatten(init_from.read_source_params("minilm"))
    frozen = [k for k in trained if k.startswith("bert/embeddings/")]
    assert len(frozen) == 5  # word, position, token-type embeddings and their norm
    for name in frozen:  # the word embeddings' vocabulary is padded: compare its real rows
        real = tuple(slice(0, n) for n in source[name].shape)
        np.testing.assert_array_equal(trained[name][real], source[name])
    moved = "bert/encoder/layers_0/mlp/wi/kernel"
    assert not np.array_equal(trained[moved], source[moved])


def _check_trimmed_eval_matches_full_width(workdir: str, final: dict) -> None:
    full = last_json_line(run_cli("evaluate", f"--workdir={workdir}",
                                  "--config.eval_trim_multiple=None").stdout)
    assert full["confusion_matrix"] == final["confusion_matrix"]
    assert full["loss"] == pytest.approx(final["loss"], rel=1e-5)
    # A workdir saved before the key existed can still set it.
    path = os.path.join(workdir, "config.json")
    with open(path) as f:
        saved = json.load(f)
    del saved["eval_trim_multiple"]
    with open(path, "w") as f:
        json.dump(saved, f)
    again = last_json_line(run_cli("evaluate", f"--workdir={workdir}",
                                   "--config.eval_trim_multiple=16").stdout)
    assert again["loss"] == pytest.approx(final["loss"], rel=1e-6)


@pytest.mark.slow
def test_mlm_pretraining_then_fine_tuning_from_its_checkpoint(tmp_path, real_data_dir, minilm):
    pretrain = str(tmp_path / "mlm")
    final = last_json_line(run_cli("main", "--config=configs/mlm_bert.py:runlocal",
                                   f"--workdir={pretrain}").stdout)
    assert final["num_tokens"] > 0 and final["perplexity"] > 1
    with open(os.path.join(pretrain, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    assert any("eval/perplexity" in r for r in rows)
    # Eval masks are fixed per batch: evaluating the checkpoint again gives the same numbers.
    again = last_json_line(run_cli("evaluate", f"--workdir={pretrain}").stdout)
    assert again["loss"] == pytest.approx(final["loss"], rel=1e-6)
    assert again["num_tokens"] == final["num_tokens"]
    proc = run_cli("main", "--config=configs/imdb_bert.py:tiny,runlocal",
                   f"--workdir={tmp_path / 'fine'}", f"--config.init_from={pretrain}")
    line = next(x for x in proc.stderr.splitlines() if f"init_from {pretrain}: loaded" in x)
    new = line.split("new (freshly initialised) ")[1].split("; unused")[0]
    assert "pooler/kernel" in new and "classifier/kernel" in new  # the new head
    assert "bert/" not in new  # the whole encoder came from the MLM run
    assert "mlm_head" in line  # the pretraining head is reported unused
    final = last_json_line(proc.stdout)
    assert final["num_examples"] == 96 and {"precision", "recall", "f1"} <= set(final)
