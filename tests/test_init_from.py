import jax.numpy as jnp
import numpy as np
import pytest

from bigjax import init_from


def test_merge_loads_matching_params_and_keeps_new_ones():
    fresh = {"bert": {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)},
             "head": {"kernel": jnp.zeros((3, 4))}}
    source = {"bert": {"w": np.ones((2, 3)), "b": np.ones(3)}, "head": {"kernel": np.ones((3, 2))},
              "mlm_head": {"bias": np.ones(5)}}
    merged, report = init_from.merge_params(fresh, source)
    np.testing.assert_array_equal(merged["bert"]["w"], 1.0)
    np.testing.assert_array_equal(merged["head"]["kernel"], 0.0)  # shape differs: re-initialised
    assert sorted(report["loaded"]) == ["bert/b", "bert/w"]
    assert report["new"] == ["head/kernel (shape (3, 2) -> (3, 4))"]
    assert report["unused"] == ["head/kernel", "mlm_head/bias"]
    assert merged["bert"]["w"].dtype == jnp.float32


def test_unknown_source_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a bigjax workdir"):
        init_from.read_source_params(str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(FileNotFoundError, match="No complete checkpoint"):
        init_from.read_source_params(str(tmp_path))


def test_minilm_source_reads_the_pretrained_encoder(minilm):
    params = init_from.read_source_params("minilm")
    assert params["bert"]["embeddings"]["word_embeddings"]["embedding"].shape == (30522, 384)
