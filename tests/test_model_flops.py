"""Analytic LM training FLOPs against XLA's count, and the per-device peak FLOP/s."""

import json
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import pytest

from bigjax import peak_flops
from bigjax.model_flops import cost_analysis_flops, gpt_train_flops_per_token
from bigjax.models.gpt import GPT
from bigjax.peak_flops import measure_matmul_flops, peak_flops_per_device, table_peak_flops

BATCH = 2

# (model, seq_len, whether dropping the attention or the logits term must break 10%).
# The nano variant cut to 2 layers, with a vocabulary and a context long enough that the
# logits matmul (6 * embed * vocab) and the attention term (12 * layers * seq * embed) are
# each over 15% of the total, so that leaving either out misses XLA's count by more than
# 10% (checked below). The first model pads 1000 tokens to 1024 (vocab_multiple).
CASES = {
    "learned-mha-gelu-tied": (
        GPT(variant="nano", num_layers=2, vocab_size=1000, vocab_multiple=128, max_len=192),
        192, True),
    "rotary-gqa-swiglu-untied": (
        GPT(variant="nano", num_layers=2, vocab_size=2000, max_len=256, position="rotary",
            kv_heads=2, activation="swiglu", tie_embeddings=False, norm="rms_norm"),
        256, True),
    # The plain nano model on a tiny vocabulary and context: within 10% too, but its
    # attention (~4%) and logits (~1%) terms are too small for the check to tell them apart.
    "nano": (GPT(variant="nano", vocab_size=67, max_len=32), 32, False),
}


def _abstract_params(model, seq_len):
    tokens = jnp.zeros((1, seq_len), jnp.int32)
    variables = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), tokens, train=False))
    return nn.meta.unbox(variables["params"])


def _train_step_flops(model, seq_len):
    """XLA's FLOPs of value_and_grad of the mean next-token cross-entropy, jit-compiled."""

    def loss(params, tokens):
        logits, _ = model.apply({"params": params}, tokens[:, :-1], train=False)
        return optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()

    tokens = jax.ShapeDtypeStruct((BATCH, seq_len + 1), jnp.int32)
    compiled = jax.jit(jax.value_and_grad(loss)).lower(
        _abstract_params(model, seq_len), tokens).compile()
    return cost_analysis_flops(compiled)


@pytest.mark.parametrize("case", list(CASES))
def test_analytic_flops_match_xla_cost_analysis(case):
    model, seq_len, discriminates = CASES[case]
    xla = _train_step_flops(model, seq_len)
    assert xla is not None and xla > 0
    f = gpt_train_flops_per_token(model, seq_len)
    tokens = BATCH * seq_len
    # XLA's attention (implementation "xla", what CPU runs) computes the whole
    # seq x seq square and then masks it: compare the count without the causal saving.
    # XLA also counts the elementwise ops (norms, softmax, GELU, loss), which the analytic
    # count leaves out: the ratio is a little under 1 (0.94-0.98 here).
    ratio = tokens * f["total_no_causal_saving"] / xla
    print(f"{case}: analytic / cost_analysis = {ratio:.4f}")
    assert abs(ratio - 1) < 0.10, ratio
    if discriminates:
        for term in ("attention_flops", "logits_flops"):
            without = tokens * (f["total_no_causal_saving"] - f[term]) / xla
            assert abs(without - 1) > 0.10, (term, without)


@pytest.mark.parametrize("case", ["rotary-gqa-swiglu-untied", "learned-mha-gelu-tied"])
def test_params_are_the_matmul_kernels_and_the_output_projection(case):
    model, seq_len, _ = CASES[case]
    params = _abstract_params(model, seq_len)
    kernels = sum(math.prod(x.shape) for path, x in jax.tree_util.tree_leaves_with_path(params)
                  if jax.tree_util.keystr(path).endswith("['kernel']"))
    if model.config()["tie_embeddings"]:  # the word embeddings are the output projection
        kernels += math.prod(params["embeddings"]["word_embeddings"]["embedding"].shape)
    f = gpt_train_flops_per_token(model, seq_len)
    assert f["params"] == kernels
    assert f["params_flops"] == 6 * f["params"]
    assert f["total"] == f["params_flops"] + f["attention_flops_causal"]
    assert f["total_no_causal_saving"] == f["params_flops"] + f["attention_flops"]
    assert 2 * f["attention_flops_causal"] == f["attention_flops"]


def test_llama_1b_params_and_tying():
    llama = GPT(variant="llama-1b")
    f = gpt_train_flops_per_token(llama, 8192)
    # Llama 3.2 1B has 1,235,814,400 params, of which 16 * 2 + 1 RMSNorm scales of 2048
    # are not matmul weights; the tied embedding counts once, as the output projection.
    assert f["params"] == 1_235_814_400 - 33 * 2048
    assert f["params_non_embedding"] == f["params"] - 128256 * 2048
    # 12 * 16 layers * 8192 * 2048 per token, the full square.
    assert f["attention_flops"] == 12 * 16 * 8192 * 2048
    untied = gpt_train_flops_per_token(llama.clone(tie_embeddings=False), 8192)
    assert untied == f  # tying shares the weights, not the logits matmul


def test_cost_analysis_flops_shapes():
    class Fake:
        def __init__(self, cost):
            self.cost = cost

        def cost_analysis(self):
            if isinstance(self.cost, Exception):
                raise self.cost
            return self.cost

    assert cost_analysis_flops(Fake({"flops": 12.0})) == 12.0
    assert cost_analysis_flops(Fake([{"flops": 7.0}])) == 7.0
    for unavailable in (None, [], {}, {"bytes accessed": 1.0}, {"flops": float("nan")},
                        NotImplementedError("no cost model")):
        assert cost_analysis_flops(Fake(unavailable)) is None


@pytest.mark.parametrize("kind, dtype, expected, name", [
    ("TPU v4", jnp.bfloat16, 275e12, "TPU v4"),
    ("TPU v5 lite", jnp.bfloat16, 197e12, "TPU v5e"),
    ("TPU v5", jnp.bfloat16, 459e12, "TPU v5p"),
    ("TPU v6 lite", jnp.float32, 918e12, "TPU v6e"),
    ("NVIDIA H100 80GB HBM3", jnp.bfloat16, 989e12, "NVIDIA H100"),
    ("NVIDIA H100 80GB HBM3", "float32", 494.7e12, "NVIDIA H100"),
    ("NVIDIA H100 PCIe", jnp.bfloat16, 756e12, "NVIDIA H100 PCIe"),
    ("NVIDIA H200", jnp.bfloat16, 989e12, "NVIDIA H200"),
    ("NVIDIA A100-SXM4-40GB", jnp.bfloat16, 312e12, "NVIDIA A100"),
    ("NVIDIA A100 80GB PCIe", jnp.float16, 312e12, "NVIDIA A100"),
    ("NVIDIA L4", jnp.bfloat16, 121e12, "NVIDIA L4"),
])
def test_peak_table(kind, dtype, expected, name):
    assert table_peak_flops(kind, dtype) == (expected, name)


@pytest.mark.parametrize("kind", ["cpu", "TPU v4 lite", "NVIDIA L40S", "NVIDIA GeForce RTX 4090"])
def test_peak_table_has_no_entry(kind):
    assert table_peak_flops(kind) is None


def test_peak_flops_per_device_prefers_the_config():
    assert peak_flops_per_device(configured=1e12) == (1e12, "config")


def test_measured_matmul_flops_on_cpu():
    flops = measure_matmul_flops(jnp.float32, size=256, repeats=2)
    assert math.isfinite(flops) and flops > 0
    assert math.isfinite(measure_matmul_flops(jnp.float32, size=128, repeats=1, chain=3))


@pytest.mark.skipif(jax.devices()[0].platform != "cpu", reason="measures on CPU only")
def test_a_cpu_is_measured_once_and_its_rate_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("BIGJAX_CACHE_DIR", str(tmp_path))
    measured = []

    def measure(dtype, size, chain, device):
        measured.append((jnp.dtype(dtype).name, size, chain))
        return 1e9 * len(measured)

    monkeypatch.setattr(peak_flops, "measure_matmul_flops", measure)
    assert peak_flops_per_device(dtype="float32") == (1e9, "measured: 2048^2 float32 matmul")
    kept = f"measured: 2048^2 float32 matmul, kept in {tmp_path / 'peak_flops.json'}"
    assert peak_flops_per_device(dtype="float32") == (1e9, kept)  # read back, not measured
    assert peak_flops_per_device(dtype="bfloat16")[0] == 2e9  # another key: measured
    assert peak_flops_per_device(dtype="float32", keep=False)[0] == 3e9  # afresh ...
    assert peak_flops_per_device(dtype="float32")[0] == 1e9  # ... and not kept
    assert len(measured) == 3
    (key,) = [k for k in json.loads((tmp_path / "peak_flops.json").read_text())
              if "float32" in k]
    assert key.startswith("cpu|cpu|") and f"jax {jax.__version__}" in key

    (tmp_path / "peak_flops.json").write_text("{not json")  # damaged: measured over
    assert peak_flops_per_device(dtype="float32") == (4e9, "measured: 2048^2 float32 matmul")
    assert peak_flops_per_device(dtype="float32")[0] == 4e9


@pytest.mark.skipif(jax.devices()[0].platform != "cpu", reason="measures on CPU only")
def test_peak_flops_per_device_measures_a_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("BIGJAX_CACHE_DIR", str(tmp_path))
    flops, source = peak_flops_per_device(dtype="float32")  # about a second
    assert math.isfinite(flops) and flops > 0
    assert source == "measured: 2048^2 float32 matmul"
