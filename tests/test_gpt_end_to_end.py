"""The GPT configs as a user runs them: train, generate, evaluate, dry-run (subprocesses)."""

from __future__ import annotations

import json

import pytest

from conftest import last_json_line, run_cli

pytestmark = pytest.mark.slow


def _rows(workdir) -> list[dict]:
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_char_gpt_trains_generates_and_evaluates(tmp_path, real_data_dir):
    workdir = tmp_path / "char"
    final = last_json_line(run_cli("main", "--config=configs/shakespeare_char.py:runlocal",
                                   f"--workdir={workdir}").stdout)
    rows = _rows(workdir)
    losses = [r["train/loss"] for r in rows if "train/loss" in r]
    assert losses[-1] < losses[0] - 0.3  # it learns
    perf = next(r for r in rows if "perf/mfu" in r)
    assert perf["perf/tokens_per_sec"] == pytest.approx(
        perf["train/steps_per_sec"] * 12 * 32, rel=1e-6)  # batch 12 x context 32
    assert 0 < perf["perf/mfu"] < 1 and perf["perf/tflops_per_sec_per_device"] > 0
    # Character level: bits per character = bits per token; the text is ASCII.
    assert final["val/bits_per_char"] == pytest.approx(final["val/bits_per_byte"], rel=1e-3)
    assert final["val/perplexity"] == pytest.approx(2 ** final["val/bits_per_token"], rel=1e-6)
    samples = final["samples/samples"]
    assert samples[0].startswith("ROMEO:") and samples[1].startswith("JULIET:")
    assert (workdir / "samples" / "step_20.txt").read_text().startswith("ROMEO:")
    tokenizer = json.loads((workdir / "tokenizer.json").read_text())
    assert "<|endoftext|>" in tokenizer["added_tokens"][0]["content"]
    # Generation from the checkpoint, with the run's tokenizer, prints the texts.
    proc = run_cli("predict", f"--workdir={workdir}", "ROMEO:", "To be", "--max_new_tokens=8")
    out = last_json_line(proc.stdout)
    assert out["step"] == 20
    assert out["samples"][0].startswith("ROMEO:") and out["samples"][1].startswith("To be")
    assert all(len(s) > 6 for s in out["samples"]) and "ROMEO:" in proc.stdout
    # Sampling is reproducible by seed; evaluation gives the run's own numbers.
    args = [f"--workdir={workdir}", "JULIET:", "--temperature=1.0", "--top_p=0.9",
            "--max_new_tokens=12"]
    first = last_json_line(run_cli("predict", *args, "--seed=3").stdout)["samples"]
    assert last_json_line(run_cli("predict", *args, "--seed=3").stdout)["samples"] == first
    again = last_json_line(run_cli("evaluate", f"--workdir={workdir}").stdout)
    assert again["val/loss"] == pytest.approx(final["val/loss"], rel=1e-6)
    assert again["samples/samples"] == samples
    bad = run_cli("predict", f"--workdir={workdir}", "x", "--max_new_tokens=40", check=False)
    assert bad.returncode == 1 and "exceeds the model's 32 positions" in bad.stderr


@pytest.mark.parametrize("config", ["shakespeare_bpe.py:runlocal", "gpt_pretrain.py:runlocal",
                                    "gpt_pretrain.py:llama-1b,runlocal"])
def test_each_gpt_config_runs_end_to_end(tmp_path, real_data_dir, config):
    workdir = tmp_path / "run"
    final = last_json_line(run_cli("main", f"--config=configs/{config}",
                                   f"--workdir={workdir}").stdout)
    assert final["step"] == 20 and final["val/bits_per_byte"] > 0
    assert (workdir / "tokenizer.json").exists() and final["samples/samples"]
    out = last_json_line(run_cli("predict", f"--workdir={workdir}", "ROMEO:",
                                 "--max_new_tokens=4").stdout)
    assert out["samples"][0].startswith("ROMEO:")


# Temporaries per device with full remat, measured with XLA:CPU (jax 0.10): 6.8 GB and
# 29 GB; most of llama-1b's are its [32, 8, 2048, 2048] float32 attention scores, which
# the fused cuDNN kernel never materializes. The bounds catch a lost remat or sharding.
@pytest.mark.parametrize("variant, params, temp_bound", [("gpt2-medium", 311_748_608, 8e9),
                                                         ("llama-1b", 989_923_328, 32e9)])
def test_dry_run_of_the_large_variants_on_a_2x4_mesh(tmp_path, real_data_dir, variant, params,
                                                     temp_bound):
    proc = run_cli("main", f"--config=configs/gpt_pretrain.py:{variant}",
                   f"--workdir={tmp_path / 'dry'}", "--dry_run", "--config.mesh.fsdp=2",
                   "--config.mesh.tensor=4", devices=8, timeout=600)
    report = last_json_line(proc.stdout)
    assert report["mesh"] == {"data": 1, "fsdp": 2, "tensor": 4}
    assert report["params"] == params  # 8,192-token vocabulary padded to 128s
    # Every large param is split over all 8 devices (fsdp on embed, tensor on heads/mlp/
    # vocab): a device holds about an eighth of the float32 params, and Adam twice that.
    assert report["params_bytes_per_device"] < 4 * params / 8 * 1.02
    assert report["opt_state_bytes_per_device"] == pytest.approx(
        2 * report["params_bytes_per_device"], rel=0.01)
    assert 0 < report["step_temp_bytes_per_device"] < temp_bound
    assert not (tmp_path / "dry").exists()
