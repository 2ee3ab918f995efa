"""Block-sparse attention (sliding window + global + random blocks), computed block by block.

The sequence is cut into blocks of ``block_size`` tokens (the tail is padded inside and masked). A
query block attends to

* a sliding window of ``window_blocks`` key blocks centred on itself (for an even count, one more
  block on the left; clipped at the sequence ends),
* the ``global_blocks`` leading key blocks, and
* ``random_blocks`` further key blocks drawn once from a generator seeded with ``seed``: the pattern
  is a deterministic function of ``(seed, number of blocks)``, identical in training and evaluation,
  and never repeats a window or global block.

The ``global_blocks`` leading query blocks attend to every key. Only the kept key blocks are
gathered and scored, so time and memory grow as N * (window + global + random) * block_size
(plus global rows x N); within the gathered blocks the softmax is exact, so the result equals a
dense softmax masked by :meth:`BlockSparseAttention.dense_mask`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from harness.attention.base import Attention, Capabilities, pass_factor, register_attention
from harness.attention.reference import allowed_keys

__all__ = ["BlockSparseAttention"]

_CACHE_SIZE = 8  # layouts / masks kept per module (one per sequence length, device, causal)
#: Kernels of the ``backend`` option: block gathers + SDPA, or FlexAttention with a block mask.
BACKENDS = ("gather", "flex")


def _check_int(option: str, value: object, minimum: int, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"sparse: {option} must be an int >= {minimum} ({hint}), got {value!r}")
    return value


@register_attention
class BlockSparseAttention(Attention):
    """BigBird/Longformer-style block-sparse softmax attention with a fixed, seeded pattern.

    Options: ``block_size`` (tokens per block), ``window_blocks`` (sliding window width in blocks,
    centred on the query block), ``global_blocks`` (leading blocks that attend to all and are
    attended by all), ``random_blocks`` (extra key blocks per query block), ``seed`` (random
    pattern). Queries and keys must have the same length.

    Without autograd the gathered key/value blocks go into buffers kept by the module and reused
    on the next call of the same shape (no large fresh allocation per call); so one instance
    should not be called from several threads at once. The output is a (batch, heads, N, dim)
    view of a token-major (batch, N, heads, dim) tensor.
    """

    name = "sparse"
    capabilities = Capabilities(
        causal=True,
        key_padding_mask=True,
        cross_lengths=False,
        time_complexity="O(N)",
        memory_complexity="O(N)",
        memory_exponent=1.0,
        approximates_softmax=True,
        time_exponent=1.0,
    )

    backend_options: ClassVar[tuple[str, ...]] = ("backend",)
    flops_formula = ("4·B·H·d per visible (query, key) pair of the kept blocks (global rows:"
                     " all keys; causal: pairs with key <= query); backward 2.5x forward")

    @classmethod
    def exact_options(cls, seq_len: int) -> dict[str, Any] | None:
        """One block holding every token: full softmax attention."""
        return {"block_size": seq_len}

    @classmethod
    def flops(cls, batch: int, heads: int, n: int, head_dim: int,
              options: dict[str, Any] | None = None, pass_: str = "forward", *,
              causal: bool = False) -> float:
        pairs = cls(**(options or {})).visible_pairs(n, causal)
        return 4.0 * batch * heads * head_dim * pairs * pass_factor(pass_)

    def visible_pairs(self, seq_len: int, causal: bool = False) -> int:
        """(query, key) pairs the pattern keeps at ``seq_len`` (without building N x N)."""
        _check_int("seq_len", seq_len, 1, "sequence length")
        b = self.block_size
        n_blocks = -(-seq_len // b)
        g = min(self.global_blocks, n_blocks)
        n_global = min(g * b, seq_len)
        pairs = n_global * (n_global + 1) // 2 if causal else n_global * seq_len
        if n_blocks == g:
            return pairs
        index, valid = self.block_layout(n_blocks)
        qb = torch.arange(g, n_blocks).unsqueeze(1).expand_as(index)[valid]
        kb = index[valid]
        rows = (torch.clamp(seq_len - qb * b, max=b)).long()
        cols = (torch.clamp(seq_len - kb * b, max=b)).long()
        if not causal:
            return pairs + int((rows * cols).sum())
        below = kb < qb
        diag = kb == qb  # same block: row r sees keys 0..r (the tail block has rows == cols)
        return pairs + int((rows * cols)[below].sum()) + int(
            (rows * (rows + 1) // 2)[diag].sum())

    def __init__(
        self,
        *,
        block_size: int = 64,
        window_blocks: int = 3,
        global_blocks: int = 1,
        random_blocks: int = 2,
        seed: int = 0,
        backend: str = "gather",
    ) -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"sparse: backend must be one of {BACKENDS}, got {backend!r}")
        self.backend = backend
        self.block_size = _check_int("block_size", block_size, 1, "tokens per block")
        self.window_blocks = _check_int(
            "window_blocks", window_blocks, 1, "the window must at least cover the query's block"
        )
        self.global_blocks = _check_int("global_blocks", global_blocks, 0, "0 disables globals")
        self.random_blocks = _check_int("random_blocks", random_blocks, 0, "0 disables random")
        self.seed = _check_int("seed", seed, 0, "any non-negative int")
        if self.seed >= 2**63:
            raise ValueError(f"sparse: seed must be < 2**63, got {seed!r}")
        self._layouts: dict[tuple[int, ...], tuple[Tensor, Tensor]] = {}
        self._plans: dict[tuple[object, ...], tuple[Tensor, Tensor | None]] = {}
        self._additive_masks: dict[tuple[int, torch.dtype, bool], tuple[Tensor, Tensor]] = {}
        self._workspace: dict[str, Tensor] = {}
        self._flex_layouts: dict[tuple[object, ...], tuple[Tensor, Tensor, Tensor]] = {}
        self._flex_tiles: dict[tuple[object, ...], dict[str, int] | None] = {}

    # ------------------------------------------------------------------ pattern
    def _pattern_key(self) -> tuple[int | bool, ...]:
        """The options the pattern depends on (the caches are keyed by them), and whether
        ``torch.inference_mode`` is on (its tensors cannot be used for autograd outside it)."""
        return (
            self.block_size,
            self.window_blocks,
            self.global_blocks,
            self.random_blocks,
            self.seed,
            torch.is_inference_mode_enabled(),
        )

    def block_layout(self, n_blocks: int) -> tuple[Tensor, Tensor]:
        """Key blocks of each non-global query block, for a sequence of ``n_blocks`` blocks.

        Returns ``(index, valid)``, both of shape ``(n_blocks - g, slots)`` with
        ``g = min(global_blocks, n_blocks)``: row ``r`` lists the key blocks of query block
        ``g + r`` in ascending order, each at most once; slots past the row's own count hold a
        placeholder and are False in ``valid``. CPU tensors, cached per ``n_blocks``.
        """
        _check_int("n_blocks", n_blocks, 1, "number of blocks in the sequence")
        key = (n_blocks, *self._pattern_key())
        cached = self._layouts.get(key)
        if cached is not None:
            return cached
        g = min(self.global_blocks, n_blocks)
        left = self.window_blocks // 2
        right = self.window_blocks - 1 - left
        generator = torch.Generator(device="cpu")
        generator.manual_seed(self.seed)
        rows: list[list[int]] = []
        for block in range(g, n_blocks):
            fixed = set(range(max(0, block - left), min(n_blocks, block + right + 1)))
            fixed.update(range(g))
            rows.append(sorted(fixed.union(self._draw(fixed, n_blocks, generator))))
        slots = max((len(row) for row in rows), default=1)
        # Short rows are filled with the query's own block (a valid address) and masked out.
        padded = [row + [g + r] * (slots - len(row)) for r, row in enumerate(rows)]
        index = torch.tensor(padded, dtype=torch.long).view(len(rows), slots)
        valid = torch.tensor(
            [[True] * len(row) + [False] * (slots - len(row)) for row in rows], dtype=torch.bool
        ).view(len(rows), slots)
        if len(self._layouts) >= _CACHE_SIZE:
            self._layouts.pop(next(iter(self._layouts)))
        self._layouts[key] = (index, valid)
        return index, valid

    def _draw(self, fixed: set[int], n_blocks: int, generator: torch.Generator) -> list[int]:
        """Up to ``random_blocks`` distinct blocks outside ``fixed``, drawn from ``generator``."""
        wanted = self.random_blocks
        free = n_blocks - len(fixed)
        if wanted == 0 or free == 0:
            return []
        if free <= 4 * wanted:  # few candidates: permute them all
            candidates = [c for c in range(n_blocks) if c not in fixed]
            order = torch.randperm(free, generator=generator)[:wanted].tolist()
            return [candidates[i] for i in order]
        chosen: list[int] = []  # many candidates: rejection sampling, O(random_blocks) per row
        while len(chosen) < wanted:
            for c in torch.randint(n_blocks, (2 * wanted,), generator=generator).tolist():
                if c not in fixed and c not in chosen and len(chosen) < wanted:
                    chosen.append(c)
        return chosen

    def dense_mask(self, seq_len: int, causal: bool = False) -> Tensor:
        """The (seq_len, seq_len) bool pattern this module implements (True = query sees key).

        For tests and plots only: it is quadratic in ``seq_len``.
        """
        _check_int("seq_len", seq_len, 1, "sequence length")
        b = self.block_size
        n_blocks = -(-seq_len // b)
        g = min(self.global_blocks, n_blocks)
        index, valid = self.block_layout(n_blocks)
        blocks = torch.zeros(n_blocks, n_blocks, dtype=torch.bool)
        blocks[:g] = True
        if n_blocks > g:
            rows = torch.arange(g, n_blocks).unsqueeze(1).expand_as(index)
            blocks[rows[valid], index[valid]] = True
        mask = blocks.repeat_interleave(b, 0).repeat_interleave(b, 1)[:seq_len, :seq_len]
        if causal:
            mask = mask.tril()
        return mask

    def _local_plan(
        self, seq_len: int, batch: int, causal: bool, device: torch.device
    ) -> tuple[Tensor, Tensor | None]:
        """Cached gather index and mask for the block-local pass over all query blocks.

        Returns ``index`` of shape ``(n_blocks * slots,)`` (rows of the global query blocks hold
        their own block only; their outputs are replaced by the dense pass) and a bool mask of
        shape ``(batch * n_blocks, 1, b or 1, slots * b)`` (True = visible), or ``None`` when
        every gathered key is visible to every query.
        """
        key = (seq_len, batch, causal, str(device), *self._pattern_key())
        cached = self._plans.get(key)
        if cached is not None:
            return cached
        b = self.block_size
        n_blocks = -(-seq_len // b)
        g = min(self.global_blocks, n_blocks)
        index, valid = self.block_layout(n_blocks)
        slots = index.shape[1] if n_blocks > g else 1
        own = torch.arange(g).unsqueeze(1).expand(g, slots)
        index = torch.cat([own, index])
        valid = torch.cat([torch.arange(slots).expand(g, slots) == 0, valid])
        offsets = torch.arange(b)
        key_pos = (index.unsqueeze(-1) * b + offsets).flatten(1)  # (n_blocks, slots * b)
        visible = valid.repeat_interleave(b, dim=1) & (key_pos < seq_len)
        mask: Tensor | None
        if causal:
            query_pos = (torch.arange(n_blocks).unsqueeze(-1) * b + offsets).unsqueeze(-1)
            mask = visible.unsqueeze(1) & (key_pos.unsqueeze(1) <= query_pos)
        elif bool(visible.all()):
            mask = None
        else:
            mask = visible.unsqueeze(1)
        if mask is not None:
            mask = mask.unsqueeze(1).repeat(batch, 1, 1, 1).to(device)
        plan = (index.flatten().to(device), mask)
        if len(self._plans) >= _CACHE_SIZE:
            self._plans.pop(next(iter(self._plans)))
        self._plans[key] = plan
        return plan

    def _additive(self, mask: Tensor, dtype: torch.dtype) -> Tensor:
        """``mask`` as a cached 0 / -inf float tensor of ``dtype`` (spares SDPA the conversion)."""
        key = (id(mask), dtype, torch.is_inference_mode_enabled())
        cached = self._additive_masks.get(key)
        if cached is None or cached[0] is not mask:
            if len(self._additive_masks) >= _CACHE_SIZE:
                self._additive_masks.pop(next(iter(self._additive_masks)))
            zeros = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
            cached = (mask, zeros.masked_fill_(~mask, float("-inf")))
            self._additive_masks[key] = cached
        return cached[1]

    def _gather(self, name: str, blocks: Tensor, index: Tensor, reuse: bool) -> Tensor:
        """``blocks.index_select(1, index)``; into a kept buffer when ``reuse`` (no autograd).

        Reusing the buffer spares a large fresh allocation (and its page faults) on every call.
        """
        if not reuse:
            return blocks.index_select(1, index)
        shape = (blocks.shape[0], index.numel(), blocks.shape[2])
        buffer = self._workspace.get(name)
        if (
            buffer is None
            or buffer.shape != shape
            or buffer.dtype != blocks.dtype
            or buffer.device != blocks.device
            or buffer.is_inference() != torch.is_inference_mode_enabled()
        ):
            self._workspace.pop(name, None)
            buffer = torch.empty(shape, dtype=blocks.dtype, device=blocks.device)
            self._workspace[name] = buffer
        return torch.index_select(blocks, 1, index, out=buffer)

    # ---------------------------------------------------------------- flex
    @property
    def claimed_memory(self) -> tuple[str, float]:
        if self.backend == "flex":
            from harness.attention._flex import flex_mode

            if not flex_mode().startswith("compiled"):
                return "O(N^2) with eager FlexAttention (it materializes the scores)", 2.0
        return super().claimed_memory

    @property
    def kernel(self) -> str:
        """The kernel that runs (the record of a timing says it)."""
        if self.backend == "flex":
            from harness.attention._flex import flex_mode

            return f"flex_attention, {flex_mode()}"
        return "gathered blocks + scaled_dot_product_attention"

    def flex_kv_blocks(self, seq_len: int, causal: bool, device: torch.device
                       ) -> tuple[Tensor, Tensor, Tensor]:
        """FlexAttention's ``(kv_num_blocks, kv_indices)`` of the layout, shapes
        ``(1, 1, n_blocks)`` and ``(1, 1, n_blocks, n_blocks)`` (each query block lists its kept
        key blocks first: global query blocks all, causal none after its own), and the
        ``(n_blocks, n_blocks)`` bool table of kept blocks."""
        key = (seq_len, causal, str(device), *self._pattern_key())
        cached = self._flex_layouts.get(key)
        if cached is not None:
            return cached
        b = self.block_size
        n_blocks = -(-seq_len // b)
        g = min(self.global_blocks, n_blocks)
        blocks = torch.zeros(n_blocks, n_blocks, dtype=torch.bool)
        blocks[:g] = True
        if n_blocks > g:
            index, valid = self.block_layout(n_blocks)
            rows = torch.arange(g, n_blocks).unsqueeze(1).expand_as(index)
            blocks[rows[valid], index[valid]] = True
        if causal:
            blocks = blocks.tril()
        counts = blocks.sum(dim=1, dtype=torch.int32)
        # Kept blocks first, in ascending order (a stable sort of "not kept").
        order = torch.argsort((~blocks).to(torch.int8), dim=1, stable=True).to(torch.int32)
        plan = (counts.view(1, 1, n_blocks).to(device),
                order.view(1, 1, n_blocks, n_blocks).contiguous().to(device), blocks.to(device))
        if len(self._flex_layouts) >= _CACHE_SIZE:
            self._flex_layouts.pop(next(iter(self._flex_layouts)))
        self._flex_layouts[key] = plan
        return plan

    def flex_block_mask(self, seq_len: int, causal: bool = False,
                        key_padding_mask: Tensor | None = None,
                        device: torch.device | str = "cpu") -> Any:
        """The FlexAttention ``BlockMask`` of exactly the pattern :meth:`dense_mask` describes
        (and ``key_padding_mask``, True = real key), in tiles of ``block_size``. Its
        ``mask_mod`` repeats the block table, so the eager (unfused) path, which applies only
        ``mask_mod``, computes the same pattern."""
        from torch.nn.attention.flex_attention import BlockMask

        device = torch.device(device)
        counts, order, table = self.flex_kv_blocks(seq_len, causal, device)
        n, size = seq_len, self.block_size
        real = key_padding_mask

        def mask_mod(b, h, q_idx, kv_idx):
            visible = table[q_idx // size, kv_idx // size]
            if real is not None:
                visible = visible & real[b, kv_idx]
            return visible & (kv_idx <= q_idx) if causal else visible

        return BlockMask.from_kv_blocks(counts, order, BLOCK_SIZE=size, mask_mod=mask_mod,
                                        seq_lengths=(n, n))

    def _flex_attend(self, q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None,
                     causal: bool) -> Tensor:
        from harness.attention._flex import flex_available

        problem = flex_available()
        if problem:
            raise ValueError(f"sparse: backend='flex' cannot run: {problem}")
        if q.device.type == "cpu" and (q.requires_grad or k.requires_grad or v.requires_grad):
            if not torch.is_grad_enabled():  # torch refuses inputs that require grad on CPU
                q, k, v = q.detach(), k.detach(), v.detach()
            else:
                raise ValueError("sparse: backend='flex' has no backward pass on CPU (torch's"
                                 " FlexAttention does not support it); use backend='gather'"
                                 " to train on CPU, or run under torch.no_grad()")
        block_mask = self.flex_block_mask(q.shape[2], causal, key_padding_mask, q.device)
        out = self._flex_tiled(q, k, v, block_mask)
        if key_padding_mask is not None:  # a query that sees no real key returns zeros
            empty = ~self._sees_a_key(key_padding_mask, causal)
            out = out.masked_fill(empty[:, None, :, None], 0.0)
        return out

    def _flex_tiled(self, q: Tensor, k: Tensor, v: Tensor, block_mask: Any) -> Tensor:
        """FlexAttention with tiles that divide ``block_size`` (CUDA), the first set that
        compiles for this dtype and autograd state, remembered; the defaults elsewhere."""
        from harness.attention._flex import flex_call, flex_tile_candidates

        key = (str(q.device), q.dtype, torch.is_grad_enabled() and q.requires_grad)
        known = self._flex_tiles.get(key, False)
        if known is not False:
            return flex_call(q, k, v, block_mask, kernel_options=known)
        candidates = flex_tile_candidates(self.block_size, str(q.device))
        for tiles in candidates[:-1]:
            try:
                out = flex_call(q, k, v, block_mask, kernel_options=tiles, fallback=False)
            except Exception:  # this tile set has no kernel here: the next one
                torch._dynamo.reset()
                continue
            self._flex_tiles[key] = tiles
            return out
        out = flex_call(q, k, v, block_mask, kernel_options=candidates[-1])
        self._flex_tiles[key] = candidates[-1]
        return out

    def _sees_a_key(self, key_padding_mask: Tensor, causal: bool) -> Tensor:
        """(batch, N) bool: the query sees at least one real key under the pattern."""
        n = key_padding_mask.shape[1]
        b = self.block_size
        n_blocks = -(-n // b)
        kept = self.flex_kv_blocks(n, causal, key_padding_mask.device)[2]
        pad = n_blocks * b - n
        real = F.pad(key_padding_mask, (0, pad), value=False).view(-1, n_blocks, b)
        if not causal:  # any real key in a kept block
            block_has = real.any(dim=-1)  # (batch, n_blocks)
            seen = (block_has.float() @ kept.float().T) > 0  # (batch, query blocks)
            return seen.repeat_interleave(b, dim=1)[:, :n]
        # causal: a real key in an earlier kept block, or at or before the query in its own
        block_has = real.any(dim=-1).float()
        strict = kept.float().tril(-1)
        earlier = (block_has @ strict.T) > 0
        own = real.cumsum(dim=-1) > 0  # (batch, n_blocks, b): a real key at or before
        diag = kept.diagonal()
        seen = earlier.unsqueeze(-1) | (own & diag.view(1, n_blocks, 1))
        return seen.view(-1, n_blocks * b)[:, :n]

    # ---------------------------------------------------------------- compute
    def attend(
        self, q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None, causal: bool
    ) -> Tensor:
        if self.backend == "flex":
            return self._flex_attend(q, k, v, key_padding_mask, causal)
        batch, heads, n, d = q.shape
        dv = v.shape[-1]
        b = self.block_size
        n_blocks = -(-n // b)
        g = min(self.global_blocks, n_blocks)
        n_global = min(g * b, n)
        if n_global == n:  # every query block is global: plain dense attention
            return _dense_rows(q, k, v, key_padding_mask, causal)
        reuse = not (torch.is_grad_enabled() and (q.requires_grad or k.requires_grad
                                                  or v.requires_grad))
        pad = n_blocks * b - n
        # Token-major (batch, N, heads, dim) views: a block of b tokens is one contiguous row,
        # free for inputs split from a (batch, N, hidden) projection.
        q_t, k_t, v_t = (t.transpose(1, 2) for t in (q, k, v))
        if pad:
            q_t, k_t, v_t = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (q_t, k_t, v_t))
        index, mask = self._local_plan(n, batch, causal, q.device)
        slots = index.numel() // n_blocks
        k_g = self._gather("k", k_t.reshape(batch, n_blocks, b * heads * d), index, reuse)
        v_g = self._gather("v", v_t.reshape(batch, n_blocks, b * heads * dv), index, reuse)
        # (batch * n_blocks, heads, rows, dim): every query block is one SDPA batch entry.
        k_g = k_g.view(batch * n_blocks, slots * b, heads, d).transpose(1, 2)
        v_g = v_g.view(batch * n_blocks, slots * b, heads, dv).transpose(1, 2)
        q_l = q_t.reshape(batch * n_blocks, b, heads, d).transpose(1, 2)

        empty = None
        attn_mask: Tensor | None = mask
        if key_padding_mask is not None:
            real = key_padding_mask
            if pad:
                real = F.pad(real, (0, pad), value=False)
            real = real.view(batch, n_blocks, b).index_select(1, index)
            real = real.view(batch * n_blocks, 1, 1, slots * b)
            visible = real if mask is None else mask & real
            empty = ~visible.any(dim=-1, keepdim=True)  # queries that see no real key
            attn_mask = visible | empty  # they attend to all, then are zeroed: no NaN anywhere
        elif mask is not None:
            attn_mask = self._additive(mask, q.dtype)
        out = F.scaled_dot_product_attention(q_l, k_g, v_g, attn_mask=attn_mask)
        if empty is not None:
            out = out.masked_fill_(empty, 0.0) if reuse else out.masked_fill(empty, 0.0)
        out = out.transpose(1, 2).reshape(batch, n_blocks * b, heads, dv)  # token-major
        if n_global == 0:
            return out[:, :n].transpose(1, 2)
        dense = _dense_rows(q[:, :, :n_global], k, v, key_padding_mask, causal).transpose(1, 2)
        if reuse:
            out[:, :n_global] = dense
            return out[:, :n].transpose(1, 2)
        return torch.cat([dense, out[:, n_global:n]], dim=1).transpose(1, 2)


def _dense_rows(
    q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None, causal: bool
) -> Tensor:
    """Full attention of the leading (global) query rows; zeros where a row sees no key."""
    if key_padding_mask is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    mask = allowed_keys(q.shape[2], k.shape[2], key_padding_mask, causal, q.device)
    empty = ~mask.any(dim=-1, keepdim=True)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask | empty)
    return out.masked_fill(empty, 0.0)

