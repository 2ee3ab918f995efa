"""Family-specific tests of the ``linear`` attention (elu and favor feature maps)."""

from __future__ import annotations

import pytest
import torch

from harness.attention import allowed_keys, get_attention, reference_attention
from harness.attention.linear import (
    LinearAttention,
    elu_feature_map,
    favor_key_rows,
    favor_projection,
    linear_attention,
)

F64 = torch.float64


def _qkv(b: int, h: int, n_q: int, n_k: int, d: int, seed: int = 0, scale: float = 1.0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, n_q, d, generator=gen, dtype=F64) * scale
    k = torch.randn(b, h, n_k, d, generator=gen, dtype=F64) * scale
    v = torch.randn(b, h, n_k, d, generator=gen, dtype=F64)
    return q, k, v


def _mask(b: int, n: int) -> torch.Tensor:
    """Row 0: last third padded; row 1: first 4 keys padded; row 2 (if any): all padded."""
    mask = torch.ones(b, n, dtype=torch.bool)
    mask[0, n - n // 3 :] = False
    if b > 1:
        mask[1, :4] = False
    if b > 2:
        mask[2] = False
    return mask


def _explicit(phi_q, phi_k, v, mask, causal):
    """The O(N^2) formula: phi(Q) phi(K)^T V / phi(Q) phi(K)^T 1 over visible keys, else 0."""
    scores = phi_q @ phi_k.transpose(-1, -2)
    allowed = allowed_keys(phi_q.shape[2], phi_k.shape[2], mask, causal)
    scores = scores * allowed.to(scores.dtype)
    den = scores.sum(dim=-1, keepdim=True)
    out = (scores @ v) / torch.where(den > 0, den, torch.ones_like(den))
    return out.masked_fill(~allowed.any(dim=-1, keepdim=True), 0.0)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("n_q", "n_k"), [(37, 37), (23, 37), (37, 23)])
def test_elu_equals_explicit_formula(causal: bool, n_q: int, n_k: int) -> None:
    q, k, v = _qkv(3, 2, n_q, n_k, 8)
    mask = _mask(3, n_k)
    attn = get_attention("linear", feature_map="elu")
    attn.chunk_size = 8  # lengths are not multiples of the chunk
    out = attn(q, k, v, key_padding_mask=mask, causal=causal)
    expected = _explicit(elu_feature_map(q), elu_feature_map(k), v, mask, causal)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
    assert out.dtype == F64
    assert torch.all(out[2] == 0)  # a fully padded row sees no key
    if causal:
        assert torch.all(out[1, :, :4] == 0)  # queries before the first real key


@pytest.mark.parametrize("feature_map", ["elu", "favor"])
@pytest.mark.parametrize("chunk_size", [1, 5, 16, 200])
def test_causal_chunked_equals_causal_explicit(feature_map: str, chunk_size: int) -> None:
    q, k, v = _qkv(2, 2, 41, 41, 8, seed=1, scale=0.5)
    mask = _mask(2, 41)
    attn = get_attention("linear", feature_map=feature_map, n_features=32)
    phi_q, phi_k = attn.features(q, k, mask)
    out = linear_attention(phi_q, phi_k, v, mask, causal=True, chunk_size=chunk_size)
    torch.testing.assert_close(out, _explicit(phi_q, phi_k, v, mask, True), rtol=1e-9, atol=1e-12)
    attn.chunk_size = chunk_size
    if feature_map == "favor":  # causal favor: keys stabilized row by row, weights carried
        rows, log_w = favor_key_rows(k, attn.projection, mask)
        weighted = rows * log_w.exp().unsqueeze(-1)
        out = _explicit(phi_q, weighted, v, mask, True)
        torch.testing.assert_close(
            linear_attention(phi_q, rows, v, mask, causal=True, chunk_size=chunk_size,
                             key_log_weight=log_w), out, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(attn(q, k, v, mask, causal=True), out, rtol=1e-9, atol=1e-12)


def test_favor_causal_never_sees_later_tokens() -> None:
    """A shared stabilizer (the maximum over every key) let later keys move earlier outputs
    through FAVOR_EPS by up to 0.88 (float64; 1.9e-4 in the claims audit's inputs)."""
    attn = get_attention("linear", feature_map="favor")
    for seed in range(6):
        q, k, v = _qkv(2, 2, 48, 48, 16, seed=seed)
        base = attn(q, k, v, causal=True)
        q2, k2, v2 = q.clone(), k.clone(), v.clone()
        q2[:, :, 29:] += 3.0
        k2[:, :, 29:] -= 2.0
        v2[:, :, 29:] *= 5.0
        assert torch.equal(attn(q2, k2, v2, causal=True)[:, :, :29], base[:, :, :29])


def _favor_error(n_features: int, seeds: range, causal: bool = False) -> float:
    q, k, v = _qkv(2, 2, 48, 48, 16, seed=7, scale=0.5)
    mask = _mask(2, 48)
    ref = reference_attention(q, k, v, mask, causal)
    errors = []
    for seed in seeds:
        attn = get_attention("linear", feature_map="favor", n_features=n_features, seed=seed)
        errors.append((attn(q, k, v, mask, causal) - ref).abs().mean().item())
    return sum(errors) / len(errors)


def test_favor_error_to_softmax_decreases_with_features() -> None:
    errors = {m: _favor_error(m, range(4)) for m in (16, 256, 2048)}
    assert errors[256] < 0.75 * errors[16], errors
    assert errors[2048] < 0.6 * errors[256], errors
    assert errors[2048] < 0.02, errors  # measured 0.048, 0.018, 0.007 for 16, 256, 2048


def test_favor_causal_approximates_softmax() -> None:
    assert _favor_error(2048, range(2), causal=True) < 0.03


def test_favor_projection_is_block_orthogonal_and_seeded() -> None:
    d, m = 8, 20  # 20 rows: two full blocks and a partial one
    proj = favor_projection(m, d, seed=3)
    assert proj.shape == (m, d) and proj.dtype == F64
    unit = proj / proj.norm(dim=1, keepdim=True)
    for start in range(0, m, d):
        block = unit[start : start + d]
        gram = block @ block.T
        torch.testing.assert_close(gram, torch.eye(len(block), dtype=F64), atol=1e-12, rtol=0)
    norms = proj.norm(dim=1)
    assert norms.std() > 0.1  # chi-distributed norms, not all sqrt(d)
    assert abs(norms.pow(2).mean().item() - d) < 0.6 * d  # E|w|^2 = d
    assert torch.equal(proj, favor_projection(m, d, seed=3))
    assert not torch.equal(proj, favor_projection(m, d, seed=4))


def test_favor_rows_are_standard_gaussian_on_average() -> None:
    proj = favor_projection(4096, 4, seed=0)
    torch.testing.assert_close(proj.T @ proj / 4096, torch.eye(4, dtype=F64), atol=0.08, rtol=0)


def test_projection_buffer_is_lazy_deterministic_and_not_saved() -> None:
    attn = get_attention("linear", feature_map="favor", n_features=24, seed=5)
    assert attn.projection is None
    q, k, v = _qkv(1, 1, 6, 6, 8)
    out = attn(q, k, v)
    assert attn.projection is not None and attn.projection.shape == (24, 8)
    assert "projection" in dict(attn.named_buffers())
    assert "projection" not in attn.state_dict()
    twin = get_attention("linear", feature_map="favor", n_features=24, seed=5)
    torch.testing.assert_close(twin(q, k, v), out, rtol=0, atol=0)
    q4, k4, v4 = _qkv(1, 1, 6, 6, 4)
    attn(q4, k4, v4)  # a new head_dim redraws for that size
    assert attn.projection.shape == (24, 4)


@pytest.mark.parametrize("feature_map", ["elu", "favor"])
def test_padded_keys_contribute_nothing(feature_map: str) -> None:
    q, k, v = _qkv(2, 2, 20, 20, 8, scale=0.5)
    mask = _mask(2, 20)
    attn = get_attention("linear", feature_map=feature_map, n_features=64)
    out = attn(q, k, v, mask)
    k2, v2 = k.clone(), v.clone()
    pads = ~mask[:, None, :, None]
    k2 = torch.where(pads, torch.full_like(k2, 30.0), k2)  # huge keys at pads must not dominate
    v2 = torch.where(pads, torch.full_like(v2, -1e3), v2)
    torch.testing.assert_close(attn(q, k2, v2, mask), out, rtol=1e-10, atol=1e-12)


def test_favor_large_inputs_stay_finite_with_finite_grads() -> None:
    q, k, v = (t.float().requires_grad_() for t in _qkv(2, 2, 33, 33, 16, scale=8.0))
    mask = _mask(2, 33)
    attn = get_attention("linear", feature_map="favor", n_features=64)
    attn.chunk_size = 10
    for causal in (False, True):
        out = attn(q, k, v, mask, causal)
        assert torch.isfinite(out).all()
        out.square().sum().backward()
        assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


@pytest.mark.parametrize("feature_map", ["elu", "favor"])
def test_bfloat16_close_to_float32(feature_map: str) -> None:
    q, k, v = (t.float() for t in _qkv(2, 2, 30, 30, 16, scale=0.5))
    attn = get_attention("linear", feature_map=feature_map, n_features=64)
    ref = attn(q, k, v, causal=True)
    out = attn(q.bfloat16(), k.bfloat16(), v.bfloat16(), causal=True)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0.05)


def test_capabilities_and_options() -> None:
    caps = LinearAttention.capabilities
    assert caps.memory_exponent == 1.0 and caps.time_complexity == "O(N)"
    assert caps.causal and caps.key_padding_mask and caps.cross_lengths
    assert caps.approximates_softmax
    attn = get_attention("linear")
    assert attn.options == {"feature_map": "elu", "n_features": 256, "seed": 0, "backend": "torch"}


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"feature_map": "relu"}, "feature_map"),
        ({"feature_map": None}, "feature_map"),
        ({"n_features": 0}, "n_features"),
        ({"n_features": -4}, "n_features"),
        ({"n_features": 2.5}, "n_features"),
        ({"n_features": True}, "n_features"),
        ({"seed": -1}, "seed"),
        ({"seed": "0"}, "seed"),
        ({"chunk_size": 8}, "chunk_size"),  # an attribute, not a registry option
    ],
)
def test_bad_options_raise(options: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        get_attention("linear", **options)


def test_bad_chunk_size_raises() -> None:
    q, k, v = _qkv(1, 1, 4, 4, 2)
    with pytest.raises(ValueError, match="chunk_size"):
        linear_attention(q, k, v, causal=True, chunk_size=0)


@pytest.mark.parametrize("feature_map", ["elu", "favor"])
def test_identical_keys_average_their_values(feature_map: str) -> None:
    q, k, v = _qkv(1, 2, 3, 2, 4)
    k = k[:, :, :1].expand_as(k)
    out = get_attention("linear", feature_map=feature_map, n_features=16)(q, k, v)
    torch.testing.assert_close(out, v.mean(dim=2, keepdim=True).expand_as(out))


@pytest.mark.parametrize("feature_map", ["elu", "favor"])
@pytest.mark.parametrize("causal", [False, True])
def test_gradients_match_finite_differences(feature_map: str, causal: bool) -> None:
    attn = get_attention("linear", feature_map=feature_map, n_features=8)
    attn.chunk_size = 3
    mask = torch.tensor([[True] * 5 + [False] * 2])
    q, k, v = (t.requires_grad_() for t in _qkv(1, 1, 7, 7, 4, seed=2, scale=0.5))
    assert torch.autograd.gradcheck(lambda q, k, v: attn(q, k, v, mask, causal), (q, k, v))
