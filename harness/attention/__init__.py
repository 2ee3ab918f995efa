"""Self-attention families behind one contract and one registry.

>>> from harness.attention import get_attention, list_attentions
>>> attn = get_attention("standard", backend="eager")
"""

# Importing each family module registers it.
from harness.attention import linear as _linear  # noqa: F401
from harness.attention import lsh as _lsh  # noqa: F401
from harness.attention import sparse as _sparse  # noqa: F401
from harness.attention import standard as _standard  # noqa: F401
from harness.attention.base import (
    Attention,
    Capabilities,
    attention_class,
    attention_options,
    get_attention,
    list_attentions,
    register_attention,
    validate_inputs,
)
from harness.attention.reference import allowed_keys, reference_attention

__all__ = [
    "Attention",
    "Capabilities",
    "allowed_keys",
    "attention_class",
    "attention_options",
    "get_attention",
    "list_attentions",
    "reference_attention",
    "register_attention",
    "validate_inputs",
]
