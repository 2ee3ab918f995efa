"""Attention plugins: the generic mechanism of :mod:`harness.plugins` (entry-point group
``harness.attentions``, ``--plugin MODULE[:ATTR]``, a profile's ``plugins:``), under the names the
attention package exports."""

from __future__ import annotations

from harness.plugins import _LOADED as _LOADED  # shared state (tests restore it)
from harness.plugins import (
    PluginError,
    PluginInfo,
    discover_entry_points,
    load_plugins,
    loaded_plugin_specs,
    loaded_plugins,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginError",
    "PluginInfo",
    "discover_entry_points",
    "load_plugins",
    "loaded_plugin_specs",
    "loaded_plugins",
]

ENTRY_POINT_GROUP = "harness.attentions"
