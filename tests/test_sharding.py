"""The mesh, and the same training on 1 and on 8 (fake CPU) devices."""

import jax
import ml_collections
import numpy as np
import pytest

from bigjax import sharding

from conftest import last_json_line, read_state, run_cli


@pytest.mark.parametrize("axes,devices,expected", [
    (dict(data=-1, fsdp=1, tensor=1), 8, (8, 1, 1)),
    (dict(data=2, fsdp=-1, tensor=2), 8, (2, 2, 2)),
    (dict(data=-1, fsdp=1, tensor=1), 1, (1, 1, 1)),
])
def test_mesh_shape_fills_minus_one(axes, devices, expected):
    assert sharding.mesh_shape(ml_collections.ConfigDict(axes), devices) == expected


def test_bad_mesh_is_clear():
    with pytest.raises(ValueError, match="does not divide"):
        sharding.mesh_shape(ml_collections.ConfigDict(dict(data=3, fsdp=-1, tensor=1)), 8)
    with pytest.raises(ValueError, match="needs 4 devices"):
        sharding.mesh_shape(ml_collections.ConfigDict(dict(data=2, fsdp=2, tensor=1)), 8)


@pytest.mark.slow
def test_one_and_eight_devices_train_the_same(tmp_path):
    args = ["--config=configs/digits_cnn.py:runlocal", "--config.model.dropout_rate=0.0",
            "--config.checkpoint.every_steps=0"]
    one = last_json_line(run_cli("main", *args, f"--workdir={tmp_path / 'one'}").stdout)
    proc = run_cli("main", *args, f"--workdir={tmp_path / 'eight'}", devices=8)
    eight = last_json_line(proc.stdout)
    assert "'data': 8" in proc.stderr
    a, b = read_state(str(tmp_path / "one"), 20), read_state(str(tmp_path / "eight"), 20)
    # Float tolerance: the 8-device run sums gradients in a different order.
    for x, y in zip(jax.tree.leaves(a["params"]), jax.tree.leaves(b["params"]), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
    assert one["loss"] == pytest.approx(eight["loss"], rel=1e-4)
    assert one["confusion_matrix"] == eight["confusion_matrix"]
    # A checkpoint written on 1 device evaluates on an 8-device mesh to the same numbers.
    moved = last_json_line(run_cli("evaluate", f"--workdir={tmp_path / 'one'}", devices=8).stdout)
    assert moved["confusion_matrix"] == one["confusion_matrix"]
    assert moved["loss"] == pytest.approx(one["loss"], rel=1e-5)


@pytest.mark.slow
def test_bert_trains_the_same_with_data_fsdp_and_tensor_parallelism(tmp_path, real_data_dir,
                                                                    minilm):
    args = ["--config=configs/mlm_bert.py:runlocal", "--config.checkpoint.every_steps=0"]
    one = last_json_line(run_cli("main", *args, f"--workdir={tmp_path / 'one'}").stdout)
    proc = run_cli("main", *args, f"--workdir={tmp_path / 'mesh'}", "--config.mesh.data=2",
                   "--config.mesh.fsdp=2", "--config.mesh.tensor=2", devices=8)
    # Params are born sharded by their logical axis names (vocabulary padded to 30,720).
    assert "['bert']['embeddings']['word_embeddings']['embedding'] (30720, 128) " \
           "P('tensor', 'fsdp')" in proc.stderr
    assert "'data': 2, 'fsdp': 2, 'tensor': 2" in proc.stderr
    mesh = last_json_line(proc.stdout)
    assert mesh["loss"] == pytest.approx(one["loss"], rel=1e-3)
    assert mesh["num_tokens"] == one["num_tokens"]


def test_process_rows_on_one_process_is_the_whole_batch():
    mesh = sharding.make_mesh(ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1)))
    assert sharding.process_rows(mesh, 16) == slice(0, 16)
