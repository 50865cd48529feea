"""ResNet, ViT and the speed-run ResNet: published parameter counts, BatchNorm state in
train and eval, the same step on 1 and 8 devices, scanned = unscanned ViT, and the
speed-run network's data-dependent (whitening) and dirac inits."""

import json
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from bigjax import models
from bigjax.models.layers.encoder import stack_layer_params
from bigjax.models.patch_whitening import patches, whitening_kernel
from bigjax.models.speed_resnet import SpeedResNet, dirac_init

from conftest import REPO


def _params(model, size):
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.ones((1, size, size, 3))))
    return sum(x.size for x in jax.tree.leaves(shapes["params"]))


@pytest.mark.parametrize("config, size, count", [
    (dict(name="resnet", num_classes=1000, variant="resnet50"), 224, 25_557_032),
    (dict(name="resnet", num_classes=1000, variant="resnet18"), 224, 11_689_512),
    (dict(name="vit", num_classes=1000, variant="B/16"), 224, 86_567_656),
    (dict(name="vit", num_classes=1000, variant="S/16"), 224, 22_050_664),
])
def test_published_parameter_counts(config, size, count):
    # torchvision's resnet50 / resnet18 and the ViT paper's B/16 (timm: vit_small 22.05M)
    assert _params(models.build(ml_collections.ConfigDict(config)), size) == count


def test_resnet_batch_stats_update_in_training_and_are_read_only_in_eval():
    model = models.build(ml_collections.ConfigDict(dict(
        name="resnet", num_classes=10, variant="resnet18", stem="cifar", width=2)))
    x = jax.random.normal(jax.random.key(1), (4, 4, 4, 3)) * 3 + 1
    @jax.jit
    def run(x):  # one compile: init, a train pass, eval with the old and the new stats
        variables = model.init(jax.random.key(0), x[:1])
        (_, _), updated = model.apply(variables, x, train=True, mutable=["batch_stats"])
        out_a, _ = model.apply(variables, x, train=False)
        out_b, _ = model.apply({**variables, **updated}, x, train=False)
        return variables, updated, out_a, out_b

    variables, updated, out_a, out_b = run(x)
    stem, old = updated["batch_stats"]["stem_norm"], variables["batch_stats"]["stem_norm"]
    # momentum 0.9: new = 0.9 * old + 0.1 * the batch's statistic
    conv = nn.Conv(2, (3, 3), padding=[(1, 1), (1, 1)], use_bias=False)
    features = conv.apply({"params": variables["params"]["stem"]}, x)
    np.testing.assert_allclose(stem["mean"], 0.9 * old["mean"] + 0.1 * features.mean((0, 1, 2)),
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stem["var"], 0.9 * old["var"] + 0.1 * features.var((0, 1, 2)),
                               rtol=1e-4)
    # eval reads the running averages: the output depends on them, and nothing is written
    assert not np.allclose(out_a, out_b)
    with pytest.raises(Exception, match="batch_stats"):  # eval needs the running averages
        model.apply({"params": variables["params"]}, x, train=False)


@pytest.mark.parametrize("kind, last", [("basic", "norm_1"), ("bottleneck", "norm_2")])
def test_resnet_zero_init_residual_makes_every_block_start_as_its_shortcut(kind, last):
    from bigjax.models.resnet import ResNet, _Block

    x = jax.random.normal(jax.random.key(1), (1, 4, 4, 8))
    for zero in (True, False):
        model = ResNet(num_classes=10, zero_init_residual=zero)
        block = _Block(kind, 8 if kind == "basic" else 2, 1, model.make_norm(train=False),
                       model.make_conv())
        out, variables = block.init_with_output(jax.random.key(0), x)
        assert np.all(variables["params"][last]["scale"] == (0 if zero else 1))
        if zero:  # the residual branch adds nothing: the block is relu(shortcut) = relu(x)
            np.testing.assert_allclose(out, jax.nn.relu(x), atol=1e-6)
        else:
            assert not np.allclose(out, jax.nn.relu(x), atol=1e-3)


@pytest.mark.slow
def test_one_and_eight_devices_take_the_same_steps_with_global_batch_norm():
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tests", "vision_mesh_probe.py")],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in ("resnet", "vit"):
        assert out[name]["loss_8"] == pytest.approx(out[name]["loss_1"], rel=1e-6)
        assert out[name]["params"] < 2e-6, name
    assert out["resnet"]["model_state"] < 2e-6
    # Statistics per device (2 examples each) would be far off: the step is global.
    assert out["resnet"]["per_device_vs_global"] > 1e-2
    # The ViT's heads and MLP are split over `tensor`, its width over `fsdp`.
    specs = out["vit"]["specs"]
    assert specs["encoder/layers_0/attention/query/kernel"] == ["fsdp", "tensor", None]
    assert specs["encoder/layers_0/mlp/wi/kernel"] == ["fsdp", "tensor"]


def test_vit_scanned_and_unscanned_stacks_compute_the_same():
    config = dict(name="vit", num_classes=10, variant="Ti/4", depth=3, width=16, num_heads=2,
                  mlp_dim=32)
    x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
    plain = models.build(ml_collections.ConfigDict(config))
    params = nn.meta.unbox(plain.init(jax.random.key(0), x)["params"])
    params["head"]["kernel"] = jax.random.normal(jax.random.key(2), params["head"]["kernel"].shape)
    scanned = models.build(ml_collections.ConfigDict({**config, "scan_layers": True,
                                                      "remat": True}))
    stacked = {**params, "encoder": stack_layer_params(params["encoder"], 3)}
    a, _ = plain.apply({"params": params}, x)
    b, _ = scanned.apply({"params": stacked}, x)
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    assert np.abs(a).max() > 1e-3  # not the zero-initialised head's zeros


def test_vit_pooling_and_variant_errors():
    x = jnp.ones((2, 16, 16, 3))
    for pool, positions in (("token", 17), ("gap", 16)):
        model = models.build(ml_collections.ConfigDict(dict(
            name="vit", num_classes=10, variant="Ti/4", depth=1, pool=pool, width=12)))
        params = nn.meta.unbox(jax.eval_shape(model.init, jax.random.key(0), x)["params"])
        assert params["position_embeddings"].shape == (positions, 12)
        assert ("class_token" in params) == (pool == "token")
    with pytest.raises(ValueError, match="<size>/<patch>"):
        models.build(ml_collections.ConfigDict(dict(name="vit", num_classes=10,
                                                    variant="M/16"))).init(
            jax.random.key(0), x)
    with pytest.raises(ValueError, match="multiples of 16"):
        models.build(ml_collections.ConfigDict(dict(name="vit", num_classes=10,
                                                    variant="Ti/16"))).init(
            jax.random.key(0), jnp.ones((1, 24, 24, 3)))


def test_dirac_init_passes_the_first_channels_through():
    kernel = dirac_init()(jax.random.key(0), (3, 3, 4, 6))
    x = jax.random.normal(jax.random.key(1), (1, 5, 5, 4))
    y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(y[..., :4], x, atol=1e-6)  # identity on the first 4 outputs
    # the rest: PyTorch's default init, U(+-1/sqrt(fan_in)), which the recipe's rates assume
    big = np.asarray(dirac_init()(jax.random.key(0), (3, 3, 64, 256))[..., 64:])
    assert np.abs(big).max() <= 1 / np.sqrt(9 * 64)
    assert big.std() == pytest.approx(1 / np.sqrt(3 * 9 * 64), rel=0.02)


def test_whitening_kernel_decorrelates_patches():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(64, 9, 9, 1))
    images = np.concatenate([base, 0.5 * base + 0.1 * rng.normal(size=base.shape),
                             rng.normal(size=base.shape) * 3], axis=-1)  # correlated channels
    kernel = whitening_kernel(images, 2, eps=0.0)
    assert kernel.shape == (2, 2, 3, 24)
    flat = patches(images, 2)
    out = (flat - flat.mean(0)) @ kernel.reshape(12, 24)[:, :12]
    np.testing.assert_allclose(np.cov(out.T, bias=True), np.eye(12), atol=1e-6)
    np.testing.assert_allclose(kernel[..., 12:], -kernel[..., :12])


def test_speed_resnet_depth_3_adds_a_residual_pair_of_convs():
    model = SpeedResNet(num_classes=10, widths=(8, 8, 8), group_depth=3)
    inputs = jax.random.normal(jax.random.key(1), (4, 16, 16, 3))
    variables = jax.jit(model.init)(jax.random.key(0), inputs[:1])
    params = variables["params"]
    assert {"group_2_conv_2", "group_2_norm_2"} <= set(params)
    assert "group_0_conv_2" not in jax.eval_shape(SpeedResNet(10, (8, 8, 8)).init,
                                                  jax.random.key(0), inputs[:1])["params"]

    @jax.jit
    def logits(p):
        return model.apply({**variables, "params": p}, inputs)[0]

    def scaled(p, name, factor):
        return {**p, name: {"kernel": p[name]["kernel"] * factor}}

    # the middle conv feeds only the branch: once the branch's last conv is zero it no
    # longer matters, while the group's first conv still does (the shortcut carries it)
    assert not np.allclose(logits(params), logits(scaled(params, "group_1_conv_1", 2.0)))
    cut = scaled(params, "group_1_conv_2", 0.0)
    np.testing.assert_allclose(logits(cut), logits(scaled(cut, "group_1_conv_1", 2.0)),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(logits(cut), logits(scaled(cut, "group_1_conv_0", 2.0)))
    with pytest.raises(ValueError, match="group_depth=3"):
        SpeedResNet(10, (8, 8, 8), residual=True, group_depth=3).init(
            jax.random.key(0), inputs[:1])


def test_speed_resnet_init_with_data_sets_the_whitening_kernel():
    model = SpeedResNet(num_classes=10, widths=(4, 4, 4))
    inputs = jax.random.normal(jax.random.key(1), (8, 16, 16, 3))
    params = model.init(jax.random.key(0), inputs[:1])["params"]
    new = model.init_with_data(params, inputs)
    expected = whitening_kernel(np.asarray(inputs, np.float64), 2, model.whiten_eps)
    np.testing.assert_allclose(new["whiten"]["kernel"], expected, rtol=1e-6)
    assert not np.allclose(params["whiten"]["kernel"], expected)
    np.testing.assert_array_equal(new["head"]["kernel"], params["head"]["kernel"])
    logits, _ = model.apply({"params": new, "batch_stats": model.init(
        jax.random.key(0), inputs[:1])["batch_stats"]}, inputs)
    assert logits.shape == (8, 10)
