"""A GPT trains the same on any mesh: 20-step losses on 1 device and on 8 fake devices as
DP=8, FSDP=8, DP=2 x TP=4 and FSDP=4 x TP=2 (tests/gpt_mesh_probe.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, cli_env
from gpt_mesh_probe import MESHES, STEPS, losses


@pytest.mark.slow
def test_twenty_step_losses_match_across_meshes(real_data_dir):
    single = losses(dict(data=1, fsdp=1, tensor=1), real_data_dir)
    one = single["losses"]
    proc = subprocess.run([sys.executable, "tests/gpt_mesh_probe.py"], cwd=REPO,
                          env=cli_env(8), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meshes = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(meshes) == set(MESHES) and len(one) == STEPS
    assert one[-1] < one[0] - 0.3  # the steps learn: a broken update would not match by luck
    for name, found in meshes.items():
        # Float tolerance only: the devices sum in a different order.
        np.testing.assert_allclose(found["losses"], one, rtol=2e-4, err_msg=name)
        # Generation on the sharded params (rows padded to the batch shards) reads back
        # whole on the host, the same text as on one device.
        assert found["generated"] == single["generated"], name
    # The params really are split as the mesh says (embed over fsdp; heads, vocab over
    # tensor), so the equal losses are not those of replicated runs.
    shards = {name: found["shards"] for name, found in meshes.items()}
    # query kernel [embed 64, heads 4, head_dim 16]; word embeddings [vocab 72, embed 64]
    assert shards["dp8"] == {"query": [64, 4, 16], "embedding": [72, 64]}
    assert shards["fsdp8"] == {"query": [8, 4, 16], "embedding": [72, 8]}
    assert shards["dp2_tp4"] == {"query": [64, 1, 16], "embedding": [18, 64]}
    assert shards["fsdp4_tp2"] == {"query": [16, 2, 16], "embedding": [36, 16]}
