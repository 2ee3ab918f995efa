"""FlexAttention, compiled where ``torch.compile`` works, eager otherwise (shared by backends).

``torch.compile(flex_attention)`` generates one fused kernel per block mask shape: the N x N
scores are never held. Uncompiled, FlexAttention materializes them (correct, quadratic in
memory, slow). Whether to compile is decided once per process: ``HARNESS_FLEX_COMPILE=0``
forces the eager path (quick audits on CPU, where a first compile takes tens of seconds);
otherwise the first call compiles, and a compile failure falls back to eager, said in
:func:`flex_mode`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["flex_available", "flex_call", "flex_call_mode", "flex_call_tiled", "flex_mode",
           "flex_tile_candidates"]

_STATE: dict[str, Any] = {}
#: Compiled signatures FlexAttention may keep per process (lengths x dtypes x masks of a run).
_RECOMPILE_LIMIT = 64


def flex_available() -> str | None:
    """Why FlexAttention cannot run here (an old torch), or None."""
    try:
        from torch.nn.attention import flex_attention  # noqa: F401
    except ImportError as err:  # pragma: no cover - torch >= 2.5 has it
        return f"this torch ({torch.__version__}) has no FlexAttention: {err}"
    return None


def _want_compile() -> bool:
    return os.environ.get("HARNESS_FLEX_COMPILE", "auto").strip().lower() not in (
        "0", "no", "false", "never", "eager")


def flex_mode() -> str:
    """``compiled`` or ``eager (...reason)``: how FlexAttention runs in this process (float64
    on CPU is always eager: torch compiles FlexAttention there for 32- and 16-bit floats)."""
    if not _want_compile():
        return "eager (HARNESS_FLEX_COMPILE=0)"
    return _STATE.get("mode", "compiled")


def flex_call_mode(q: Tensor, return_lse: bool = False) -> str:
    """How :func:`flex_call` runs a call on ``q``: :func:`flex_mode`, except that on CPU float64
    and log-sum-exp calls run eager (torch's compiled CPU FlexAttention takes 32- and 16-bit
    floats only and returns no log-sum-exp) without switching the process."""
    mode = flex_mode()
    if mode != "compiled" or q.device.type != "cpu":
        return mode
    if q.dtype == torch.float64:
        return "eager (compiled CPU FlexAttention takes 32- and 16-bit floats only)"
    if return_lse:
        return "eager (compiled CPU FlexAttention returns no log-sum-exp)"
    return mode


def _kernel() -> Callable[..., Tensor]:
    from torch.nn.attention.flex_attention import flex_attention

    if not _want_compile() or _STATE.get("mode", "compiled") != "compiled":
        return flex_attention
    if "compiled" not in _STATE:
        # One compile per (shape, dtype, mask) signature; past Dynamo's recompile limit (8 by
        # default) it would run flex_attention unfused without an error: raise the limit.
        config = torch._dynamo.config
        for name in ("recompile_limit", "cache_size_limit"):
            if hasattr(config, name):
                setattr(config, name, max(getattr(config, name), _RECOMPILE_LIMIT))
        _STATE["compiled"] = torch.compile(flex_attention, dynamic=False)
    return _STATE["compiled"]


def flex_tile_candidates(block_size: int, device: str) -> list[dict[str, int] | None]:
    """Triton tile sizes to try, in order, for FlexAttention on CUDA over blocks of
    ``block_size`` tokens.

    FlexAttention's CUDA forward tiles queries and keys by 128 by default on Hopper and refuses
    a block mask whose blocks are not a multiple of the tile ("Q and KV block size must be
    divisible by BLOCK_M and BLOCK_N"). Forward tiles that divide the block run on the same
    block mask. Which backward tiles compile depends on the dtype, so several are tried; the
    last leaves the backward to FlexAttention's own choices. ``[None]``: the defaults do (CPU,
    or blocks that are multiples of 128)."""
    if not str(device).startswith("cuda") or block_size % 128 == 0:
        return [None]
    tile = 1
    while tile < 128 and block_size % (tile * 2) == 0:
        tile *= 2
    if tile < 32:
        raise ValueError(f"FlexAttention on CUDA needs blocks of a multiple of 32 tokens; got"
                         f" {block_size} (use another block_size, or the default backend)")
    fwd = {"fwd_BLOCK_M": tile, "fwd_BLOCK_N": tile}
    # backward: dk/dv tiles BLOCK_N1 keys over BLOCK_M1 queries, dq BLOCK_M2 queries over
    # BLOCK_N2 keys; the kernel needs BLOCK_N1 % BLOCK_M1 == 0 and BLOCK_M2 % BLOCK_N2 == 0
    half = tile // 2
    return [{**fwd, "bwd_BLOCK_M1": half, "bwd_BLOCK_N1": tile, "bwd_BLOCK_M2": tile,
             "bwd_BLOCK_N2": half},
            {**fwd, "bwd_BLOCK_M1": tile, "bwd_BLOCK_N1": tile, "bwd_BLOCK_M2": tile,
             "bwd_BLOCK_N2": tile},
            {**fwd, "bwd_BLOCK_M1": half, "bwd_BLOCK_N1": half, "bwd_BLOCK_M2": half,
             "bwd_BLOCK_N2": half},
            fwd]


def flex_call(q: Tensor, k: Tensor, v: Tensor, block_mask: Any, scale: float | None = None,
              return_lse: bool = False, kernel_options: dict[str, int] | None = None,
              fallback: bool = True, score_mod: Callable[..., Tensor] | None = None) -> Any:
    """``flex_attention(q, k, v, block_mask=...)``, compiled when possible; with ``return_lse``
    ``(out, lse)``, the natural-log log-sum-exp of each row's scores. With ``fallback``,
    a failure of the compiled call switches this process to the eager path (and says so in
    :func:`flex_mode`); without, the error propagates (the caller tries other tiles)."""
    kwargs: dict[str, Any] = {"block_mask": block_mask, "scale": scale}
    if score_mod is not None:
        kwargs["score_mod"] = score_mod
    if return_lse:
        try:  # torch >= 2.9 returns auxiliary outputs through AuxRequest (return_lse deprecated)
            from torch.nn.attention.flex_attention import AuxRequest

            kwargs["return_aux"] = AuxRequest(lse=True)
        except ImportError:  # pragma: no cover - older torch
            kwargs["return_lse"] = True
    if kernel_options:
        kwargs["kernel_options"] = kernel_options
    fn = _kernel()
    if flex_call_mode(q, return_lse) != flex_mode():
        # Compiled FlexAttention on CPU takes float32, float16 and bfloat16 only (float64 is the
        # audits' reference precision) and returns no log-sum-exp: such calls run the eager
        # path, without switching the process.
        from torch.nn.attention.flex_attention import flex_attention as fn
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*flex_attention called without torch")
            return _lse_pair(fn(q, k, v, **kwargs))
    except Exception as err:
        if fallback and fn is _STATE.get("compiled"):
            from torch.nn.attention.flex_attention import flex_attention

            _STATE["mode"] = f"eager (torch.compile failed: {type(err).__name__})"
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore",
                                        message=".*flex_attention called without torch")
                return _lse_pair(flex_attention(q, k, v, **kwargs))
        raise


def _lse_pair(result: Any) -> Any:
    """``(out, lse)`` from either way of asking FlexAttention for the log-sum-exp."""
    if isinstance(result, tuple) and hasattr(result[1], "lse"):
        return result[0], result[1].lse
    return result


def flex_call_tiled(q: Tensor, k: Tensor, v: Tensor, block_mask: Any, block_size: int,
                    known: dict[tuple[object, ...], dict[str, int] | None],
                    **kwargs: Any) -> Any:
    """:func:`flex_call` with the first tile set of :func:`flex_tile_candidates` that compiles
    for this device, dtype and autograd state, remembered in ``known`` (the caller's cache);
    ``kwargs`` go to :func:`flex_call` (``score_mod``, ``return_lse``, ``scale``)."""
    key = (str(q.device), q.dtype, torch.is_grad_enabled() and q.requires_grad, block_size)
    if key in known:
        return flex_call(q, k, v, block_mask, kernel_options=known[key], **kwargs)
    candidates = flex_tile_candidates(block_size, str(q.device))
    for tiles in candidates[:-1]:
        try:
            out = flex_call(q, k, v, block_mask, kernel_options=tiles, fallback=False, **kwargs)
        except Exception:  # this tile set has no kernel here: the next one
            torch._dynamo.reset()
            continue
        known[key] = tiles
        return out
    out = flex_call(q, k, v, block_mask, kernel_options=candidates[-1], **kwargs)
    known[key] = candidates[-1]
    return out
