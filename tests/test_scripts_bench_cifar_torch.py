"""scripts/bench_cifar_torch.py: airbench's recipe in PyTorch on the offline CIFAR-10 tar,
the peer of configs/cifar10_resnet.py. `--smoke` trains a small subset for one epoch on
the CPU; the whitening init is checked in-process."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, cli_env

SCRIPT = os.path.join(REPO, "scripts", "bench_cifar_torch.py")
torch = pytest.importorskip("torch",
                            reason="the PyTorch peer needs torch (pip install -e '.[bench]')")


def load_script():
    spec = importlib.util.spec_from_file_location("bench_cifar_torch", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_whitening_init_whitens_the_patches():
    """The frozen first conv maps the images' 2x2 patches to (nearly) unit variance and
    no correlation on its first 12 channels (the negated copies mirror them)."""
    script = load_script()
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(256, 3, 32, 32, generator=gen)
    images = base + 0.8 * base.roll(1, dims=3)  # correlated neighbours and channels
    net = script.build_net(torch, torch.nn, torch.nn.functional, (64, 256, 256), 2)
    script.init_whitening(torch, net.whiten, images)
    with torch.no_grad():
        out = torch.nn.functional.conv2d(images, net.whiten.weight)  # no bias: zero
    flat = out.permute(0, 2, 3, 1).reshape(-1, 24).double()
    cov = (flat.T @ flat / len(flat)).numpy()
    np.testing.assert_allclose(cov[:12, :12], np.eye(12), atol=0.02)
    np.testing.assert_allclose(cov[12:, 12:], cov[:12, :12], atol=1e-6)
    assert not np.allclose(np.cov(images.unfold(2, 2, 1).unfold(3, 2, 1).permute(
        0, 2, 3, 1, 4, 5).reshape(-1, 12).T.numpy()), np.eye(12), atol=0.1)


@pytest.mark.parametrize("depth", [2, 3])
def test_the_peer_network_computes_bigjax_s_logits(depth):
    """The peer's network with its weights copied into models/speed_resnet.py gives the
    same logits (eval mode, random BatchNorm biases): the same layers in the same order,
    and no weight left over (BatchNorm's frozen scale of ones aside)."""
    import jax

    from bigjax.models.speed_resnet import SpeedResNet

    script = load_script()
    widths = (8, 16, 32)
    torch.manual_seed(0)
    net = script.build_net(torch, torch.nn, torch.nn.functional, widths, depth).eval()
    params = {}
    for name, p in net.named_parameters():
        if "norm" in name and name.endswith("weight"):
            assert torch.equal(p, torch.ones_like(p))
            continue
        if "norm" in name:
            p.data.normal_()
        parts = name.split(".")
        if parts[0] == "groups":  # groups.<i>.conv<j>.weight / groups.<i>.norm<j>.bias
            kind, j = parts[2][:4], int(parts[2][4:]) - 1
            module = f"group_{parts[1]}_{kind}_{j}"
        else:
            module = parts[0]
        value = p.detach().numpy()
        if value.ndim == 4:  # [out, in, kh, kw] -> [kh, kw, in, out]
            value = value.transpose(2, 3, 1, 0)
        elif value.ndim == 2:  # [out, in] -> [in, out]
            value = value.T
        params.setdefault(module, {})["kernel" if name.endswith("weight") else "bias"] = value
    model = SpeedResNet(10, widths, group_depth=depth)
    x = torch.randn(4, 3, 32, 32)
    variables = jax.jit(model.init)(jax.random.key(0), np.zeros((1, 32, 32, 3), np.float32))
    assert jax.tree.structure(variables["params"]) == jax.tree.structure(params)
    ours, _ = jax.jit(model.apply)({**variables, "params": params},
                                   x.permute(0, 2, 3, 1).numpy())
    with torch.no_grad():
        theirs = net(x).numpy()
    np.testing.assert_allclose(np.asarray(ours), theirs, rtol=1e-4, atol=1e-5)


def test_augment_shifts_flips_and_cuts_out():
    """Each image is a window of its reflect-padded (maybe mirrored) self, shifted by up to
    4 pixels, with one 12x12 square zeroed; shifts to the edge and flips both occur."""
    script = load_script()
    n = 24
    images = torch.arange(1, 1 + n * 3 * 32 * 32, dtype=torch.float32).reshape(n, 3, 32, 32)
    gen = torch.Generator().manual_seed(0)
    out = script.augment(torch, torch.nn.functional, images, gen, translate=4, cutout=12)
    seen = set()
    for i in range(n):
        zero = (out[i] == 0).all(0)
        rows, cols = zero.nonzero(as_tuple=True)
        assert zero.sum() == 144 and rows.max() - rows.min() == 11
        assert cols.max() - cols.min() == 11
        padded = torch.nn.functional.pad(images[i:i + 1], (4,) * 4, mode="reflect")[0]
        match = [(flip, a, b) for flip, v in ((False, padded), (True, padded.flip(-1)))
                 for a in range(9) for b in range(9)
                 if torch.equal(torch.where(zero, 0.0, v[:, a:a + 32, b:b + 32]), out[i])]
        assert len(match) == 1
        seen.add(match[0])
    assert {flip for flip, _, _ in seen} == {False, True}
    assert any(max(abs(a - 4), abs(b - 4)) >= 3 for _, a, b in seen)


@pytest.mark.slow
def test_smoke_trains_and_reports_accuracies(real_data_dir):
    proc = subprocess.run([sys.executable, SCRIPT, "--smoke"], cwd=REPO,
                          env=cli_env(BIGJAX_DATA_DIR=real_data_dir), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["smoke"] and result["images"] == {"train": 512, "test": 256}
    (run,) = result["runs"]
    assert run["steps"] == 512 // 64 and run["train_s"] > 0
    for key in ("accuracy", "accuracy_tta"):
        assert 0 <= run[key] <= 1 and (run[key] * 256) == pytest.approx(round(run[key] * 256))
    assert "seed 0: 8 steps" in proc.stdout
