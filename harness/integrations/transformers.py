"""Every harness attention inside transformers models, through ``AttentionInterface``.

transformers (5.x) routes the attention of BERT, RoBERTa, DistilBERT, ViT, Whisper, Wav2Vec2 and
the decoder families through ``ALL_ATTENTION_FUNCTIONS[config._attn_implementation]``. This module
registers each harness attention there under its own name, so a user's model runs it with
``model.set_attn_implementation(name)`` and no copy of the model's code:

>>> # names = register_all()          # label -> attn_implementation name
>>> # model.set_attn_implementation(names["sparse"])

The adapter maps transformers' call onto the harness contract (:mod:`harness.attention.base`):

- query/key/value ``(batch, heads, N, head_dim)``; grouped key/value heads are repeated to the
  query heads (``module.num_key_value_groups``);
- ``scaling`` other than ``1/sqrt(head_dim)``: the query is rescaled, so every family sees the
  softmax argument the model meant;
- ``attention_mask``: None, or a 4-D boolean (True = visible) or additive (0 / large negative)
  mask. It must be what a padding mask, optionally with a causal triangle, makes; it becomes
  ``key_padding_mask`` and ``causal``. Any other pattern (sliding windows, packed sequences,
  position biases) is refused, naming the attention and what the mask holds;
- ``is_causal`` with no mask becomes ``causal=True``.

The adapter refuses, with a ``ValueError`` naming the attention and the capability, what the
contract cannot express: attention dropout > 0 (set the config's attention dropout to 0),
causal attention between different query and key lengths (a KV cache: the contract's causal
triangle is aligned top-left), ``softcap``, sinks, ``output_attentions`` weights, and whatever the
attention's own capabilities exclude (different query/key lengths, causal, padding).

For each name a mask function is registered too (``AttentionMaskInterface``): without one,
transformers gives a custom attention *no mask at all*, and padding would be silently attended.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import weakref
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from harness.attention import Attention, attention_class, get_attention, list_attentions

__all__ = [
    "PREFIX",
    "UnsupportedByAttention",
    "implementation_name",
    "make_attention_function",
    "register_all",
    "register_attention_spec",
    "to_contract",
]

#: Prefix of every name this module registers in ``AttentionInterface``.
PREFIX = "harness."

#: Names this process registered: attn_implementation name -> (attention, options).
_REGISTERED: dict[str, tuple[str, dict[str, Any]]] = {}


class UnsupportedByAttention(ValueError):  # noqa: N818 - reads as a state, like TimeoutError
    """transformers asked an attention for something it (or the harness contract) cannot do."""


def implementation_name(label: str) -> str:
    """The ``attn_implementation`` name of an attention label (``standard[eager]`` ->
    ``harness.standard_eager``).

    Only ``[A-Za-z0-9_.-]`` survive; ``sdpa`` is upper-cased because transformers runs its own
    SDPA dispatch checks on any name containing it.
    """
    body = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "attention"
    return PREFIX + body.replace("sdpa", "SDPA")


def _split_mask(
    mask: Tensor, n_q: int, n_k: int, label: str
) -> tuple[Tensor | None, bool]:
    """(key_padding_mask, causal) that reproduce a 4-D boolean mask (True = visible), or refuse.

    Accepts masks of shape (batch or 1, 1 or heads, n_q, n_k) that equal ``padding[b, k]``,
    optionally AND a top-left causal triangle (query i sees keys j <= i).
    """
    if mask.dim() != 4 or mask.shape[-2:] != (n_q, n_k):
        raise UnsupportedByAttention(
            f"{label}: attention_mask of shape {tuple(mask.shape)} is not a 4-D "
            f"(batch, 1, {n_q}, {n_k}) mask; the harness contract takes a key padding mask")
    # the mask every query row would have without the causal triangle: a key visible anywhere
    pad = mask.any(dim=(1, 2))  # (batch or 1, n_k)
    full = pad[:, None, None, :]
    if bool((mask == full).all()):
        return (None if bool(pad.all()) else pad), False
    if n_q == n_k:
        tri = torch.ones(n_q, n_k, dtype=torch.bool, device=mask.device).tril()
        if bool((mask == (full & tri)).all()):
            return (None if bool(pad.all()) else pad), True
    raise UnsupportedByAttention(
        f"{label}: the model passes an attention mask that is neither key padding nor key padding "
        "with a causal triangle (e.g. a sliding window, packed sequences or a KV-cache offset); "
        "the harness contract (key_padding_mask, causal) cannot express it. Use a model whose "
        "layers attend over all tokens (BERT, RoBERTa, DistilBERT, ViT, Whisper's encoder, "
        "Wav2Vec2), or for ModernBERT set global_attn_every_n_layers=1")


#: The last mask read (a weak reference: the mask is not kept alive) and what it meant: a model
#: passes one mask object to all its layers, so the check (and its device sync) runs once per
#: forward, not once per layer.
_LAST_MASK: list[Any] = [lambda: None, -1, None]


def _mask_to_contract(mask: Tensor, n_q: int, n_k: int, label: str
                      ) -> tuple[Tensor | None, bool]:
    """(key_padding_mask, causal) of a transformers attention mask, cached per mask object."""
    cached, version, result = _LAST_MASK
    if cached() is mask and version == mask._version:
        return result
    result = _split_mask(_bool_mask(mask, label), n_q, n_k, label)
    _LAST_MASK[:] = [weakref.ref(mask), mask._version, result]
    return result


def _bool_mask(mask: Tensor, label: str) -> Tensor:
    """A 4-D mask as booleans (True = visible); additive masks must be 0 or very negative."""
    if mask.dtype == torch.bool:
        return mask
    if not mask.is_floating_point():
        return mask != 0
    visible = mask == 0
    blocked = mask <= torch.finfo(mask.dtype).min / 2
    if not bool((visible | blocked).all()):
        raise UnsupportedByAttention(
            f"{label}: the model passes an additive attention mask holding values other than 0 "
            "and -inf/min (a position bias, e.g. ALiBi or T5's); the harness contract takes "
            "only which keys are visible")
    return visible


def to_contract(
    label: str,
    attention: Attention,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    *,
    scaling: float | None = None,
    dropout: float = 0.0,
    is_causal: bool | None = None,
    num_key_value_groups: int = 1,
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, bool]:
    """(q, k, v, key_padding_mask, causal) for ``attention`` from transformers' arguments.

    Raises :class:`UnsupportedByAttention` naming ``label`` and the missing capability.
    """
    caps = attention.capabilities
    if dropout and dropout > 0:
        raise UnsupportedByAttention(
            f"{label}: attention dropout {dropout} on the attention weights is not part of the "
            "harness contract; set the model config's attention dropout to 0 "
            "(attention_probs_dropout_prob / attention_dropout)")
    if num_key_value_groups > 1:  # grouped key/value heads -> one per query head
        key = key.repeat_interleave(num_key_value_groups, dim=1)
        value = value.repeat_interleave(num_key_value_groups, dim=1)
    n_q, n_k = query.shape[2], key.shape[2]
    if n_q != n_k and not caps.cross_lengths:
        raise UnsupportedByAttention(
            f"{label}: query length {n_q} differs from key length {n_k} (cross-attention or a "
            "KV cache); this attention needs equal lengths (capability cross_lengths=False)")
    padding, causal = None, False
    if attention_mask is not None:
        padding, causal = _mask_to_contract(attention_mask, n_q, n_k, label)
        if padding is not None:
            padding = padding.expand(query.shape[0], n_k)
    elif is_causal and n_q > 1:
        causal = True
    if causal and n_q != n_k:
        raise UnsupportedByAttention(
            f"{label}: causal attention with query length {n_q} and key length {n_k} (a KV "
            "cache) is not expressible: the contract's causal triangle is aligned top-left; "
            "run the model without past_key_values (use_cache=False)")
    if causal and not caps.causal:
        raise UnsupportedByAttention(
            f"{label}: the model asks for causal attention; this attention does not support it "
            "(capability causal=False)")
    if padding is not None and not caps.key_padding_mask:
        raise UnsupportedByAttention(
            f"{label}: the batch has padding; this attention takes no key padding mask "
            "(capability key_padding_mask=False); run unpadded batches")
    head_dim = query.shape[-1]
    default = 1.0 / math.sqrt(head_dim)
    if scaling is not None and not math.isclose(scaling, default, rel_tol=1e-12):
        query = query * (scaling / default)
    return query, key, value, padding, causal


def make_attention_function(label: str, name: str, options: dict[str, Any]) -> Any:
    """The ``AttentionInterface`` function running ``get_attention(name, **options)``.

    One attention instance per transformers attention module (kept on the module, not as a
    submodule, so state dicts stay the model's), moved to the query's device on first use.
    """
    get_attention(name, **options)  # fail now on a bad name or option, not inside a forward
    # one slot per (label, attention, options): a label registered again with other options
    # never reuses an instance built with the old ones
    key = json.dumps([label, name, options], sort_keys=True, default=str)
    slot = f"_harness_attention_{hashlib.sha1(key.encode()).hexdigest()[:12]}"

    def attention_forward(
        module: torch.nn.Module,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        attention_mask: Tensor | None,
        dropout: float = 0.0,
        scaling: float | None = None,
        is_causal: bool | None = None,
        **kwargs: Any,
    ) -> tuple[Tensor, None]:
        if kwargs.get("sliding_window") is not None:
            raise UnsupportedByAttention(
                f"{label}: {type(module).__name__} is a sliding-window layer (window "
                f"{kwargs['sliding_window']}); the harness contract (key_padding_mask, causal) "
                "has no local window. Use a config whose layers all attend globally (ModernBERT: "
                "global_attn_every_n_layers=1; others: layer_types all 'full_attention')")
        for unsupported in ("softcap", "position_bias", "s_aux"):
            if kwargs.get(unsupported) is not None:
                raise UnsupportedByAttention(
                    f"{label}: the model passes {unsupported}={kwargs[unsupported]!r}, which the "
                    "harness contract (key_padding_mask, causal) cannot express")
        if kwargs.get("output_attentions"):
            raise UnsupportedByAttention(
                f"{label}: output_attentions=True asks for the attention weights; harness "
                "attentions return outputs only (use attn_implementation='eager' for weights)")
        attn = module.__dict__.get(slot)
        if attn is None:
            attn = get_attention(name, **options)
            module.__dict__[slot] = attn
        if next(iter(attn.buffers()), query).device != query.device:
            attn.to(query.device)
        attn.train(module.training)
        causal_default = getattr(module, "is_causal", False) if is_causal is None else is_causal
        q, k, v, padding, causal = to_contract(
            label, attn, query, key, value, attention_mask, scaling=scaling,
            dropout=dropout if module.training else 0.0, is_causal=causal_default,
            num_key_value_groups=int(getattr(module, "num_key_value_groups", 1) or 1))
        out = attn(q, k, v, key_padding_mask=padding, causal=causal)
        return out.transpose(1, 2).contiguous(), None

    attention_forward.__name__ = f"harness_{name}_attention_forward"
    attention_forward.__doc__ = f"harness attention {label!r} ({name}, options {options})."
    return attention_forward


def register_attention_spec(label: str, name: str, options: dict[str, Any] | None = None) -> str:
    """Register one attention (``name`` with ``options``) as ``label``; returns its
    ``attn_implementation`` name. Re-registering a label replaces its function."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    options = dict(options or {})
    attention_class(name)  # ValueError listing the registered names
    impl = implementation_name(label)
    AttentionInterface.register(impl, make_attention_function(label, name, options))
    # A boolean (batch, 1, N, N) mask or None, never skipped when there is padding.
    AttentionMaskInterface.register(impl, sdpa_mask)
    _REGISTERED[impl] = (name, options)
    return impl


def register_all(specs: Iterable[Any] | None = None) -> dict[str, str]:
    """Register attentions with transformers; returns label -> ``attn_implementation`` name.

    ``specs``: the run's attentions (objects with ``name``, ``options`` and ``label``, e.g.
    :class:`~harness.suites.base.AttentionSpec`: built-ins, profile variants, plugins). None:
    every registered attention with its default options, labelled by its name.
    """
    if specs is None:
        return {name: register_attention_spec(name, name) for name in list_attentions()}
    out: dict[str, str] = {}
    for spec in specs:
        label = getattr(spec, "label", "") or spec.name
        out[label] = register_attention_spec(label, spec.name, dict(spec.options))
    return out


def registered() -> dict[str, tuple[str, dict[str, Any]]]:
    """attn_implementation name -> (attention, options) of what this process registered."""
    return dict(_REGISTERED)
