"""The GPT model: causality, the KV cache, generation and sampling."""

from __future__ import annotations

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bigjax.generate import generate, left_pad
from bigjax.models.gpt import GPT, VARIANTS, gpt_config
from bigjax.models.layers.encoder import stack_layer_params
from bigjax.sampling import sample_logits

VOCAB = 67
EOT = VOCAB - 1
SHAPES = {
    "gpt2-like": dict(),
    "llama-like": dict(position="rotary", kv_heads=2, activation="swiglu", norm="rms_norm",
                       tie_embeddings=False, use_bias=False),
}


def tiny(**overrides) -> GPT:
    fields = dict(variant="nano", vocab_size=VOCAB, max_len=48, num_layers=2, hidden=32,
                  heads=4, mlp_dim=64)
    return GPT(**{**fields, **overrides})


def sharp_params(model: GPT, seed: int = 1) -> dict:
    """Params with the embeddings scaled up, so greedy choices are far from ties."""
    params = nn.meta.unbox(model.init(jax.random.PRNGKey(seed), jnp.zeros((1, 8), jnp.int32),
                                      train=False)["params"])
    return jax.tree_util.tree_map_with_path(
        lambda path, x: x * 10 if "word_embeddings" in jax.tree_util.keystr(path) else x, params)


def recompute_greedy(model: GPT, params, prompt: np.ndarray, steps: int,
                     eot: int = EOT) -> list[int]:
    """Greedy decoding by running the whole sequence again for every new token (in a
    buffer of fixed length: right padding changes no earlier logit, and one compile
    serves every step)."""
    length = model.max_length()
    forward = jax.jit(lambda p, ids: model.apply({"params": p}, ids, train=False)[0])
    seq = list(prompt)
    for _ in range(steps):
        buffer = np.zeros((1, length), np.int32)
        buffer[0, :len(seq)] = seq
        token = int(jnp.argmax(forward(params, buffer)[0, len(seq) - 1]))
        if token == eot:
            break
        seq.append(token)
    return seq[len(prompt):]


@pytest.mark.parametrize("shape", SHAPES)
def test_future_tokens_do_not_change_earlier_logits(shape):
    model = tiny(**SHAPES[shape])
    ids = jnp.asarray(np.random.default_rng(0).integers(0, VOCAB, (2, 16)))
    params = model.init(jax.random.PRNGKey(0), ids, train=False)["params"]
    before, _ = model.apply({"params": params}, ids, train=False)
    after, _ = model.apply({"params": params}, ids.at[:, 9:].set(3), train=False)
    np.testing.assert_array_equal(before[:, :9], after[:, :9])
    assert float(jnp.abs(before[:, 9:] - after[:, 9:]).max()) > 1e-3  # the rest does change


@pytest.mark.parametrize("shape", SHAPES)
def test_cached_decoding_gives_the_full_forward_logits(shape):
    model = tiny(**SHAPES[shape])
    ids = jnp.asarray(np.random.default_rng(1).integers(0, VOCAB, (2, 12)))
    params = model.init(jax.random.PRNGKey(0), ids, train=False)["params"]
    full, _ = model.apply({"params": params}, ids, train=False)
    cache = model.init_cache(2, 12)
    (logits, _), state = model.apply({"params": params, "cache": cache}, ids[:, :5],
                                     decode=True, train=False, mutable=["cache"],
                                     positions=jnp.broadcast_to(jnp.arange(5), (2, 5)))
    steps = [logits]
    for t in range(5, 12):
        (logits, _), state = model.apply(
            {"params": params, **state}, ids[:, t:t + 1], positions=jnp.full((2, 1), t),
            decode=True, train=False, mutable=["cache"])
        steps.append(logits)
    np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, atol=1e-5)
    with pytest.raises(ValueError, match="needs the tokens' positions"):
        model.apply({"params": params, **state}, ids[:, :1], decode=True, train=False,
                    mutable=["cache"])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scan", [False, True])
def test_batched_cached_generation_equals_recomputation(shape, scan):
    model = tiny(**SHAPES[shape], scan_layers=scan)
    params = sharp_params(tiny(**SHAPES[shape]))
    if scan:
        params = {**params, "decoder": stack_layer_params(params["decoder"], 2)}
    rng = np.random.default_rng(0)
    prompts = [rng.integers(0, EOT, n).astype(np.int32) for n in (1, 4, 9)]
    outputs = generate(model, params, prompts, max_new_tokens=12, eot_id=EOT,
                       rng=jax.random.PRNGKey(0))
    plain = tiny(**SHAPES[shape])
    unscanned = sharp_params(plain)
    for prompt, out in zip(prompts, outputs, strict=True):
        assert list(out) == recompute_greedy(plain, unscanned, prompt, 12)
    assert len({tuple(o) for o in outputs}) > 1  # the prompts lead to different texts


def test_generation_stops_at_the_end_of_text_token():
    model = tiny()
    params = nn.meta.unbox(model.init(jax.random.PRNGKey(3), jnp.zeros((1, 8), jnp.int32),
                                      train=False)["params"])
    for first in range(EOT):  # a prompt whose first two greedy tokens differ
        prompt = np.asarray([3, first], np.int32)
        free = recompute_greedy(model, params, prompt, 2, eot=-1)
        if free[0] != free[1]:
            break
    assert free[0] != free[1]
    for stop_after in (0, 1):  # call the (stop_after + 1)-th token "end of text"
        out = generate(model, params, [prompt], max_new_tokens=5, eot_id=free[stop_after],
                       rng=jax.random.PRNGKey(0))
        assert list(out[0]) == free[:stop_after]


def test_left_padding_and_too_long_requests():
    tokens, valid = left_pad([np.array([1, 2]), np.array([3])], multiple=4)
    assert tokens.tolist() == [[1, 2], [0, 3], [1, 2], [1, 2]]
    assert valid.tolist() == [[True, True], [False, True], [True, True], [True, True]]
    model = tiny()
    with pytest.raises(ValueError, match="exceeds the model's 48 positions"):
        generate(model, sharp_params(model), [np.arange(40)], max_new_tokens=9, eot_id=EOT,
                 rng=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="at least one token"):
        left_pad([np.array([], np.int32)])


def test_top_k_1_sampling_equals_greedy():
    logits = jax.random.normal(jax.random.PRNGKey(0), (64, VOCAB)) * 3
    greedy = sample_logits(logits, jax.random.PRNGKey(1), temperature=0.0)
    for seed in range(3):
        sampled = sample_logits(logits, jax.random.PRNGKey(seed), temperature=1.5, top_k=1)
        np.testing.assert_array_equal(sampled, greedy)
    model = tiny()
    params = sharp_params(model)
    prompts = [np.asarray([1, 2, 3], np.int32), np.asarray([7], np.int32)]
    greedy_text = generate(model, params, prompts, max_new_tokens=8, eot_id=EOT,
                           rng=jax.random.PRNGKey(0))
    top1_text = generate(model, params, prompts, max_new_tokens=8, eot_id=EOT,
                         rng=jax.random.PRNGKey(5), temperature=1.0, top_k=1)
    for a, b in zip(greedy_text, top1_text, strict=True):
        np.testing.assert_array_equal(a, b)


def test_top_k_and_top_p_sample_only_the_likeliest_tokens():
    logits = jnp.log(jnp.asarray([[0.5, 0.3, 0.15, 0.05]] * 4000))
    keys = jax.random.PRNGKey(0)
    counts = lambda t: np.bincount(np.asarray(t), minlength=4)  # noqa: E731
    free = counts(sample_logits(logits, keys, temperature=1.0))
    assert free[3] > 100  # unfiltered, the unlikeliest token is drawn ~5% of the time
    top2 = counts(sample_logits(logits, keys, temperature=1.0, top_k=2))
    assert top2[2:].sum() == 0 and top2[1] > 1000
    # 0.5 + 0.3 reaches p = 0.7: only the first two tokens are left.
    nucleus = counts(sample_logits(logits, keys, temperature=1.0, top_p=0.7))
    assert nucleus[2:].sum() == 0 and nucleus[1] > 1000
    assert counts(sample_logits(logits, keys, temperature=1.0, top_p=0.4))[1:].sum() == 0


def test_scanned_and_rematerialized_layers_compute_the_same_loss_and_gradients():
    ids = jnp.asarray(np.random.default_rng(0).integers(0, VOCAB, (2, 16)))
    plain = tiny(**SHAPES["llama-like"])
    params = nn.meta.unbox(plain.init(jax.random.PRNGKey(0), ids, train=False)["params"])

    def loss(model, params):
        logits, _ = model.apply({"params": params}, ids, train=False)
        return -jax.nn.log_softmax(logits[:, :-1])[..., 0].mean()

    base, base_grads = jax.jit(jax.value_and_grad(lambda p: loss(plain, p)))(params)
    scanned = {**params, "decoder": stack_layer_params(params["decoder"], 2)}
    for model in (tiny(**SHAPES["llama-like"], scan_layers=True, remat=True),
                  tiny(**SHAPES["llama-like"], scan_layers=True)):
        value, grads = jax.jit(jax.value_and_grad(lambda p, m=model: loss(m, p)))(scanned)
        assert float(value) == pytest.approx(float(base), rel=1e-6)
        np.testing.assert_allclose(grads["decoder"]["layers"]["mlp"]["wo"]["kernel"][1],
                                   base_grads["decoder"]["layers_1"]["mlp"]["wo"]["kernel"],
                                   rtol=1e-4, atol=1e-7)
        # remat takes effect: the gradient's program recomputes the layer (a remat
        # primitive), which it does not without remat.
        jaxpr = str(jax.make_jaxpr(jax.grad(lambda p, m=model: loss(m, p)))(scanned))
        assert ("remat" in jaxpr) == model.remat


def test_bfloat16_embedding_gradients_accumulate_in_float32():
    """In bfloat16 the embedding tables' gradients are scatter-adds in the params' float32
    (a bfloat16 scatter-add was 33 of the 40 ms step of the GPU recipe on an H200), and the
    forward values are those of nn.Embed's cast-then-gather."""
    model = tiny(dtype=jnp.bfloat16)
    ids = jnp.asarray(np.random.default_rng(0).integers(0, VOCAB, (2, 8)), jnp.int32)
    params = nn.meta.unbox(model.init(jax.random.PRNGKey(0), ids, train=False)["params"])

    def loss(p):
        return model.apply({"params": p}, ids, train=False)[0].astype(jnp.float32).mean()

    hlo = jax.jit(jax.grad(loss)).lower(params).as_text()
    scatters = re.findall(r'"stablehlo.scatter".*?-> (tensor<[^>]*>)', hlo, re.S)
    assert scatters and all(t.endswith("xf32>") for t in scatters), scatters
    table = params["embeddings"]["word_embeddings"]["embedding"]
    embed = model.bind({"params": params}).embeddings
    assert jnp.array_equal(embed.lookup(embed.word_embeddings, ids),
                           jnp.take(table.astype(jnp.bfloat16), ids, axis=0))


def test_padded_vocabulary_columns_are_never_predicted():
    model = tiny(vocab_multiple=16)
    ids = jnp.zeros((1, 4), jnp.int32)
    params = model.init(jax.random.PRNGKey(0), ids, train=False)["params"]
    logits, _ = model.apply({"params": params}, ids, train=False)
    assert logits.shape[-1] == 80
    assert float(logits[..., VOCAB:].max()) < -1e8
    assert float(jax.nn.softmax(logits)[..., VOCAB:].sum()) == 0.0


def test_vocabulary_comes_from_the_tokenizer_when_unset():
    assert GPT(variant="nano").with_data_vocab(67).config()["vocab_size"] == 67
    gpt2 = GPT(variant="gpt2")
    assert gpt2.with_data_vocab(1000) is gpt2  # a larger vocabulary holds every id
    with pytest.raises(ValueError, match="smaller than the tokenizer's"):
        GPT(variant="nano", vocab_size=50).with_data_vocab(67)


@pytest.mark.parametrize("variant, params_millions", [("gpt2", 124.4), ("gpt2-medium", 354.8),
                                                      ("llama-1b", 1235.8)])
def test_named_variants_have_their_published_sizes(variant, params_millions):
    model = GPT(variant=variant)
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                               jnp.zeros((1, 8), jnp.int32), train=False))
    count = sum(np.prod(x.shape) for x in jax.tree.leaves(nn.meta.unbox(shapes["params"])))
    assert count / 1e6 == pytest.approx(params_millions, rel=2e-3)
    assert gpt_config(variant)["num_layers"] == VARIANTS[variant]["num_layers"]


def test_samples_evaluator_takes_one_prompt_as_one_and_refuses_too_long_samples():
    from bigjax import sharding
    from bigjax.evaluators.base import EvalSettings
    from bigjax.evaluators.samples import SamplesEvaluator
    from bigjax.pp import lm_tokenizer

    tok = lm_tokenizer.train_char(["ROMEO: JULIET: and more text"])
    mesh = sharding.make_mesh(__import__("ml_collections").ConfigDict({}))

    def evaluator(**options):
        settings = EvalSettings(name="samples", type="samples", split="validation",
                                every_steps=None, batch_size=1, options=options)
        return SamplesEvaluator(settings, tiny(vocab_size=tok.vocab_size), None, None, None,
                                mesh, sharding.DEFAULT_RULES, tok)

    assert evaluator(prompts="ROMEO:", max_new_tokens=4).prompts == ["ROMEO:"]
    assert evaluator(prompts=None, max_new_tokens=4).prompts == [tok.eot]  # unconditional
    with pytest.raises(ValueError, match="lower max_new_tokens"):
        evaluator(prompts=["ROMEO:"], max_new_tokens=45)  # 6 + 45 > 48 positions


@pytest.mark.parametrize("causal,grouped", [(True, True), (False, False)])
def test_attention_with_dropout_is_dot_product_attention_before_the_dropout(causal, grouped):
    """The path that can drop attention probabilities computes, with the dropout an
    identity, what `jax.nn.dot_product_attention` computes: grouped-query heads, the
    causal mask and a key-padding mask."""
    from bigjax.models.layers.causal_attention import attention_with_dropout

    keys = jax.random.split(jax.random.PRNGKey(3), 3)
    heads, kv_heads = 4, (2 if grouped else 4)
    q = jax.random.normal(keys[0], (2, 7, heads, 8))
    k = jax.random.normal(keys[1], (2, 7, kv_heads, 8))
    v = jax.random.normal(keys[2], (2, 7, kv_heads, 8))
    mask = jnp.asarray([[True] * 7, [False, False] + [True] * 5])[:, None, None, :]
    expected = jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=causal)
    got = attention_with_dropout(q, k, v, mask, causal, lambda p: p)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_attention_dropout_drops_probabilities_in_training_only():
    """`attention_dropout_rate`: training outputs change with it (the residual dropout
    is off), the same rng gives the same masks, and evaluation is untouched."""
    ids = jnp.asarray(np.random.default_rng(0).integers(0, VOCAB, (2, 16)), jnp.int32)
    plain, dropped = tiny(), tiny(attention_dropout_rate=0.5)
    params = sharp_params(plain)

    def logits(model, train, seed=0):
        return model.apply({"params": params}, ids, train=train,
                           rngs={"dropout": jax.random.PRNGKey(seed)})[0]

    np.testing.assert_array_equal(logits(dropped, False), logits(plain, False))
    np.testing.assert_array_equal(logits(plain, True), logits(plain, False))  # no dropout
    assert float(jnp.abs(logits(dropped, True) - logits(plain, True)).max()) > 1e-2
    np.testing.assert_array_equal(logits(dropped, True), logits(dropped, True))
    assert float(jnp.abs(logits(dropped, True, 1) - logits(dropped, True, 0)).max()) > 1e-2
    # under nn.scan and remat too (the dropout rng is split per layer)
    scanned = tiny(attention_dropout_rate=0.5, scan_layers=True, remat=True)
    stacked = {**params, "decoder": stack_layer_params(params["decoder"], 2)}
    out = scanned.apply({"params": stacked}, ids, train=True,
                        rngs={"dropout": jax.random.PRNGKey(0)})[0]
    assert bool(jnp.isfinite(out).all())
    assert float(jnp.abs(out - logits(plain, True)).max()) > 1e-2


@pytest.mark.parametrize("shape", SHAPES)
def test_heads_first_attention_is_the_same_model_in_another_layout(shape):
    """`attention_impl="heads_first"` (the CPU recipe's) gives the default's logits, full
    and cached, through its own einsums instead of `jax.nn.dot_product_attention`'s."""
    base, heads_first = tiny(**SHAPES[shape]), tiny(**SHAPES[shape], attention_impl="heads_first")
    ids = jnp.asarray(np.random.default_rng(2).integers(0, VOCAB, (2, 12)))
    params = base.init(jax.random.PRNGKey(0), ids, train=False)["params"]

    def forward(model):
        return lambda p, x: model.apply({"params": p}, x, train=True)[0]

    np.testing.assert_allclose(forward(heads_first)(params, ids), forward(base)(params, ids),
                               rtol=1e-5, atol=1e-5)
    hlo = {name: jax.jit(forward(model)).lower(params, ids).as_text(debug_info=True)
           for name, model in (("base", base), ("heads_first", heads_first))}
    assert "bhqd,bhkd->bhqk" in hlo["heads_first"] and "BTNH,BSNH" not in hlo["heads_first"]
    assert "BTNH,BSNH" in hlo["base"]
    cache = heads_first.init_cache(2, 12)
    (first, _), state = heads_first.apply(
        {"params": params, "cache": cache}, ids[:, :5], decode=True, train=False,
        mutable=["cache"], positions=jnp.broadcast_to(jnp.arange(5), (2, 5)))
    (nxt, _), _ = heads_first.apply({"params": params, **state}, ids[:, 5:6], decode=True,
                                    train=False, mutable=["cache"], positions=jnp.full((2, 1), 5))
    full = forward(base)(params, ids)
    np.testing.assert_allclose(jnp.concatenate([first, nxt], axis=1), full[:, :6], atol=1e-5)
