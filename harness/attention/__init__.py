"""Self-attention families behind one contract and one registry.

>>> from harness.attention import get_attention, list_attentions
>>> attn = get_attention("standard", backend="eager")
"""

from harness.attention import standard as _standard  # noqa: F401  (registers "standard")
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

for _module in ("sparse", "lsh", "linear"):
    try:
        __import__(f"harness.attention.{_module}")
    except ModuleNotFoundError as _err:  # a family still being written
        if _err.name != f"harness.attention.{_module}":
            raise

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
