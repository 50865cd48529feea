"""Hugging Face GPT-2 / Llama import: logits parity with transformers (torch CPU, test-only),
the param tree, sharded files, init_from, and KV-cache decoding of an imported Llama."""

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from etils import epath

from bigjax import init_from
from bigjax.models.gpt import GPT
from bigjax.models.hf_gpt_import import (
    convert_hf_gpt,
    hf_config_to_kwargs,
    load_hf_gpt,
    read_safetensors,
)

import fake_gcs

os.environ.setdefault("HF_HUB_OFFLINE", "1")

VOCAB = 100
TOLERANCE = 1e-4
# Weights of std 0.2 (HF: 0.02) give logits of std ~1.6 and peaked attention, so that a
# wrong activation, rotary base or head order moves the logits by > 1e-3, not < 1e-5.
INIT = 0.2


def _save_tiny(tmp_path, model_type: str, **overrides):
    """Saves a randomly initialised tiny HF causal LM (2 layers, hidden 64, 4 heads) to
    tmp_path; returns the torch model."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    if model_type == "gpt2":
        config = transformers.GPT2Config(
            vocab_size=VOCAB, n_positions=32, n_embd=64, n_layer=2, n_head=4,
            bos_token_id=0, eos_token_id=0, initializer_range=INIT, **overrides)
        model = transformers.GPT2LMHeadModel(config)
    else:
        config = transformers.LlamaConfig(
            vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
            rope_theta=5000.0, initializer_range=INIT, **overrides)
        model = transformers.LlamaForCausalLM(config)
    with torch.no_grad():  # non-trivial norms (HF initialises them to ones / zeros)
        for name, p in model.named_parameters():
            if "norm" in name or "ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    model.eval()
    model.save_pretrained(tmp_path)
    return model


def _hf_logits(model, ids: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(ids).long()).logits.numpy()


def _ids(length: int = 12) -> np.ndarray:
    return np.random.default_rng(0).integers(0, VOCAB, (2, length), dtype=np.int32)


def _check_parity(folder, model, scan_layers: bool, label: str) -> dict:
    """Imports ``folder``, checks the tree against ``GPT.init`` and the logits against HF's;
    returns the params."""
    kwargs, params = load_hf_gpt(str(folder), scan_layers=scan_layers)
    gpt = GPT(**kwargs, scan_layers=scan_layers)
    ids = _ids()
    fresh = nn.unbox(gpt.init(jax.random.PRNGKey(0), jnp.asarray(ids), train=False)["params"])
    shapes = jax.tree.map(lambda x: x.shape, params)
    assert shapes == jax.tree.map(lambda x: x.shape, fresh)
    assert all(x.dtype == np.float32 for x in jax.tree.leaves(params))
    logits, _ = gpt.apply({"params": params}, jnp.asarray(ids), train=False)
    err = float(np.abs(np.asarray(logits) - _hf_logits(model, ids)).max())
    print(f"{label}: max abs logit difference {err:.2e}")
    assert err < TOLERANCE
    return params


@pytest.mark.parametrize("scan_layers", [False, True])
def test_gpt2_parity(tmp_path, scan_layers):
    model = _save_tiny(tmp_path, "gpt2")
    kwargs = load_hf_gpt(str(tmp_path))[0]
    assert kwargs["activation"] == "gelu_tanh" and kwargs["tie_embeddings"]
    assert kwargs["mlp_dim"] == 256 and kwargs["max_len"] == 32
    _check_parity(tmp_path, model, scan_layers, f"gpt2 scan_layers={scan_layers}")


@pytest.mark.parametrize("scan_layers", [False, True])
def test_llama_parity(tmp_path, scan_layers):
    model = _save_tiny(tmp_path, "llama", tie_word_embeddings=True)
    kwargs = load_hf_gpt(str(tmp_path))[0]
    assert kwargs["kv_heads"] == 2 and kwargs["rope_theta"] == 5000.0
    assert kwargs["tie_embeddings"]
    _check_parity(tmp_path, model, scan_layers, f"llama tied scan_layers={scan_layers}")


def test_llama3_rope_scaling_parity(tmp_path):
    """Llama 3.1's rescaled rotary frequencies (rope_type "llama3"): with original length
    32, low 1 and high 4, the 8 frequencies of a 16-wide head fall in all three bands
    (wavelength 6.3 kept, 18 interpolated, 53 and longer stretched 8x). Ignoring the
    scaling moves the logits well past the tolerance."""
    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
    model = _save_tiny(tmp_path, "llama", rope_scaling=scaling)
    kwargs, params = load_hf_gpt(str(tmp_path))
    assert kwargs["rope_scaling"] == (8.0, 1.0, 4.0, 32)
    ids = _ids(48)
    expected = _hf_logits(model, ids)
    for rope_scaling, close in ((kwargs["rope_scaling"], True), (None, False)):
        logits, _ = GPT(**{**kwargs, "rope_scaling": rope_scaling}).apply(
            {"params": params}, jnp.asarray(ids), train=False)
        err = float(np.abs(np.asarray(logits) - expected).max())
        assert (err < TOLERANCE) == close, (rope_scaling, err)
        if not close:
            assert err > 1e-3, err


def test_llama_untied_parity(tmp_path):
    model = _save_tiny(tmp_path, "llama", tie_word_embeddings=False)
    params = _check_parity(tmp_path, model, False, "llama untied")
    assert params["lm_head"]["kernel"].shape == (64, VOCAB)


@pytest.mark.parametrize("model_type", ["gpt2", "llama"])
def test_sharded_safetensors(tmp_path, model_type):
    model = _save_tiny(tmp_path / "one", model_type)
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    shards = sorted(p.name for p in (tmp_path / "sharded").glob("model-*.safetensors"))
    assert len(shards) > 1 and not (tmp_path / "sharded" / "model.safetensors").exists()
    params = _check_parity(tmp_path / "sharded", model, False, f"{model_type} sharded")
    one = load_hf_gpt(str(tmp_path / "one"))[1]
    jax.tree.map(np.testing.assert_array_equal, params, one)


def test_init_from_reads_a_gpt2_folder(tmp_path):
    _save_tiny(tmp_path, "gpt2")
    for scan_layers in (False, True):
        expected = load_hf_gpt(str(tmp_path), scan_layers=scan_layers)[1]
        got = init_from.read_source_params(str(tmp_path), scan_layers=scan_layers)
        jax.tree.map(np.testing.assert_array_equal, got, expected)


def test_a_sharded_folder_in_a_bucket_loads_like_the_local_one(tmp_path, monkeypatch):
    model = _save_tiny(tmp_path / "one", "llama")
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    with fake_gcs.serving("bigjax-hf") as env:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        for f in (tmp_path / "sharded").iterdir():
            epath.Path(f"gs://bigjax-hf/llama/{f.name}").write_bytes(f.read_bytes())
        remote = init_from.read_source_params("gs://bigjax-hf/llama")
    jax.tree.map(np.testing.assert_array_equal, remote, load_hf_gpt(str(tmp_path / "one"))[1])


def test_bfloat16_safetensors_read_as_torch_does(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    x = torch.randn(3, 5).to(torch.bfloat16)
    save_file({"x": x, "y": torch.arange(4, dtype=torch.int64)}, str(tmp_path / "t.safetensors"))
    read = read_safetensors((tmp_path / "t.safetensors").read_bytes())
    np.testing.assert_array_equal(read["x"].astype(np.float32), x.float().numpy())
    np.testing.assert_array_equal(read["y"], np.arange(4))


def test_llama_kv_cache_decoding_matches_hf(tmp_path):
    model = _save_tiny(tmp_path, "llama", tie_word_embeddings=False)
    kwargs, params = load_hf_gpt(str(tmp_path))
    gpt = GPT(**kwargs)
    ids = _ids()
    reference = _hf_logits(model, ids)  # [2, 12, vocab]
    prompt, total = 5, ids.shape[1]

    @jax.jit
    def step(cache, tokens, start):
        positions = start + jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
        (logits, _), mutated = gpt.apply(
            {"params": params, "cache": cache}, tokens, positions=positions, decode=True,
            train=False, mutable=["cache"])
        return logits[:, -1], mutated["cache"]

    cache = gpt.init_cache(ids.shape[0], total)
    last, cache = step(cache, jnp.asarray(ids[:, :prompt]), 0)
    errors = [np.abs(np.asarray(last) - reference[:, prompt - 1]).max()]
    for t in range(prompt, total):
        last, cache = step(cache, jnp.asarray(ids[:, t:t + 1]), t)
        errors.append(np.abs(np.asarray(last) - reference[:, t]).max())
    err = float(max(errors))
    print(f"llama KV-cache decoding: max abs logit difference {err:.2e}")
    assert err < TOLERANCE


def test_init_from_refuses_a_checkpoint_of_another_architecture(tmp_path):
    """RMSNorm vs a bias-free LayerNorm, or another RoPE base: equal param shapes, another
    model; init_from names the fields that differ."""
    from bigjax.models.hf_gpt_import import check_model_matches

    _save_tiny(tmp_path, "llama")
    kwargs = hf_config_to_kwargs(json.loads((tmp_path / "config.json").read_text()))
    check_model_matches(str(tmp_path), GPT(**kwargs).config())
    wrong = GPT(**{**kwargs, "norm": "layer_norm", "rope_theta": 10000.0}).config()
    with pytest.raises(ValueError, match=r"rope_theta=10000.0 \(checkpoint: 5000.0\), "
                                         r"norm='layer_norm' \(checkpoint: 'rms_norm'\)"):
        check_model_matches(str(tmp_path), wrong)


def test_config_errors():
    with pytest.raises(ValueError, match="'bert'.*gpt2, llama"):
        hf_config_to_kwargs({"model_type": "bert"})
    with pytest.raises(ValueError, match="'mistral'"):
        convert_hf_gpt({}, {"model_type": "mistral"})
    llama = dict(model_type="llama", vocab_size=10, hidden_size=8, num_hidden_layers=1,
                 num_attention_heads=2, intermediate_size=16, max_position_embeddings=16)
    assert hf_config_to_kwargs({**llama, "rope_theta": 500.0})["rope_theta"] == 500.0
    assert hf_config_to_kwargs(
        {**llama, "rope_parameters": {"rope_type": "default", "rope_theta": 7.0}}
    )["rope_theta"] == 7.0
    assert hf_config_to_kwargs({**llama, "rope_parameters": {
        "rope_type": "llama3", "rope_theta": 7.0, "factor": 8, "low_freq_factor": 1,
        "high_freq_factor": 4, "original_max_position_embeddings": 8192}})["rope_scaling"] \
        == (8.0, 1.0, 4.0, 8192)
    with pytest.raises(ValueError, match="rope_scaling.*'linear'.*'llama3'"):
        hf_config_to_kwargs({**llama, "rope_scaling": {"rope_type": "linear", "factor": 8.0}})
    with pytest.raises(ValueError, match="rope_parameters.*'linear'"):
        hf_config_to_kwargs({**llama, "rope_parameters": {"rope_type": "linear"}})
    with pytest.raises(ValueError, match="attention_bias"):
        hf_config_to_kwargs({**llama, "attention_bias": True})


def test_init_from_a_hf_folder_starts_training_from_its_weights(tmp_path, monkeypatch):
    """`config.init_from=<HF folder>` continues pretraining: the run's fresh state
    (`train.fresh_state`) starts at the imported params, never having initialised them at
    random (it asks `init_state` to skip every param the folder replaces), and trains on a
    corpus with its own tokenizer."""
    from bigjax import config_keys, param_paths, sharding, train

    _save_tiny(tmp_path / "hf", "llama")
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "train.txt").write_text("to be or not to be, that is the question\n" * 8)
    kwargs = hf_config_to_kwargs(json.loads((tmp_path / "hf" / "config.json").read_text()))
    config = config_keys.resolve(dict(
        data=dict(name="text_folder", path=str(tmp_path / "corpus"), eval_split="train",
                  prepared_dir=str(tmp_path / "prepared"),
                  lm=dict(tokenizer="char", context=16)),
        pp=dict(kind="lm"), model=dict(name="gpt", **kwargs), task="causal_lm",
        init_from=str(tmp_path / "hf"), batch_size=4, total_steps=2))
    exp = train.build_experiment(config)
    assert exp.tokenizer.vocab_size < VOCAB  # the data's ids fit the imported vocabulary
    skipped = []
    init_state = train.init_state
    monkeypatch.setattr(train, "init_state", lambda *args: skipped.append(set(args[4])) or
                        init_state(*args))
    state = train.fresh_state(exp)
    expected = load_hf_gpt(str(tmp_path / "hf"))[1]
    assert skipped == [set(param_paths.flatten(expected))]  # the folder holds every param
    for path, leaf in jax.tree_util.tree_leaves_with_path(nn.meta.unbox(state.params)):
        want = expected
        for key in path:
            want = want[key.key]
        np.testing.assert_array_equal(np.asarray(leaf), want)
    step = train.make_train_step(exp)
    with sharding.mesh_context(exp.mesh, exp.rules):
        _, metrics = step(state, sharding.put_batch(exp.train_batches[0], exp.mesh))
    assert np.isfinite(float(metrics["loss"]))
