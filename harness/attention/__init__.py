"""Self-attention families behind one contract and one registry.

>>> from harness.attention import get_attention, list_attentions
>>> attn = get_attention("standard", backend="eager")
"""

# Importing each family module registers it.
from harness.attention import linear as _linear  # noqa: F401
from harness.attention import lsh as _lsh  # noqa: F401
from harness.attention import plugins as _plugins  # noqa: F401
from harness.attention import sparse as _sparse  # noqa: F401
from harness.attention import standard as _standard  # noqa: F401
from harness.attention.base import (
    Attention,
    Capabilities,
    attention_class,
    attention_options,
    attention_origin,
    get_attention,
    list_attentions,
    register_attention,
    validate_inputs,
)
from harness.attention.plugins import PluginError, PluginInfo, load_plugins, loaded_plugins
from harness.attention.reference import allowed_keys, reference_attention

__all__ = [
    "Attention",
    "Capabilities",
    "PluginError",
    "PluginInfo",
    "allowed_keys",
    "attention_class",
    "attention_options",
    "attention_origin",
    "get_attention",
    "list_attentions",
    "load_plugins",
    "loaded_plugins",
    "reference_attention",
    "register_attention",
    "validate_inputs",
]
