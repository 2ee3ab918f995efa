"""Family-specific tests of LSH attention (``lsh``): exactness limits, bucketing, rounds, masks."""

from __future__ import annotations

import pytest
import torch

from harness.attention import get_attention, reference_attention
from harness.attention.lsh import (
    KEY_NORM_EPS,
    LSHAttention,
    _angular_buckets_,
    _stable_bucket_order,
    auto_n_buckets,
    hash_dtype,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _qkv(B=2, H=3, N=37, d=8, dtype=torch.float64, seed=0, device="cpu"):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, H, N, d, generator=gen, dtype=torch.float64) for _ in range(3))
    return q.to(device, dtype), k.to(device, dtype), v.to(device, dtype)


def _padding(B, N, seed=1, device="cpu"):
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(B, N, generator=gen) > 0.3
    mask[:, 0] = True
    return mask.to(device)


def _normalized(k):
    kd = k.double()
    return kd * torch.rsqrt(kd.pow(2).mean(dim=-1, keepdim=True) + KEY_NORM_EPS)


def _window_pattern(bq, bk, chunk):
    """Naive union over rounds of 'key chunk is the query's chunk or the previous one'.

    ``bq``, ``bk``: (B, H, R, N) bucket ids. Sorting is done here with Python's stable ``sorted``
    on (bucket, position), independently of the module's code.
    """
    B, H, R, N = bq.shape
    C = min(chunk, N)
    pattern = torch.zeros(B, H, N, N, dtype=torch.bool)
    for b in range(B):
        for h in range(H):
            for r in range(R):
                chunks = []
                for ids in (bq[b, h, r].tolist(), bk[b, h, r].tolist()):
                    order = sorted(range(N), key=lambda i, ids=ids: (ids[i], i))
                    chunk_of = [0] * N
                    for rank, pos in enumerate(order):
                        chunk_of[pos] = rank // C
                    chunks.append(torch.tensor(chunk_of))
                cq, ck = chunks
                gap = cq[:, None] - ck[None, :]
                pattern[b, h] |= (gap == 0) | (gap == 1)
    return pattern


def _causal_pattern(bq, bk, chunk):
    """Naive union over rounds of 'the last ``chunk`` keys of the query's bucket at positions
    <= the query's' (the causal mode's rule), by Python loops over positions."""
    B, H, R, N = bq.shape
    C = min(chunk, N)
    pattern = torch.zeros(B, H, N, N, dtype=torch.bool)
    for b in range(B):
        for h in range(H):
            for r in range(R):
                ids_q, ids_k = bq[b, h, r].tolist(), bk[b, h, r].tolist()
                for i in range(N):
                    same = [j for j in range(i + 1) if ids_k[j] == ids_q[i]]
                    for j in same[-C:]:
                        pattern[b, h, i, j] = True
    return pattern


def _naive_lsh(attn, q, k, v, mask=None, causal=False):
    """Float64 re-implementation from the bucket assignment: softmax over the union of windows."""
    shared = q is k
    bq = attn.buckets(q, mask).cpu()
    bk = bq if shared else attn.buckets(k, mask).cpu()
    rule = _causal_pattern if causal else _window_pattern
    pattern = rule(bq, bk, attn.chunk_size).to(q.device)
    if not shared and not causal:
        return reference_attention(q, k, v, mask, causal, allowed=pattern)
    B, _H, N, _ = q.shape
    base = torch.ones(B, 1, N, N, dtype=torch.bool, device=q.device)
    if causal:
        base = base & torch.tril(base)
    if mask is not None:
        base = base & mask[:, None, None, :]
    eye = torch.eye(N, dtype=torch.bool, device=q.device)
    # A query that sees no other key attends to its own position (causal, or shared QK).
    other = pattern & base & ~eye if shared else pattern & base
    allowed = other | (eye & base & ~other.any(dim=-1, keepdim=True))
    keys = _normalized(k).to(q.dtype) if shared else k
    return reference_attention(q, keys, v, mask, causal, allowed=allowed)


def _real_rows(out, mask):
    """Outputs at real query positions only (padded query outputs are unspecified)."""
    if mask is None:
        return out
    return out.masked_fill(~mask[:, None, :, None], 0.0)


# ----------------------------------------------------------------------------- exact limits
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("N", [37, 64])
def test_one_bucket_one_chunk_is_full_attention(N, padded, causal):
    q, k, v = _qkv(N=N)
    mask = _padding(2, N) if padded else None
    attn = get_attention("lsh", n_buckets=1, chunk_size=64, n_hashes=1)
    expected = reference_attention(q, k, v, mask, causal)
    got = attn(q, k, v, key_padding_mask=mask, causal=causal)
    torch.testing.assert_close(
        _real_rows(got, mask), _real_rows(expected, mask), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("n_hashes", [1, 3])
@pytest.mark.parametrize("causal", [False, True])
def test_one_bucket_shared_qk_is_full_attention_with_self_rule(n_hashes, causal):
    q, _, v = _qkv(N=20)
    attn = get_attention("lsh", n_buckets=1, chunk_size=32, n_hashes=n_hashes)
    N = q.shape[2]
    eye = torch.eye(N, dtype=torch.bool)
    allowed = ~eye
    if causal:  # token 0 sees nothing before it, so it falls back to itself
        allowed = allowed.clone()
        allowed[0, 0] = True
    expected = reference_attention(q, _normalized(q), v, None, causal, allowed=allowed)
    torch.testing.assert_close(attn(q, q, v, causal=causal), expected, rtol=0, atol=1e-12)


def test_small_chunks_really_restrict():
    q, k, v = _qkv(B=1, H=2, N=64, d=8)
    attn = get_attention("lsh", chunk_size=8, n_buckets=8)
    weights = attn.effective_weights(q, k)
    assert int((weights > 0).sum(dim=-1).max()) <= 2 * 8
    assert float((weights > 0).double().mean()) < 0.3
    full = reference_attention(q, k, v)
    assert float((attn(q, k, v) - full).abs().max()) > 1e-2


# ------------------------------------------------------------------- naive re-implementation
@pytest.mark.parametrize(
    ("N", "chunk", "n_hashes", "n_buckets", "shared", "causal", "padded"),
    [
        (37, 8, 1, 4, False, False, False),
        (37, 8, 1, 4, True, False, False),
        (40, 8, 1, None, True, True, True),
        (37, 5, 1, 1, False, True, False),  # one bucket, several chunks: local blocks
        (37, 8, 3, 4, False, False, False),
        (37, 8, 3, 6, True, True, False),
        (33, 4, 4, 8, True, False, True),
        (33, 4, 2, 8, False, True, True),
        (16, 16, 2, 2, False, False, False),
    ],
)
@pytest.mark.parametrize("device", DEVICES)
def test_matches_naive_reimplementation(N, chunk, n_hashes, n_buckets, shared, causal, padded,
                                        device):
    q, k, v = _qkv(N=N, device=device)
    if shared:
        k = q
    mask = _padding(2, N, device=device) if padded else None
    attn = get_attention("lsh", chunk_size=chunk, n_hashes=n_hashes, n_buckets=n_buckets, seed=3)
    got = attn(q, k, v, key_padding_mask=mask, causal=causal)
    expected = _naive_lsh(attn, q, k, v, mask, causal)
    torch.testing.assert_close(
        _real_rows(got, mask), _real_rows(expected, mask), rtol=0, atol=1e-10
    )


def test_matches_naive_in_float32_and_bfloat16():
    for dtype, atol in ((torch.float32, 1e-5), (torch.bfloat16, 6e-2)):
        q, _, v = _qkv(N=48, dtype=dtype)
        mask = _padding(2, 48)
        attn = get_attention("lsh", chunk_size=8, n_hashes=2, n_buckets=6)
        got = attn(q, q, v, key_padding_mask=mask, causal=True)
        assert got.dtype == dtype
        expected = _naive_lsh(attn, q, q, v, mask, True)
        torch.testing.assert_close(
            _real_rows(got, mask).double(), _real_rows(expected, mask).double(), rtol=0, atol=atol
        )


# ----------------------------------------------------------------------------- rounds
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_effective_weights_rows_sum_to_one_with_several_hashes(shared, causal):
    q, k, _v = _qkv(N=45, d=6)
    if shared:
        k = q
    mask = _padding(2, 45)
    attn = get_attention("lsh", chunk_size=4, n_hashes=4, n_buckets=6)
    weights = attn.effective_weights(q, k, key_padding_mask=mask, causal=causal)
    real = mask[:, None, :].expand(2, 3, 45)
    torch.testing.assert_close(weights.sum(dim=-1)[real], torch.ones(int(real.sum()),
                               dtype=torch.float64), rtol=0, atol=1e-12)
    assert bool((weights >= 0).all())
    # Several rounds see more keys than one round, and no pair is counted twice: the merged weights
    # are a softmax over the union of windows, so they follow exp(score) within a row.
    one_round = get_attention("lsh", chunk_size=4, n_hashes=1, n_buckets=6)
    seen_one = (one_round.effective_weights(q, k, mask, causal) > 0).sum(-1)[real]
    assert float((weights > 0).sum(-1)[real].double().mean()) > float(seen_one.double().mean())
    keys = _normalized(k) if shared else k
    scores = q @ keys.transpose(-1, -2) / q.shape[-1] ** 0.5
    b, h, i = 0, 1, 7
    visible = weights[b, h, i] > 0
    ratio = weights[b, h, i][visible] / torch.exp(scores[b, h, i][visible])
    torch.testing.assert_close(ratio, ratio[0].expand_as(ratio), rtol=1e-10, atol=0)


def test_rounds_merge_is_not_overcounted_when_windows_coincide():
    # With one bucket every round sorts identically: 3 rounds must equal 1 round exactly.
    q, k, v = _qkv(N=40)
    one = get_attention("lsh", chunk_size=8, n_buckets=1, n_hashes=1)
    three = get_attention("lsh", chunk_size=8, n_buckets=1, n_hashes=3)
    torch.testing.assert_close(three(q, k, v), one(q, k, v), rtol=0, atol=1e-12)
    torch.testing.assert_close(three(q, q, v, causal=True), one(q, q, v, causal=True),
                               rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- hashing
def test_buckets_shape_range_and_padding_bucket():
    q, _, _ = _qkv(N=50)
    mask = _padding(2, 50)
    attn = get_attention("lsh", chunk_size=8, n_hashes=3)
    nb = auto_n_buckets(50, 8)
    assert nb == 12 and attn.resolved_n_buckets(50) == nb
    buckets = attn.buckets(q, mask)
    assert buckets.shape == (2, 3, 3, 50) and buckets.dtype == torch.long
    real = mask[:, None, None, :].expand_as(buckets)
    assert int(buckets[real].min()) >= 0 and int(buckets[real].max()) < nb
    assert bool((buckets[~real] == nb).all())
    assert len(torch.unique(buckets[real])) > nb // 2  # the hash spreads tokens
    # angular LSH: the bucket is argmax over [xR, -xR]
    rot = attn.rotations(3, 8, nb, q.device, q.dtype)
    proj = torch.matmul(q.unsqueeze(2), rot)
    expected = torch.cat([proj, -proj], dim=-1).argmax(dim=-1)
    assert torch.equal(attn.buckets(q), expected)


@pytest.mark.parametrize("n_buckets,factors", [(512, (16, 32)), (256, (16, 16)), (132, (6, 22)),
                                               (128, (128,)), (786, (786,))])
def test_large_bucket_counts_hash_with_factorized_rotations(n_buckets, factors):
    """Above FACTORIZE_ABOVE buckets, two angular hashes of f1 and f2 buckets: b1 + f1 * b2
    (Reformer's factorization), from a projection of f1/2 + f2/2 columns."""
    from harness.attention.lsh import bucket_factors

    assert bucket_factors(n_buckets) == factors
    attn = get_attention("lsh", n_buckets=n_buckets, chunk_size=8)
    q = torch.randn(2, 3, 300, 8, generator=torch.Generator().manual_seed(4))
    rot = attn.rotations(3, 8, n_buckets, q.device, q.dtype)
    assert rot.shape[-1] == sum(f // 2 for f in factors)
    proj = torch.matmul(q.unsqueeze(2), rot)
    expected = torch.zeros(proj.shape[:-1], dtype=torch.long)
    start, scale = 0, 1
    for f in factors:
        part = proj[..., start : start + f // 2]
        expected += scale * torch.cat([part, -part], dim=-1).argmax(dim=-1)
        start, scale = start + f // 2, scale * f
    buckets = attn.buckets(q)
    assert torch.equal(buckets, expected)
    assert int(buckets.max()) < n_buckets and len(torch.unique(buckets)) > 100


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_angular_bucket_assignment_is_exact_argmax_with_ties_and_signed_zeros(dtype):
    gen = torch.Generator().manual_seed(3)
    for trial in range(60):
        half = (1, 2, 3, 7, 16, 32, 64)[trial % 7]  # wide rows take torch's vectorized reductions
        proj = torch.randn(40, 3, half, generator=gen, dtype=dtype)
        if trial % 3 == 0:
            proj = proj.round()  # many exact ties, across halves too
        proj[0] = 0.0
        proj[1] = -0.0
        proj[2, :, ::2] = -0.0  # some signed zeros
        proj[6:9] = 0.0
        proj[6:9][torch.rand(3, 3, half, generator=gen) < 0.5] = -0.0  # all-zero, mixed signs
        proj[3] = -proj[3].abs().amax(dim=-1, keepdim=True)  # every entry ties for the minimum
        proj[4, :, -1] = proj[4].abs().amax(dim=-1) + 1  # winner in the last slot
        proj[5, :, 0] = -(proj[5].abs().amax(dim=-1) + 1)  # winner is -p in the first slot
        expected = torch.cat([proj, -proj], dim=-1).argmax(dim=-1)
        assert torch.equal(_angular_buckets_(proj.clone()), expected), trial
        # across rows (the factorized layout): the same winners from (columns, tokens)
        across = proj.transpose(-1, -2).contiguous()
        assert torch.equal(_angular_buckets_(across, dim=-2), expected), trial


@pytest.mark.parametrize("n_buckets", [6, 2**31])  # int32 keys, and int64 keys
def test_bucket_order_is_a_stable_argsort(n_buckets):
    gen = torch.Generator().manual_seed(4)
    buckets = torch.randint(0, 7, (2, 3, 2, 301), generator=gen)  # 6 = the padding bucket
    order = _stable_bucket_order(buckets, n_buckets)
    assert order.dtype == torch.long
    assert torch.equal(order, torch.argsort(buckets, dim=-1, stable=True))


def test_16bit_inputs_hash_in_float32():
    q, _, _ = _qkv(N=64, dtype=torch.bfloat16)
    attn = get_attention("lsh", chunk_size=8, n_hashes=2)
    assert hash_dtype(torch.bfloat16) == torch.float32
    assert hash_dtype(torch.float64) == torch.float64
    assert torch.equal(attn.buckets(q), attn.buckets(q.float()))


def test_auto_buckets_are_even_and_at_least_two():
    assert auto_n_buckets(4096, 64) == 128
    assert auto_n_buckets(16384, 64) == 512
    assert auto_n_buckets(10, 64) == 2
    assert all(auto_n_buckets(n, 7) % 2 == 0 for n in range(1, 200))
    with pytest.raises(ValueError, match="seq_len"):
        auto_n_buckets(0, 64)


def test_same_seed_is_bitwise_deterministic_and_independent_of_global_rng():
    q, k, v = _qkv(B=1, N=96, dtype=torch.float32)
    a = get_attention("lsh", chunk_size=8, n_hashes=2, seed=11)
    b = get_attention("lsh", chunk_size=8, n_hashes=2, seed=11)
    torch.manual_seed(123)
    first = a(q, q, v, causal=True)
    torch.manual_seed(456)
    assert torch.equal(first, b(q, q, v, causal=True))
    assert torch.equal(a(q, k, v), b(q, k, v))
    other = get_attention("lsh", chunk_size=8, n_hashes=2, seed=12)
    assert not torch.equal(a.buckets(q), other.buckets(q))
    assert not torch.allclose(first, other(q, q, v, causal=True))


def test_stable_sort_keeps_position_order_within_a_bucket():
    # Identical vectors share every bucket; with n_buckets=1 the order is the original one, so
    # chunk c holds positions c*C .. c*C+C-1 and attends to itself and the chunk before.
    q, k, _v = _qkv(B=1, H=1, N=12, d=4)
    attn = get_attention("lsh", chunk_size=4, n_buckets=1)
    weights = attn.effective_weights(q, k)[0, 0]
    blocks = torch.arange(12) // 4
    gap = blocks[:, None] - blocks[None, :]
    assert torch.equal(weights > 0, (gap == 0) | (gap == 1))


def test_no_gradient_through_hashing_and_finite_grads():
    q, _k, v = _qkv(N=30, dtype=torch.float64)
    q.requires_grad_(True)
    v.requires_grad_(True)
    mask = _padding(2, 30)
    attn = get_attention("lsh", chunk_size=4, n_hashes=2, n_buckets=4)
    out = attn(q, q, v, key_padding_mask=mask, causal=True)
    out.sum().backward()
    assert torch.isfinite(q.grad).all() and torch.isfinite(v.grad).all()
    # With the buckets fixed the map is smooth: analytic gradients match finite differences.
    qs = q.detach()[:1, :1, :12, :4].clone().requires_grad_(True)
    vs = v.detach()[:1, :1, :12, :4].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda a, b: attn(a, a, b, causal=True), (qs, vs), fast_mode=True
    )


def test_reused_work_buffers_never_leak_into_outputs():
    attn = get_attention("lsh", chunk_size=8)
    q1, _, v1 = _qkv(N=64, dtype=torch.float32, seed=1)
    q2, k2, v2 = _qkv(N=64, dtype=torch.float32, seed=2)
    with torch.no_grad():
        first = attn(q1, q1, v1)
        kept = first.clone()
        attn(q2, q2, v2)
        attn(q2, k2, v2)
    assert torch.equal(first, kept)
    assert torch.equal(attn(q1, q1, v1), kept)


def test_inference_mode_and_normal_calls_mix_on_the_one_round_path():
    # The contract test covers several rounds; one round has its own cached unsort table.
    attn = get_attention("lsh", chunk_size=8, n_hashes=1)
    q, _, v = _qkv(N=64, dtype=torch.float32)
    with torch.inference_mode():
        expected = attn(q, q, v)  # work buffers and caches first made as inference tensors
    with torch.no_grad():
        assert torch.equal(attn(q, q, v), expected)
    qg = q.clone().requires_grad_(True)
    out = attn(qg, qg, v)  # autograd must not meet a cached inference tensor
    out.sum().backward()
    torch.testing.assert_close(out.detach(), expected, rtol=1e-5, atol=1e-6)
    with torch.inference_mode():
        assert torch.equal(attn(q, q, v), expected)


def test_gradient_path_matches_inference_path():
    q, _k, v = _qkv(N=70, dtype=torch.float32)
    attn = get_attention("lsh", chunk_size=8)
    with torch.no_grad():
        fast = attn(q, q, v)
    slow = attn(q, q, v.clone().requires_grad_(True))
    torch.testing.assert_close(slow.detach(), fast, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- shared-QK rule
def test_shared_qk_never_attends_to_itself_when_others_are_visible():
    q, _, _v = _qkv(N=40)
    attn = get_attention("lsh", chunk_size=8, n_hashes=2)
    weights = attn.effective_weights(q, q)
    assert float(torch.diagonal(weights, dim1=-2, dim2=-1).abs().max()) == 0.0
    # Distinct q and k carry no self rule: the diagonal is used.
    assert float(torch.diagonal(attn.effective_weights(q, q.clone()), dim1=-2, dim2=-1).max()) > 0


def test_shared_qk_falls_back_to_itself_when_alone():
    q, _, v = _qkv(N=24)
    attn = get_attention("lsh", chunk_size=4, n_hashes=3)
    out = attn(q, q, v, causal=True)
    torch.testing.assert_close(out[:, :, 0], v[:, :, 0], rtol=0, atol=1e-12)
    mask = torch.zeros(2, 24, dtype=torch.bool)
    mask[:, 5] = True  # a single real token: it can only see itself
    out = attn(q, q, v, key_padding_mask=mask)
    torch.testing.assert_close(out[:, :, 5], v[:, :, 5], rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- causal, padding
@pytest.mark.parametrize("shared", [False, True])
def test_causal_and_padding_are_respected(shared):
    q, k, _v = _qkv(N=42)
    if shared:
        k = q
    mask = _padding(2, 42)
    attn = get_attention("lsh", chunk_size=8, n_hashes=2, n_buckets=4)
    weights = attn.effective_weights(q, k, key_padding_mask=mask, causal=True)
    future = torch.triu(torch.ones(42, 42, dtype=torch.bool), diagonal=1)
    assert float(weights[..., future].abs().max()) == 0.0
    assert float(weights.masked_select(~mask[:, None, None, :]).abs().max()) == 0.0


@pytest.mark.parametrize("n_hashes", [1, 2])
def test_padding_content_and_amount_do_not_change_real_outputs(n_hashes):
    q, _k, v = _qkv(N=30)
    n = 22
    mask = torch.zeros(2, 30, dtype=torch.bool)
    mask[:, :n] = True
    attn = get_attention("lsh", chunk_size=4, n_hashes=n_hashes, n_buckets=6)
    out = attn(q, q, v, key_padding_mask=mask, causal=True)
    noisy = [t.clone() for t in (q, v)]
    for t in noisy:
        t[:, :, n:] = 100 * torch.randn_like(t[:, :, n:])
    out_noisy = attn(noisy[0], noisy[0], noisy[1], key_padding_mask=mask, causal=True)
    torch.testing.assert_close(out_noisy[:, :, :n], out[:, :, :n], rtol=0, atol=1e-12)
    q_short = q[:, :, :n]  # one object for both q and k: shared QK
    short = attn(q_short, q_short, v[:, :, :n], causal=True)
    torch.testing.assert_close(short, out[:, :, :n], rtol=0, atol=1e-12)


def test_fully_masked_rows_are_zero_and_finite():
    q, k, v = _qkv(N=20)
    mask = torch.zeros(2, 20, dtype=torch.bool)
    mask[1, 3:] = True
    for n_hashes in (1, 2):
        attn = get_attention("lsh", chunk_size=4, n_hashes=n_hashes)
        out = attn(q, k, v, key_padding_mask=mask)
        assert torch.isfinite(out).all()
        assert float(out[0].abs().max()) == 0.0
        out = attn(q, k, v, key_padding_mask=mask, causal=True)
        assert float(out[1, :, :3].abs().max()) == 0.0


def test_length_not_multiple_of_chunk_and_merged_head_layout():
    q, k, v = _qkv(B=1, H=4, N=77, d=16, dtype=torch.float32)
    # heads split off a projection: non-contiguous inputs, as in an encoder layer
    x = torch.randn(1, 77, 64)
    split = x.view(1, 77, 4, 16).transpose(1, 2)
    attn = get_attention("lsh", chunk_size=16)
    out = attn(split, split, v)
    assert out.shape == (1, 4, 77, 16)
    dense = split.contiguous()
    torch.testing.assert_close(out, attn(dense, dense, v))
    assert attn(q, k, v).shape == (1, 4, 77, 16)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"chunk_size": 0}, "chunk_size"),
        ({"chunk_size": 2.5}, "chunk_size"),
        ({"chunk_size": True}, "chunk_size"),
        ({"n_hashes": 0}, "n_hashes"),
        ({"n_buckets": 3}, "n_buckets"),
        ({"n_buckets": 0}, "n_buckets"),
        ({"n_buckets": 4.0}, "n_buckets"),
        ({"seed": -1}, "seed"),
        ({"seed": "0"}, "seed"),
        ({"seed": 2**63}, "seed"),
        ({"hashes": 2}, "valid options"),
    ],
)
def test_bad_options_raise(options, match):
    with pytest.raises(ValueError, match=match):
        get_attention("lsh", **options)


def test_bad_inputs_raise():
    attn = get_attention("lsh")
    q, k, v = _qkv(N=16)
    with pytest.raises(ValueError, match="same seq_len"):
        attn(q, k[:, :, :8], v[:, :, :8])
    with pytest.raises(ValueError, match="4-D"):
        attn.buckets(q[0])
    with pytest.raises(ValueError, match="key_padding_mask"):
        attn.buckets(q, torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="exceeds"):
        attn.effective_weights(torch.zeros(1, 1, 5000, 2), torch.zeros(1, 1, 5000, 2))


def test_registry_metadata():
    attn = get_attention("lsh")
    assert isinstance(attn, LSHAttention)
    assert attn.options == {"chunk_size": 64, "n_hashes": 1, "n_buckets": None, "seed": 0,
                            "backend": "chunks"}
    caps = attn.capabilities
    assert caps.memory_exponent == 1.0 and not caps.cross_lengths and caps.approximates_softmax


# ----------------------------------------------------------------------------- bench peer
def test_bench_pairs_run_on_small_inputs():
    pytest.importorskip("transformers")
    from scripts.bench_peers.lsh import pairs

    for label, ours, peer in pairs(256, heads=2, head_dim=16):
        out_ours, out_peer = ours(), peer()
        out_peer = getattr(out_peer, "hidden_states", out_peer)
        for out in out_ours if isinstance(out_ours, tuple) else (out_ours,):
            assert out.shape == out_peer.shape, label
            assert torch.isfinite(out).all()


# ----------------------------------------------------------------- strict causality, NaN slices
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize(("chunk", "n_hashes"), [(4, 1), (64, 1), (8, 3)])
def test_causal_later_qk_change_never_reaches_earlier_outputs(shared, chunk, n_hashes):
    # The leak of chunked causal LSH: later tokens shift the sorted chunk boundaries.
    q, k, v = _qkv(N=256, d=16)
    attn = get_attention("lsh", chunk_size=chunk, n_hashes=n_hashes)
    base = attn(q, q if shared else k, v, causal=True)
    for cut in (255, 100):
        q2, k2 = q.clone(), k.clone()
        q2[:, :, cut:] = torch.randn_like(q2[:, :, cut:])
        k2[:, :, cut:] = torch.randn_like(k2[:, :, cut:])
        out = attn(q2, q2 if shared else k2, v, causal=True)
        # Equal up to rounding (a window's key slots may move; the fused kernel sums in order).
        torch.testing.assert_close(out[:, :, :cut], base[:, :, :cut], rtol=0, atol=1e-12)
        assert not torch.allclose(out[:, :, cut:], base[:, :, cut:])


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n_hashes", [1, 2])
def test_nan_stays_in_its_batch_head_slice(causal, n_hashes):
    q, _, v = _qkv(B=3, H=2, N=64, d=8, dtype=torch.float32)  # float32: NaN bits as in use
    attn = get_attention("lsh", chunk_size=8, n_hashes=n_hashes)
    base = attn(q, q, v, causal=causal)
    q2 = q.clone()
    q2[1, 0, 5] = float("nan")
    out = attn(q2, q2, v, causal=causal)
    keep = torch.ones(3, 2, dtype=torch.bool)
    keep[1, 0] = False
    assert torch.equal(out[keep], base[keep])
    assert not bool(out[keep].isnan().any())


def test_rotations_are_drawn_on_the_cpu_generator_for_every_device(monkeypatch):
    """A CUDA generator draws other numbers for the same seed: rotations must come from the CPU
    generator and then move, so lsh hashes alike on every device (checked here by the device the
    generator is made on, since this machine may have no GPU)."""
    made = []
    real = torch.Generator

    def spy(device="cpu"):
        made.append(str(device))
        return real(device="cpu")

    monkeypatch.setattr(torch, "Generator", spy)
    attn = get_attention("lsh", seed=3)
    rot = attn.rotations(2, 8, 4, torch.device("meta"), torch.float32)
    assert made == ["cpu"], f"rotations drew on a {made} generator"
    assert rot.device.type == "meta" and rot.shape == (2, attn.n_hashes, 8, 2)
