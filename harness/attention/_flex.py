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

__all__ = ["flex_available", "flex_call", "flex_mode"]

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
    """``compiled`` or ``eager (...reason)``: how FlexAttention runs in this process."""
    if not _want_compile():
        return "eager (HARNESS_FLEX_COMPILE=0)"
    return _STATE.get("mode", "compiled")


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


def flex_call(q: Tensor, k: Tensor, v: Tensor, block_mask: Any, scale: float | None = None,
              return_lse: bool = False) -> Any:
    """``flex_attention(q, k, v, block_mask=...)``, compiled when possible; a failure of the
    compiler switches this process to the eager path (and says so in :func:`flex_mode`)."""
    kwargs: dict[str, Any] = {"block_mask": block_mask, "scale": scale}
    if return_lse:
        kwargs["return_lse"] = True
    fn = _kernel()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*flex_attention called without torch")
            return fn(q, k, v, **kwargs)
    except Exception as err:
        if fn is _STATE.get("compiled"):
            from torch.nn.attention.flex_attention import flex_attention

            _STATE["mode"] = f"eager (torch.compile failed: {type(err).__name__})"
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore",
                                        message=".*flex_attention called without torch")
                return flex_attention(q, k, v, **kwargs)
        raise
