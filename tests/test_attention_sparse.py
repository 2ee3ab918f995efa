"""Family-specific tests of the block-sparse attention (``sparse``)."""

from __future__ import annotations

import random

import pytest
import torch

from harness.attention import get_attention, reference_attention
from harness.attention.sparse import BlockSparseAttention


def _qkv(batch: int, heads: int, n: int, d: int, dtype=torch.float64, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, heads, n, d, generator=gen, dtype=dtype) for _ in range(3))


def _padding(batch: int, n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(batch, n, generator=gen) < 0.7
    mask[0, : n // 2] = False  # whole padded stretches: some queries see no real key at all
    return mask


def _random_configs(count: int) -> list[dict]:
    rng = random.Random(1234)
    configs = []
    for _ in range(count):
        configs.append(
            {
                "options": {
                    "block_size": rng.choice([1, 2, 3, 4, 7, 8, 16]),
                    "window_blocks": rng.randint(1, 6),
                    "global_blocks": rng.randint(0, 3),
                    "random_blocks": rng.randint(0, 4),
                    "seed": rng.randint(0, 1000),
                },
                "n": rng.randint(1, 100),
                "batch": rng.randint(1, 3),
                "heads": rng.randint(1, 3),
                "causal": rng.random() < 0.5,
                "padding": rng.random() < 0.5,
            }
        )
    return configs


def test_window_covering_every_block_is_full_attention():
    n, b = 45, 4  # 12 blocks, the last one partial
    attn = get_attention("sparse", block_size=b, window_blocks=23, global_blocks=0,
                         random_blocks=0)
    q, k, v = _qkv(2, 3, n, 8)
    assert bool(attn.dense_mask(n).all())
    for causal in (False, True):
        for mask in (None, _padding(2, n, seed=1)):
            out = attn(q, k, v, key_padding_mask=mask, causal=causal)
            ref = reference_attention(q, k, v, mask, causal)
            torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("config", _random_configs(60), ids=lambda c: str(c["options"]))
def test_equals_softmax_masked_by_its_own_pattern(config):
    n, batch, heads = config["n"], config["batch"], config["heads"]
    attn = get_attention("sparse", **config["options"])
    q, k, v = _qkv(batch, heads, n, 8, seed=n)
    mask = _padding(batch, n, seed=n) if config["padding"] else None
    out = attn(q, k, v, key_padding_mask=mask, causal=config["causal"])
    ref = reference_attention(q, k, v, mask, config["causal"], allowed=attn.dense_mask(n))
    assert out.shape == q.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


def test_gradients_match_the_masked_reference():
    n = 37
    attn = get_attention("sparse", block_size=4, window_blocks=3, global_blocks=1,
                         random_blocks=2, seed=3)
    mask = _padding(2, n, seed=5)
    allowed = attn.dense_mask(n)
    weights = torch.randn(2, 3, n, 6, dtype=torch.float64)
    for causal in (False, True):
        ours = [t.requires_grad_() for t in _qkv(2, 3, n, 6)]
        theirs = [t.detach().clone().requires_grad_() for t in ours]
        (attn(*ours, key_padding_mask=mask, causal=causal) * weights).sum().backward()
        ref = reference_attention(*theirs, mask, causal, allowed=allowed)
        (ref * weights).sum().backward()
        for a, b in zip(ours, theirs, strict=True):
            torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-10)


def test_inference_and_autograd_paths_agree_and_buffers_do_not_leak():
    attn = get_attention("sparse", block_size=8, random_blocks=2)
    q, k, v = _qkv(2, 2, 70, 8, dtype=torch.float32)
    mask = _padding(2, 70, seed=2)
    with torch.no_grad():
        first = attn(q, k, v, key_padding_mask=mask, causal=True)
        kept = first.clone()
        attn(*(t * 2 for t in (q, k, v)), key_padding_mask=mask, causal=True)  # reuses buffers
    torch.testing.assert_close(first, kept, rtol=0, atol=0)
    graded = attn(*(t.clone().requires_grad_() for t in (q, k, v)), key_padding_mask=mask,
                  causal=True)
    torch.testing.assert_close(graded.detach(), first, rtol=0, atol=1e-6)


def test_token_major_and_head_major_inputs_agree():
    attn = get_attention("sparse", block_size=16, random_blocks=3)
    hidden = torch.randn(2, 200, 3 * 4 * 8, dtype=torch.float64)
    q, k, v = (t.view(2, 200, 4, 8).transpose(1, 2) for t in hidden.split(32, dim=-1))
    assert not q.is_contiguous()
    split = attn(q, k, v)
    contiguous = attn(q.contiguous(), k.contiguous(), v.contiguous())
    torch.testing.assert_close(split, contiguous, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        split, reference_attention(q, k, v, allowed=attn.dense_mask(200)), rtol=0, atol=1e-12
    )


def test_bfloat16_follows_the_reference():
    attn = get_attention("sparse", block_size=8)
    q, k, v = _qkv(1, 2, 90, 16, dtype=torch.bfloat16)
    out = attn(q, k, v, causal=True)
    ref = reference_attention(q, k, v, None, True, allowed=attn.dense_mask(90))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref.float(), rtol=0, atol=3e-2)


def test_pattern_is_sparse_at_2048_with_defaults():
    attn = get_attention("sparse")
    n, b = 2048, 64
    n_blocks = n // b
    pattern = attn.dense_mask(n)
    _, valid = attn.block_layout(n_blocks)
    # The global query block sees all 32 blocks. Blocks 2..30 see 3 window + 1 global + 2 random
    # = 6 blocks; block 1 (its window holds the global block) and block 31 (window clipped) see 5.
    assert int(valid.sum()) == 29 * 6 + 5 + 5
    expected_blocks = n_blocks + int(valid.sum())
    assert int(pattern.sum()) == expected_blocks * b * b
    assert pattern.float().mean().item() == pytest.approx(expected_blocks / n_blocks**2)
    assert pattern.float().mean().item() < 0.22
    assert bool(pattern[:b].all()) and bool(pattern[:, :b].all())  # global rows and columns


def test_layout_never_repeats_a_block_and_draws_outside_window_and_globals():
    attn = get_attention("sparse", block_size=4, window_blocks=4, global_blocks=2,
                         random_blocks=3, seed=9)
    n_blocks = 40
    index, valid = attn.block_layout(n_blocks)
    assert index.shape == (n_blocks - 2, 4 + 2 + 3)
    for row, block in enumerate(range(2, n_blocks)):
        kept = index[row][valid[row]].tolist()
        assert len(kept) == len(set(kept)) and kept == sorted(kept)
        window = set(range(max(0, block - 2), min(n_blocks, block + 2)))  # 2 left, 1 right
        fixed = window | {0, 1}
        assert fixed <= set(kept)
        assert len(set(kept) - fixed) == 3  # exactly random_blocks extra blocks
        assert not valid[row][len(kept):].any()


def test_random_blocks_are_capped_by_the_free_blocks():
    attn = get_attention("sparse", block_size=2, window_blocks=3, global_blocks=1,
                         random_blocks=10)
    index, valid = attn.block_layout(6)
    assert bool(valid.all(dim=1).all())  # every row sees all 6 blocks, no duplicates
    assert all(sorted(index[r].tolist()) == list(range(6)) for r in range(index.shape[0]))


def test_pattern_is_fixed_for_a_seed_and_differs_across_seeds():
    n = 1024
    a = get_attention("sparse", block_size=16, seed=7)
    b = get_attention("sparse", block_size=16, seed=7)
    c = get_attention("sparse", block_size=16, seed=8)
    assert torch.equal(a.dense_mask(n), b.dense_mask(n))
    assert not torch.equal(a.dense_mask(n), c.dense_mask(n))
    a.train()
    q, k, v = _qkv(1, 2, n, 8, dtype=torch.float32)
    trained = a(q, k, v)
    a.eval()
    torch.testing.assert_close(a(q, k, v), trained, rtol=0, atol=0)
    torch.testing.assert_close(b(q, k, v), trained, rtol=0, atol=0)
    # A fresh pattern cache gives the same layout (a function of seed and block count only).
    a._layouts.clear()
    assert torch.equal(a.dense_mask(n), b.dense_mask(n))


def test_dense_mask_causal_and_crop():
    attn = get_attention("sparse", block_size=8, random_blocks=1)
    full = attn.dense_mask(50)
    assert full.shape == (50, 50) and full.dtype == torch.bool
    assert torch.equal(attn.dense_mask(50, causal=True), full.tril())
    assert torch.equal(attn.dense_mask(56)[:50, :50], full)  # same blocks: same pattern


def test_options_and_capabilities():
    attn = get_attention("sparse", block_size=32, window_blocks=5, global_blocks=2,
                         random_blocks=0, seed=4)
    assert isinstance(attn, BlockSparseAttention)
    assert attn.options == {"block_size": 32, "window_blocks": 5, "global_blocks": 2,
                            "random_blocks": 0, "seed": 4, "backend": "gather"}
    assert get_attention("sparse").options == {"block_size": 64, "window_blocks": 3,
                                               "global_blocks": 1, "random_blocks": 2, "seed": 0,
                                               "backend": "gather"}
    caps = attn.capabilities
    assert caps.memory_exponent == 1.0 and not caps.cross_lengths
    assert caps.causal and caps.key_padding_mask


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("block_size", 0),
        ("block_size", -4),
        ("block_size", 2.0),
        ("block_size", True),
        ("window_blocks", 0),
        ("window_blocks", "3"),
        ("global_blocks", -1),
        ("random_blocks", -2),
        ("random_blocks", None),
        ("seed", -1),
        ("seed", 2**63),
        ("seed", 1.5),
    ],
)
def test_bad_options_raise_value_error_naming_the_option(option, value):
    with pytest.raises(ValueError, match=option):
        get_attention("sparse", **{option: value})


def test_bad_calls_raise_value_error():
    attn = get_attention("sparse", block_size=4)
    with pytest.raises(ValueError, match="seq_len"):
        attn.dense_mask(0)
    with pytest.raises(ValueError, match="n_blocks"):
        attn.block_layout(0)
    q = torch.randn(1, 1, 8, 4)
    with pytest.raises(ValueError, match="same seq_len"):
        attn(q, torch.randn(1, 1, 12, 4), torch.randn(1, 1, 12, 4))
    with pytest.raises(ValueError, match="window_size"):
        get_attention("sparse", window_size=3)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    attn = get_attention("sparse", block_size=16, random_blocks=2)
    q, k, v = _qkv(2, 2, 150, 16, dtype=torch.float32)
    mask = _padding(2, 150, seed=3)
    cpu = attn(q, k, v, key_padding_mask=mask, causal=True)
    gpu = attn(q.cuda(), k.cuda(), v.cuda(), key_padding_mask=mask.cuda(), causal=True)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-4)
