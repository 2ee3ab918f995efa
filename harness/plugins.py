"""Plugins: code from outside the harness that registers attentions, suites, tasks or executors.

An installed package enrolls through entry points, one group per registry::

    [project.entry-points."harness.suites"]
    toy = "harness_example_suite:ExampleSuite"

(groups ``harness.attentions``, ``harness.suites``, ``harness.tasks``, ``harness.executors``;
the entry point's name is the object's ``name``). Code that is not installed is named by
``--plugin MODULE[:ATTR]`` or a profile's ``plugins: [...]``: the module must be importable
(installed, or its folder on ``PYTHONPATH``; the current directory is not searched). Importing it
registers what it decorates (``@register_attention``, ``@register_suite``, ``@register_task``,
``@register_executor``), or ``ATTR`` names a class (or a list of classes) one registry takes.

Every process that runs cells loads the same ``MODULE[:ATTR]`` specs: the driver (they are
recorded in run.json), pool and Ray workers (each cell task carries them), the memory suite's
children and the executors' replica processes. A resume never imports code because a run.json
names it: the user passes ``--plugin`` again.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from harness.registry import (
    BUILTIN,
    Registry,
    RegistryError,
    entry_points,
    grouped_registries,
    import_target,
    registering_as,
)

__all__ = [
    "ENTRY_POINT_GROUPS",
    "PluginError",
    "PluginInfo",
    "discover_entry_points",
    "load_plugins",
    "loaded_plugin_specs",
    "loaded_plugins",
]

#: entry-point group -> the module whose import creates that group's registry (with built-ins).
ENTRY_POINT_GROUPS: dict[str, str] = {
    "harness.attentions": "harness.attention",
    "harness.suites": "harness.suites",
    "harness.tasks": "harness.data",
    "harness.executors": "harness.run.executors",
}

_DECORATORS = ("@register_attention, @register_suite or @register_executor on a class, or"
               " @register_task on a function")


class PluginError(ValueError):
    """A plugin cannot be loaded: names the plugin and the underlying error."""


@dataclass(frozen=True)
class PluginInfo:
    """One loaded plugin: how it was named (``spec`` for ``--plugin``/profiles, ``entry_point``
    for installed ones), where it came from, and what it registered in each registry."""

    origin: str
    version: str | None
    attentions: tuple[str, ...] = ()
    suites: tuple[str, ...] = ()
    tasks: tuple[str, ...] = ()
    executors: tuple[str, ...] = ()
    spec: str | None = None
    entry_point: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_LOADED: dict[str, PluginInfo] = {}
_ENTRY_POINTS_LOADED: list[bool] = []


def discover_entry_points(*, force: bool = False) -> None:
    """List the installed entry points of every registry made so far as lazy entries (no
    import); ``force`` reads the installed packages again (and lets :func:`load_plugins`
    import them again)."""
    if force:
        _ENTRY_POINTS_LOADED.clear()
    for registry in grouped_registries().values():
        registry.discover(force=force)


def _field(registry: Registry[Any]) -> str:
    return f"{registry.kind}s"


def _registry(group: str) -> Registry[Any]:
    importlib.import_module(ENTRY_POINT_GROUPS[group])
    return grouped_registries()[group]


def _load_entry_points() -> None:
    """Import every installed entry point now (once per process), so a broken one fails before
    anything runs."""
    if _ENTRY_POINTS_LOADED:
        return
    for group in ENTRY_POINT_GROUPS:
        eps = entry_points(group)
        if not eps:
            continue
        try:
            registry = _registry(group)
            registry.discover()
            for ep in eps:
                entry = registry.entry(ep.name)  # imports it now
                _LOADED.setdefault(f"entry point {group}:{ep.name}", PluginInfo(
                    entry.origin, entry.version, **{_field(registry): (ep.name,)},
                    entry_point=ep.name))
        except RegistryError as err:
            raise PluginError(f"plugin {err}") from None
    _ENTRY_POINTS_LOADED.append(True)


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


def _snapshot() -> dict[str, set[str]]:
    return {group: reg.loaded_names() for group, reg in grouped_registries().items()}


def _adopt(obj: Any, spec: str, origin: str, version: str | None) -> dict[str, set[str]]:
    """Register the object(s) ``MODULE:ATTR`` names in the registry that takes each."""
    items = list(obj) if isinstance(obj, list | tuple) else [obj]
    adopted: dict[str, set[str]] = {}
    for item in items or [obj]:
        for group, registry in grouped_registries().items():
            name = registry.adopt(item) if registry.adopt else None
            if name is not None:
                registry.add(name, item, origin=origin, version=version)
                adopted.setdefault(group, set()).add(name)
                break
        else:
            raise PluginError(
                f"plugin {spec!r}: {item!r} is not an Attention, Suite or Executor subclass;"
                " name a class (MODULE:CLASS), a list of classes, or a module that registers"
                f" what it defines ({_DECORATORS})")
    return adopted


def _import_failure(spec: str, module: str, err: BaseException) -> PluginError:
    text = f"plugin {spec!r} failed to import: {type(err).__name__}: {err}"
    if isinstance(err, SystemExit):
        text += " (it called sys.exit() or raised SystemExit while being imported)"
    elif isinstance(err, ModuleNotFoundError) and err.name and module.startswith(err.name):
        text += ("; install it, or put the folder that holds it on PYTHONPATH (the current"
                 " directory is not searched), e.g. PYTHONPATH=. harness ...")
    return PluginError(text)


def _load_one(spec: str) -> PluginInfo:
    module, sep, attr = spec.partition(":")
    if not module or (sep and not attr) or " " in spec:
        raise PluginError(f"plugin {spec!r}: write MODULE or MODULE:ATTR, e.g. mypkg.attn:MyAttn")
    origin, version = _module_origin(module)
    before = _snapshot()
    adopted: dict[str, set[str]] = {}
    try:
        with registering_as(origin, version):
            obj = import_target(spec)
            origin, version = _module_origin(module)  # __version__ is readable now
            if attr:
                adopted = _adopt(obj, spec, origin, version)
    except (PluginError, RegistryError, KeyboardInterrupt):
        raise
    except BaseException as err:  # ImportError, SyntaxError, SystemExit from sys.exit(), ...
        raise _import_failure(spec, module, err) from err
    found: dict[str, list[str]] = {}
    for group, registry in grouped_registries().items():
        names = set(adopted.get(group, set()))
        for name in registry.loaded_names() - before.get(group, set()):
            if registry.entry(name).origin != BUILTIN:  # the plugin may import built-ins
                names.add(name)
        for name in registry.loaded_names():  # already imported (e.g. unpickling a cell task)
            defined = getattr(registry.entry(name).value, "__module__", None) or ""
            if defined == module or defined.startswith(module + "."):
                names.add(name)
        for name in names:  # registered during the import, before __version__ could be read
            registry.set_version(name, origin, version)
        if names:
            found[_field(registry)] = sorted(names)
    if not found:
        raise PluginError(
            f"plugin {spec!r} registered nothing (no attention, suite, task or executor); use"
            f" {_DECORATORS}, or name a class as MODULE:CLASS")
    return PluginInfo(origin, version, **{k: tuple(v) for k, v in found.items()}, spec=spec)


def load_plugins(specs: Iterable[str] = ()) -> list[PluginInfo]:
    """Load installed entry-point plugins and the ``MODULE[:ATTR]`` ``specs``; idempotent.

    Every plugin is imported now, so a broken one fails here, before anything runs:
    :class:`PluginError` (a ``ValueError``) names the plugin and its error (``SystemExit``
    included); a name clash names both origins. Returns every loaded plugin.
    """
    _load_entry_points()
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
    """The ``MODULE[:ATTR]`` specs loaded so far (what another process must load again)."""
    return [info.spec for info in _LOADED.values() if info.spec is not None]
