"""scripts/bench_mnist.py --smoke: every measurement (bigjax 1 and 5 steps per call,
PyTorch, Keras) of the MNIST MLP and CNN runs in its own process and the script prints
steps/s and ratios that parse as positive numbers (about 15-30 s: 8 short processes,
2 at a time). A peer that is not installed is skipped with the reason printed, and
the rest still measured."""

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO, cli_env

SCRIPT = os.path.join(REPO, "scripts", "bench_mnist.py")
PEERS = {"pytorch": "torch", "keras_jax": "keras"}
RATE = r"(\d+|skipped)"
RATIO = r"(\d+\.\d\dx|skipped)"


def run_script(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *args], cwd=REPO, env=cli_env(**env),
                          capture_output=True, text=True, timeout=300)


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def load_script():
    """scripts/bench_mnist.py as a module (its main() does not run)."""
    spec = importlib.util.spec_from_file_location("bench_mnist", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smoke() -> subprocess.CompletedProcess:
    proc = run_script("--smoke")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@pytest.mark.slow
def test_smoke_prints_steps_per_second_and_ratios(smoke):
    lines = smoke.stdout.strip().splitlines()
    for model, batch in (("mlp", 64), ("cnn", 32)):
        at = next(i for i, line in enumerate(lines) if line.startswith(f"{model} (batch"))
        rates = re.fullmatch(
            rf"{model} \(batch {batch}\), steps/s: bigjax (\d+), bigjax x5 steps/call (\d+), "
            rf"pytorch {RATE}, keras \(jax\) {RATE}", lines[at])
        ratios = re.fullmatch(rf"  bigjax \(best\) / pytorch = {RATIO}, "
                              rf"bigjax \(best\) / keras = {RATIO}", lines[at + 1])
        assert rates and ratios, smoke.stdout
        bigjax, bigjax_multi, pytorch, keras = rates.groups()
        assert int(bigjax) > 0 and int(bigjax_multi) > 0, lines[at]
        for value, ratio, module in ((pytorch, ratios.group(1), "torch"),
                                     (keras, ratios.group(2), "keras")):
            if installed(module):
                assert int(value) >= 0 and float(ratio.rstrip("x")) > 0, lines[at:at + 2]
            else:
                assert value == ratio == "skipped", lines[at:at + 2]
    assert re.fullmatch(r"targets: MLP >= 2x PyTorch: (met|MISSED|skipped); "
                        r"CNN >= Keras: (met|MISSED|skipped)", lines[-2]), smoke.stdout


@pytest.mark.slow
def test_smoke_json_has_positive_rates_or_skips_with_a_reason(smoke):
    results = json.loads(smoke.stdout.strip().splitlines()[-1])
    assert set(results) == {"mlp", "cnn"}
    for row in results.values():
        assert row["bigjax"] > 0 and row["bigjax_multi"] > 0, row
        for framework, module in PEERS.items():
            ratio = row[{"pytorch": "ratio_vs_pytorch", "keras_jax": "ratio_vs_keras"}[framework]]
            if installed(module):
                assert row[framework] > 0 and ratio > 0, row
            else:
                assert row[framework] is None and ratio is None, row
    for module in PEERS.values():  # each missing peer's reason, printed once
        line = f"{module}: not installed (pip install -e '.[bench]'), skipped"
        assert smoke.stdout.count(line) == (0 if installed(module) else 1), smoke.stdout


@pytest.mark.parametrize("framework", sorted(PEERS))
def test_a_missing_peer_is_skipped_with_the_reason(framework, tmp_path):
    # A package of the peer's name that cannot be imported, ahead on the path: the
    # measurement process reports it skipped, without loading data or timing anything.
    fake = tmp_path / PEERS[framework]
    fake.mkdir()
    (fake / "__init__.py").write_text(
        f"raise ModuleNotFoundError(\"No module named '{fake.name}'\", name='{fake.name}')\n")
    proc = run_script(f"--only={framework}:mlp", "--smoke", PYTHONPATH=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-4000:]
    reason = f"{fake.name}: not installed (pip install -e '.[bench]'), skipped"
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"skipped": reason}


def test_rows_with_a_skipped_peer_still_show_the_others(capsys):
    bench = load_script()
    measured = [("bigjax", {"steps_per_sec": 900.0}), ("bigjax_multi", {"steps_per_sec": 1200.0}),
                ("pytorch", {"steps_per_sec": 400.0}),
                ("keras_jax", {"skipped": "keras: not installed (...), skipped"})]
    skipped = {}
    row = bench.best_row(measured + measured, skipped)  # two rounds: the reason shown once
    assert row == {"bigjax": 900.0, "bigjax_multi": 1200.0, "pytorch": 400.0,
                   "keras_jax": None, "ratio_vs_pytorch": 3.0, "ratio_vs_keras": None}
    assert set(skipped) == {"keras_jax"}
    bench.print_row("mlp", row, 5)
    assert capsys.readouterr().out.splitlines() == [
        "keras: not installed (...), skipped",
        "mlp (batch 64), steps/s: bigjax 900, bigjax x5 steps/call 1200, pytorch 400, "
        "keras (jax) skipped",
        "  bigjax (best) / pytorch = 3.00x, bigjax (best) / keras = skipped"]
    assert bench.target_text(None, 1.0) == "skipped" and bench.target_text(3.0, 2.0) == "met"
