"""The attention contract, checked for every registered attention (new ones are tested at once)."""

from __future__ import annotations

import pytest
import torch

from harness.attention import (
    attention_class,
    get_attention,
    list_attentions,
    reference_attention,
)

NAMES = list_attentions()
# Small-scale options so that sparse/LSH really restrict at test lengths (several blocks/chunks).
SMALL = {
    "standard": {},
    "sparse": {"block_size": 8, "window_blocks": 3, "global_blocks": 1, "random_blocks": 1},
    "lsh": {"chunk_size": 8, "n_hashes": 2},
    "linear": {},
}


def _build(name: str, **extra):
    return get_attention(name, **{**SMALL.get(name, {}), **extra})


def _qkv(b=2, h=2, n=40, d=16, dtype=torch.float32, seed=0, shared=False):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, n, d, generator=g, dtype=torch.float64).to(dtype)
    k = q if shared else torch.randn(b, h, n, d, generator=g, dtype=torch.float64).to(dtype)
    v = torch.randn(b, h, n, d, generator=g, dtype=torch.float64).to(dtype)
    return q, k, v


def _call(attn, q, k, v, **kw):
    """Families declaring ``shared_qk`` (LSH, as in Reformer) get q as k; the others distinct k."""
    return attn(q, q if attn.capabilities.shared_qk else k, v, **kw)


def test_registry_lists_the_four_families():
    assert {"standard", "sparse", "lsh", "linear"} <= set(NAMES)


@pytest.mark.parametrize("backend", ["sdpa", "eager"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_standard_backends_equal_float64_reference(backend, causal, padded):
    q, k, v = _qkv(n=37)
    mask = None
    if padded:
        mask = torch.ones(2, 37, dtype=torch.bool)
        mask[0, 30:] = False
        mask[1, :3] = False
    out = get_attention("standard", backend=backend)(q, k, v, key_padding_mask=mask, causal=causal)
    ref = reference_attention(q.double(), k.double(), v.double(), mask, causal)
    rel = ((out.double() - ref).norm() / ref.norm()).item()
    assert rel <= 1e-5, rel


def test_standard_backends_agree_with_each_other():
    q, k, v = _qkv(n=50)
    a = get_attention("standard", backend="sdpa")(q, k, v, causal=True)
    b = get_attention("standard", backend="eager")(q, k, v, causal=True)
    assert ((a - b).norm() / b.norm()).item() <= 1e-5


def test_query_with_no_visible_key_outputs_zeros_without_nan_grads():
    q, k, v = _qkv(b=2, n=12)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1] = False  # second sequence is all padding
    for backend in ("sdpa", "eager"):
        qq, kk, vv = (t.clone().requires_grad_(True) for t in (q, k, v))
        out = get_attention("standard", backend=backend)(qq, kk, vv, key_padding_mask=mask)
        assert torch.equal(out[1], torch.zeros_like(out[1]))
        out.sum().backward()
        assert all(torch.isfinite(t.grad).all() for t in (qq, kk, vv))


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_and_finite(name):
    q, k, v = _qkv(n=45)
    out = _call(_build(name), q, k, v)
    assert out.shape == v.shape
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_causal_later_tokens_never_change_earlier_outputs(name):
    if not attention_class(name).capabilities.causal:
        pytest.skip(f"{name} does not support causal")
    n, cut = 48, 29
    attn = _build(name)
    # Distinct q and k for every family, and q as k too for shared-QK families (LSH).
    for shared in {False, attn.capabilities.shared_qk}:
        q, k, v = _qkv(n=n, dtype=torch.float64)
        keys = q if shared else k
        base = attn(q, keys, v, causal=True)
        q2, k2, v2 = q.clone(), k.clone(), v.clone()
        v2[:, :, cut:] = torch.randn_like(v2[:, :, cut:]) * 5
        q2[:, :, cut:] += 3.0
        k2[:, :, cut:] -= 2.0
        out = attn(q2, q2 if shared else k2, v2, causal=True)
        torch.testing.assert_close(out[:, :, :cut], base[:, :, :cut], rtol=1e-10, atol=1e-10)

        # Gradients: the loss of the earlier outputs does not depend on later tokens.
        qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))
        out = attn(qg, qg if shared else kg, vg, causal=True)
        out[:, :, :cut].pow(2).sum().backward()
        for t in (qg, vg) if shared else (qg, kg, vg):
            assert t.grad is not None
            assert torch.count_nonzero(t.grad[:, :, cut:]) == 0


@pytest.mark.parametrize("name", NAMES)
def test_padded_keys_never_change_real_outputs(name):
    if not attention_class(name).capabilities.key_padding_mask:
        pytest.skip(f"{name} does not support key_padding_mask")
    n = 44
    attn = _build(name)
    q, k, v = _qkv(n=n, dtype=torch.float64, shared=name == "lsh")
    mask = torch.ones(2, n, dtype=torch.bool)
    mask[0, 35:] = False
    mask[1, 20:] = False
    base = _call(attn, q, k, v, key_padding_mask=mask)
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    pad = ~mask[:, None, :, None].expand_as(v)
    v2 = torch.where(pad, torch.randn_like(v) * 7, v2)
    k2 = torch.where(pad, torch.randn_like(k) * 7, k2)
    if name == "lsh":
        q2 = torch.where(pad, k2, q2)  # shared QK: the padded tokens change as one
        k2 = q2
    out = _call(attn, q2, k2, v2, key_padding_mask=mask)
    real = mask[:, None, :, None].expand_as(out)
    torch.testing.assert_close(out[real], base[real], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("causal", [False, True])
def test_gradients_are_finite(name, causal):
    if causal and not attention_class(name).capabilities.causal:
        pytest.skip(f"{name} does not support causal")
    q, k, v = (t.requires_grad_(True) for t in _qkv(n=33))
    mask = torch.ones(2, 33, dtype=torch.bool)
    mask[1, 25:] = False
    out = _call(_build(name), q, k, v, key_padding_mask=mask, causal=causal)
    out.square().mean().backward()
    grads = [q.grad, v.grad] + ([] if attention_class(name).name == "lsh" else [k.grad])
    for g in grads:
        assert g is not None and torch.isfinite(g).all()
        assert g.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_bfloat16_runs_and_tracks_float32(name):
    q, k, v = _qkv(n=40)
    attn = _build(name)
    out32 = _call(attn, q, k, v)
    out16 = _call(attn, q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert out16.dtype == torch.bfloat16
    assert torch.isfinite(out16.float()).all()
    rel = ((out16.float() - out32).norm() / out32.norm()).item()
    assert rel < 0.1, rel


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_bitwise_identical_output(name):
    q, k, v = _qkv(n=52)
    a = _call(_build(name), q, k, v)
    b = _call(_build(name), q, k, v)
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("causal", [False, True])
def test_inference_mode_calls_mix_with_normal_and_autograd_calls(name, causal):
    """Caches and work buffers made inside torch.inference_mode must not break later calls."""
    attn = _build(name)
    q, k, v = _qkv(n=40)
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[1, 33:] = False
    with torch.inference_mode():
        expected = _call(attn, q, k, v, key_padding_mask=mask, causal=causal)
    with torch.no_grad():
        assert torch.equal(_call(attn, q, k, v, key_padding_mask=mask, causal=causal), expected)
    qg = q.clone().requires_grad_(True)
    out = _call(attn, qg, k, v, key_padding_mask=mask, causal=causal)
    out.sum().backward()
    assert torch.isfinite(qg.grad).all()
    torch.testing.assert_close(out.detach(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_options_round_trip(name):
    attn = _build(name)
    rebuilt = get_attention(name, **attn.options)
    assert rebuilt.options == attn.options


@pytest.mark.parametrize("name", NAMES)
def test_capabilities_declare_complexity(name):
    caps = attention_class(name).capabilities
    assert caps.time_complexity.startswith("O(") and caps.memory_complexity.startswith("O(")
    assert 0.5 <= caps.memory_exponent <= 2.0


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs_raise_actionable_errors(name):
    attn = _build(name)
    q, k, v = _qkv(n=16)
    with pytest.raises(ValueError, match="4-D"):
        attn(q[0], k[0], v[0])
    with pytest.raises(ValueError, match="head_dim"):
        attn(q, k[..., :8], v)
    with pytest.raises(ValueError, match="batch and heads"):
        attn(q, k[:1], v[:1])
    with pytest.raises(ValueError, match="bool"):
        attn(q, k, v, key_padding_mask=torch.ones(2, 16))
    with pytest.raises(ValueError, match=r"\(batch, seq_len\)"):
        attn(q, k, v, key_padding_mask=torch.ones(2, 15, dtype=torch.bool))
    with pytest.raises(ValueError, match="empty sequence"):
        attn(q[:, :, :0], k[:, :, :0], v[:, :, :0])
    with pytest.raises(ValueError, match="same seq_len"):
        attn(q, k, v[:, :, :8])
    with pytest.raises(ValueError, match="floating"):
        attn(q.long(), k.long(), v.long())
    with pytest.raises(ValueError, match="dtypes differ"):
        attn(q, k.double(), v)
    with pytest.raises(ValueError, match=r"must be a torch\.Tensor"):
        attn(q, k.tolist(), v)
    with pytest.raises(ValueError, match="head_dim must be positive"):
        attn(q, k, v[..., :0])


def test_unknown_name_and_option_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"registered: .*standard"):
        get_attention("nope")
    with pytest.raises(ValueError, match="valid options: backend="):
        get_attention("standard", block_size=3)
    with pytest.raises(ValueError, match="backend must be one of"):
        get_attention("standard", backend="flash")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu(name):
    q, k, v = _qkv(n=64)
    attn = _build(name)
    cpu = _call(attn, q, k, v)
    gpu = _call(attn.cuda(), q.cuda(), k.cuda(), v.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=2e-3, atol=2e-3)


def test_memory_claim_follows_the_configuration():
    assert get_attention("standard", backend="eager").claimed_memory[1] == 2.0
    assert get_attention("standard", backend="sdpa").claimed_memory[1] == 1.0
    for name in NAMES:
        if name != "standard":
            attn = _build(name)
            assert attn.claimed_memory == (attn.capabilities.memory_complexity,
                                           attn.capabilities.memory_exponent)


def test_shared_qk_capability_drives_the_model_default():
    from harness.models import EncoderConfig

    assert attention_class("lsh").capabilities.shared_qk
    for name in NAMES:
        expected = attention_class(name).capabilities.shared_qk
        assert EncoderConfig(attention=name, num_labels=2).shared_qk is expected
    assert EncoderConfig(attention="lsh", num_labels=2, shared_qk=False).shared_qk is False
