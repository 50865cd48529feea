"""Restores that fit large models: init_from and evaluation read params (and model state)
only, straight onto the target shardings; scanned and unscanned stacks load into each
other; `bigjax.evaluate` never reads the train split."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from bigjax import checkpoint, config_cli, datasets, init_from, models, param_paths, sharding
from bigjax.checkpoint import Checkpointer
from bigjax.evaluate import evaluate_checkpoint
from bigjax.train import train_and_evaluate
from bigjax.train_state import abstract_state, init_state, make_init_fn

from conftest import REPO


def _bert_state(scan: bool, seed: int):
    model = models.build(ml_collections.ConfigDict(dict(
        name="bert_classifier", variant="tiny", num_classes=2, vocab_size=500, max_len=16,
        scan_layers=scan)))
    tx = optax.adamw(1e-3)
    init_fn = make_init_fn(model, tx, jnp.ones((1, 16), jnp.int32))
    mesh = sharding.make_mesh(ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1)))
    _, shardings = abstract_state(init_fn, mesh, sharding.DEFAULT_RULES)
    return init_state(init_fn, seed, shardings), init_fn


def _save(state, workdir) -> None:
    checkpointer = Checkpointer(str(workdir), async_save=False)
    checkpointer.save(1, state, {"next_batch": 1})
    checkpointer.close()


@pytest.mark.parametrize("source_scan,target_scan", [(False, True), (True, False)])
def test_init_from_converts_between_scanned_and_unscanned_stacks(tmp_path, source_scan,
                                                                  target_scan):
    source, _ = _bert_state(source_scan, seed=1)
    _save(source, tmp_path)
    target, _ = _bert_state(target_scan, seed=2)
    loaded = init_from.read_source_params(str(tmp_path), target_scan, like=target.params)
    params, report = init_from.merge_params(target.params, loaded)
    assert report["new"] == [] and report["unused"] == []  # every layer param was matched
    src = param_paths.flatten(source.params)
    for name, value in param_paths.flatten(params).items():
        if "/layers/" in name:  # scanned here: layer i is the source's layers_i
            for i in range(value.shape[0]):
                np.testing.assert_array_equal(value[i], src[name.replace("/layers/",
                                                                         f"/layers_{i}/")])
        elif "/layers_" in name:
            i = int(name.split("/layers_")[1].split("/")[0])
            np.testing.assert_array_equal(value, src[name.replace(f"/layers_{i}/", "/layers/")][i])
        else:
            np.testing.assert_array_equal(value, src[name])
        assert value.sharding == param_paths.flatten(target.params)[name].sharding


def test_init_from_reads_params_only(tmp_path, monkeypatch):
    source, _ = _bert_state(False, seed=1)
    _save(source, tmp_path)
    asked = []
    real = checkpoint.restore_parts
    monkeypatch.setattr(checkpoint, "restore_parts",
                        lambda path, parts: asked.append(sorted(parts)) or real(path, parts))
    target, _ = _bert_state(False, seed=2)
    init_from.read_source_params(str(tmp_path), like=target.params)
    assert asked == [["params"]]  # never the optimizer moments


def test_vocab_padding_keeps_a_smaller_source_table(tmp_path):
    fresh = {"emb": jnp.zeros((8, 3)), "head": jnp.zeros((3, 4))}
    specs = {"emb": jax.sharding.PartitionSpec("vocab", "embed"),
             "head": jax.sharding.PartitionSpec("embed", None)}
    source = {"emb": np.ones((5, 3)), "head": np.ones((3, 2))}
    merged, report = init_from.merge_params(fresh, source, specs)
    np.testing.assert_array_equal(merged["emb"][:5], 1.0)
    np.testing.assert_array_equal(merged["emb"][5:], 0.0)
    np.testing.assert_array_equal(merged["head"], 0.0)  # not a vocab axis: a new head
    assert report["loaded"] == ["emb (padded (5, 3) -> (8, 3))"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("digits"))
    config = config_cli.load_config_file(os.path.join(REPO, "configs", "digits_cnn.py:runlocal"))
    config.model.norm = "batch"
    return workdir, config, train_and_evaluate(config, workdir)


def test_evaluate_reads_neither_the_train_split_nor_the_optimizer_state(digits_run,
                                                                      monkeypatch):
    workdir, config, final = digits_run
    splits, parts = [], []
    real_load, real_restore = datasets.load, checkpoint.restore_parts
    monkeypatch.setattr(datasets, "load",
                        lambda name, split, data_dir=None, examples=None, **kwargs:
                        splits.append(split) or real_load(name, split, data_dir, examples,
                                                          **kwargs))
    monkeypatch.setattr(checkpoint, "restore_parts",
                        lambda path, p: parts.append(sorted(p)) or real_restore(path, p))
    result = evaluate_checkpoint(config_cli.config_from_json(
        os.path.join(workdir, "config.json")), workdir)
    assert splits == ["test"] and parts == [["model_state", "params"]]
    assert result["confusion_matrix"] == final["confusion_matrix"]  # BatchNorm stats restored
    assert result["loss"] == pytest.approx(final["loss"], rel=1e-6)


def test_a_run_saved_before_model_state_existed_resumes(tmp_path):
    """Checkpoints and config.json written before `model_state`, `techniques` and the new
    config keys existed still resume (the layout of add030d and earlier)."""
    from bigjax import train

    config = config_cli.load_config_file(os.path.join(REPO, "configs", "digits_cnn.py:runlocal"))
    exp = train.build_experiment(config)
    state = init_state(exp.init_fn, 0, exp.state_shardings, exp.rules)
    old_layout = {"step": state.step, "params": state.params, "opt_state": state.opt_state,
                  "rng": state.rng}
    checkpointer = Checkpointer(str(tmp_path), async_save=False)
    checkpointer.save(3, old_layout, {"next_batch": 3})
    restored, _ = checkpointer.restore(3, exp.abstract_state)
    checkpointer.close()
    assert restored.model_state == {} and restored.techniques == {}
    np.testing.assert_array_equal(restored.params["head"]["kernel"], state.params["head"]["kernel"])
    saved = json.loads(config_cli.to_json(config))
    del saved["grad_accum_steps"], saved["model"]["param_dtype"], saved["optim"]["mu_dtype"]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    train.write_config(config, str(tmp_path), resuming=True)  # not refused
    del saved["optim"]["decay_exclude"]  # older runs decayed by rank: say how to keep that
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"--config.optim.decay_exclude=rank<2"):
        train.write_config(config, str(tmp_path), resuming=True)
    config.optim.decay_exclude = "rank<2"
    train.write_config(config, str(tmp_path), resuming=True)
    config.model.norm = "batch"  # a real change still is
    with pytest.raises(ValueError, match="model.norm"):
        train.write_config(config, str(tmp_path), resuming=True)


def test_init_from_a_batch_norm_run_loads_its_statistics(digits_run):
    from bigjax import train

    workdir, config, _ = digits_run
    exp = train.build_experiment(config)
    fresh = init_state(exp.init_fn, 1, exp.state_shardings, exp.rules)
    state = train.load_init_from(exp, fresh, workdir)
    saved = checkpoint.read_state_to_host(workdir, 20)["model_state"]
    mean = state.model_state["batch_stats"]["conv_norm_0"]["mean"]
    np.testing.assert_array_equal(mean, saved["batch_stats"]["conv_norm_0"]["mean"])
    assert not np.array_equal(mean, fresh.model_state["batch_stats"]["conv_norm_0"]["mean"])


def test_resuming_an_older_checkpoint_sets_the_newer_ones_aside(digits_run, tmp_path):
    workdir, config, _ = digits_run
    copy = str(tmp_path / "run")
    shutil.copytree(workdir, copy)
    train_and_evaluate(config, copy, step=10)  # e.g. to redo the steps after 10
    names = sorted(os.listdir(os.path.join(copy, "checkpoints")))
    assert names == ["10", "20", "20.superseded"]  # kept, not deleted; 20 written anew
    again = checkpoint.read_state_to_host(copy, 20)["params"]
    before = checkpoint.read_state_to_host(workdir, 20)["params"]
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(before), strict=True):
        np.testing.assert_array_equal(a, b)  # the same trajectory, now saved by this run


def test_init_from_with_another_body_is_refused_unless_partial(digits_run):
    from bigjax import train

    workdir, config, _ = digits_run
    config = config_cli.apply_overrides(config, [("model.conv_features", "(32, 16)"),
                                                 ("model.num_classes", "10")])
    exp = train.build_experiment(config)
    fresh = init_state(exp.init_fn, 1, exp.state_shardings, exp.rules)
    with pytest.raises(ValueError, match=r"does not match the model's body: \d+ params outside "
                                         r"the heads \(head\) .*conv_1/kernel \(shape"):
        train.load_init_from(exp, fresh, workdir)
    exp = train.build_experiment(config_cli.apply_overrides(config,
                                                            [("init_from_partial", "true")]))
    state = train.load_init_from(exp, fresh, workdir)  # conv_0 loaded, conv_1 fresh
    saved = checkpoint.read_state_to_host(workdir, 20)["params"]
    np.testing.assert_array_equal(state.params["conv_0"]["kernel"], saved["conv_0"]["kernel"])
    np.testing.assert_array_equal(state.params["conv_1"]["kernel"],
                                  fresh.params["conv_1"]["kernel"])


def test_a_larger_padded_source_table_gives_its_real_rows():
    fresh = {"emb": jnp.zeros((8, 3))}
    specs = {"emb": jax.sharding.PartitionSpec("vocab", "embed")}
    padded = np.concatenate([np.ones((6, 3)), np.zeros((6, 3))])  # 6 real rows, 6 padding
    merged, report = init_from.merge_params(fresh, {"emb": padded}, specs)
    np.testing.assert_array_equal(merged["emb"][:6], 1.0)
    assert report["loaded"] == ["emb (unpadded (12, 3) -> (8, 3))"]
    real = np.ones((12, 3))  # 12 real rows do not fit 8: a different vocabulary, not loaded
    _, report = init_from.merge_params(fresh, {"emb": real}, specs)
    assert report["new"] == ["emb (shape (12, 3) -> (8, 3))"]
