"""Transformer building blocks: shapes, masks, scan/remat equivalence, dtypes, axis names."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bigjax.models.layers import axes
from bigjax.models.layers.attention import MultiHeadAttention, causal_mask, padding_mask
from bigjax.models.layers.embeddings import TextEmbeddings
from bigjax.models.layers.encoder import (
    TransformerStack,
    stack_layer_params,
    unstack_layer_params,
)
from bigjax.models.layers.mlp_block import MlpBlock

B, L, E = 2, 6, 16
KNOWN_AXES = {axes.EMBED, axes.MLP, axes.HEADS, axes.KV, axes.VOCAB, axes.LAYERS, None}


def _x(seed: int = 0, shape=(B, L, E)) -> jax.Array:
    return jax.random.normal(jax.random.key(seed), shape)


def _stack(**kw) -> TransformerStack:
    kw = dict(num_layers=2, num_heads=2, mlp_dim=32, **kw)
    return TransformerStack(**kw)


def _init(model, *args, **kw):
    return nn.unbox(model.init(jax.random.key(1), *args, train=False, **kw)["params"])


def test_attention_shapes_self_and_cross():
    x, ctx = _x(0), _x(1, (B, 9, 8))
    attn = MultiHeadAttention(num_heads=4)
    params = _init(attn, x, ctx)
    assert params["query"]["kernel"].shape == (E, 4, 4)
    assert params["key"]["kernel"].shape == (8, 4, 4)
    assert params["out"]["kernel"].shape == (4, 4, E)
    y = attn.apply({"params": params}, x, ctx, train=False)
    assert y.shape == (B, L, E)
    y_self = MultiHeadAttention(num_heads=4).apply({"params": _init(attn, x)}, x, train=False)
    assert y_self.shape == (B, L, E)


def test_mask_helpers():
    valid = jnp.array([[True, True, False]])
    assert padding_mask(valid).shape == (1, 1, 1, 3)
    np.testing.assert_array_equal(causal_mask(3)[0, 0], np.tril(np.ones((3, 3), bool)))


@pytest.mark.parametrize("pre_norm", [False, True])
def test_padding_mask_hides_padded_positions(pre_norm):
    valid = jnp.array([[True] * 4 + [False] * 2, [True] * 6])
    model = _stack(pre_norm=pre_norm)
    x = _x(0)
    params = _init(model, x, padding_mask(valid))
    x2 = jnp.where(valid[..., None], x, _x(5))  # new values at padded positions only
    y1 = model.apply({"params": params}, x, padding_mask(valid), train=False)
    y2 = model.apply({"params": params}, x2, padding_mask(valid), train=False)
    np.testing.assert_allclose(y1[valid], y2[valid], atol=1e-6)
    assert not np.allclose(y1[~valid], y2[~valid])


def test_causal_mask_hides_future_tokens():
    model = _stack(pre_norm=True)
    x = _x(0)
    mask = causal_mask(L)
    params = _init(model, x, mask)
    x2 = x.at[:, 3].set(_x(7)[:, 3])  # change position 3
    y1 = model.apply({"params": params}, x, mask, train=False)
    y2 = model.apply({"params": params}, x2, mask, train=False)
    np.testing.assert_allclose(y1[:, :3], y2[:, :3], atol=1e-6)
    assert not np.allclose(y1[:, 3:], y2[:, 3:])


def test_cross_attention_context_mask():
    model = _stack(pre_norm=True, cross_attention=True)
    x, ctx = _x(0), _x(1, (B, 5, E))
    ctx_valid = jnp.array([[True, True, True, False, False]] * B)
    kw = dict(context_mask=padding_mask(ctx_valid))
    params = _init(model, x, causal_mask(L), context=ctx, **kw)
    assert "cross_attention" in params["layers_0"] and "cross_attention_norm" in params["layers_0"]
    ctx2 = jnp.where(ctx_valid[..., None], ctx, _x(9, ctx.shape))
    y1 = model.apply({"params": params}, x, causal_mask(L), context=ctx, train=False, **kw)
    y2 = model.apply({"params": params}, x, causal_mask(L), context=ctx2, train=False, **kw)
    np.testing.assert_allclose(y1, y2, atol=1e-6)
    with pytest.raises(ValueError, match="context"):
        model.apply({"params": params}, x, train=False)


def _shapes(model, *args, **kw):
    """Param shapes/dtypes without running init."""
    return jax.eval_shape(lambda: model.init(jax.random.key(1), *args, train=False, **kw))


@pytest.mark.parametrize("pre_norm", [False, True])
def test_scan_matches_unscanned_with_restacked_params(pre_norm):
    x = _x(0)
    plain = _stack(pre_norm=pre_norm)
    scanned = _stack(pre_norm=pre_norm, scan_layers=True)
    params = _init(plain, x)
    stacked = stack_layer_params(params, 2)
    scanned_shapes = nn.unbox(_shapes(scanned, x)["params"])
    assert jax.tree.map(jnp.shape, stacked) == jax.tree.map(jnp.shape, scanned_shapes)
    y1 = plain.apply({"params": params}, x, train=False)
    y2 = jax.jit(lambda p: scanned.apply({"params": p}, x, train=False))(stacked)
    np.testing.assert_allclose(y1, y2, atol=1e-5)
    back = unstack_layer_params(stacked, 2)
    jax.tree.map(np.testing.assert_array_equal, back, params)


@pytest.mark.parametrize("scan", [False, True])
def test_remat_gives_same_outputs_and_grads(scan):
    x = _x(0)
    params = _init(_stack(), x)
    if scan:
        params = stack_layer_params(params, 2)
    rngs = {"dropout": jax.random.key(3)}

    def loss_and_grad(model):
        def loss(p):
            return jnp.sum(model.apply({"params": p}, x, train=True, rngs=rngs) ** 2)

        return jax.value_and_grad(loss)(params)

    kw = dict(scan_layers=scan, dropout_rate=0.1)
    both = jax.jit(lambda: (loss_and_grad(_stack(**kw)), loss_and_grad(_stack(remat=True, **kw))))
    (l1, g1), (l2, g2) = both()
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), g1, g2)


def test_dropout_only_in_training():
    model = _stack(dropout_rate=0.5, attention_dropout_rate=0.5)
    x = _x(0)
    params = _init(model, x)
    y_eval = [model.apply({"params": params}, x, train=False) for _ in range(2)]
    np.testing.assert_array_equal(*y_eval)
    y_a = model.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.key(1)})
    y_b = model.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(y_a, y_b)


@pytest.mark.parametrize("scan", [False, True])
def test_bf16_compute_keeps_f32_params(scan):
    x = _x(0)
    model = _stack(dtype=jnp.bfloat16, scan_layers=scan)
    shapes = _shapes(model, x)["params"]
    assert {p.dtype for p in jax.tree.leaves(nn.unbox(shapes))} == {jnp.dtype(jnp.float32)}
    params = _init(_stack(), x)
    if scan:
        params = stack_layer_params(params, 2)
    y = jax.jit(lambda p: model.apply({"params": p}, x, train=False))(params)
    assert y.dtype == jnp.bfloat16
    assert np.isfinite(np.asarray(y, np.float32)).all()


@pytest.mark.parametrize("scan", [False, True])
def test_every_param_has_logical_axis_names(scan):
    model = _stack(scan_layers=scan, pre_norm=True, cross_attention=True)
    boxed = _shapes(model, _x(0), context=_x(1))["params"]
    leaves = jax.tree.leaves(boxed, is_leaf=lambda v: isinstance(v, nn.Partitioned))
    assert leaves and all(isinstance(v, nn.Partitioned) for v in leaves)
    for v in leaves:
        assert len(v.names) == v.value.ndim
        assert set(v.names) <= KNOWN_AXES
    layer_leaves = jax.tree.leaves(
        boxed["layers" if scan else "layers_0"], is_leaf=lambda v: isinstance(v, nn.Partitioned)
    )
    assert all((v.names[0] == axes.LAYERS) == scan for v in layer_leaves)


def test_embeddings_and_mlp_block():
    ids = jnp.array([[1, 2, 3, 0]])
    emb = TextEmbeddings(vocab_size=10, hidden=E, max_len=8, type_vocab_size=2)
    params = _init(emb, ids)
    assert set(params) == {
        "word_embeddings",
        "position_embeddings",
        "token_type_embeddings",
        "norm",
    }
    y = emb.apply({"params": params}, ids, train=False)
    assert y.shape == (1, 4, E)
    logits = emb.apply({"params": params}, y, method=TextEmbeddings.attend)
    assert logits.shape == (1, 4, 10)
    mlp = MlpBlock(mlp_dim=32)
    assert mlp.apply({"params": _init(mlp, y)}, y, train=False).shape == (1, 4, E)


def test_runs_under_logical_axis_rules_and_mesh():
    devices = np.array(jax.devices()[:1]).reshape(1, 1, 1)
    mesh = jax.sharding.Mesh(devices, ("data", "fsdp", "tensor"))
    rules = (
        (axes.BATCH, ("data", "fsdp")),
        (axes.EMBED, "fsdp"),
        (axes.MLP, "tensor"),
        (axes.HEADS, "tensor"),
        (axes.VOCAB, "tensor"),
    )
    model = _stack(scan_layers=True)
    x = _x(0)
    params = stack_layer_params(_init(_stack(), x), 2)
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        specs = nn.get_partition_spec(_shapes(model, x))
        y = jax.jit(lambda p: model.apply({"params": p}, x, train=False))(params)
    kernel_spec = specs["params"]["layers"]["mlp"]["wi"]["kernel"]
    assert tuple(kernel_spec) == (axes.LAYERS, axes.EMBED, axes.MLP)
    assert nn.logical_to_mesh_axes(tuple(kernel_spec), rules) == jax.sharding.PartitionSpec(
        None, "fsdp", "tensor"
    )
    np.testing.assert_allclose(
        y, _stack().apply({"params": _init(_stack(), x)}, x, train=False), atol=1e-5
    )


def test_exact_gelu_is_flax_exact_gelu_written_with_erf():
    """`mlp_block.gelu` (the "gelu" activation of BERT and nanoGPT) equals
    `nn.gelu(approximate=False)`, values and gradients, and lowers to `erf`, not the
    `erfc` that XLA:CPU expands more slowly."""
    from bigjax.models.layers.mlp_block import gelu

    x = jnp.linspace(-8.0, 8.0, 1001)
    np.testing.assert_allclose(gelu(x), nn.gelu(x, approximate=False), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jax.grad(lambda v: gelu(v).sum())(x),
                               jax.grad(lambda v: nn.gelu(v, approximate=False).sum())(x),
                               rtol=1e-5, atol=1e-6)
    jaxpr = str(jax.make_jaxpr(jax.grad(lambda v: gelu(v).sum()))(x))
    assert " erf " in jaxpr and "erfc" not in jaxpr
