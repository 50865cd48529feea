"""Sharding takes effect on a mesh of 8 fake CPU devices (measured by tests/mesh_probe.py in
one subprocess): activation constraints in the compiled step, a state layout that never
drifts, FSDP bytes per device, replication of what a mesh cannot divide, accumulation."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, cli_env, last_json_line, run_cli


@pytest.fixture(scope="module")
def probe() -> dict:
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tests", "mesh_probe.py")],
                          cwd=REPO, env=cli_env(devices=8), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_attention_activations_carry_the_tensor_sharding(probe):
    # Under jax.set_mesh the model's logical constraints are in the step: q/k/v/attention
    # outputs [batch, length, heads, kv] split batch over data and heads over tensor.
    inside = {tuple(c) for c in probe["constraints"]["inside"]}
    assert ('[{"data", "fsdp"}, {}, {"tensor"}, {}]', "8x32x4x32xf32") in inside
    assert ('[{"data", "fsdp"}, {}, {"tensor"}]', "8x32x512xf32") in inside  # MLP hidden
    assert probe["constraints"]["outside"] == []  # without the mesh context: none at all


def test_state_layout_never_drifts_and_the_step_compiles_once(probe):
    layout = probe["layout_after_steps"]
    assert layout["mismatched"] == []  # every leaf after 3 steps has its configured sharding
    assert layout["compiles"] == 1
    assert "P('tensor', 'fsdp')" in layout["distinct_specs"]  # really sharded, not replicated


def test_fsdp_splits_every_large_param_eightfold(probe):
    fsdp = probe["fsdp_bytes"]
    assert fsdp["large"] and all(shard * 8 == whole for shard, whole in fsdp["large"].values())
    # Small arrays (biases, norms) stay whole: device 0 holds just over an eighth.
    assert 1 / 8 <= fsdp["device_0"] / fsdp["total"] < 0.13


def test_what_the_mesh_cannot_divide_is_replicated(probe):
    fallback = probe["tensor_fallback"]  # 2 heads on a tensor axis of 4
    assert fallback["query"] == "P('fsdp', None, None)"  # heads replicated, embed still split
    assert fallback["mlp"] == "P('fsdp', 'tensor')"
    assert fallback["embedding"] == [[30720, 128], "P('tensor', 'fsdp')"]  # padded vocab


def test_params_without_logical_names_use_the_fsdp_tactic(probe):
    assert probe["cnn_fsdp"] == {"dense_0": "P('fsdp', None)", "head": "P(None, None)"}


def test_accumulation_equals_the_full_batch_on_eight_devices(probe):
    assert probe["accumulation"]["max_relative_difference"] < 1e-5


@pytest.mark.slow
def test_dry_run_reports_memory_and_flops_without_writing(tmp_path):
    workdir = tmp_path / "dry"
    proc = run_cli("main", "--config=configs/digits_cnn.py:runlocal", f"--workdir={workdir}",
                   "--dry_run", "--config.mesh.data=2", "--config.mesh.fsdp=4", devices=8)
    report = last_json_line(proc.stdout)
    assert report["mesh"] == {"data": 2, "fsdp": 4, "tensor": 1}
    assert report["params"] == 151306 and report["flops_per_step_per_device"] > 1e7
    assert report["flops_per_step"] == 8 * report["flops_per_step_per_device"]
    # FSDP over 4: the dense kernel (131k of the 151k params) is split in four.
    assert report["params_bytes_per_device"] < 0.4 * report["params"] * 4
    assert report["opt_state_bytes_per_device"] == pytest.approx(
        2 * report["params_bytes_per_device"], rel=0.01)
    assert report["step_temp_bytes_per_device"] > 0
    assert not workdir.exists()
    bad = run_cli("main", "--config=configs/digits_cnn.py:runlocal", f"--workdir={workdir}",
                  "--dry_run", "--config.batch_size=12", devices=8, check=False)
    assert bad.returncode == 1
    assert "config.batch_size=12 must be a multiple of the 8 devices" in bad.stderr
    bad = run_cli("main", "--config=configs/digits_cnn.py:runlocal", f"--workdir={workdir}",
                  "--dry_run", "--config.eval_batch_size=100", devices=8, check=False)
    assert "config.eval_batch_size=100 must be a multiple of the 8 devices" in bad.stderr


def test_dropout_masks_do_not_depend_on_the_sharding(probe):
    assert probe["sharded_dropout"] == {"shards": 8, "equal_to_unsharded": True,
                                        "equal_to_flax": True}
