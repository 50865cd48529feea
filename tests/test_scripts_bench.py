"""scripts/bench.py --smoke: a family's `runlocal` config, its train step built as training
builds it and timed for 5 steps, each in its own process; the script prints a markdown
table and a JSON line whose numbers agree with each other. Run here for the MLP, the CNN
and GPT (the three ways of counting FLOPs: dense and convolution jaxprs, GPT's 6N +
attention; about 30 s; every family is 2 minutes on 2 cores); every other size is checked
in-process to be a valid config. Without the offline data a family runs on synthetic data
of the same shapes (its rows say so). `--peers` (the PyTorch / Keras scripts, minutes) is
not run here: its table is checked on canned results of those scripts."""

import ast
import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

from conftest import REPO, cli_env

SCRIPT = os.path.join(REPO, "scripts", "bench.py")
FAMILIES = ["mlp", "cnn", "bert", "gpt", "transformer", "resnet", "vit"]
SMOKE_FAMILIES = ["mlp", "cnn", "gpt"]
COLUMNS = ["family", "size", "params", "batch", "step ms", "examples/s", "tokens/s",
           "GFLOP/step", "TFLOP/s/device", "MFU", "compile s", "CPU/wall", "data"]


def load_script():
    """scripts/bench.py as a module (its main() does not run)."""
    spec = importlib.util.spec_from_file_location("scripts_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up while defined
    spec.loader.exec_module(module)
    return module


def table_rows(stdout: str, first_column: str) -> list[dict[str, str]]:
    """The rows of the markdown table whose header starts with `first_column`."""
    lines = stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_column} |"))
    header = [c.strip() for c in lines[at].strip("|").split("|")]
    rows = []
    for line in lines[at + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (c.strip() for c in line.strip("|").split("|")),
                             strict=True)))
    return rows


@pytest.mark.slow
def test_smoke_times_runlocal_rows_with_consistent_numbers():
    proc = subprocess.run([sys.executable, SCRIPT, "--smoke", "--families",
                           ",".join(SMOKE_FAMILIES)], cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["smoke"] and result["steps"] == 5 and result["peer_rows"] is None
    rows = result["rows"]
    assert [r["family"] for r in rows] == SMOKE_FAMILIES  # one row each, in order
    assert [r["config"] for r in rows] == [  # on its config's runlocal variant
        "configs/mnist_mlp.py:runlocal", "configs/mnist_cnn.py:runlocal",
        "configs/shakespeare_char.py:runlocal"]
    peak = result["peaks"]["float32"]
    assert peak["flops"] > 0 and peak["source"].startswith("measured: ")  # a CPU: measured
    assert f"({peak['source']}, " in proc.stdout
    printed = table_rows(proc.stdout, "family")
    assert [list(p) for p in printed] == [COLUMNS] * len(rows)
    for r, p in zip(rows, printed, strict=True):
        what = (r["family"], r["size"])
        assert r["steps"] == 5 and r["step_s"] > 0 and r["compile_s"] > 0, what
        assert math.isfinite(r["loss"]), what
        assert r["train_s"] == pytest.approx(5 * r["step_s"]), what
        assert r["examples_per_s"] == pytest.approx(r["batch"] / r["step_s"]), what
        # TFLOP/s and MFU are training's `Throughput.scalars` of this step rate.
        flops_per_s = r["flops_per_step"] / r["step_s"] / r["devices"]
        assert r["tflops_per_s_per_device"] * 1e12 == pytest.approx(flops_per_s), what
        assert r["peak_per_device"] == peak["flops"], what  # one peak for every row
        assert r["mfu"] == pytest.approx(flops_per_s / peak["flops"]), what
        assert 0 < r["mfu"] < 1, what
        # The analytic count is near XLA's (which adds elementwise work and, for GPT, the
        # causal attention's masked half).
        assert 0.5 < r["flops_per_step"] / r["xla_flops_per_step"] < 1.2, what
        if r["family"] == "gpt":  # runlocal's context
            assert r["tokens_per_step"] == r["batch"] * 32, what
            assert r["tokens_per_s"] == pytest.approx(r["tokens_per_step"] / r["step_s"]), what
            assert float(p["tokens/s"]) == pytest.approx(r["tokens_per_s"], abs=0.5), what
        else:
            assert r["tokens_per_step"] is None and r["tokens_per_s"] is None, what
            assert p["tokens/s"] == "-", what
        # The printed row says the same: examples/s is batch / the printed step time.
        assert (p["family"], p["size"], int(p["batch"])) == (*what, r["batch"])
        step_ms = float(p["step ms"])
        assert step_ms == pytest.approx(r["step_ms"], abs=0.005), what
        assert float(p["examples/s"]) == pytest.approx(r["examples_per_s"], abs=0.5), what
        assert float(p["examples/s"]) == pytest.approx(1e3 * r["batch"] / step_ms,
                                                       rel=0.01, abs=1), what
        assert float(p["MFU"].rstrip("%")) == pytest.approx(100 * r["mfu"], abs=0.05), what
        assert p["data"] == r["data"] in ("real", "synthetic"), what


def test_every_size_is_a_valid_config_and_smoke_takes_the_first_of_each_family():
    bench = load_script()
    assert [s.family for s in bench.plan(bench.FAMILIES, smoke=True)] == FAMILIES
    assert len(bench.plan(["gpt", "mlp"], smoke=False)) == sum(
        s.family in ("gpt", "mlp") for s in bench.SIZES)
    accelerator = bench.plan(bench.FAMILIES, smoke=False, accelerator=True)
    chosen = bench.plan(["gpt", "vit"], smoke=False, accelerator=True,
                        names=("batch 32", "llama"))
    assert [s.name for s in chosen] == [s.name for s in bench.ACCELERATOR_SIZES if s.family
                                        == "gpt" and ("batch 32" in s.name or "Llama" in s.name)]
    assert 0 < len(chosen) < sum(s.family == "gpt" for s in bench.ACCELERATOR_SIZES)
    assert accelerator == list(bench.ACCELERATOR_SIZES) and not set(accelerator) & set(
        bench.SIZES)
    smoke = bench.plan(bench.FAMILIES, smoke=True)
    assert all(s.config.endswith("runlocal") for s in smoke)
    for size in (*bench.SIZES, *accelerator, *smoke):  # overrides name real keys, apply
        config = bench.size_config(size, peak=1e11)
        if size in accelerator:
            assert config.model.dtype == "bfloat16", size
        assert config.total_steps == bench.TOTAL_STEPS and config.steps_per_call == 1
        assert config.peak_flops_per_device == 1e11, size
        for key, value in size.overrides:
            node = config
            for part in key.split("."):
                node = node[part]
            expected = value if isinstance(node, str) else ast.literal_eval(value)
            assert (tuple(node) if isinstance(node, list | tuple) else node) == expected, \
                (size, key)


def test_peer_table_shows_ratios_and_skipped_peers():
    bench = load_script()
    peers = {
        "bench_mnist.py": {"result": {
            "mlp": {"bigjax": 900.0, "bigjax_multi": 1200.0, "pytorch": 400.0,
                    "keras_jax": None, "ratio_vs_pytorch": 3.0, "ratio_vs_keras": None},
            "cnn": {"bigjax": 90.0, "bigjax_multi": 60.0, "pytorch": 30.0,
                    "keras_jax": 45.0, "ratio_vs_pytorch": 3.0, "ratio_vs_keras": 2.0}},
            "returncode": 0},
        "bench_bert.py": {"result": {"workloads": {"mlm": {
            "sides": {"bigjax": {"what": "bigjax step", "examples_per_s": 50.0}},
            "ratios": {"bigjax": None}}}}, "returncode": 0},
        "bench_gpt.py": {"result": None, "returncode": 1},
    }
    rows = bench.peer_rows(peers)
    assert [(r["benchmark"], r["bigjax"], r["vs_pytorch"], r["vs_keras"]) for r in rows] == [
        ("bench_mnist.py", 1200.0, 3.0, None), ("bench_mnist.py", 90.0, 3.0, 2.0),
        ("bench_bert.py", 50.0, None, None)]
    printed = table_rows(bench.peer_table(rows, peers), "script")
    assert [(p["bigjax"], p["PyTorch"], p["Keras (JAX)"], p["bigjax / PyTorch"],
             p["bigjax / Keras"]) for p in printed[:3]] == [
        ("1200.0", "400.0", "skipped", "3.00x", "skipped"),
        ("90.0", "30.0", "45.0", "3.00x", "2.00x"),
        ("50.0", "skipped", "-", "skipped", "-")]  # torch not installed; no Keras side
    assert printed[3]["script"] == "bench_gpt.py" and "failed (exit 1)" in printed[3]["workload"]
