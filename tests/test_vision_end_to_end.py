"""The vision configs from the command line: CIFAR-10 ResNet and ViT `runlocal` runs on
the offline JPEGs (metrics, TTA, per-class accuracy, the confusion-matrix PNG, the
whitening init kept frozen), and `--dry_run`s of the ImageNet configs on a 2x4 mesh."""

import os

import numpy as np
import pytest

from bigjax import config_cli, train

from conftest import REPO, last_json_line, read_state, run_cli


def test_cifar10_speed_resnet_runlocal(tmp_path, real_data_dir, monkeypatch):
    workdir = tmp_path / "resnet"
    final = last_json_line(run_cli("main", "--config=configs/cifar10_resnet.py:runlocal",
                                   f"--workdir={workdir}").stdout)
    assert final["step"] == 6
    for name in ("test", "test_tta"):
        assert 0 <= final[f"{name}/accuracy"] <= 1
        assert len(final[f"{name}/per_class_accuracy"]) == 10
        assert final[f"{name}/top5_accuracy"] >= final[f"{name}/accuracy"]
    # plot_confusion is set for test_tta only
    assert (workdir / "eval" / "test_tta_confusion_step_6.png").read_bytes()[:4] == b"\x89PNG"
    assert not list((workdir / "eval").glob("test_confusion*"))
    assert final["test_tta/loss"] != final["test/loss"]  # the views were averaged in

    # The whitening kernel came from the training images and stayed frozen.
    monkeypatch.setenv("BIGJAX_DATA_DIR", real_data_dir)
    config = config_cli.load_config_file(
        os.path.join(REPO, "configs", "cifar10_resnet.py:runlocal"))
    exp = train.build_experiment(config)
    saved = read_state(str(workdir), 6)["params"]
    expected = exp.init_params_with_data(saved)["whiten"]["kernel"]
    np.testing.assert_allclose(saved["whiten"]["kernel"], expected, rtol=1e-5, atol=1e-6)
    assert np.abs(saved["whiten"]["bias"]).max() > 0  # its bias trains


def test_cifar10_airbench96_variant_builds_its_network_and_cutout():
    """`:airbench96` validates, and its keys reach the model (a third conv per group) and
    the preprocessing (a 12-pixel square of zeros per training image)."""
    import jax
    import jax.numpy as jnp

    from bigjax import models
    from bigjax.pp import image

    config = config_cli.load_config_file(
        os.path.join(REPO, "configs", "cifar10_resnet.py:airbench96"))
    model = models.build(config.model)
    shapes = jax.eval_shape(model.init, jax.random.key(0),
                            jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32))["params"]
    assert shapes["group_2_conv_2"]["kernel"].shape == (3, 3, 512, 512)
    batch = {"image": np.full((4, 32, 32, 3), 200, np.uint8), "label": np.zeros(4, np.int32)}
    inputs = image.make_preprocess(config.pp)(batch, jax.random.key(0), train=True)["inputs"]
    assert (np.asarray(inputs) == 0).all(-1).sum(axis=(1, 2)).tolist() == [144] * 4


def test_cifar10_vit_runlocal(tmp_path, real_data_dir):
    final = last_json_line(run_cli("main", "--config=configs/cifar10_vit.py:runlocal",
                                   f"--workdir={tmp_path / 'vit'}").stdout)
    assert final["step"] == 6 and 0 <= final["test_tta/accuracy"] <= 1
    assert np.isfinite(final["test/loss"])


@pytest.fixture(scope="module")
def tiny_image_folder(tmp_path_factory):
    """3 classes of 64x64 JPEGs in train/ and validation/ (stands in for ImageNet)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for split, count in (("train", 12), ("validation", 3)):
        for c in range(3):
            folder = root / split / f"class_{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.jpg")
    return root


# ResNet-50's 25,557,032 params with a 3-class head; ViT-S/16 with gap pooling at 64x64
# (16 positions) and a 3-class head.
@pytest.mark.parametrize("config, params", [("imagenet_resnet50", 23_514_179),
                                            ("imagenet_vit", 21_596_931)])
def test_imagenet_configs_dry_run_on_a_2x4_mesh(tmp_path, tiny_image_folder, config, params):
    # The real model and recipe; only the data (no ImageNet here) and the head size differ.
    proc = run_cli("main", f"--config=configs/{config}.py:runlocal", "--dry_run",
                   f"--workdir={tmp_path / 'dry'}", "--config.data.name=image_folder",
                   f"--config.data.path={tiny_image_folder}", "--config.model.num_classes=3",
                   "--config.model.variant=" + ("resnet50" if "resnet" in config else "S/16"),
                   "--config.mesh.data=2", "--config.mesh.fsdp=4", devices=8, timeout=600)
    report = last_json_line(proc.stdout)
    assert report["mesh"] == {"data": 2, "fsdp": 4, "tensor": 1}
    assert report["params"] == params
    # fsdp=4 splits the large params: a device holds about a quarter of them.
    assert report["params_bytes_per_device"] < 4 * params / 4 * 1.1
    assert not (tmp_path / "dry").exists()
