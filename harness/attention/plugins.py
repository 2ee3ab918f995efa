"""Attention plugins: entry points (group ``harness.attentions``) and ``MODULE[:ATTR]`` specs.

An installed package enrolls its attention with an entry point::

    [project.entry-points."harness.attentions"]
    sliding = "harness_sliding.attention:SlidingWindowAttention"

(the entry point's name must equal the class's ``name``). Code that is not installed is named by
``--plugin MODULE[:ATTR]`` or a profile's ``plugins: [...]``: the module is imported (the current
directory is on the import path) and either registers its classes with ``@register_attention`` or
``ATTR`` names an :class:`~harness.attention.Attention` subclass (or a list of them).

Every process that runs cells calls :func:`load_plugins` with the run's specs (recorded in
run.json): the main process, the memory suite's children and any executor's workers.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from harness.attention.base import _REGISTRY, Attention
from harness.registry import BUILTIN, RegistryError, import_target, registering_as

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


class PluginError(ValueError):
    """A plugin cannot be loaded: names the plugin and the underlying error."""


@dataclass(frozen=True)
class PluginInfo:
    """One loaded plugin: how it was named (``spec`` for ``--plugin``/profiles, ``entry_point``
    for installed ones), where it came from, and the attentions it registered."""

    origin: str
    version: str | None
    attentions: tuple[str, ...]
    spec: str | None = None
    entry_point: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_LOADED: dict[str, PluginInfo] = {}
_DISCOVERED: list[bool] = []
_ENTRY_POINTS: dict[str, tuple[str, str | None]] = {}  # name -> (origin, version)


def discover_entry_points(*, force: bool = False) -> None:
    """Register every installed ``harness.attentions`` entry point as a lazy entry (no import).

    Runs once per process unless ``force``. A name taken by a built-in or another plugin raises
    :class:`~harness.registry.RegistryError` naming both origins.
    """
    if _DISCOVERED and not force:
        return
    _DISCOVERED.append(True)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        origin = f"{dist.name}" if dist is not None else f"entry point {ep.value}"
        version = dist.version if dist is not None else None
        _REGISTRY.add_lazy(ep.name, ep.value, origin=origin, version=version)
        _ENTRY_POINTS[ep.name] = (origin, version)


def _module_origin(module: str) -> tuple[str, str | None]:
    """The distribution that ships ``module`` (with its version), else ``module NAME``."""
    top = module.split(".")[0]
    dists = importlib.metadata.packages_distributions().get(top) or []
    if dists:
        try:
            return dists[0], importlib.metadata.version(dists[0])
        except importlib.metadata.PackageNotFoundError:
            pass
    mod = sys.modules.get(module)
    version = getattr(mod, "__version__", None) if mod is not None else None
    return f"module {module}", str(version) if version is not None else None


def _classes(obj: Any, spec: str) -> list[type[Attention]]:
    items = obj if isinstance(obj, list | tuple) else [obj]
    bad = [x for x in items if not (isinstance(x, type) and issubclass(x, Attention))]
    if bad or not items:
        raise PluginError(
            f"plugin {spec!r}: {bad[0] if bad else obj!r} is not an Attention subclass; name a"
            " class (MODULE:CLASS), a list of classes, or a module that registers its classes"
            " with @register_attention"
        )
    return items


def _load_one(spec: str) -> PluginInfo:
    module, sep, attr = spec.partition(":")
    if not module or (sep and not attr) or " " in spec:
        raise PluginError(f"plugin {spec!r}: write MODULE or MODULE:ATTR, e.g. mypkg.attn:MyAttn")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)  # like `python -m`: modules next to the user are found
    origin, version = _module_origin(module)
    before = set(_REGISTRY.names())
    try:
        with registering_as(origin, version):
            obj = import_target(spec)
            origin, version = _module_origin(module)  # __version__ is readable now
            if attr:
                for cls in _classes(obj, spec):
                    _REGISTRY.add(cls.name, cls, origin=origin, version=version)
    except (PluginError, RegistryError):
        raise
    except Exception as err:  # any import-time failure (ImportError, SyntaxError, ...)
        raise PluginError(
            f"plugin {spec!r} failed to import: {type(err).__name__}: {err}"
        ) from err
    names = sorted(set(_REGISTRY.names()) - before)
    if attr:
        names = sorted({*names, *(c.name for c in _classes(obj, spec))})
    else:
        names = sorted({*names, *(n for n in _REGISTRY.names() if _defined_in(n, module))})
    for n in names:  # registered during the import, before __version__ could be read
        entry = _REGISTRY._entries[n]
        if entry.origin == origin and entry.version is None:
            entry.version = version
    if not names:
        raise PluginError(
            f"plugin {spec!r} registered no attention; decorate the class with"
            " @register_attention or name it as MODULE:CLASS"
        )
    return PluginInfo(origin, version, tuple(names), spec=spec)


def _defined_in(name: str, module: str) -> bool:
    entry = _REGISTRY._entries.get(name)
    return bool(entry and entry.loaded and getattr(entry.value, "__module__", "") == module)


def load_plugins(specs: Iterable[str] = ()) -> list[PluginInfo]:
    """Load installed entry-point plugins and the ``MODULE[:ATTR]`` ``specs``; idempotent.

    Every plugin is imported now, so a broken one fails here, before anything runs:
    :class:`PluginError` (a ``ValueError``) names the plugin and its error; a name clash names
    both origins. Returns every loaded plugin (entry points and specs).
    """
    try:
        discover_entry_points()
    except RegistryError as err:
        raise PluginError(str(err)) from None
    for name, (origin, version) in _ENTRY_POINTS.items():
        try:
            _REGISTRY.entry(name)  # imports it now
        except RegistryError as err:
            raise PluginError(f"plugin {err}") from None
        _LOADED.setdefault(f"entry point {name}", PluginInfo(
            origin, version, (name,), entry_point=name))
    for spec in specs:
        if not isinstance(spec, str):
            raise PluginError(f"plugin specs must be strings MODULE[:ATTR], got {spec!r}")
        if spec not in _LOADED:
            try:
                _LOADED[spec] = _load_one(spec)
            except RegistryError as err:
                raise PluginError(f"plugin {spec!r}: {err}") from None
    return loaded_plugins()


def loaded_plugins() -> list[PluginInfo]:
    """Plugins loaded in this process so far, in load order."""
    return list(_LOADED.values())


def loaded_plugin_specs() -> list[str]:
    """The ``MODULE[:ATTR]`` specs loaded so far (what a child process must load again)."""
    return [info.spec for info in _LOADED.values() if info.spec is not None]


def is_builtin(name: str) -> bool:
    """Whether attention ``name`` ships with the harness."""
    return _REGISTRY.entry(name).origin == BUILTIN
