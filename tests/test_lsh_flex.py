"""LSH ``backend='flex'``: FlexAttention over the sorted buckets computes what the default
``chunks`` kernel does (same seed, rounds, windows, self rule, causal rule, padding), refuses what
it cannot run, and ``harness check`` audits it against ``chunks``."""

from __future__ import annotations

import pytest
import torch

from harness.attention import get_attention
from harness.attention.lsh import LSHAttention
from harness.check import CheckConfig, audit

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def _eager_flex(monkeypatch):
    """FlexAttention's first compile on CPU takes tens of seconds: these tests run it eager (the
    same block mask, mask_mod and score_mod; the CUDA tests compile)."""
    monkeypatch.setenv("HARNESS_FLEX_COMPILE", "0")


def _qkv(B=2, H=2, N=37, d=8, dtype=torch.float64, seed=0, device="cpu"):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, N, d, generator=gen, dtype=torch.float64).to(device, dtype)
            for _ in range(3)]


def _mask(B, N, device="cpu"):
    """Padding in the middle of row 0, a padded tail in the last row, and a row 1 that is all
    padding but one token (most of its queries see no real key)."""
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[0, 2:5] = False
    mask[-1, N - 9:] = False
    if B > 2:
        mask[1] = False
        mask[1, N - 3] = True
    return mask.to(device)


def _both(options, q, k, v, mask, causal):
    chunks = get_attention("lsh", **options)(q, k, v, key_padding_mask=mask, causal=causal)
    flex = get_attention("lsh", backend="flex", **options)(q, k, v, key_padding_mask=mask,
                                                           causal=causal)
    return flex, chunks


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize(("chunk", "n_hashes", "n_buckets"), [(8, 1, None), (13, 3, 4)])
def test_flex_equals_chunks_in_float64(shared, causal, padded, chunk, n_hashes, n_buckets):
    q, k, v = _qkv(B=3)
    if shared:
        k = q
    mask = _mask(3, 37) if padded else None
    options = {"chunk_size": chunk, "n_hashes": n_hashes, "n_buckets": n_buckets, "seed": 5}
    flex, chunks = _both(options, q, k, v, mask, causal)
    assert flex.shape == chunks.shape
    assert float((flex - chunks).abs().max()) < 1e-12


@pytest.mark.parametrize("options", [
    {"chunk_size": 64},  # one chunk: every key of the sequence
    {"chunk_size": 16, "n_buckets": 1, "n_hashes": 2},  # rounds that coincide: -log(2) each
    {"chunk_size": 1, "n_hashes": 2},  # windows of one or two keys: many lonely rows
])
@pytest.mark.parametrize("causal", [False, True])
def test_flex_equals_chunks_at_the_edges(options, causal):
    q, k, v = _qkv(N=40)
    for key in (k, q):  # distinct, then shared QK
        flex, chunks = _both(options, q, key, v, _mask(2, 40), causal)
        assert float((flex - chunks).abs().max()) < 1e-12, (options, causal, key is q)


def test_flex_equals_chunks_in_float32_with_factorized_buckets():
    q, k, v = _qkv(B=1, N=300, d=16, dtype=torch.float32)
    options = {"chunk_size": 2, "n_hashes": 2}  # 300 automatic buckets: factorized (10 x 30)
    for causal in (False, True):
        flex, chunks = _both(options, q, k, v, None, causal)
        assert float((flex - chunks).abs().max()) < 1e-5


def test_flex_kernel_is_reported_and_backward_refused_on_cpu():
    q, k, v = _qkv()
    attn = get_attention("lsh", backend="flex")
    assert attn.kernel.startswith("flex_attention") and "eager" in attn.kernel
    assert attn.claimed_memory[1] == 2.0  # eager FlexAttention materializes the scores
    assert get_attention("lsh").kernel.startswith("sorted chunks")
    q.requires_grad_(True)
    with pytest.raises(ValueError, match="no backward pass on CPU"):
        attn(q, k, v)
    with torch.no_grad():  # inference is fine, shared QK included
        out = attn(q, q, v, causal=True)
    assert torch.isfinite(out).all()
    with pytest.raises(ValueError, match="backend must be one of"):
        get_attention("lsh", backend="triton")


@pytest.mark.slow
def test_check_audits_lsh_flex_against_chunks():
    cfg = CheckConfig(checks=("backend", "causality", "padding"))
    verdicts = {v.check: v for v in audit("lsh", {"backend": "flex"}, cfg)}
    assert verdicts["backend"].status == "pass", verdicts["backend"].evidence
    assert "backend='chunks'" in verdicts["backend"].evidence
    assert verdicts["causality"].status == "pass", verdicts["causality"].evidence
    assert verdicts["padding"].status == "pass", verdicts["padding"].evidence


@pytest.mark.slow
def test_backend_check_fires_on_a_flex_kernel_without_the_look_back_chunk():
    class Broken(LSHAttention):
        """A flex backend whose mask forgets the previous chunk: a planted difference."""

        def _flex_run(self, qs, ks, vs, counts, indices, C, mask_mod, score_mod, full=False):
            def own_chunk_only(b, h, qi, ki):
                return mask_mod(b, h, qi, ki) & (qi // C == ki // C)

            return super()._flex_run(qs, ks, vs, counts, indices, C, own_chunk_only, score_mod,
                                     full)

    cfg = CheckConfig(checks=("backend",))
    broken = audit(Broken, {"backend": "flex"}, cfg)[0]
    assert broken.status == "fail" and "differs by" in broken.evidence
    assert audit(LSHAttention, {}, cfg)[0].status == "skip"


@CUDA
@pytest.mark.parametrize("n_hashes", [1, 2])
def test_flex_equals_chunks_on_cuda_compiled_with_gradients(monkeypatch, n_hashes):
    monkeypatch.setenv("HARNESS_FLEX_COMPILE", "auto")
    for causal in (False, True):
        q, k, v = (t.requires_grad_(True) for t in _qkv(N=256, d=16, dtype=torch.float32,
                                                         device="cuda"))
        options = {"n_hashes": n_hashes, "chunk_size": 64}
        outs = []
        for backend in ("flex", "chunks"):
            for t in (q, k, v):
                t.grad = None
            out = get_attention("lsh", backend=backend, **options)(q, k, v, causal=causal)
            out.pow(2).sum().backward()
            outs.append([out.detach(), *(t.grad.clone() for t in (q, k, v))])
        for mine, ref in zip(*outs, strict=True):
            assert float((mine - ref).abs().max()) < 1e-3 * max(1.0, float(ref.abs().max()))
