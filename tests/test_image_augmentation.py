"""Image augmentation on device (flips, reflect-padded shifts, cutout, mixup, CutMix) and at
test time (TTA): deterministic per key, changing the images as documented, and the
mixed targets reaching the loss."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from bigjax.pp import image, image_mixing, rand_augment, test_time_augmentation
from bigjax.tasks.classification import Classification


def _images(n=8, size=8):
    rng = np.random.default_rng(0)
    return rng.integers(1, 256, (n, size, size, 3), dtype=np.uint8)  # no zero pixels


def _pp(**keys):
    return image.make_preprocess(ml_collections.ConfigDict(dict(normalize="zero_to_one", **keys)))


def test_flips_and_shifts_are_deterministic_per_key_and_change_the_images():
    batch = {"image": _images(), "label": np.arange(8, dtype=np.int32)}
    pp = _pp(flip=True, translate=2, translate_padding="reflect")
    a = pp(batch, jax.random.key(0), train=True)["inputs"]
    b = pp(batch, jax.random.key(0), train=True)["inputs"]
    c = pp(batch, jax.random.key(1), train=True)["inputs"]
    plain = pp(batch, jax.random.key(0), train=False)["inputs"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, plain)
    assert np.all(np.asarray(a) > 0)  # mirrored borders: never the zeros of zero padding
    zeros = _pp(translate=2)(batch, jax.random.key(0), train=True)["inputs"]
    assert np.any(np.asarray(zeros) == 0)


def test_random_flip_mirrors_about_half_of_the_images():
    images = jnp.asarray(_images(n=400))
    flipped = image.random_flip(jax.random.key(3), images)
    same = np.all(np.asarray(flipped) == np.asarray(images), axis=(1, 2, 3))
    mirrored = np.all(np.asarray(flipped) == np.asarray(images)[:, :, ::-1], axis=(1, 2, 3))
    assert np.all(same | mirrored) and 150 < mirrored.sum() < 250


def test_reflect_shift_cuts_a_window_of_the_mirrored_image():
    images = jnp.arange(1, 26, dtype=jnp.float32).reshape(1, 5, 5, 1)
    shifted = image.random_translate(jax.random.key(0), images, 2, "reflect")
    padded = np.pad(np.asarray(images), ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    windows = [padded[0, i:i + 5, j:j + 5] for i in range(5) for j in range(5)]
    assert any(np.array_equal(np.asarray(shifted[0]), w) for w in windows)


def test_cutout_zeroes_one_square_per_image_in_training_only():
    batch = {"image": _images(n=16, size=12), "label": np.arange(16, dtype=np.int32)}
    pp = _pp(cutout=5)
    a = np.asarray(pp(batch, jax.random.key(0), train=True)["inputs"])
    np.testing.assert_array_equal(a, pp(batch, jax.random.key(0), train=True)["inputs"])
    assert not np.array_equal(a, pp(batch, jax.random.key(1), train=True)["inputs"])
    assert np.all(np.asarray(pp(batch, jax.random.key(0), train=False)["inputs"]) > 0)
    corners = set()
    for img in a:
        zero = np.all(img == 0, axis=-1)  # the images have no zero pixel of their own
        rows, cols = np.nonzero(zero)
        assert zero.sum() == 25 and np.ptp(rows) == 4 and np.ptp(cols) == 4
        corners.add((rows.min(), cols.min()))
    assert len(corners) > 8  # each image its own square
    with pytest.raises(ValueError, match="cutout=13"):
        _pp(cutout=13)(batch, jax.random.key(0), train=True)


def test_mixup_blends_each_image_with_its_partner():
    x = jnp.asarray(_images(), jnp.float32)
    mixed, lam = image_mixing.mixup(jax.random.key(0), x, 0.4)
    assert 0 <= float(lam) <= 1
    np.testing.assert_allclose(mixed, lam * x + (1 - lam) * x[::-1], rtol=1e-6)


def test_cutmix_pastes_a_box_whose_share_is_one_minus_the_weight():
    x = jnp.asarray(_images(size=16), jnp.float32)
    for seed in range(5):
        mixed, lam = image_mixing.cutmix(jax.random.key(seed), x, 1.0)
        from_partner = np.all(np.asarray(mixed) == np.asarray(x[::-1]), axis=-1) & np.any(
            np.asarray(x) != np.asarray(x[::-1]), axis=-1)
        assert from_partner[0].mean() == pytest.approx(1 - float(lam), abs=1e-6)


def test_mixed_targets_reach_the_loss():
    batch = {"image": _images(), "label": np.arange(8, dtype=np.int32) % 4}
    out = _pp(mixup=0.5, cutmix=1.0)(batch, jax.random.key(2), train=True)
    assert {"mix_weight", "mix_label"} <= set(out)
    np.testing.assert_array_equal(out["mix_label"], batch["label"][::-1])
    task = Classification(4)
    logits = jax.random.normal(jax.random.key(0), (8, 4))
    loss, _ = task.loss(logits, out)
    w = np.asarray(out["mix_weight"])[:, None]
    target = w * np.eye(4)[batch["label"]] + (1 - w) * np.eye(4)[batch["label"][::-1]]
    assert float(loss) == pytest.approx(float(optax.softmax_cross_entropy(logits, target).mean()),
                                        rel=1e-6)
    plain, _ = task.loss(logits, {"label": batch["label"]})
    assert float(loss) != pytest.approx(float(plain), rel=1e-3)
    assert "mix_weight" not in _pp(mixup=0.5)(batch, jax.random.key(2), train=False)


def test_tta_views_and_weights():
    x = jnp.asarray(_images(n=2, size=6), jnp.float32)
    views = test_time_augmentation.views(x, "flip_translate")
    assert len(views) == 6 and sum(w for w, _ in views) == pytest.approx(1.0)
    np.testing.assert_array_equal(views[1][1], x[:, :, ::-1])
    np.testing.assert_array_equal(views[2][1][:, 1:, 1:], x[:, :-1, :-1])  # shifted down-right
    np.testing.assert_array_equal(views[4][1][:, :-1, :-1], x[:, 1:, 1:])

    def logits(inputs):  # not mirror-symmetric: the left column's mean
        return inputs[:, :, 0].mean(axis=(1, 2))[:, None]

    flip = test_time_augmentation.averaged_logits(logits, x, "flip")
    np.testing.assert_allclose(flip, (logits(x) + logits(x[:, :, ::-1])) / 2, rtol=1e-6)
    with pytest.raises(ValueError, match="choose one of"):
        test_time_augmentation.views(x, "rotate")


def test_affine_warp_rotates_about_the_centre():
    x = jnp.asarray(_images(n=1, size=7)[0], jnp.float32)
    quarter = rand_augment.affine_warp(x, rand_augment._rotation(jnp.float32(np.pi / 2)))
    matches = [np.allclose(quarter, np.rot90(np.asarray(x), k), atol=1e-3) for k in (1, 3)]
    assert any(matches)  # a quarter turn one way or the other, nothing lost or filled


def test_rotations_and_rand_augment_are_deterministic_per_key_and_change_the_images():
    batch = {"image": _images(n=16, size=16), "label": np.zeros(16, np.int32)}
    for keys in (dict(rotate=20.0), dict(rand_augment=(2, 9))):
        pp = _pp(**keys)
        a = np.asarray(pp(batch, jax.random.key(0), train=True)["inputs"])
        b = np.asarray(pp(batch, jax.random.key(0), train=True)["inputs"])
        c = np.asarray(pp(batch, jax.random.key(1), train=True)["inputs"])
        plain = np.asarray(pp(batch, jax.random.key(0), train=False)["inputs"])
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c), keys
        changed = np.any(np.abs(a - plain) > 1e-3, axis=(1, 2, 3))
        assert changed.mean() > 0.5, keys  # most images altered
        assert a.min() >= 0 and a.max() <= 1 + 1e-6  # still pixels, scaled to [0, 1]
    with pytest.raises(ValueError, match="rand_augment"):
        _pp(rand_augment=(2, 11))
