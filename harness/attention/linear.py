"""Linear (kernelized) attention: O(N) time and memory in sequence length.

Attention is written as ``phi(q) . phi(k)`` for a positive feature map ``phi``, so the sum over keys
can be taken before the sum over queries::

    out_i = phi(q_i) (sum_j phi(k_j)^T v_j) / phi(q_i) (sum_j phi(k_j)^T)

Two feature maps are available:

* ``"elu"``: ``phi(x) = elu(x) + 1`` (Katharopoulos et al., 2020). This defines its own attention
  kernel; it is *not* an approximation of softmax attention, although the registry's class-level
  ``approximates_softmax`` flag is True (capabilities are per class, and ``"favor"`` is one).
* ``"favor"``: positive orthogonal random features (Choromanski et al., 2021, "Performer").
  ``phi(x) = exp(w . x' - |x'|^2 / 2) / sqrt(m)`` with ``x' = x * d^-1/4`` and ``m`` rows ``w`` of a
  block-orthogonal Gaussian matrix whose row norms are resampled from a chi(d) distribution, so that
  ``E[phi(q) . phi(k)] = exp(q . k / sqrt(d))``: an unbiased estimate of the softmax kernel.

Non-causal attention uses ``phi(Q) (phi(K)^T V)``. Causal attention processes the sequence in
chunks: inside a chunk the masked quadratic form ``tril(phi(Q_c) phi(K_c)^T) V_c`` is used, and a
running ``phi(K)^T V`` state (size ``m x d``) carries the earlier chunks, so memory stays O(N d)
rather than holding one ``m x d`` state per position. Causal ``"favor"`` stabilizes each key by
its own maximum and carries the keys' scales with a running maximum of the keys seen so far, so
no later key changes an earlier output (a maximum over all keys would, through ``FAVOR_EPS``).
"""

from __future__ import annotations

import inspect
import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.attention.base import Attention, Capabilities, pass_factor, register_attention

__all__ = [
    "FEATURE_MAPS",
    "LinearAttention",
    "elu_feature_map",
    "favor_feature_map",
    "favor_key_rows",
    "favor_projection",
    "linear_attention",
]

FEATURE_MAPS = ("elu", "favor")
#: Kernels of the ``backend`` option: torch matmuls, or flash-linear-attention's chunked
#: Triton kernels (CUDA only, the optional ``[gpu]`` extra) for the causal prefix sums.
BACKENDS = ("torch", "fla")

#: Added to every FAVOR feature after stabilization (where the largest feature is 1), so that a
#: normalizer never underflows to zero for a query that does see keys.
FAVOR_EPS = 1e-6


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half-precision inputs are computed in float32; float32/float64 as they are."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def elu_feature_map(x: Tensor) -> Tensor:
    """``elu(x) + 1``: strictly positive features of the same size as ``x``."""
    return F.elu(x) + 1.0


def favor_projection(n_features: int, head_dim: int, seed: int) -> Tensor:
    """The (n_features, head_dim) FAVOR+ random projection, float64 on CPU, fixed by ``seed``.

    Stacks independent Haar-random orthogonal head_dim x head_dim blocks (rows of one block are
    orthonormal) and rescales each row by an independent chi(head_dim) sample, so that every row is
    marginally N(0, I) while rows in a block stay orthogonal.
    """
    if n_features < 1 or head_dim < 1:
        raise ValueError(
            f"favor_projection: n_features and head_dim must be >= 1, got {n_features}, {head_dim}"
        )
    gen = torch.Generator(device="cpu").manual_seed(seed)
    blocks = []
    for _ in range(math.ceil(n_features / head_dim)):
        gauss = torch.randn(head_dim, head_dim, generator=gen, dtype=torch.float64)
        q, r = torch.linalg.qr(gauss)
        # Sign fix makes Q Haar-distributed (QR alone is biased by the sign convention of R).
        q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
        blocks.append(q.T)
    rows = torch.cat(blocks, dim=0)[:n_features]
    norms = torch.randn(n_features, head_dim, generator=gen, dtype=torch.float64).norm(dim=1)
    return rows * norms.unsqueeze(1)


def favor_feature_map(
    x: Tensor,
    projection: Tensor,
    *,
    is_query: bool,
    key_padding_mask: Tensor | None = None,
) -> Tensor:
    """Positive random features of ``x`` (batch, heads, seq_len, head_dim) -> (..., n_features).

    Returned features equal ``phi(x)`` of the module docstring up to a positive factor that
    cancels in attention: per query row for queries (the row maximum is subtracted in the exponent,
    and the ``|x'|^2 / 2`` term, constant per query, is dropped), and per (batch, head) for keys
    (the maximum over real keys and features is subtracted). ``key_padding_mask`` (keys only) keeps
    padded keys out of that maximum. :data:`FAVOR_EPS` is added so normalizers cannot underflow.
    """
    d = x.shape[-1]
    proj = projection.to(dtype=x.dtype, device=x.device) * (d**-0.25)  # x' = x d^-1/4, folded in
    if is_query:
        logits = x @ proj.T
        logits.sub_(logits.detach().amax(dim=-1, keepdim=True))
    else:
        # -|x'|^2 / 2 rides along the matmul as an extra input column against a column of ones.
        half_sq = (x * x).sum(dim=-1, keepdim=True) * (-0.5 * d**-0.5)
        ones = proj.new_ones(proj.shape[0], 1)
        logits = torch.cat([x, half_sq], dim=-1) @ torch.cat([proj, ones], dim=-1).T
        top = logits.detach().amax(dim=-1, keepdim=True)  # (B, H, N, 1)
        if key_padding_mask is not None:
            top = top.masked_fill(~key_padding_mask[:, None, :, None], float("-inf"))
        top = top.amax(dim=-2, keepdim=True)  # (B, H, 1, 1)
        top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))  # all keys padded
        logits.sub_(top)
    # In place where autograd allows: exp saves its result, so the eps add copies when recording.
    feats = logits.exp_()
    if torch.is_grad_enabled() and feats.requires_grad:
        return feats + FAVOR_EPS
    return feats.add_(FAVOR_EPS)


def favor_key_rows(x: Tensor, projection: Tensor,
                   key_padding_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Causal FAVOR key features: each key row stabilized by its own maximum.

    Returns ``(features, log_weight)`` with ``phi(k_j) = features_j * exp(log_weight_j)`` up to
    the factor shared by every key (see :func:`favor_feature_map`); padded keys get weight
    ``-inf``. Nothing in row ``j`` depends on another key, so causal attention can carry the
    weights with a running maximum of earlier keys only (:func:`_causal_chunked`), where the
    shared stabilizer of :func:`favor_feature_map` (a maximum over every key, later ones too)
    would let later keys move earlier outputs through ``FAVOR_EPS``.
    """
    d = x.shape[-1]
    proj = projection.to(dtype=x.dtype, device=x.device) * (d**-0.25)
    half_sq = (x * x).sum(dim=-1, keepdim=True) * (-0.5 * d**-0.5)
    ones = proj.new_ones(proj.shape[0], 1)
    logits = torch.cat([x, half_sq], dim=-1) @ torch.cat([proj, ones], dim=-1).T
    top = logits.detach().amax(dim=-1, keepdim=True)  # (B, H, N, 1)
    feats = logits.sub_(top).exp_()  # in place where autograd allows, as favor_feature_map
    feats = (feats + FAVOR_EPS if torch.is_grad_enabled() and feats.requires_grad
             else feats.add_(FAVOR_EPS))
    log_weight = top.squeeze(-1)
    if key_padding_mask is not None:
        log_weight = log_weight.masked_fill(~key_padding_mask[:, None, :], float("-inf"))
    return feats, log_weight


def _safe_divide(out1: Tensor) -> Tensor:
    """Split ``[numerator, normalizer]`` and divide; a zero normalizer (no visible key) gives 0."""
    num, den = out1[..., :-1], out1[..., -1:]
    den = torch.where(den > 0, den, torch.ones_like(den))
    return num / den


def linear_attention(
    phi_q: Tensor,
    phi_k: Tensor,
    v: Tensor,
    key_padding_mask: Tensor | None = None,
    causal: bool = False,
    chunk_size: int = 128,
    key_log_weight: Tensor | None = None,
) -> Tensor:
    """Attention from features: ``sum_j (phi_q_i . phi_k_j) v_j / sum_j (phi_q_i . phi_k_j)``.

    phi_q: (B, H, Nq, M); phi_k: (B, H, Nk, M) non-negative; v: (B, H, Nk, Dv);
    key_padding_mask: (B, Nk) bool, True = real key. Causal: query i sees keys j <= i, computed
    chunk by chunk (``chunk_size`` positions at a time) with a carried ``M x (Dv + 1)`` state;
    ``key_log_weight`` (B, H, Nk), causal only: key j's features count ``exp(weight_j)`` times
    (:func:`favor_key_rows`). Queries that see no real key return zeros. Output in ``v``'s
    dtype, shape (B, H, Nq, Dv).
    """
    if chunk_size < 1:
        raise ValueError(f"linear_attention: chunk_size must be >= 1, got {chunk_size}")
    # The normalizer rides along as an extra value column of ones; padded keys get all-zero rows.
    v1 = torch.cat([v.to(phi_k.dtype), v.new_ones((*v.shape[:-1], 1), dtype=phi_k.dtype)], dim=-1)
    if key_padding_mask is not None:
        v1 = v1 * key_padding_mask[:, None, :, None].to(v1.dtype)
    if not causal:
        out1 = phi_q @ (phi_k.transpose(-1, -2) @ v1)
    else:
        out1 = (_causal_chunked(phi_q, phi_k, v1, chunk_size) if key_log_weight is None
                else _causal_weighted(phi_q, phi_k, v1, chunk_size, key_log_weight.detach()))
    return _safe_divide(out1).to(v.dtype)


def _causal_weighted(phi_q: Tensor, phi_k: Tensor, v1: Tensor, chunk: int,
                     log_w: Tensor) -> Tensor:
    """:func:`_causal_chunked` with per-key weights ``exp(log_w)``, stabilized by the running
    maximum of the weights of the keys a query sees (never a later key's): for query i every
    visible key's weight is ``exp(log_w_j - max_{l <= i} log_w_l) <= 1``."""
    n_q, n_k = phi_q.shape[2], phi_k.shape[2]
    state = phi_k.new_zeros((*phi_k.shape[:2], phi_k.shape[-1], v1.shape[-1]))
    ref = log_w.new_full((*log_w.shape[:2], 1), float("-inf"))  # max weight in the state
    tri = torch.ones(chunk, chunk, dtype=torch.bool, device=phi_q.device).tril()
    outs = []
    for start in range(0, n_q, chunk):
        stop = min(start + chunk, n_q)
        q_c = phi_q[:, :, start:stop]
        if start >= n_k:  # no new keys: the state as it is
            outs.append(q_c @ state)
            continue
        k_stop = min(start + chunk, n_k)
        n_qc, n_kc = stop - start, k_stop - start
        t = log_w[:, :, start:k_stop]
        run = torch.maximum(torch.cummax(t, dim=-1).values, ref)  # (B, H, Lk), causal
        run = torch.where(torch.isfinite(run), run, torch.zeros_like(run))  # all padded so far
        run_q = run[..., :n_qc] if n_qc <= n_kc else torch.cat(
            [run, run[..., -1:].expand(*run.shape[:2], n_qc - n_kc)], dim=-1)
        out = (q_c @ state) * torch.exp(ref - run_q).unsqueeze(-1)
        gap = (t[:, :, None, :] - run_q[:, :, :, None]).masked_fill(
            ~tri[:n_qc, :n_kc], float("-inf"))
        local = (q_c @ phi_k[:, :, start:k_stop].transpose(-1, -2)) * gap.exp()
        out = out + local @ v1[:, :, start:k_stop]
        new_ref = run[..., -1:]
        scaled_k = phi_k[:, :, start:k_stop] * torch.exp(t - new_ref).unsqueeze(-1)
        state = (state * torch.exp(ref - new_ref).unsqueeze(-1)
                 + scaled_k.transpose(-1, -2) @ v1[:, :, start:k_stop])
        ref = new_ref
        outs.append(out)
    return torch.cat(outs, dim=2)


def _causal_chunked(phi_q: Tensor, phi_k: Tensor, v1: Tensor, chunk: int) -> Tensor:
    n_q, n_k = phi_q.shape[2], phi_k.shape[2]
    state = phi_k.new_zeros((*phi_k.shape[:2], phi_k.shape[-1], v1.shape[-1]))
    tri = torch.ones(chunk, chunk, dtype=torch.bool, device=phi_q.device).tril()
    outs = []
    for start in range(0, n_q, chunk):
        stop = min(start + chunk, n_q)
        q_c = phi_q[:, :, start:stop]
        out = q_c @ state
        if start < n_k:
            k_stop = min(start + chunk, n_k)
            k_c, v_c = phi_k[:, :, start:k_stop], v1[:, :, start:k_stop]
            local = (q_c @ k_c.transpose(-1, -2)).masked_fill(
                ~tri[: stop - start, : k_stop - start], 0.0
            )
            out = out + local @ v_c
            state = state + k_c.transpose(-1, -2) @ v_c
        outs.append(out)
    return torch.cat(outs, dim=2)


@register_attention
class LinearAttention(Attention):
    """Kernelized linear attention with an ``"elu"`` or ``"favor"`` feature map.

    Options: ``feature_map`` ("elu" or "favor"), ``n_features`` (random features m, favor only),
    ``seed`` (seed of the random features). The favor projection depends on head_dim, so it is drawn
    on the first call (from ``seed``, deterministically) and kept in the non-persistent buffer
    ``projection``, which moves with ``.to(device)``; it is re-derived identically after loading.
    ``chunk_size`` (an attribute, not a registry option) sets the causal chunk length.
    Inputs in float16/bfloat16 are computed in float32 and returned in their own dtype.
    """

    name = "linear"
    capabilities = Capabilities(
        causal=True,
        key_padding_mask=True,
        cross_lengths=True,
        time_complexity="O(N)",
        memory_complexity="O(N)",
        memory_exponent=1.0,
        approximates_softmax=True,  # favor does; elu is its own kernel (class-level flag)
        time_exponent=1.0,
    )

    chunk_size: int = 128
    backend_options: ClassVar[tuple[str, ...]] = ("backend",)
    flops_formula = ("feature maps (favor: 2·N·d·m each for q and k; elu: m = d) + 4·B·H·N·m·(d+1)"
                     " (causal: + 2·B·H·N·c·(m+d+1) within chunks of c); backward 2.5x")

    def __init__(self, *, feature_map: str = "elu", n_features: int = 256, seed: int = 0,
                 backend: str = "torch") -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"linear: backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        if feature_map not in FEATURE_MAPS:
            raise ValueError(
                f"linear: feature_map must be one of {FEATURE_MAPS}, got {feature_map!r}"
            )
        if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
            raise ValueError(
                f"linear: n_features must be a positive int (e.g. 256), got {n_features!r}"
            )
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"linear: seed must be a non-negative int, got {seed!r}")
        self.feature_map = feature_map
        self.n_features = n_features
        self.seed = seed
        self.register_buffer("projection", None, persistent=False)

    @classmethod
    def flops(cls, batch: int, heads: int, n: int, head_dim: int,
              options: dict[str, Any] | None = None, pass_: str = "forward", *,
              causal: bool = False) -> float:
        opts = options or {}
        favor = opts.get("feature_map", "elu") == "favor"
        m = int(opts.get("n_features", 256)) if favor else head_dim
        features = 2 * (2.0 * n * head_dim * m) if favor else 2 * 3.0 * n * head_dim
        mix = 4.0 * n * m * (head_dim + 1)
        if causal:
            c = min(cls.chunk_size, n)
            mix += 2.0 * n * c * (m + head_dim + 1)
        return batch * heads * (features + mix) * pass_factor(pass_)

    @classmethod
    def device_support(cls, device: str, options: dict[str, Any]) -> str | None:
        if options.get("backend", "torch") != "fla":
            return None
        if not str(device).startswith("cuda"):
            return (f"linear: backend='fla' runs flash-linear-attention's Triton kernels, CUDA"
                    f" only; on {device} use backend='torch'")
        try:
            import fla.ops.linear_attn  # noqa: F401
        except Exception as err:
            return (f"linear: backend='fla' needs flash-linear-attention ({type(err).__name__}:"
                    f" {err}); install the optional extra: pip install 'attention-harness[gpu]'")
        return None

    @property
    def kernel(self) -> str:
        """The kernel that runs (the record of a timing says it)."""
        if self.backend == "fla":
            return "flash-linear-attention chunk_linear_attn (causal); torch matmuls otherwise"
        return "torch matmuls"

    def _projection(self, head_dim: int, device: torch.device) -> Tensor:
        proj = self.projection
        if (
            proj is None
            or proj.shape[1] != head_dim
            or proj.device != device
            or proj.dtype not in (torch.float32, torch.float64)
        ):
            proj = favor_projection(self.n_features, head_dim, self.seed).to(
                device=device, dtype=torch.float32
            )
            self.projection = proj
        return proj

    def features(
        self, q: Tensor, k: Tensor, key_padding_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(phi(q), phi(k))`` in the compute dtype (float32 for half-precision inputs)."""
        cdtype = _compute_dtype(q.dtype)
        q, k = q.to(cdtype), k.to(cdtype)
        if self.feature_map == "elu":
            return elu_feature_map(q), elu_feature_map(k)
        proj = self._projection(q.shape[-1], q.device)
        return (
            favor_feature_map(q, proj, is_query=True),
            favor_feature_map(k, proj, is_query=False, key_padding_mask=key_padding_mask),
        )

    def attend(
        self, q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None, causal: bool
    ) -> Tensor:
        if self.backend == "fla":
            problem = self.device_support(str(q.device), self.options)
            if problem:
                raise ValueError(problem)
        if causal and self.feature_map == "favor" and self.backend != "fla":
            # keys stabilized causally, row by row
            cdtype = _compute_dtype(q.dtype)
            proj = self._projection(q.shape[-1], q.device)
            phi_q = favor_feature_map(q.to(cdtype), proj, is_query=True)
            phi_k, log_w = favor_key_rows(k.to(cdtype), proj, key_padding_mask)
            out = linear_attention(phi_q, phi_k, v.to(cdtype), key_padding_mask, causal,
                                   self.chunk_size, key_log_weight=log_w)
            return out.to(v.dtype)
        phi_q, phi_k = self.features(q, k, key_padding_mask)
        if self.backend == "fla" and causal:
            return _fla_causal(phi_q, phi_k, v, key_padding_mask).to(v.dtype)
        out = linear_attention(
            phi_q, phi_k, v.to(phi_q.dtype), key_padding_mask, causal, self.chunk_size
        )
        return out.to(v.dtype)


def _fla_causal(phi_q: Tensor, phi_k: Tensor, v: Tensor, key_padding_mask: Tensor | None
                ) -> Tensor:
    """Causal linear attention by flash-linear-attention's ``chunk_linear_attn``: the
    normalizer rides along as a value column of ones (padded keys: zero rows), unscaled and
    unnormalized inside the kernel, divided here as :func:`linear_attention` does."""
    from fla.ops.linear_attn import chunk_linear_attn

    v1 = torch.cat([v.to(phi_k.dtype), v.new_ones((*v.shape[:-1], 1), dtype=phi_k.dtype)], dim=-1)
    if key_padding_mask is not None:
        v1 = v1 * key_padding_mask[:, None, :, None].to(v1.dtype)
    kwargs: dict[str, Any] = {"scale": 1.0, "normalize": False}
    params = inspect.signature(chunk_linear_attn).parameters
    if "head_first" in params:
        kwargs["head_first"] = False
    # (B, H, N, X) -> (B, N, H, X): the layout current releases take.
    q_t, k_t, v_t = (t.transpose(1, 2).contiguous() for t in (phi_q, phi_k, v1))
    out1 = chunk_linear_attn(q_t, k_t, v_t, **kwargs)[0].transpose(1, 2)
    return _safe_divide(out1.to(phi_q.dtype))
