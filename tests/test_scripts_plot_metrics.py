"""scripts/plot_metrics.py: plots the curves of a real `bigjax.main` run (the digits CNN's
runlocal, about 10 s) and of a hand-written metrics.jsonl into one readable PNG; a metric
a run never logged is a warning naming its keys, a folder without metrics.jsonl an error."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, cli_env, run_cli

SCRIPT = os.path.join(REPO, "scripts", "plot_metrics.py")
SIZE = (1320, 495)  # figsize (12, 4.5) inches at 110 dpi
BLUE, ORANGE = (31, 119, 180), (255, 127, 14)  # matplotlib's first two line colours


def plot(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *args], cwd=REPO, env=cli_env(),
                          capture_output=True, text=True, timeout=120)


def colour_pixels(image: np.ndarray, rgb: tuple[int, int, int]) -> tuple[int, int]:
    """How many pixels of (about) this colour the left and the right panel have."""
    near = np.abs(image[..., :3].astype(int) - rgb).sum(-1) < 30
    half = image.shape[1] // 2
    return int(near[:, :half].sum()), int(near[:, half:].sum())


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> str:
    workdir = str(tmp_path_factory.mktemp("plot") / "digits_cnn")
    run_cli("main", "--config=configs/digits_cnn.py:runlocal", f"--workdir={workdir}",
            timeout=180)
    return workdir


@pytest.fixture
def written_run(tmp_path) -> str:
    """A workdir with a metrics.jsonl written by hand: 4 train losses, 2 evals."""
    workdir = tmp_path / "by_hand"
    workdir.mkdir()
    rows = [{"step": s, "train/loss": 2.0 / s, "train/learning_rate": 1e-3} for s in range(1, 5)]
    rows += [{"step": 2, "eval/accuracy": 0.5}, {"step": 4, "eval/accuracy": 0.75}]
    (workdir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(workdir)


@pytest.mark.slow
def test_plots_both_runs_into_one_png(real_run, written_run, tmp_path):
    from PIL import Image

    out = tmp_path / "figs" / "curves.png"  # its folder is created
    proc = plot("--out", str(out), real_run, written_run)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip() == f"wrote {out}"
    assert "warning" not in proc.stderr  # both runs logged train/loss and eval/accuracy
    assert out.stat().st_size > 0
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == SIZE
        pixels = np.asarray(image.convert("RGB"))
    # Each run's curve, not just its legend entry (~120 pixels), is drawn in both panels.
    for colour in (BLUE, ORANGE):
        left, right = colour_pixels(pixels, colour)
        assert left > 300 and right > 300, (colour, left, right)


def test_a_metric_never_logged_is_a_warning_naming_the_keys(written_run, tmp_path):
    out = tmp_path / "curves.png"
    proc = plot("--out", str(out), "--metric", "eval/test/accuracy", written_run)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"warning: {written_run} logged no 'eval/test/accuracy'" in proc.stderr
    assert "its keys: eval/accuracy, train/learning_rate, train/loss" in proc.stderr
    assert out.stat().st_size > 0


def test_a_folder_without_metrics_is_an_error(tmp_path):
    proc = plot("--out", str(tmp_path / "curves.png"), str(tmp_path))
    assert proc.returncode == 2
    assert f"no metrics.jsonl in {tmp_path}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "curves.png").exists()
