"""Peak resident memory of a training process as its data set grows: ArrayRecord on disk.

Writes a synthetic image data set (random pixels, `--image` x `--image` RGB) of
`--examples` and of `--factor` times as many training examples as ArrayRecord files
(`bigjax/datasets/record_files.py`), trains the same small CNN on each for the same number
of steps (`python -m bigjax.main`, data.name="records"), and reads each process's peak
resident set size from the kernel (`os.wait4`). Reading by index, the process holds only
the batches in flight: its peak should not grow with the data set, while the data set
(in-memory size printed beside it) grows by `factor`.

    python scripts/measure_data_rss.py                  # 5,000 vs 50,000 96x96 images
    python scripts/measure_data_rss.py --quick          # ~20 s: 2,000 vs 20,000 of 96x96

Prints one JSON line per run and a final one with the growth in MB and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # this checkout's bigjax, whatever is installed

from bigjax.datasets import record_files  # noqa: E402

EVAL_EXAMPLES = 256


def write_synthetic(folder: str, examples: int, image: int, seed: int = 0) -> int:
    """Writes `train` (`examples`) and `test` (EVAL_EXAMPLES) splits; returns the bytes the
    train images would take in memory."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", examples), ("test", EVAL_EXAMPLES)):
        rows = ({"image": rng.integers(0, 256, (image, image, 3), dtype=np.uint8),
                 "label": np.int32(i % 10)} for i in range(count))
        record_files.write(folder, split, rows, "synthetic", 10)
    return examples * image * image * 3


def train_peak_rss_mb(folder: str, image: int, steps: int, workdir: str) -> float:
    """Trains on the prepared set in `folder`; the process's peak RSS in MB."""
    args = [sys.executable, "-m", "bigjax.main", "--config=configs/image_folder_cnn.py",
            f"--workdir={workdir}", "--config.data.name=records", f"--config.data.path={folder}",
            f"--config.data.input_shape=({image},{image},3)", f"--config.total_steps={steps}",
            "--config.total_epochs=None", "--config.eval_every_epochs=None",
            "--config.eval_every_steps=0", f"--config.log_every_steps={steps}",
            f"--config.checkpoint.every_steps={steps}", "--config.model.conv_features=(8,)",
            "--config.model.dense=(32,)", "--config.batch_size=32",
            "--config.eval_batch_size=128", "--config.optim.warmup_epochs=None",
            "--config.optim.warmup_steps=1",
            "--config.compilation_cache_dir="]  # both runs compile: a cache hit needs less memory
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    # Output to files, not pipes: the child must never block on a full pipe while this
    # process waits for it to end.
    with tempfile.TemporaryFile("w+") as out_file, tempfile.TemporaryFile("w+") as err_file:
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=out_file, stderr=err_file,
                                text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak, nobody else's
        proc.returncode = os.waitstatus_to_exitcode(status)
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read(), err_file.read()
    if proc.returncode != 0:
        raise SystemExit(f"training failed:\n{err[-3000:]}")
    json.loads(out.strip().splitlines()[-1])  # the final metrics line: the run finished
    return usage.ru_maxrss / 1024  # Linux reports KB


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=5000)
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--image", type=int, default=96, help="image height and width")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--quick", action="store_true", help="2,000 vs 20,000 96x96, 20 steps")
    parser.add_argument("--dir", default=None, help="where the data sets go (default: a "
                        "temporary folder, deleted after)")
    args = parser.parse_args(argv)
    if args.quick:
        args.examples, args.image, args.steps = 2000, 96, 20
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        rows = []
        for examples in (args.examples, args.examples * args.factor):
            folder = os.path.join(tmp, f"synthetic_{examples}")
            data_bytes = write_synthetic(folder, examples, args.image)
            peak = train_peak_rss_mb(folder, args.image, args.steps,
                                     os.path.join(tmp, f"run_{examples}"))
            row = {"examples": examples, "image": args.image,
                   "data_in_memory_mb": round(data_bytes / 2**20, 1),
                   "peak_rss_mb": round(peak, 1)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    small, large = rows
    summary = {"data_growth_mb": round(large["data_in_memory_mb"] - small["data_in_memory_mb"], 1),
               "peak_rss_growth_mb": round(large["peak_rss_mb"] - small["peak_rss_mb"], 1),
               "peak_rss_ratio": round(large["peak_rss_mb"] / small["peak_rss_mb"], 3)}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
