"""LSH attention (Reformer-style): each query attends only to keys hashed near it.

Algorithm, per batch element, head and hashing round:

1. **Hash.** Angular LSH: vectors are projected with a random Gaussian matrix ``R`` of shape
   ``(head_dim, n_buckets / 2)`` (one per head and round, drawn from a ``torch.Generator`` seeded
   with ``seed`` on the input's device) and the bucket is ``argmax([xR, -xR])``. Hashing carries no
   gradient and runs in float32 for 16-bit inputs. Tokens that ``key_padding_mask`` marks as
   padding go to an extra last bucket, so the sorted order of real tokens never depends on them.
2. **Sort.** Queries and keys are each stably sorted by bucket (ties keep position order). With
   shared QK (``q is k``) both orders are the same.
3. **Chunk.** The sorted sequence is cut into chunks of ``chunk_size``; sorted chunk ``c`` attends
   to sorted chunks ``c`` and ``c - 1``. Chunk 0 has no previous chunk (no wrap-around), so what a
   real token sees depends only on the ranks of real tokens: padding, however much, changes nothing.
   A length that is not a multiple of ``chunk_size`` is padded inside, masked and cropped.
   ``key_padding_mask`` acts on original positions inside those windows.
   **Causal mode** does not use chunks (their boundaries depend on how many *later* tokens fell
   into lower buckets, which would let later tokens change earlier outputs): query ``i`` attends
   to the keys of its own bucket at positions ``<= i``, the most recent ``chunk_size`` of them,
   which only earlier tokens determine. A query that sees no such key (other than itself with
   shared QK) attends to the key at its own position. With shared QK these keys always lie in
   the query's (previous, own) chunk window, so causal mode runs the same fused chunk kernel
   with a bucket-and-band mask (about 1.5x the non-causal forward time, 1.2x forward+backward);
   with distinct q and k each query gathers its ``chunk_size`` keys (slower, same memory order).
4. **Shared QK** (``q is k``, as in Reformer): keys are RMS-normalized (length ``sqrt(head_dim)``)
   before the usual ``1/sqrt(head_dim)`` scale, and a token attends to itself only when it can see
   no other key in any round.
5. **Rounds.** With ``n_hashes > 1`` each round gives an output and the log-sum-exp of its scores;
   outputs are merged with weights ``softmax`` over rounds of those log-sum-exps. A pair that shares
   a window in ``c`` rounds has ``log(c)`` subtracted from its score in every such round (Reformer's
   rule), which makes the merged weights exactly a softmax over the *union* of the rounds' windows:
   no pair is over-counted, and each row of effective weights sums to 1.

With ``n_buckets=1`` and ``chunk_size >= N`` there is a single window holding every key, so the
result equals full softmax attention (with the shared-QK key normalization and self rule when
``q is k``).

Cost: no N x N matrix is built; memory is O(N * chunk_size * n_hashes) (the hash projection is
computed a block of tokens at a time). Sorting is O(N log N); attention is O(N * chunk_size). The
hash projection costs O(N * n_buckets * head_dim) up to :data:`FACTORIZE_ABOVE` buckets; above it
the count is factorized as Reformer does at scale (two angular hashes of about sqrt(n_buckets)
buckets each, ``bucket = b1 + f1 * b2``, :func:`bucket_factors`), so the projection costs
O(N * sqrt(n_buckets) * head_dim): with the automatic ``n_buckets ~ 2N / chunk_size`` that is
N^1.5 / sqrt(chunk_size) with a small constant instead of N^2 / chunk_size.

Implementation: one round runs torch's fused ``scaled_dot_product_attention`` over the chunks, with
the overlapping (previous, own) key windows read in place when no gradient is needed; several
rounds use explicit scores to get the log-sum-exps. Without autograd, sorted copies of q, k, v
are written into work buffers the module keeps between calls (one module instance should not be
called from several threads at once). Buckets come from float reductions and an integer trick
instead of ``argmax`` (:func:`_angular_buckets_`); on CPU the (bucket, position) keys are sorted
by value with numpy. Rotations and other shape-only tensors are cached per shape.

``backend='flex'`` computes the same result with FlexAttention (compiled where ``torch.compile``
works, eager otherwise; :mod:`harness.attention._flex`): the same hashing and sorting, every
round's sorted q, k, v folded into the head dimension of one call, a block mask in tiles of
``chunk_size`` sorted rows (tile ``c`` reads tiles ``c - 1`` and ``c``; causal with distinct q
and k: each query tile's contiguous run of key tiles), a ``mask_mod`` over sorted indices for the
window, padding, causal bucket band and shared-QK self rule, a ``score_mod`` subtracting ``log``
of the rounds a pair shares, and the rounds merged by the log-sum-exps FlexAttention returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from harness.attention.base import Attention, Capabilities, pass_factor, register_attention

__all__ = ["BACKENDS", "FACTORIZE_ABOVE", "KEY_NORM_EPS", "LSHAttention", "auto_n_buckets",
           "bucket_factors", "hash_dtype"]

#: Kernels of the ``backend`` option: sorted chunks + SDPA, or FlexAttention over the sorted rows.
BACKENDS = ("chunks", "flex")

#: Epsilon of the shared-QK key normalization ``k * rsqrt(mean(k^2) + eps)``.
KEY_NORM_EPS = 1e-6

#: ``effective_weights`` builds an (N, N) matrix; it refuses longer sequences.
_EFFECTIVE_WEIGHTS_MAX_LEN = 4096

#: Floats of hash projection computed at once (bounds hashing memory; keeps it in cache).
_HASH_BLOCK_ELEMENTS = 2**20

#: Entries of a module's cache of shape-only tensors (visibility masks, rotations, unsort row
#: tables), cleared when full.
_STATIC_CACHE_SIZE = 16


#: Bucket counts above this are hashed with factorized rotations (Reformer's rule at scale):
#: ``n_buckets = f1 * f2`` and two angular hashes of f1 and f2 buckets, ``bucket = b1 + f1 *
#: b2``; the hash projection has ``(f1 + f2) / 2`` columns instead of ``n_buckets / 2``.
FACTORIZE_ABOVE = 128


def bucket_factors(n_buckets: int) -> tuple[int, ...]:
    """The bucket counts of the angular hashes that make up ``n_buckets``: ``(n_buckets,)`` up to
    :data:`FACTORIZE_ABOVE`, else two even factors ``(f1, f2)``, ``f1 <= f2``, ``f1 * f2 =
    n_buckets``, as close to ``sqrt(n_buckets)`` as the even divisors allow (a count with no such
    pair, e.g. twice a prime, stays whole). Powers of two split as Reformer's do."""
    if n_buckets <= FACTORIZE_ABOVE or n_buckets % 4:
        return (n_buckets,)
    best = None
    for f1 in range(2, math.isqrt(n_buckets) + 1, 2):
        if n_buckets % f1 == 0 and (n_buckets // f1) % 2 == 0:
            best = f1
    return (n_buckets,) if best is None else (best, n_buckets // best)


def auto_n_buckets(seq_len: int, chunk_size: int) -> int:
    """Default bucket count: about ``2 * seq_len / chunk_size``, rounded to an even number, >= 2."""
    if seq_len < 1 or chunk_size < 1:
        raise ValueError(
            f"auto_n_buckets: seq_len and chunk_size must be >= 1, got {seq_len}, {chunk_size}"
        )
    return max(2, 2 * round(seq_len / chunk_size))


def hash_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype hashing runs in: float32 for 16-bit inputs (so that bucket choices, and hence the
    attention pattern, track a float32 run), the input dtype otherwise."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"lsh: {name} must be an integer >= {minimum}, got {value!r}")


# --------------------------------------------------------------------------- row gathering
def _row_view(x: Tensor) -> tuple[Tensor, list[int]]:
    """A (rows, e) view of ``x`` (..., e) and the row stride of each leading dimension.

    No copy when ``x`` is a permutation of a contiguous tensor with ``e`` innermost (e.g. heads
    split off a projection by ``view`` + ``transpose``, or SDPA's output); otherwise ``x`` is made
    contiguous.
    """
    e = x.shape[-1]
    lead = x.dim() - 1
    order = sorted(range(lead), key=lambda i: x.stride(i), reverse=True)
    base = x.permute(*order, lead)
    if not base.is_contiguous():
        x = x.contiguous()
        base = x
    return base.reshape(-1, e), [x.stride(i) // e if x.shape[i] > 1 else 0 for i in range(lead)]


def _take(x: Tensor, pos: Tensor, out: Tensor | None = None) -> Tensor:
    """Rows ``x[b, h, pos[b, h, ...]]`` as a flat (pos.numel(), e) tensor; ``out`` is an
    optional contiguous buffer of that shape to write into."""
    rows, (sb, sh, sl) = _row_view(x)
    B, H = pos.shape[:2]
    dev = pos.device
    base = (torch.arange(B, device=dev) * sb).view(B, 1) + (torch.arange(H, device=dev) * sh)
    index = (pos * sl + base.view(B, H, *([1] * (pos.dim() - 2)))).reshape(-1)
    if out is None:
        return rows.index_select(0, index)
    return torch.index_select(rows, 0, index, out=out)


def _windows_view(flat: Tensor, groups: int, nc: int, C: int) -> Tensor:
    """Overlapping (groups, nc, 2C, e) windows read in place from sorted rows after a C-row prefix.

    Window c of a group covers its chunks c-1 and c; for c = 0 the first half lies in the previous
    group (or the prefix) and is masked out. Read-only: used only when no gradient is needed.
    """
    e = flat.shape[-1]
    return flat.as_strided((groups, nc, 2 * C, e), (nc * C * e, C * e, e, 1))


def _windows_copy(chunks: Tensor) -> Tensor:
    """(G, nc, C, e) -> (G, nc, 2C, e): previous chunk then own chunk (chunk 0's 'previous' is a
    placeholder that the mask removes)."""
    return torch.cat([chunks.roll(1, dims=1), chunks], dim=2)


def _as_groups(t: Tensor, B: int, H: int, R: int) -> Tensor:
    """A tensor broadcastable to (B, H, R, nc, C, X) as a 4-D one broadcastable to
    (B*H*R, nc, C, X) (4-D masks let SDPA use its fused CPU kernel)."""
    if t.dim() <= 3:
        return t.view(*([1] * (4 - t.dim())), *t.shape)
    return t.expand(B, H, R, *t.shape[3:]).reshape(B * H * R, *t.shape[3:])


#: Integer views of the float dtypes hashing runs in (for :func:`_angular_buckets_`).
_SAME_WIDTH_INT = {torch.float32: torch.int32, torch.float64: torch.int64}


def _angular_buckets_(proj: Tensor, dim: int = -1) -> Tensor:
    """``argmax([p, -p])`` over dimension ``dim`` (first occurrence on ties), without building
    the concatenation; overwrites ``proj`` (float32 or float64) as work space. ``dim=-2`` reduces
    across rows, which torch vectorizes along the contiguous last dimension: much faster for the
    narrow (8-16 wide) projections of factorized hashing.

    A row's winner is its largest entry ``top`` when ``top >= -low`` (``low`` its smallest; the
    first half wins ties), else ``low`` in the second half. With ``s = +-1`` and ``m = max(top,
    -low)``, ``e = s * p - m`` is ``<= 0`` and exactly ``+0`` at the winners (``-m`` is made
    ``+0`` when zero, so no ``-0`` appears). The bit pattern of ``+0`` is 0 and that of every
    negative float has the sign bit set, so ``max(bits(e) | (half - i))`` over ``i`` is
    ``half - (first winner)``. Float reductions and integer ors only: torch's ``argmax`` and
    bool comparisons over the last dimension are several times slower on CPU.
    """
    half = proj.shape[dim]
    top = proj.amax(dim=dim, keepdim=True)
    low = proj.amin(dim=dim, keepdim=True)
    positive = top >= -low
    sign = torch.where(positive, 1.0, -1.0).to(proj.dtype)
    neg_max = torch.where(positive, -top, low).add_(0.0)  # -0 -> +0
    bits = proj.mul_(sign).add_(neg_max).view(_SAME_WIDTH_INT[proj.dtype])
    shape = [1] * proj.dim()
    shape[dim] = half
    rank = torch.arange(half, 0, -1, dtype=bits.dtype, device=proj.device).view(shape)
    first = half - bits.bitwise_or_(rank).amax(dim=dim).long()
    return first + half * (~positive.squeeze(dim)).long()


def _clamp_buckets_(buckets: Tensor, n_buckets: int) -> Tensor:
    """Clamp bucket ids into ``[0, n_buckets)`` in place. NaN projections have no winner and
    give out-of-range ids, which would break the sort into a non-permutation whose gathers read
    other (batch, head) slices; clamped, a NaN stays in its own slice."""
    return buckets.clamp_(0, n_buckets - 1)


def _stable_bucket_order(buckets: Tensor, n_buckets: int) -> Tensor:
    """Positions sorted by bucket, ties in position order, along the last dimension (int64).

    On CPU the keys ``bucket * N + position`` (all distinct, so any sort is stable) are sorted
    by value with numpy's vectorized sort, about 6x faster than torch's stable argsort with
    indices at N = 4096; elsewhere torch's stable argsort.
    """
    N = buckets.shape[-1]
    if buckets.device.type != "cpu":
        return torch.argsort(buckets, dim=-1, stable=True)
    # Padding has bucket n_buckets, so keys stay below (n_buckets + 1) * N.
    dtype = torch.int32 if (n_buckets + 1) * N < 2**31 else torch.int64
    keys = buckets.to(dtype) * N + torch.arange(N, dtype=dtype)
    ordered = torch.from_numpy(np.sort(keys.numpy(), axis=-1))
    return (ordered % N).long()


def _inverse_permutation(perm: Tensor) -> Tensor:
    """``inv[..., perm[..., n]] = n`` along the last dimension."""
    ranks = torch.arange(perm.shape[-1], device=perm.device).expand_as(perm)
    return torch.empty_like(perm).scatter_(-1, perm, ranks)


def _normalize_keys(x: Tensor, grad: bool, out: Tensor | None = None) -> Tensor:
    """Shared-QK keys: ``x * rsqrt(mean(x^2) + eps)`` per row (float32 math for 16-bit inputs).

    ``out``: optional buffer like ``x`` to write into (inference only).
    """
    low_precision = x.dtype in (torch.float16, torch.bfloat16)
    xf = x.float() if low_precision else x
    if grad:  # differentiable everywhere, also at zero rows
        mean_sq = xf.pow(2).mean(dim=-1, keepdim=True)
    else:  # one fused pass
        mean_sq = torch.linalg.vector_norm(xf, dim=-1, keepdim=True).square_() / x.shape[-1]
    scale = torch.rsqrt(mean_sq + KEY_NORM_EPS)
    if out is None or low_precision:
        return (xf * scale).to(x.dtype)
    return torch.mul(xf, scale, out=out)


def _slot_rows(
    B: int, H: int, N: int, C: int, sg: int, sc: int, st: int, dev: torch.device
) -> Tensor:
    """(B, H, N) int64: the row, in a (rows, e) view with strides ``(sg, sc, st)`` over
    (group, chunk, offset), of sorted slot ``s`` of group ``(b, h)``."""
    slot = torch.arange(N, device=dev)
    within = torch.div(slot, C, rounding_mode="floor") * sc + (slot % C) * st
    base = torch.arange(B * H, device=dev).view(B, H, 1) * sg
    return base + within


def _pad_positions(perm: Tensor, padded_len: int) -> Tensor:
    """Append filler positions (0, masked later) so the sorted order fills whole chunks."""
    extra = padded_len - perm.shape[-1]
    if extra == 0:
        return perm
    return torch.cat([perm, perm.new_zeros(*perm.shape[:-1], extra)], dim=-1)


# --------------------------------------------------------------------------- masks
@dataclass(frozen=True)
class _Visibility:
    """Which window slots each sorted query uses; all broadcastable to (B, H, R, nc, C, ...)."""

    allowed: Tensor  # bool (..., W): slot visible
    empty: Tensor  # bool (..., 1): the query sees no key at all
    any_empty: bool
    has_other: Tensor | None  # shared QK: the query sees a key other than itself
    bias: Tensor | None  # additive float mask for the fused one-round path (empty rows open)


def _finish_visibility(
    allowed: Tensor, is_self: Tensor | None, with_bias: bool, dtype: torch.dtype
) -> _Visibility:
    """The self rule (shared QK: a query sees itself only when it sees no other key; ``is_self``
    None without shared QK), empty rows, and the additive mask of the fused path."""
    has_other = None
    if is_self is not None:
        other = allowed & ~is_self
        has_other = other.any(dim=-1, keepdim=True)
        allowed = other | (allowed & is_self & ~has_other)
    empty = ~allowed.any(dim=-1, keepdim=True)
    any_empty = bool(empty.any())
    bias = None
    if with_bias:
        visible = allowed | empty if any_empty else allowed
        bias = torch.zeros(visible.shape, dtype=dtype, device=allowed.device)
        bias.masked_fill_(~visible, float("-inf"))
    return _Visibility(allowed, empty, any_empty, has_other, bias)


def _visibility(
    N: int,
    C: int,
    nc: int,
    key_padding_mask: Tensor | None,
    shared: bool,
    with_bias: bool,
    dtype: torch.dtype,
    dev: torch.device,
) -> _Visibility:
    """Visibility of window slots of the (non-causal) chunked path."""
    W = 2 * C if nc > 1 else C
    # Sorted index of each window slot. Padding tokens sort after all real ones, so a slot holds a
    # real key iff 0 <= sorted index < number of real tokens (filler slots are >= N).
    chunk = torch.arange(nc, device=dev).view(nc, 1)
    slot = torch.arange(W, device=dev)
    sorted_idx = (((chunk - 1) * C if nc > 1 else chunk * C) + slot).view(nc, 1, W)
    if key_padding_mask is None:
        allowed = (sorted_idx >= 0) & (sorted_idx < N)
    else:
        n_real = key_padding_mask.sum(dim=-1).view(-1, 1, 1, 1, 1, 1)
        allowed = (sorted_idx >= 0) & (sorted_idx < n_real)
    # With shared QK a query's own key sits in its own chunk at the same offset.
    is_self = slot.view(1, W) == (W - C) + torch.arange(C, device=dev).view(C, 1) \
        if shared else None
    return _finish_visibility(allowed, is_self, with_bias, dtype)


def _pair_counts(
    perm_q: Tensor, perm_k: Tensor, pos_q: Tensor, win_k: Tensor, C: int
) -> Tensor:
    """The number of rounds in which each (query, window key) pair shares a window.

    ``perm_*`` (B, H, R, N) are the sorted orders, ``pos_q`` (B, H, R, Np) the padded query order,
    ``win_k`` (B, H, R, nc, W) the key positions of each window. Returns (B, H, R, nc, C, W)
    float32, at least 1 (filler slots are masked later anyway). A pair shares a window in a round
    when the key's chunk is the query's or the one before it.
    """
    B, H, R, _ = perm_q.shape
    chunk_q = _inverse_permutation(perm_q) // C  # (B, H, R, N): chunk of each position
    chunk_k = chunk_q if perm_k is perm_q else _inverse_permutation(perm_k) // C
    flat_q = pos_q.reshape(B, H, -1)
    flat_k = win_k.reshape(B, H, -1)
    count = torch.zeros((), device=perm_q.device)
    for r in range(R):
        cq = chunk_q[:, :, r].gather(-1, flat_q).view(*win_k.shape[:-1], C, 1)
        ck = chunk_k[:, :, r].gather(-1, flat_k).view(*win_k.shape[:-1], 1, -1)
        gap = cq - ck
        count = count + ((gap == 0) | (gap == 1)).to(torch.float32)
    return count.clamp_min(1.0)


def _causal_visibility(
    sorted_buckets: Tensor, n_buckets: int, N: int, C: int, nc: int, with_bias: bool,
    dtype: torch.dtype,
) -> _Visibility:
    """Causal shared-QK visibility in the chunk windows: a query at sorted index ``s`` sees the
    keys of its own bucket at sorted indices in ``(s - C, s]`` (its most recent ``C``
    same-bucket predecessors, itself included), which the (previous, own) chunk window always
    holds; itself only when it sees no other key; padding (bucket ``n_buckets``) never.
    ``sorted_buckets``: (B, H, R, N)."""
    B, H, R, _ = sorted_buckets.shape
    dev = sorted_buckets.device
    W = 2 * C if nc > 1 else C
    filled = F.pad(sorted_buckets, (0, nc * C - N), value=-1).view(B, H, R, nc, C)
    keys = torch.cat([filled.roll(1, dims=-2), filled], dim=-1) if nc > 1 else filled
    # Same bucket, and a real key (padding has bucket n_buckets, filler slots -1).
    same = (keys.unsqueeze(-2) == filled.unsqueeze(-1)) & (keys < n_buckets).unsqueeze(-2)
    t = torch.arange(C, device=dev).view(C, 1)
    w = torch.arange(W, device=dev).view(1, W)
    own = W - C + t  # the query's own slot
    band = (w <= own) & (w > own - C)
    chunk = torch.arange(nc, device=dev).view(nc, 1, 1)
    band = band & ((chunk - 1) * C + w >= 0 if nc > 1 else torch.ones((), dtype=torch.bool,
                                                                        device=dev))
    allowed = same & band
    return _finish_visibility(allowed, w == own, with_bias, dtype)


def _causal_pair_counts(
    buckets: Tensor, perm: Tensor, pos_q: Tensor, win_k: Tensor, C: int
) -> Tensor:
    """Causal counterpart of :func:`_pair_counts`: the rounds in which each (query, window key)
    pair is visible, i.e. same bucket and ``0 <= s_q - s_k < C`` in that round's sorted order."""
    B, H, R, _ = buckets.shape
    inv = _inverse_permutation(perm)
    flat_q = pos_q.reshape(B, H, -1)
    flat_k = win_k.reshape(B, H, -1)
    count = torch.zeros((), device=buckets.device)
    for r in range(R):
        shape_q, shape_k = (*win_k.shape[:-1], C, 1), (*win_k.shape[:-1], 1, win_k.shape[-1])
        sq = inv[:, :, r].gather(-1, flat_q).view(shape_q)
        sk = inv[:, :, r].gather(-1, flat_k).view(shape_k)
        bq = buckets[:, :, r].gather(-1, flat_q).view(shape_q)
        bk = buckets[:, :, r].gather(-1, flat_k).view(shape_k)
        gap = sq - sk
        count = count + ((bq == bk) & (gap >= 0) & (gap < C)).to(torch.float64)
    return count.clamp_min(1.0)


def _rounds(t: Tensor, B: int, H: int, R: int) -> Tensor:
    """A (B, 1 or H * R, N) tensor over sorted rows as (B, H, R, N)."""
    return t.expand(B, H * R, t.shape[-1]).reshape(B, H, R, t.shape[-1])


def _merge_rounds(out: Tensor, lse: Tensor, empty: Tensor, lonely: Tensor) -> Tensor:
    """Merge the causal rounds (``_merge_lse``): a round where a row sees no key is left out,
    and so is one where it sees only its own position if another round shows it more."""
    with torch.no_grad():
        dead = empty | (lonely & (~lonely).any(dim=2, keepdim=True))
    return _merge_lse(out, lse, dead)


def _merge_lse(out: Tensor, lse: Tensor, dead: Tensor) -> Tensor:
    """Merge rounds: ``out`` (B, H, R, N, dv) weighted by ``softmax`` over R of ``lse`` (B, H, R,
    N), rounds marked ``dead`` left out (a row dead in every round gives zeros)."""
    lse = lse.masked_fill(dead, float("-inf"))
    top = lse.detach().amax(dim=2, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    weight = torch.exp(lse - top)
    weight = weight / weight.sum(dim=2, keepdim=True).clamp_min(torch.finfo(weight.dtype).tiny)
    return (out * weight.unsqueeze(-1).to(out.dtype)).sum(dim=2)


# --------------------------------------------------------------------------- the module
@register_attention
class LSHAttention(Attention):
    """Reformer-style LSH attention; see the module docstring for the exact semantics.

    Options: ``chunk_size`` (tokens per sorted chunk), ``n_hashes`` (hashing rounds),
    ``n_buckets`` (``None``: :func:`auto_n_buckets` of the sequence length; else 1 or an even
    number), ``seed`` (fixes the random rotations: same seed, same output bit for bit),
    ``backend`` (``chunks``: SDPA over the sorted chunk windows; ``flex``: FlexAttention over the
    sorted rows with a block mask of the same windows, the same result within float rounding).
    """

    name = "lsh"
    capabilities = Capabilities(
        causal=True,
        key_padding_mask=True,
        cross_lengths=False,
        time_complexity="O(N log N)",
        memory_complexity="O(N * chunk_size * n_hashes)",
        memory_exponent=1.0,
        approximates_softmax=True,
        shared_qk=True,
        time_exponent=1.0,
    )

    backend_options: ClassVar[tuple[str, ...]] = ("backend",)
    flops_formula = ("per round: chunks 4·B·H·N·W·d (W = 2·chunk_size, or N in one chunk) +"
                     " hashing 2·B·H·N·d·Σf/2 (f: the bucket factors) + sorting B·H·N·log2 N;"
                     " backward 2.5x the chunks (hashing and sorting carry no gradient)")

    @classmethod
    def flops(cls, batch: int, heads: int, n: int, head_dim: int,
              options: dict[str, Any] | None = None, pass_: str = "forward", *,
              causal: bool = False) -> float:
        attn = cls(**(options or {}))
        c = min(attn.chunk_size, n)
        window = 2 * c if -(-n // c) > 1 else c
        chunks = 4.0 * n * window * head_dim
        n_buckets = attn.resolved_n_buckets(n)
        columns = sum(f // 2 for f in bucket_factors(n_buckets))
        hashing = 2.0 * n * head_dim * columns if n_buckets > 1 else 0.0
        sorting = n * math.log2(n) if n_buckets > 1 else 0.0
        per_round = chunks * pass_factor(pass_)
        if pass_ != "backward":
            per_round += hashing + sorting
        return batch * heads * attn.n_hashes * per_round

    @classmethod
    def exact_options(cls, seq_len: int) -> dict[str, object] | None:
        """One bucket and one chunk (causal: a window of every predecessor): full softmax
        attention (with distinct q and k; shared QK adds the key normalization and self rule)."""
        return {"n_buckets": 1, "chunk_size": seq_len}

    def __init__(
        self,
        *,
        chunk_size: int = 64,
        n_hashes: int = 1,
        n_buckets: int | None = None,
        seed: int = 0,
        backend: str = "chunks",
    ) -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"lsh: backend must be one of {BACKENDS}, got {backend!r}")
        _check_int("chunk_size", chunk_size, 1)
        _check_int("n_hashes", n_hashes, 1)
        if n_buckets is not None:
            _check_int("n_buckets", n_buckets, 1)
            if n_buckets != 1 and n_buckets % 2:
                raise ValueError(
                    f"lsh: n_buckets must be None (automatic), 1, or an even number (angular LSH"
                    f" buckets come in +/- pairs), got {n_buckets!r}"
                )
        _check_int("seed", seed, 0)
        if seed >= 2**63:
            raise ValueError(f"lsh: seed must be an integer in [0, 2**63), got {seed!r}")
        self.chunk_size = chunk_size
        self.n_hashes = n_hashes
        self.n_buckets = n_buckets
        self.seed = seed
        self.backend = backend
        self._flex_tiles: dict[tuple[object, ...], dict[str, int] | None] = {}
        self._flex_last: str | None = None
        self._static: dict[tuple, object] = {}
        self._scratch_buffers: dict[str, Tensor] = {}

    def _cached(self, key: tuple, build):
        """A value that depends only on ``key`` (shapes, options, device), built once (separately
        inside ``torch.inference_mode``, whose tensors cannot be used for autograd outside it)."""
        key = (*key, torch.is_inference_mode_enabled())
        value = self._static.get(key)
        if value is None:
            if len(self._static) >= _STATIC_CACHE_SIZE:
                self._static.clear()
            value = self._static[key] = build()
        return value

    def _sorted_rows(self, name: str, x: Tensor, pos: Tensor, prefix: int, grad: bool) -> Tensor:
        """:func:`_take` of ``x`` at ``pos``; without autograd into work buffer ``name``, after
        ``prefix`` zero rows."""
        if grad:
            return _take(x, pos)
        buf = self._scratch(name, (prefix + pos.numel(), x.shape[-1]), x)
        buf[:prefix].zero_()  # the buffer may have served another layout before
        _take(x, pos, buf[prefix:])
        return buf

    def _scratch(self, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """An inference-only work buffer reused across calls (reallocated when shape or dtype
        change). Intermediates only: nothing returned to the caller aliases it."""
        buf = self._scratch_buffers.get(name)
        if (
            buf is None
            or buf.shape != shape
            or buf.dtype != like.dtype
            or buf.device != like.device
            or buf.is_inference() != torch.is_inference_mode_enabled()
        ):
            buf = torch.empty(shape, dtype=like.dtype, device=like.device)
            self._scratch_buffers[name] = buf
        return buf

    # ------------------------------------------------------------------ hashing
    def resolved_n_buckets(self, seq_len: int) -> int:
        """The bucket count used for sequences of ``seq_len`` tokens."""
        if self.n_buckets is not None:
            return self.n_buckets
        return auto_n_buckets(seq_len, self.chunk_size)

    def rotations(
        self, heads: int, head_dim: int, n_buckets: int, device: torch.device, dtype: torch.dtype
    ) -> Tensor:
        """The random rotations, shape (heads, n_hashes, head_dim, columns): ``columns`` is
        ``n_buckets // 2``, or ``f1 // 2 + f2 // 2`` for a factorized count
        (:func:`bucket_factors`: the first factor's columns first).

        Drawn in float32 from a CPU ``torch.Generator`` seeded with ``seed``, then moved to
        ``device`` and cast to ``dtype``, so every device and dtype hashes with the same matrix
        (a CUDA generator draws other numbers for the same seed). Hashing uses float32 for 16-bit
        inputs (see :func:`hash_dtype`).
        """
        gen = torch.Generator(device="cpu")
        gen.manual_seed(self.seed)
        shape = (heads, self.n_hashes, head_dim, sum(f // 2 for f in bucket_factors(n_buckets)))
        drawn = torch.randn(shape, generator=gen, dtype=torch.float32)
        return drawn.to(device=device, dtype=dtype)

    def buckets(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """Bucket ids of ``x`` (batch, heads, N, head_dim): int64 (batch, heads, n_hashes, N).

        These are the buckets :meth:`forward` sorts by. Padding tokens (``key_padding_mask``
        False) get the extra bucket ``n_buckets``, after every real one.
        """
        if not isinstance(x, Tensor) or x.dim() != 4 or not x.is_floating_point():
            raise ValueError(
                "lsh.buckets: x must be a 4-D floating tensor (batch, heads, seq_len, head_dim),"
                f" got {getattr(x, 'shape', type(x).__name__)}"
            )
        B, N = x.shape[0], x.shape[2]
        if key_padding_mask is not None and tuple(key_padding_mask.shape) != (B, N):
            raise ValueError(
                f"lsh.buckets: key_padding_mask must have shape (batch, seq_len) = {(B, N)},"
                f" got {tuple(key_padding_mask.shape)}"
            )
        n_buckets = self.resolved_n_buckets(N)
        return self._hash(x, self._rotations_for(x, n_buckets), n_buckets, key_padding_mask)

    def _rotations_for(self, x: Tensor, n_buckets: int) -> Tensor | None:
        if n_buckets == 1:
            return None
        H, d, dev, dtype = x.shape[1], x.shape[-1], x.device, hash_dtype(x.dtype)
        key = ("rotations", H, d, n_buckets, dev, dtype, self.seed, self.n_hashes)
        return self._cached(key, lambda: self.rotations(H, d, n_buckets, dev, dtype))

    def _hashed(self, q: Tensor, k: Tensor, key_padding_mask: Tensor | None
                ) -> tuple[Tensor, Tensor, int]:
        """Bucket ids of ``q`` and ``k`` (B, H, n_hashes, N; one tensor when ``k is q``) under
        this module's rotations for their length, and that bucket count (call without grad)."""
        n_buckets = self.resolved_n_buckets(q.shape[2])
        rot = self._rotations_for(q, n_buckets)
        bq = self._hash(q, rot, n_buckets, key_padding_mask)
        bk = bq if k is q else self._hash(k, rot, n_buckets, key_padding_mask)
        return bq, bk, n_buckets

    def _hash(
        self, x: Tensor, rot: Tensor | None, n_buckets: int, key_padding_mask: Tensor | None
    ) -> Tensor:
        B, H, N, _ = x.shape
        R = self.n_hashes
        with torch.no_grad():
            if rot is None:
                buckets = torch.zeros(B, H, R, N, dtype=torch.long, device=x.device)
            else:
                half = rot.shape[-1]
                factors = bucket_factors(n_buckets)
                xs = x.detach().unsqueeze(2).to(rot.dtype)  # (B, H, 1, N, d)
                # Hash a block of tokens at a time: the projection stays small (and in cache)
                # instead of an (N, n_buckets / 2) matrix per head, which grows as N^2 / chunk.
                block = min(N, max(1, _HASH_BLOCK_ELEMENTS // (B * H * R * half)))
                work = self._scratch("hash", (B * H * R * block * half,), rot)
                parts = []
                for i in range(0, N, block):
                    x_block = xs[:, :, :, i : i + block]
                    out = work[: B * H * R * x_block.shape[-2] * half]
                    if len(factors) == 1:
                        out = out.view(B, H, R, x_block.shape[-2], half)
                        parts.append(_angular_buckets_(torch.matmul(x_block, rot, out=out)))
                        continue
                    # Factorized (Reformer at scale): bucket = b1 + f1 * b2. Projections are
                    # laid out (columns, tokens) so each narrow argmax runs across rows.
                    out = out.view(B, H, R, half, x_block.shape[-2])
                    proj = torch.matmul(rot.transpose(-1, -2), x_block.transpose(-1, -2),
                                        out=out)
                    f1 = factors[0]
                    parts.append(_angular_buckets_(proj[..., : f1 // 2, :], dim=-2)
                                 + f1 * _angular_buckets_(proj[..., f1 // 2 :, :], dim=-2))
                buckets = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
                _clamp_buckets_(buckets, n_buckets)
            if key_padding_mask is not None:
                buckets = buckets.masked_fill(~key_padding_mask[:, None, None, :], n_buckets)
        return buckets

    def _sort(self, x: Tensor, rot: Tensor | None, n_buckets: int, mask: Tensor | None) -> Tensor:
        """Positions in bucket order, (B, H, R, N); stable, so ties keep position order."""
        if rot is None and mask is None:
            B, H, N, _ = x.shape
            return torch.arange(N, device=x.device).expand(B, H, self.n_hashes, N)
        return _stable_bucket_order(self._hash(x, rot, n_buckets, mask), n_buckets)

    # ---------------------------------------------------------------- attention
    def attend(
        self, q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None, causal: bool
    ) -> Tensor:
        if self.backend == "flex":
            return self._flex_attend(q, k, v, key_padding_mask, causal)
        if causal and q is not k:
            return self._causal_attend(q, k, v, key_padding_mask)
        B, H, N, d = q.shape
        R = self.n_hashes
        G = B * H * R
        shared = q is k
        C = min(self.chunk_size, N)
        nc = -(-N // C)
        Np = nc * C
        n_buckets = self.resolved_n_buckets(N)
        windowed = nc > 1
        grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
        prefix = C if windowed and not grad else 0

        with torch.no_grad():
            rot = self._rotations_for(q, n_buckets)
            buckets = None
            if causal:  # shared QK here: the window masks need the bucket ids
                buckets = self._hash(q, rot, n_buckets, key_padding_mask)
                perm_q = _stable_bucket_order(buckets, n_buckets)
            else:
                perm_q = self._sort(q, rot, n_buckets, key_padding_mask)
            perm_k = perm_q if shared else self._sort(k, rot, n_buckets, key_padding_mask)
            pos_q = _pad_positions(perm_q, Np)  # (B, H, R, Np)
            pos_k = pos_q if shared else _pad_positions(perm_k, Np)
            win_k = None
            if R > 1:
                win_k = pos_k.view(B, H, R, nc, C)
                if windowed:
                    win_k = torch.cat([win_k.roll(1, dims=-2), win_k], dim=-1)
            if buckets is not None:
                vis = _causal_visibility(buckets.gather(-1, perm_q), n_buckets, N, C, nc,
                                         R == 1, q.dtype)
            elif key_padding_mask is None:
                # Visibility then depends on the shape alone: build it once per shape.
                vis = self._cached(
                    ("visibility", N, C, shared, R, q.dtype, q.device),
                    lambda: _visibility(N, C, nc, None, shared, R == 1, q.dtype, q.device),
                )
            else:
                vis = _visibility(N, C, nc, key_padding_mask, shared, R == 1, q.dtype, q.device)

        # Sorted rows. Without autograd they are written into buffers kept across calls (no fresh
        # pages to fault in each time) after `prefix` zero rows that windows read in place start
        # in (masked out).
        rows = prefix + G * Np
        q_rows = self._sorted_rows("q", q, pos_q, prefix, grad)
        if shared:
            k_out = None if grad else self._scratch("k", (rows, d), k)
            k_rows = _normalize_keys(q_rows, grad, k_out)
        else:
            k_rows = self._sorted_rows("k", k, pos_k, prefix, grad)
        v_rows = self._sorted_rows("v", v, pos_k, prefix, grad)
        qs = q_rows[prefix:].view(G, nc, C, d)
        if not windowed:
            kw, vw = k_rows.view(G, 1, C, d), v_rows.view(G, 1, C, -1)
        elif prefix:
            kw, vw = _windows_view(k_rows, G, nc, C), _windows_view(v_rows, G, nc, C)
        else:
            kw = _windows_copy(k_rows.view(G, nc, C, d))
            vw = _windows_copy(v_rows.view(G, nc, C, -1))

        if R == 1:
            return self._single_round(qs, kw, vw, perm_q, vis, B, H, N)
        with torch.no_grad():
            if buckets is not None:
                counts = _causal_pair_counts(buckets, perm_q, pos_q, win_k, C)
            else:
                counts = _pair_counts(perm_q, perm_k, pos_q, win_k, C)
        return self._merge_rounds(qs, kw, vw, perm_q, vis, counts, B, H, N)

    def _causal_attend(
        self, q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None
    ) -> Tensor:
        """Strictly causal LSH: query i attends to the keys of its own bucket at positions <= i,
        the most recent ``chunk_size`` of them, in each round; rounds merge as in the
        non-causal path (softmax over the union, pairs shared by c rounds get ``-log(c)``).
        A query that sees no such key (other than itself, with shared QK) attends to the key at
        its own position, as the shared-QK self rule does.

        Which keys a query sees depends only on the buckets of positions <= i, so no later
        token can change an earlier output (the chunk boundaries of the sorted order, which later
        tokens shift, play no part). This is the path for distinct q and k (shared QK uses the
        chunk windows, see :func:`_causal_visibility`): queries stay in position order and each
        gathers its window of C sorted keys: O(N * C * n_hashes) memory and time.
        """
        B, H, N, d = q.shape
        R = self.n_hashes
        shared = q is k
        C = min(self.chunk_size, N)
        dev = q.device
        with torch.no_grad():
            bq, bk, n_buckets = self._hashed(q, k, key_padding_mask)  # (B, H, R, N) each
            perm_k = _stable_bucket_order(bk, n_buckets)  # key positions in (bucket, pos) order
            pos = torch.arange(N, device=dev)
            codes_k = bk.gather(-1, perm_k) * N + perm_k  # ascending
            codes_q = bq * N + pos
            # Sorted index of the last key of the query's bucket at a position <= the query's.
            last = torch.searchsorted(codes_k.contiguous(), codes_q.contiguous(), right=True) - 1
            sidx = last.unsqueeze(-1) - torch.arange(C, device=dev)  # (B, H, R, N, C)
            flat = sidx.clamp_min(0).view(B, H, R, N * C)
            key_pos = perm_k.gather(-1, flat)  # (B, H, R, N*C)
            allowed = (sidx >= 0) & (bk.gather(-1, key_pos).view(B, H, R, N, C)
                                     == bq.unsqueeze(-1))
            key_pos = key_pos.view(B, H, R, N, C)
            if key_padding_mask is not None:
                real = key_padding_mask[:, None, None, :].expand(B, H, R, N)
                allowed &= real.gather(-1, key_pos.view(B, H, R, N * C)).view(B, H, R, N, C)
            # A token attends to (the key at) its own position only when it sees no other key:
            # with shared QK that key is in its window; otherwise it is added as an extra slot.
            if shared:
                is_self = key_pos == pos.view(N, 1)
                other = allowed & ~is_self
                lonely = ~other.any(dim=-1)
                allowed = other | (allowed & lonely.unsqueeze(-1))
            else:
                lonely = ~allowed.any(dim=-1)
                own = lonely if key_padding_mask is None else lonely & real
                key_pos = torch.cat([key_pos, pos.view(N, 1).expand(B, H, R, N, 1)], dim=-1)
                allowed = torch.cat([allowed, own.unsqueeze(-1)], dim=-1)
            W = key_pos.shape[-1]
            empty = ~allowed.any(dim=-1)  # (B, H, R, N)
            counts = None
            if R > 1:
                inv_k = _inverse_permutation(perm_k)  # sorted index of each key position
                flat_pos = key_pos.reshape(B, H, 1, R * N * W)
                counts = torch.zeros(B, H, R, N, W, device=dev, dtype=hash_dtype(q.dtype))
                for r in range(R):
                    s_r = inv_k[:, :, r : r + 1].expand(B, H, 1, N).gather(-1, flat_pos)
                    b_r = bk[:, :, r : r + 1].expand(B, H, 1, N).gather(-1, flat_pos)
                    s_r, b_r = s_r.view(B, H, R, N, W), b_r.view(B, H, R, N, W)
                    top = last[:, :, r : r + 1].unsqueeze(-1)
                    counts += ((b_r == bq[:, :, r : r + 1].unsqueeze(-1)) & (s_r <= top)
                               & (s_r > top - C)).to(counts.dtype)
                counts.clamp_min_(1.0)

        keys = _normalize_keys(k, torch.is_grad_enabled()) if shared else k
        kw = _take(keys, key_pos).view(B, H, R, N, W, d)
        vw = _take(v, key_pos).view(B, H, R, N, W, -1)
        scores = torch.matmul(q.unsqueeze(2).unsqueeze(-2), kw.transpose(-1, -2)).squeeze(-2)
        scores = scores * (1.0 / math.sqrt(d))  # (B, H, R, N, W)
        if scores.dtype in (torch.float16, torch.bfloat16):
            scores = scores.float()
        if counts is not None:
            scores = scores - torch.log(counts)
        scores = scores.masked_fill(~allowed, float("-inf")).masked_fill(empty.unsqueeze(-1), 0.0)
        lse = torch.logsumexp(scores, dim=-1)  # (B, H, R, N)
        weights = torch.exp(scores - lse.unsqueeze(-1)).to(vw.dtype)
        out = torch.matmul(weights.unsqueeze(-2), vw).squeeze(-2)  # (B, H, R, N, dv)
        if R == 1:
            return out[:, :, 0].masked_fill(empty[:, :, 0].unsqueeze(-1), 0.0)
        return _merge_rounds(out, lse, empty, lonely)

    def _single_round(
        self,
        qs: Tensor,
        kw: Tensor,
        vw: Tensor,
        perm: Tensor,
        vis: _Visibility,
        B: int,
        H: int,
        N: int,
    ) -> Tensor:
        """One round: fused attention per chunk, then back to original order."""
        C = qs.shape[2]
        dv = vw.shape[-1]
        out = F.scaled_dot_product_attention(qs, kw, vw, attn_mask=_as_groups(vis.bias, B, H, 1))
        if vis.any_empty:
            out = out.masked_fill(_as_groups(vis.empty, B, H, 1), 0.0)
        # Gather back to original order, laid out (B, N, H, dv) so merging heads is a free view.
        rows, (sg, sc, st) = _row_view(out)
        with torch.no_grad():
            # Row of `rows` holding sorted slot s of group (b, h); depends on shapes only.
            slot_rows = self._cached(
                ("unsort", B, H, N, C, sg, sc, st, out.device),
                lambda: _slot_rows(B, H, N, C, sg, sc, st, out.device),
            )
            index = torch.empty(B, N, H, dtype=torch.long, device=out.device)
            index.transpose(1, 2).scatter_(-1, perm[:, :, 0], slot_rows)
        return rows.index_select(0, index.view(-1)).view(B, N, H, dv).transpose(1, 2)

    def _merge_rounds(
        self,
        qs: Tensor,
        kw: Tensor,
        vw: Tensor,
        perm: Tensor,
        vis: _Visibility,
        counts: Tensor,
        B: int,
        H: int,
        N: int,
    ) -> Tensor:
        """Several rounds: per-round outputs and log-sum-exps, merged with softmax weights."""
        G, nc, C, d = qs.shape
        R = self.n_hashes
        dv = vw.shape[-1]
        Np = nc * C
        scores = torch.matmul(qs, kw.transpose(-1, -2)) * (1.0 / math.sqrt(d))
        scores = scores - torch.log(counts.view(G, nc, C, -1).to(scores.dtype))
        scores = scores.masked_fill(~_as_groups(vis.allowed, B, H, R), float("-inf"))
        if vis.any_empty:
            scores = scores.masked_fill(_as_groups(vis.empty, B, H, R), 0.0)
        if scores.dtype in (torch.float16, torch.bfloat16):
            scores = scores.float()
        lse = torch.logsumexp(scores, dim=-1, keepdim=True)
        out = torch.matmul(torch.exp(scores - lse).to(vw.dtype), vw)  # (G, nc, C, dv)

        # Back to original order: round r, position n sits at sorted row (b, h, r) * Np + inv.
        with torch.no_grad():
            inv = _inverse_permutation(perm)  # (B, H, R, N)
            rows = (inv + (torch.arange(G, device=inv.device) * Np).view(B, H, R, 1)).reshape(-1)
            dead = vis.empty.expand(B, H, R, nc, C, 1).reshape(-1)[rows]
            if vis.has_other is not None:
                # A round where a token sees only itself is dropped if another round shows more.
                lonely = ~vis.has_other.expand(B, H, R, nc, C, 1).reshape(-1)[rows]
                lonely = lonely.view(B, H, R, N)
                dead = dead.view(B, H, R, N) | (lonely & (~lonely).any(dim=2, keepdim=True))
            dead = dead.view(B, H, R, N)
        out = out.reshape(G * Np, dv).index_select(0, rows).view(B, H, R, N, dv)
        lse = lse.reshape(G * Np).index_select(0, rows).view(B, H, R, N)
        return _merge_lse(out, lse, dead)

    # ---------------------------------------------------------------- flex backend
    @property
    def kernel(self) -> str:
        """The kernel that runs (the record of a timing says it)."""
        if self.backend == "flex":
            return f"flex_attention over sorted buckets, {self._flex_call_mode()}"
        return "sorted chunks + scaled_dot_product_attention"

    def _flex_call_mode(self) -> str:
        """How the last FlexAttention call ran (before any call: how one would, on CUDA when
        this machine has it, else on CPU, where several rounds need the eager path)."""
        from harness.attention._flex import flex_mode

        mode = self._flex_last or flex_mode()
        if self._flex_last is None and mode == "compiled" and self.n_hashes > 1 \
                and not torch.cuda.is_available():
            mode = "eager (compiled CPU FlexAttention returns no log-sum-exp)"
        return mode

    @property
    def claimed_memory(self) -> tuple[str, float]:
        if self.backend == "flex" and not self._flex_call_mode().startswith("compiled"):
            return "O(N^2) with eager FlexAttention (it materializes the scores)", 2.0
        return super().claimed_memory

    def _flex_windows(self, N: int, C: int, dev: torch.device) -> tuple[Tensor, Tensor]:
        """Block mask tables of the chunk windows in tiles of ``C`` sorted rows: sorted chunk
        ``c`` reads key chunks ``c - 1`` and ``c``. ``(kv_num_blocks, kv_indices)``, shapes
        ``(1, 1, nc)`` and ``(1, 1, nc, nc)``."""

        def build() -> tuple[Tensor, Tensor]:
            nc = -(-N // C)
            table = torch.eye(nc, dtype=torch.bool) | torch.eye(nc, dtype=torch.bool).roll(-1, 1)
            table[0, -1] = nc == 1  # no wrap-around: chunk 0 has no previous chunk
            counts = table.sum(dim=1, dtype=torch.int32).view(1, 1, nc)
            order = torch.argsort((~table).to(torch.int8), dim=1, stable=True).to(torch.int32)
            return counts.to(dev), order.view(1, 1, nc, nc).contiguous().to(dev)

        return self._cached(("flex windows", N, C, dev), build)

    def _flex_run(self, qs: Tensor, ks: Tensor, vs: Tensor, counts: Tensor, indices: Tensor,
                  C: int, mask_mod: Any, score_mod: Any, full: bool = False
                  ) -> tuple[Tensor, Tensor | None]:
        """One FlexAttention call over sorted (B, H * R, N, e) rows: output and log-sum-exp
        (None for one round). ``full``: every listed key tile is wholly visible (the fused
        kernel then skips ``mask_mod`` there; the eager path applies it everywhere)."""
        from torch.nn.attention.flex_attention import BlockMask

        from harness.attention._flex import flex_call_mode, flex_call_tiled

        N = qs.shape[2]
        self._flex_last = flex_call_mode(qs, score_mod is not None)
        backward = torch.is_grad_enabled() and (qs.requires_grad or ks.requires_grad
                                                or vs.requires_grad)
        # (the compiled CPU kernel needs the two index tables to be distinct tensors)
        tiles = {"full_kv_num_blocks": counts, "full_kv_indices": indices,
                 "kv_num_blocks": torch.zeros_like(counts), "kv_indices": indices.clone()} \
            if full else {"kv_num_blocks": counts, "kv_indices": indices}
        block_mask = BlockMask.from_kv_blocks(**tiles, BLOCK_SIZE=C, mask_mod=mask_mod,
                                              seq_lengths=(N, N), compute_q_blocks=backward)
        scale = 1.0 / math.sqrt(qs.shape[-1])
        if score_mod is None:
            return flex_call_tiled(qs, ks, vs, block_mask, C, self._flex_tiles, scale=scale), None
        return flex_call_tiled(qs, ks, vs, block_mask, C, self._flex_tiles, scale=scale,
                               score_mod=score_mod, return_lse=True)

    def _flex_attend(
        self, q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None, causal: bool
    ) -> Tensor:
        """``backend='flex'``: the chunks backend's result from FlexAttention. Every round's
        sorted q, k, v are folded into the head dimension (one call for all rounds); the
        ``mask_mod`` says over sorted indices what the chunk windows and their masks say (window
        ``(c - 1, c)``, real keys, the shared-QK self rule, causal bucket band), the
        ``score_mod`` subtracts ``log`` of the rounds a pair shares, and the rounds merge by the
        log-sum-exps FlexAttention returns."""
        from harness.attention._flex import flex_available

        problem = flex_available()
        if problem:
            raise ValueError(f"lsh: backend='flex' cannot run: {problem}")
        shared = q is k
        if q.device.type == "cpu" and (q.requires_grad or k.requires_grad or v.requires_grad):
            if torch.is_grad_enabled():
                raise ValueError("lsh: backend='flex' has no backward pass on CPU (torch's"
                                 " FlexAttention does not support it); use backend='chunks'"
                                 " to train on CPU, or run under torch.no_grad()")
            q, v = q.detach(), v.detach()
            k = q if shared else k.detach()
        if causal and not shared:
            return self._flex_causal_distinct(q, k, v, key_padding_mask)
        B, H, N, d = q.shape
        R = self.n_hashes
        C = min(self.chunk_size, N)
        n_buckets = self.resolved_n_buckets(N)
        dev = q.device
        grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
        with torch.no_grad():
            rot = self._rotations_for(q, n_buckets)
            buckets = None
            if causal:
                buckets = self._hash(q, rot, n_buckets, key_padding_mask)
                perm_q = _stable_bucket_order(buckets, n_buckets)
            else:
                perm_q = self._sort(q, rot, n_buckets, key_padding_mask)
            perm_k = perm_q if shared else self._sort(k, rot, n_buckets, key_padding_mask)
            inv_q = _inverse_permutation(perm_q)
            inv_k = inv_q if shared else _inverse_permutation(perm_k)
            s = torch.arange(N, device=dev)
            n_real = None
            if buckets is not None:  # causal, shared QK: same bucket, sorted gap in [0, C)
                bs = buckets.gather(-1, perm_q).reshape(B, H * R, N)
                real_q = bs < n_buckets
                prev = F.pad(bs[..., :-1], (1, 0), value=-1)
                has_other = real_q & (prev == bs) if C > 1 else torch.zeros_like(real_q)
                empty = ~real_q

                def mask_mod(b, h, qi, ki):
                    bk = bs[b, h, ki]
                    visible = (ki <= qi) & (qi - ki < C) & (bk == bs[b, h, qi]) & (bk < n_buckets)
                    return visible & ((ki != qi) | ~has_other[b, h, qi])
            else:  # chunk windows: sorted chunk c sees chunks c - 1 and c
                c = torch.div(s, C, rounding_mode="floor")
                lo, hi = ((c - 1) * C).clamp_min(0), ((c + 1) * C).clamp_max(N)
                if key_padding_mask is not None:
                    n_real = key_padding_mask.sum(dim=-1)
                real_keys = n_real.view(B, 1) if n_real is not None else N
                seen = (torch.minimum(hi, torch.as_tensor(real_keys, device=dev)) - lo)
                seen = seen.clamp_min(0).expand(B, N)  # real keys in each sorted row's window
                empty = (seen == 0).view(B, 1, N)
                has_other = None
                if shared:
                    has_other = (seen - (s < real_keys).long() > 0).view(B, 1, N)
                other = has_other

                def mask_mod(b, h, qi, ki):
                    gap = qi // C - ki // C
                    visible = (gap == 0) | (gap == 1)
                    if n_real is not None:
                        visible = visible & (ki < n_real[b])
                    if other is not None:
                        visible = visible & ((ki != qi) | ~other[b, 0, qi])
                    return visible

            score_mod = None
            if R > 1:
                pq, pk = perm_q.reshape(B, H * R, N), perm_k.reshape(B, H * R, N)
                bu = buckets
                if bu is None:
                    cq = torch.div(inv_q, C, rounding_mode="floor")
                    ck = cq if shared else torch.div(inv_k, C, rounding_mode="floor")

                def score_mod(score, b, h, qi, ki):
                    hh = h // R
                    pos_q, pos_k = pq[b, h, qi], pk[b, h, ki]
                    n = torch.zeros_like(score)
                    for r in range(R):  # rounds in which this pair is visible (Reformer's rule)
                        if bu is None:
                            gap = cq[b, hh, r, pos_q] - ck[b, hh, r, pos_k]
                            both = (gap == 0) | (gap == 1)
                        else:
                            gap = inv_q[b, hh, r, pos_q] - inv_q[b, hh, r, pos_k]
                            both = ((bu[b, hh, r, pos_q] == bu[b, hh, r, pos_k]) & (gap >= 0)
                                    & (gap < C))
                        n = n + both.to(score.dtype)
                    return score - torch.log(n.clamp_min(1.0))

            counts, indices = self._flex_windows(N, C, dev)

        qs = _take(q, perm_q).view(B, H * R, N, d)
        ks = _normalize_keys(qs, grad) if shared else _take(k, perm_k).view(B, H * R, N, d)
        vs = _take(v, perm_k).view(B, H * R, N, -1)
        # Distinct q and k, no padding: every key of a window is visible (tiles of C rows).
        full = buckets is None and not shared and key_padding_mask is None
        out, lse = self._flex_run(qs, ks, vs, counts, indices, C, mask_mod, score_mod, full)
        dv = vs.shape[-1]
        with torch.no_grad():
            empty = _rounds(empty, B, H, R).gather(-1, inv_q)
        out = out.reshape(B, H, R, N, dv).gather(3, inv_q.unsqueeze(-1).expand(B, H, R, N, dv))
        if R == 1:  # (FlexAttention already gives zeros where a row sees no key)
            return out[:, :, 0].masked_fill(empty[:, :, 0].unsqueeze(-1), 0.0) \
                if bool(empty.any()) else out[:, :, 0]
        with torch.no_grad():
            dead = empty
            if has_other is not None:  # a round where a token sees only itself is dropped
                lonely = ~_rounds(has_other, B, H, R).gather(-1, inv_q)
                dead = dead | (lonely & (~lonely).any(dim=2, keepdim=True))
        lse = lse.reshape(B, H, R, N).gather(-1, inv_q)
        return _merge_lse(out, lse, dead)

    def _flex_causal_distinct(
        self, q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None
    ) -> Tensor:
        """``backend='flex'``, causal with distinct q and k (:meth:`_causal_attend`'s rule):
        queries and keys both sorted by (bucket, position); sorted query ``j`` sees the sorted
        keys in ``(last_j - C, last_j]`` of its bucket, ``last_j`` the last key of its bucket at
        a position <= its own (non-decreasing in ``j``, so each query tile reads a contiguous run
        of key tiles). A query that sees no such key attends to the key at its own position,
        applied after the call."""
        B, H, N, d = q.shape
        R = self.n_hashes
        C = min(self.chunk_size, N)
        dev = q.device
        with torch.no_grad():
            bq, bk, nb = self._hashed(q, k, key_padding_mask)  # (B, H, R, N) each
            perm_q, perm_k = _stable_bucket_order(bq, nb), _stable_bucket_order(bk, nb)
            bqs, bks = bq.gather(-1, perm_q), bk.gather(-1, perm_k)
            last = torch.searchsorted((bks * N + perm_k).contiguous(),
                                      (bqs * N + perm_q).contiguous(), right=True) - 1
            sees = (last >= 0) & (bks.gather(-1, last.clamp_min(0)) == bqs) & (bqs < nb)
            inv_q, inv_k = _inverse_permutation(perm_q), _inverse_permutation(perm_k)
            lonely = ~sees.gather(-1, inv_q)  # (B, H, R, N) by position
            own = lonely if key_padding_mask is None else lonely & key_padding_mask[:, None,
                                                                                     None, :]
            empty = lonely & ~own
            lf, bqf, bkf = (t.reshape(B, H * R, N) for t in (last, bqs, bks))

            def mask_mod(b, h, qi, ki):
                top = lf[b, h, qi]
                bk_ = bkf[b, h, ki]
                return (ki <= top) & (ki > top - C) & (bk_ == bqf[b, h, qi]) & (bk_ < nb)

            score_mod = None
            count_own = None
            if R > 1:
                last_pos = last.gather(-1, inv_q)  # by query position
                pq, pk = perm_q.reshape(B, H * R, N), perm_k.reshape(B, H * R, N)

                def score_mod(score, b, h, qi, ki):
                    hh = h // R
                    pos_q, pos_k = pq[b, h, qi], pk[b, h, ki]
                    n = torch.zeros_like(score)
                    for r in range(R):
                        top, sk = last_pos[b, hh, r, pos_q], inv_k[b, hh, r, pos_k]
                        both = (bq[b, hh, r, pos_q] == bk[b, hh, r, pos_k]) & (sk <= top) & (
                            sk > top - C)
                        n = n + both.to(score.dtype)
                    return score - torch.log(n.clamp_min(1.0))

                # The (own position, own position) pair's rounds, for the lonely rows.
                count_own = ((bq == bk) & (inv_k <= last_pos) & (inv_k > last_pos - C)).sum(
                    dim=2, keepdim=True).clamp_min(1)
            # Query tile i reads key tiles from (last of its first row - C + 1) to its last row's.
            nt = -(-N // C)
            first = last[..., ::C]
            ends = (torch.arange(1, nt + 1, device=dev) * C).clamp_max(N) - 1
            final = last.gather(-1, ends.expand(B, H, R, nt))
            lo = torch.div((first - C + 1).clamp_min(0), C, rounding_mode="floor")
            hi = torch.div(final.clamp_min(0), C, rounding_mode="floor")
            counts = torch.where(final >= 0, hi - lo + 1, 0).to(torch.int32).view(B, H * R, nt)
            indices = ((lo.unsqueeze(-1) + torch.arange(nt, device=dev)) % nt).to(torch.int32)
            indices = indices.view(B, H * R, nt, nt)

        qs = _take(q, perm_q).view(B, H * R, N, d)
        ks = _take(k, perm_k).view(B, H * R, N, d)
        vs = _take(v, perm_k).view(B, H * R, N, -1)
        out, lse = self._flex_run(qs, ks, vs, counts, indices, C, mask_mod, score_mod)
        dv = vs.shape[-1]
        out = out.reshape(B, H, R, N, dv).gather(3, inv_q.unsqueeze(-1).expand(B, H, R, N, dv))
        if bool(own.any()):
            out = torch.where(own.unsqueeze(-1), v.unsqueeze(2), out)
        if R == 1:
            return out[:, :, 0].masked_fill(empty[:, :, 0].unsqueeze(-1), 0.0)
        self_lse = ((q * k).sum(dim=-1) * (1.0 / math.sqrt(d))).unsqueeze(2) - torch.log(
            count_own.to(q.dtype))
        lse = lse.reshape(B, H, R, N).gather(-1, inv_q)
        lse = torch.where(own, self_lse.to(lse.dtype), lse)
        return _merge_rounds(out, lse, empty, lonely)

    # ------------------------------------------------------------- debug / tests
    def effective_weights(
        self,
        q: Tensor,
        k: Tensor,
        key_padding_mask: Tensor | None = None,
        causal: bool = False,
    ) -> Tensor:
        """The (batch, heads, N, N) attention weights this module applies, for small N (tests).

        Computed by attending to identity values, so it runs the real code path; pass the same
        tensor as ``q`` and ``k`` for shared QK.
        """
        if not isinstance(q, Tensor) or q.dim() != 4:
            raise ValueError(
                "lsh.effective_weights: q must be a 4-D tensor (batch, heads, seq_len, head_dim),"
                f" got {getattr(q, 'shape', type(q).__name__)}"
            )
        B, H, N, _ = q.shape
        if N > _EFFECTIVE_WEIGHTS_MAX_LEN:
            raise ValueError(
                f"lsh.effective_weights builds an N x N matrix; N={N} exceeds"
                f" {_EFFECTIVE_WEIGHTS_MAX_LEN}. Use a shorter sequence."
            )
        eye = torch.eye(N, dtype=q.dtype, device=q.device).expand(B, H, N, N)
        return self(q, k, eye, key_padding_mask=key_padding_mask, causal=causal)
