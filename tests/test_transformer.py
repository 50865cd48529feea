"""The encoder-decoder Transformer and its decoding (greedy, beam search), in-process."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bigjax.models.layers.encoder import stack_layer_params
from bigjax.models.transformer import Transformer
from bigjax.translate import beam_search, greedy_decode, length_penalty

BOS, EOS, VOCAB = 1, 2, 13
SIZES = dict(vocab_size=VOCAB, hidden=32, heads=2, mlp_dim=64, encoder_layers=2,
             decoder_layers=2, dropout_rate=0.0, max_len=16)


def _model(**kwargs) -> Transformer:
    return Transformer(**{**SIZES, **kwargs})


def _sources(rows: int = 24, seed: int = 0) -> np.ndarray:
    """Source rows [rows, 8]: 3-6 tokens, EOS, then padding."""
    rng = np.random.default_rng(seed)
    source = np.zeros((rows, 8), np.int32)
    for i in range(rows):
        n = rng.integers(3, 7)
        source[i, :n] = rng.integers(3, VOCAB, n)
        source[i, n] = EOS
    return source


def _params(model: Transformer, scale: float = 0.3, seed: int = 1):
    """Params drawn with a large std, so that the decoder's distributions differ from step
    to step and from source to source (a freshly initialised model repeats one token).
    Shapes from `jax.eval_shape`, values from numpy: nothing is compiled."""
    shapes = jax.eval_shape(functools.partial(model.init, train=False), jax.random.PRNGKey(0),
                            _sources(2), decoder_inputs=np.ones((2, 4), np.int32))
    leaves, tree = jax.tree.flatten(nn.meta.unbox(shapes["params"]))
    rng = np.random.default_rng(seed)
    return jax.tree.unflatten(tree, [(rng.standard_normal(x.shape) * scale).astype(np.float32)
                                     for x in leaves])


def _init(model: Transformer, source: np.ndarray, decoder_inputs: np.ndarray):
    """The model's initial params, from one compiled `init` (eager, it compiles each op)."""
    init = jax.jit(functools.partial(model.init, train=False))
    return nn.meta.unbox(init(jax.random.PRNGKey(0), source,
                              decoder_inputs=decoder_inputs)["params"])


def _reversal(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A toy translation task: the target is the source reversed. `(source [rows, 8],
    target_ids [rows, 9])` (BOS, tokens, EOS, padding)."""
    source = _sources(rows, seed)
    target = np.zeros((rows, 9), np.int32)
    target[:, 0] = BOS
    for i, row in enumerate(source):
        tokens = row[:np.argmax(row == EOS)][::-1]
        target[i, 1:len(tokens) + 1] = tokens
        target[i, len(tokens) + 1] = EOS
    return source, target


@pytest.fixture(scope="module")
def trained():
    """`(model, params)` after 300 Adam steps on `_reversal` (~15 s): it ends its
    translations and varies them with the source, and is unsure enough that wider beams
    find better-scoring ones than greedy decoding."""
    model = _model()
    source, target = _reversal(2, 0)
    params = _init(model, source, target[:, :-1])
    tx = optax.adam(3e-3)

    @jax.jit
    def step(params, opt_state, source, target):
        def loss(p):
            logits = _logits(model, p, source, target[:, :-1])
            weights = target[:, 1:] != 0
            losses = optax.softmax_cross_entropy_with_integer_labels(logits, target[:, 1:])
            return (losses * weights).sum() / weights.sum()

        grads = jax.grad(loss)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    opt_state = tx.init(params)
    for i in range(300):
        params, opt_state = step(params, opt_state, *_reversal(64, 100 + i))
    return model, params


@functools.partial(jax.jit, static_argnums=0)
def _logits(model, params, source, decoder_inputs):
    return model.apply({"params": params}, source, decoder_inputs=decoder_inputs,
                       train=False)[0]


def test_future_target_tokens_do_not_change_earlier_logits():
    model = _model()
    params = _params(model)
    source = _sources(4)
    target = np.array([[BOS, 4, 5, 6, 7, 8]] * 4, np.int32)
    changed = target.copy()
    changed[:, 3] = 11
    before, after = (_logits(model, params, source, t) for t in (target, changed))
    np.testing.assert_allclose(before[:, :3], after[:, :3], atol=1e-5)
    assert np.abs(before[:, 3:] - after[:, 3:]).max() > 1e-2  # later positions do see it


def test_source_padding_is_hidden_from_both_attentions():
    model = _model()
    params = _params(model)
    source, target = _sources(4), np.array([[BOS, 4, 5, 6]] * 4, np.int32)
    wider = np.pad(source, [(0, 0), (0, 5)])  # more padding columns
    np.testing.assert_allclose(_logits(model, params, source, target),
                               _logits(model, params, wider, target), atol=1e-5)
    real = source.copy()
    real[:, -1] = 5  # a real token where there was padding changes the output
    assert np.abs(_logits(model, params, source, target)
                  - _logits(model, params, real, target)).max() > 1e-3


@pytest.mark.parametrize("options", [dict(shared_embeddings="all"),
                                     dict(shared_embeddings="target_output"),
                                     dict(shared_embeddings="none", pre_norm=False),
                                     dict(position="learned", scan_layers=True)])
def test_cached_decoding_gives_the_teacher_forced_logits(options):
    """One token at a time through the KV cache (the encoder's projections cached on the
    first step, read on the others) = the whole target at once."""
    model = _model(**options)
    params = _params(model)
    source = _sources(3)
    target = np.array([[BOS, 4, 9, 5, 2, 7]] * 3, np.int32)
    full = _logits(model, params, source, target)
    encoded = model.apply({"params": params}, source, method=Transformer.encode)
    cache = model.init_cache(3, source.shape[1], target.shape[1])

    @functools.partial(jax.jit, static_argnums=0)
    def decode(first, cache, encoded, tokens, position):
        return model.apply({"params": params, "cache": cache}, encoded if first else None,
                           source != 0, tokens, positions=jnp.full((3, 1), position),
                           decode=True, method=Transformer.decode_step, mutable=["cache"])

    steps = []
    for t in range(target.shape[1]):
        logits, updated = decode(t == 0, cache, encoded, target[:, t:t + 1], t)
        cache = updated["cache"]
        steps.append(logits)
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=2e-5)


def test_shared_embeddings_and_norms_shape_the_param_tree():
    def tree(**options):
        return _params(_model(**options))

    assert {"embeddings", "encoder", "decoder"} == set(tree(shared_embeddings="all"))
    assert {"source_embeddings", "target_embeddings", "encoder", "decoder", "lm_head"} == \
        set(tree(shared_embeddings="none"))
    pre, post = tree(pre_norm=True), tree(pre_norm=False)
    assert "final_norm" in pre["decoder"] and "final_norm" in pre["encoder"]
    assert "final_norm" not in post["decoder"] and "final_norm" not in post["encoder"]
    layer = pre["decoder"]["layers_0"]
    assert {"attention", "cross_attention", "mlp"} <= set(layer)
    assert "position_embeddings" in tree(position="learned")["embeddings"]
    assert "position_embeddings" not in pre["embeddings"]


def test_scanned_layers_compute_what_the_unscanned_ones_do():
    model, scanned = _model(), _model(scan_layers=True)
    params = _params(model)
    stacked = dict(params)
    for stack, n in (("encoder", 2), ("decoder", 2)):
        stacked[stack] = stack_layer_params(params[stack], n)
    source, target = _sources(3), np.array([[BOS, 4, 5, 6]] * 3, np.int32)
    np.testing.assert_allclose(_logits(model, params, source, target),
                               _logits(scanned, stacked, source, target), atol=1e-5)


def _sequence_log_prob(model, params, source, tokens):
    """Teacher-forced log-probability of each row of `tokens` (up to and including its
    EOS, or all of it) after BOS, and its length."""
    decoder_inputs = np.concatenate([np.full((len(tokens), 1), BOS), tokens[:, :-1]], axis=1)
    log_probs = jax.nn.log_softmax(_logits(model, params, source, decoder_inputs))
    picked = np.take_along_axis(np.asarray(log_probs), tokens[:, :, None], axis=-1)[..., 0]
    counted = np.cumsum(tokens == EOS, axis=1) - (tokens == EOS) == 0
    counted &= np.arange(tokens.shape[1]) < np.where(
        (tokens == EOS).any(1), np.argmax(tokens == EOS, axis=1) + 1, tokens.shape[1])[:, None]
    return (picked * counted).sum(axis=1), counted.sum(axis=1)


def test_greedy_decoding_with_the_cache_is_greedy_by_recomputation(trained):
    model, params = trained
    source = _sources(6)
    tokens, scores = greedy_decode(model, params, source, max_len=10, bos_id=BOS, eos_id=EOS)
    tokens = np.asarray(tokens)
    # Recompute: the argmax of the whole decoder at every position (a fixed width of
    # inputs, one compile: position t sees only the inputs up to t).
    inputs = np.zeros((6, 11), np.int32)
    inputs[:, 0] = BOS
    for t in range(10):
        inputs[:, t + 1] = np.argmax(_logits(model, params, source, inputs)[:, t], axis=-1)
    expected = inputs[:, 1:]
    ended = np.cumsum(expected == EOS, axis=1) - (expected == EOS) > 0
    np.testing.assert_array_equal(tokens, np.where(ended, 0, expected))
    assert len({tuple(row) for row in tokens}) > 3 and (tokens == EOS).any(axis=1).all()
    log_prob, _ = _sequence_log_prob(model, params, source, tokens)
    np.testing.assert_allclose(scores, log_prob, rtol=1e-4)


def test_beam_search_with_one_beam_is_greedy(trained):
    model, params = trained
    source = _sources(32)
    greedy, greedy_scores = greedy_decode(model, params, source, max_len=10, bos_id=BOS,
                                          eos_id=EOS)
    beam, beam_scores = beam_search(model, params, source, beam_size=1, max_len=10, alpha=0.0,
                                    bos_id=BOS, eos_id=EOS)
    np.testing.assert_array_equal(beam, greedy)
    np.testing.assert_allclose(beam_scores, greedy_scores, rtol=1e-5)
    assert (np.asarray(greedy) == EOS).any(axis=1).all()


@pytest.mark.parametrize("scan_layers", [False, True])
def test_wider_beams_never_score_below_greedy_and_scores_are_exact(trained, scan_layers):
    """Beam search is not guaranteed to beat greedy decoding in general (the greedy
    prefix can fall out of the beam); here, on 32 sources of the trained toy model, it
    never scores below it and often above, and every reported score is exact."""
    model, params = trained
    if scan_layers:
        model = _model(scan_layers=True)
        params = {**params, **{s: stack_layer_params(params[s], 2)
                               for s in ("encoder", "decoder")}}
    source = _sources(32)
    alpha = 0.6
    _, greedy_scores = greedy_decode(model, params, source, max_len=10, bos_id=BOS,
                                     eos_id=EOS, alpha=alpha)
    differs = 0
    for k in (2, 4):
        tokens, scores = beam_search(model, params, source, beam_size=k, max_len=10,
                                     alpha=alpha, bos_id=BOS, eos_id=EOS)
        tokens, scores = np.asarray(tokens), np.asarray(scores)
        assert (scores >= np.asarray(greedy_scores) - 1e-5).all()
        differs += int((scores > np.asarray(greedy_scores) + 1e-3).sum())
        # The reported score is the hypothesis's own: teacher-forced log-probability over
        # the length penalty (a wrong cache reorder between beams would break this).
        log_prob, length = _sequence_log_prob(model, params, source, tokens)
        np.testing.assert_allclose(scores, log_prob / length_penalty(length, alpha),
                                   rtol=1e-4, atol=1e-5)
    assert differs > 0  # the wider beams do find better translations


def test_decoding_refuses_a_model_without_the_cache_positions():
    model = _model()
    params = _params(model)
    cache = model.init_cache(1, 8, 4)
    with pytest.raises(ValueError, match="positions"):
        model.apply({"params": params, "cache": cache}, jnp.zeros((1, 8, 32)),
                    jnp.ones((1, 8), bool), jnp.ones((1, 1), jnp.int32), decode=True,
                    method=Transformer.decode_step, mutable=["cache"])


def test_remat_gives_the_same_gradients_and_bfloat16_runs(scan_layers=True):
    """Scanned layers (remat of the unscanned ones wraps the same block the same way)."""
    source, target = _reversal(4, 0)
    plain, remat = _model(scan_layers=scan_layers), _model(scan_layers=scan_layers, remat=True)
    params = _init(plain, source, target[:, :-1])

    def loss(model, params):
        logits = model.apply({"params": params}, source, decoder_inputs=target[:, :-1],
                             train=True, rngs={"dropout": jax.random.PRNGKey(1)})[0]
        return optax.softmax_cross_entropy_with_integer_labels(logits, target[:, 1:]).mean()

    grads = jax.jit(jax.grad(functools.partial(loss, plain)))(params)
    remat_grads = jax.jit(jax.grad(functools.partial(loss, remat)))(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), grads, remat_grads)
    half = _model(scan_layers=scan_layers, dtype=jnp.bfloat16)
    half_loss, plain_loss = (jax.jit(functools.partial(loss, m))(params) for m in (half, plain))
    assert abs(float(half_loss) - float(plain_loss)) < 0.05
    tokens, scores = greedy_decode(half, params, source, max_len=6, bos_id=BOS, eos_id=EOS)
    assert tokens.shape == (4, 6) and scores.dtype == jnp.float32


@pytest.mark.parametrize("beam_size", [1, 3])
def test_translations_evaluator_decodes_every_row_in_split_order(trained, beam_size, tmp_path):
    """Length-sorted, trimmed eval batches with a padded last batch (10 rows in batches of
    4): each example's translation is its own (the decode of that row alone)."""
    from bigjax.datasets.array_dataset import ArrayDataset
    from bigjax.evaluators.base import EvalSettings
    from bigjax.evaluators.translations import TranslationsEvaluator
    from bigjax.pp.subword_tokenizer import train_bpe
    from bigjax.sharding import make_mesh

    model, params = trained
    tokenizer = train_bpe(["ein zwei drei vier fünf sechs sieben acht neun zehn"] * 4, 300)
    source = _sources(10, seed=5)
    texts = np.array([f"satz {i}" for i in range(10)], dtype=object)
    data = ArrayDataset({"source_ids": source, "target_ids": np.zeros((10, 9), np.int32),
                         "source_text": texts, "target_text": texts}, None, "toy")
    settings = EvalSettings(name="t", type="translations", split="test", every_steps=None,
                            batch_size=4, trim_multiple=2, workdir=str(tmp_path),
                            options={"beam_size": beam_size, "alpha": 0.6})
    evaluator = TranslationsEvaluator(settings, model, None, None, data, make_mesh({}), (),
                                      tokenizer=tokenizer)
    scores, translations = evaluator.translate(params)
    if beam_size == 1:
        tokens, expected_scores = greedy_decode(model, params, source, max_len=8, bos_id=BOS,
                                                eos_id=EOS, alpha=0.6)
    else:
        tokens, expected_scores = beam_search(model, params, source, beam_size=beam_size,
                                              max_len=8, alpha=0.6, bos_id=BOS, eos_id=EOS)
    expected = [" ".join(t.split()) for t in tokenizer.decode_batch(np.asarray(tokens))]
    assert translations == expected and len(set(expected)) > 3
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5)


def test_decoding_never_emits_padding_or_bos():
    """This random model ranks padding (id 0) first at every step; decoding must pick
    real tokens instead (else rows never end and the length penalty miscounts)."""
    model = _model(shared_embeddings="none")
    params = _params(model, seed=6)
    source = _sources(8)
    logits = _logits(model, params, source, np.full((8, 1), BOS, np.int32))
    assert (np.argmax(logits[:, 0], axis=-1) == 0).all()  # padding would win unmasked
    for tokens in (greedy_decode(model, params, source, max_len=6, bos_id=BOS, eos_id=EOS)[0],
                   beam_search(model, params, source, beam_size=3, max_len=6, alpha=0.6,
                               bos_id=BOS, eos_id=EOS)[0]):
        tokens = np.asarray(tokens)
        before_eos = np.cumsum(tokens == EOS, axis=1) - (tokens == EOS) == 0
        assert not (tokens == BOS).any() and not ((tokens == 0) & before_eos).any()
