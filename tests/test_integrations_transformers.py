"""Harness attentions inside transformers models (AttentionInterface adapter).

Exactness: ``standard`` swapped in gives transformers' own ``sdpa`` and ``eager`` logits within
1e-5 (float32, padded batches) for BERT, RoBERTa, DistilBERT, ViT, Wav2Vec2 and Whisper's encoder,
all built offline from small configs. Refusals name the attention and the capability.
"""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from harness.attention import Attention, Capabilities, list_attentions  # noqa: E402
from harness.integrations.transformers import (  # noqa: E402
    UnsupportedByAttention,
    implementation_name,
    register_all,
    register_attention_spec,
    to_contract,
)
from harness.suites.base import AttentionSpec  # noqa: E402

TOL = 1e-5
SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
         "intermediate_size": 64, "num_labels": 3}


@pytest.fixture(scope="module")
def names() -> dict[str, str]:
    return register_all()


def _text_batch() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 100, (3, 12), generator=gen)
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[1, 8:] = 0
    mask[2, 3:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _logits(model: torch.nn.Module, impl: str, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    model.set_attn_implementation(impl)
    with torch.no_grad():
        return model(**inputs).logits


def _models() -> dict[str, tuple[torch.nn.Module, dict[str, torch.Tensor]]]:
    from transformers import (
        AutoModelForAudioClassification,
        AutoModelForImageClassification,
        AutoModelForSequenceClassification,
        BertConfig,
        DistilBertConfig,
        RobertaConfig,
        ViTConfig,
        Wav2Vec2Config,
        WhisperConfig,
        WhisperForAudioClassification,
    )

    torch.manual_seed(0)
    text = _text_batch()
    wave = torch.randn(3, 800, generator=torch.Generator().manual_seed(1))
    wave_mask = torch.ones(3, 800, dtype=torch.long)
    wave_mask[1, 500:] = 0
    wave_mask[2, 200:] = 0
    w2v = Wav2Vec2Config(**SMALL, conv_dim=(16, 16), conv_stride=(5, 2), conv_kernel=(10, 3),
                         num_feat_extract_layers=2, feat_extract_norm="layer",
                         num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                         do_stable_layer_norm=True)
    whisper = WhisperConfig(d_model=32, encoder_layers=2, decoder_layers=1,
                            encoder_attention_heads=4, decoder_attention_heads=4,
                            encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=16,
                            max_source_positions=30, num_labels=3)
    return {
        "bert": (AutoModelForSequenceClassification.from_config(
            BertConfig(vocab_size=100, max_position_embeddings=64, **SMALL)), text),
        "roberta": (AutoModelForSequenceClassification.from_config(
            RobertaConfig(vocab_size=100, max_position_embeddings=70, **SMALL)), text),
        "distilbert": (AutoModelForSequenceClassification.from_config(
            DistilBertConfig(vocab_size=100, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                             max_position_embeddings=64, num_labels=3)), text),
        "vit": (AutoModelForImageClassification.from_config(
            ViTConfig(image_size=16, patch_size=4, num_channels=3, **SMALL)),
            {"pixel_values": torch.randn(2, 3, 16, 16)}),
        "wav2vec2": (AutoModelForAudioClassification.from_config(w2v),
                     {"input_values": wave, "attention_mask": wave_mask}),
        "whisper-encoder": (WhisperForAudioClassification(whisper),
                            {"input_features": torch.randn(2, 16, 60)}),
    }


@pytest.fixture(scope="module")
def models() -> dict[str, tuple[torch.nn.Module, dict[str, torch.Tensor]]]:
    return {k: (m.eval(), x) for k, (m, x) in _models().items()}


ARCHS = ["bert", "roberta", "distilbert", "vit", "wav2vec2", "whisper-encoder"]


@pytest.mark.parametrize("arch", ARCHS)
def test_standard_matches_transformers_sdpa_and_eager(arch, models, names):
    model, inputs = models[arch]
    ours = _logits(model, names["standard"], inputs)
    for impl in ("sdpa", "eager"):
        theirs = _logits(model, impl, inputs)
        assert torch.allclose(ours, theirs, atol=TOL, rtol=0), (arch, impl)


def test_padding_reaches_the_attention(models, names):
    """Without the mask function the adapter registers, padding would be attended silently:
    the padded row then differs from the unpadded truth, so the exactness test can fail."""
    from transformers.masking_utils import AttentionMaskInterface

    model, inputs = models["bert"]
    impl = names["standard"]
    truth = _logits(model, "sdpa", inputs)
    saved = AttentionMaskInterface._global_mapping.pop(impl)
    try:
        broken = _logits(model, impl, inputs)
    finally:
        AttentionMaskInterface._global_mapping[impl] = saved
    assert not torch.allclose(broken[1:], truth[1:], atol=TOL)
    assert torch.allclose(broken[0], truth[0], atol=TOL)  # the unpadded row agrees


@pytest.mark.parametrize("name", sorted(list_attentions()))
def test_every_attention_runs_in_bert(name, models, names):
    model, inputs = models["bert"]
    out = _logits(model, names[name], inputs)
    assert out.shape == (3, 3) and torch.isfinite(out).all()


def test_register_all_labels_variants_and_plugins():
    specs = [AttentionSpec("standard", {"backend": "eager"}), AttentionSpec("sparse",
             {"block_size": 4}, label="sparse-4")]
    got = register_all(specs)
    assert got == {"standard[eager]": "harness.standard_eager", "sparse-4": "harness.sparse-4"}
    assert implementation_name("standard[sdpa]") == "harness.standard_SDPA"
    with pytest.raises(ValueError, match="nope"):
        register_attention_spec("x", "nope")


def test_modernbert_sliding_window_is_refused_and_global_layers_are_exact(names):
    from transformers import AutoModelForSequenceClassification, ModernBertConfig

    kw = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 3,
          "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 64,
          "local_attention": 4, "num_labels": 3, "pad_token_id": 0, "bos_token_id": 1,
          "eos_token_id": 2, "cls_token_id": 1, "sep_token_id": 2}
    inputs = _text_batch()
    local = AutoModelForSequenceClassification.from_config(
        ModernBertConfig(global_attn_every_n_layers=3, **kw)).eval()
    with pytest.raises(UnsupportedByAttention, match=r"standard: .*sliding-window layer"):
        _logits(local, names["standard"], inputs)
    full = AutoModelForSequenceClassification.from_config(
        ModernBertConfig(global_attn_every_n_layers=1, **kw)).eval()
    assert torch.allclose(_logits(full, names["standard"], inputs),
                          _logits(full, "sdpa", inputs), atol=TOL, rtol=0)


def test_decoder_causal_gqa_exact_and_kv_cache_prefill_refused(names):
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    inputs = {**_text_batch(), "use_cache": False}
    real = inputs["attention_mask"].bool()
    ours = _logits(model, names["standard"], inputs)[real]
    for impl in ("sdpa", "eager"):
        assert torch.allclose(ours, _logits(model, impl, inputs)[real], atol=TOL, rtol=0)
    ids = inputs["input_ids"][:1]
    steps = {}
    for impl in ("sdpa", names["standard"]):  # one-token decoding steps over a cache agree
        model.set_attn_implementation(impl)
        with torch.no_grad():
            cache = model(input_ids=ids[:, :6], use_cache=True).past_key_values
            steps[impl] = model(input_ids=ids[:, 6:7], past_key_values=cache).logits
    assert torch.allclose(steps["sdpa"], steps[names["standard"]], atol=TOL, rtol=0)
    with torch.no_grad():
        cache = model(input_ids=ids[:, :6], use_cache=True).past_key_values
        with pytest.raises(UnsupportedByAttention, match=r"standard: .*(KV|cache)"):
            model(input_ids=ids[:, 6:9], past_key_values=cache, use_cache=True)


class _NoPadding(Attention):
    name = "test-no-padding"
    capabilities = Capabilities(key_padding_mask=False, causal=False, cross_lengths=False)


def _qkv(n_q: int = 5, n_k: int = 5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.randn(2, 2, n_q, 4), torch.randn(2, 2, n_k, 4), torch.randn(2, 2, n_k, 4)


def test_to_contract_maps_masks_and_refuses_with_the_capability():
    from harness.attention import get_attention

    std = get_attention("standard")
    q, k, v = _qkv()
    pad = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    bool4 = pad[:, None, None, :].expand(2, 1, 5, 5)
    _, _, _, kpm, causal = to_contract("standard", std, q, k, v, bool4)
    assert torch.equal(kpm, pad) and causal is False
    additive = torch.zeros(2, 1, 5, 5).masked_fill(~bool4, torch.finfo(torch.float32).min)
    _, _, _, kpm, causal = to_contract("standard", std, q, k, v, additive)
    assert torch.equal(kpm, pad) and causal is False
    tri = bool4 & torch.ones(5, 5, dtype=torch.bool).tril()
    assert to_contract("standard", std, q, k, v, tri)[4] is True
    window = torch.ones(5, 5, dtype=torch.bool).triu(-1).tril(1)[None, None]
    with pytest.raises(UnsupportedByAttention, match=r"standard: .*neither key padding"):
        to_contract("standard", std, q, k, v, window)
    with pytest.raises(UnsupportedByAttention, match="position bias"):
        to_contract("standard", std, q, k, v, torch.randn(2, 1, 5, 5))
    with pytest.raises(UnsupportedByAttention, match="attention dropout"):
        to_contract("standard", std, q, k, v, None, dropout=0.1)
    # grouped key/value heads and a non-default scaling
    q4 = torch.randn(2, 4, 5, 4)
    q_out, k_out, *_ = to_contract("standard", std, q4, k, v, None, scaling=1.0,
                                   num_key_value_groups=2)
    assert k_out.shape[1] == 4 and torch.allclose(q_out, q4 * 2.0)
    nopad = _NoPadding()
    with pytest.raises(UnsupportedByAttention, match=r"test-no-padding: .*key_padding_mask"):
        to_contract("test-no-padding", nopad, q, k, v, bool4)
    with pytest.raises(UnsupportedByAttention, match=r"test-no-padding: .*cross_lengths"):
        to_contract("test-no-padding", nopad, *_qkv(3, 5), None)
    with pytest.raises(UnsupportedByAttention, match=r"test-no-padding: .*causal"):
        to_contract("test-no-padding", nopad, q, k, v, None, is_causal=True)
