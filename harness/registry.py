"""One generic registry for attentions, suites, tasks and executors.

A :class:`Registry` maps names to objects and remembers where each came from (its *origin*:
``built-in``, a distribution with its version, or a plugin module). Registering a name twice with
a different object is refused, naming both origins. An entry can be *lazy*: a ``"module:attr"``
string (an entry point's value) imported on first use, so listing names imports nothing.

A registry made with an entry-point ``group`` (``harness.attentions``, ``harness.suites``,
``harness.tasks``, ``harness.executors``) adds the installed entry points of that group as lazy
entries the first time it is read; :mod:`harness.plugins` loads ``--plugin`` modules into every
registry at once.

>>> reg = Registry("widget")
>>> _ = reg.add("a", int, origin="built-in")
>>> reg.names(), reg.origin("a")
(['a'], 'built-in')
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["BUILTIN", "Entry", "Registry", "RegistryError", "grouped_registries", "origin_of",
           "registering_as"]

T = TypeVar("T")

#: Origin of everything registered by the harness package itself.
BUILTIN = "built-in"

#: Origin given to registrations made while a plugin is being imported (see
#: :func:`registering_as`); None outside plugin loading.
_CURRENT_ORIGIN: list[tuple[str, str | None]] = []


class RegistryError(ValueError):
    """A name is unknown, taken by another object, or its lazy entry cannot be imported."""


@dataclass
class Entry(Generic[T]):
    """One registered name: the object (or, lazily, its ``module:attr`` target) and its origin."""

    name: str
    value: T | None
    origin: str
    version: str | None = None
    target: str | None = None  # "module:attr" while not yet imported
    source: Any = None  # the object as registered (before ``validate``): same source, no clash

    @property
    def loaded(self) -> bool:
        return self.target is None


@contextlib.contextmanager
def registering_as(origin: str, version: str | None = None) -> Iterator[None]:
    """Registrations made inside this block (a plugin's import) get ``origin`` and ``version``."""
    _CURRENT_ORIGIN.append((origin, version))
    try:
        yield
    finally:
        _CURRENT_ORIGIN.pop()


def origin_of(obj: Any) -> tuple[str, str | None]:
    """Origin and version of an object: ``built-in`` for the harness package (even when a
    plugin's import is what imports it), else the plugin being loaded (:func:`registering_as`),
    else ``module NAME``."""
    module = getattr(obj, "__module__", None) or type(obj).__module__
    if module == "harness" or module.startswith("harness."):
        return BUILTIN, None
    if _CURRENT_ORIGIN:
        return _CURRENT_ORIGIN[-1]
    return f"module {module}", None


def import_target(target: str) -> Any:
    """The object named by ``"module:attr"`` (``attr`` may be dotted)."""
    module_name, sep, attr = target.partition(":")
    if not module_name or (sep and not attr):
        raise RegistryError(f"cannot read {target!r} as MODULE[:ATTR]")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


class Registry(MutableMapping[str, T]):
    """Names -> objects, with origins, duplicate checks and lazy ``module:attr`` entries.

    ``validate`` checks (and may convert) an object before it is stored, raising ``ValueError``.
    ``order`` sorts :meth:`names` (alphabetical by default). ``group`` is the entry-point group
    read on first use. ``adopt`` gives the name under which an object named by a plugin spec
    ``MODULE:ATTR`` belongs here (None: not this registry's kind). Mapping access (``reg[name]``)
    resolves lazy entries; item assignment bypasses the duplicate check (tests patch entries).
    """

    def __init__(
        self,
        kind: str,
        *,
        validate: Callable[[str, Any], T] | None = None,
        order: Callable[[str], Any] | None = None,
        group: str | None = None,
        adopt: Callable[[Any], str | None] | None = None,
    ) -> None:
        self.kind = kind
        self.group = group
        self.adopt = adopt
        self._validate = validate
        self._order = order
        self._entries: dict[str, Entry[T]] = {}
        self._discovered = False
        if group is not None:
            _GROUPED[group] = self

    # ------------------------------------------------------------------ entry points
    def discover(self, *, force: bool = False) -> None:
        """Add every installed entry point of this registry's ``group`` as a lazy entry (nothing
        is imported); once per process unless ``force``. A name taken by another object raises
        :class:`RegistryError` naming both origins."""
        if self.group is None or (self._discovered and not force):
            return
        self._discovered = True
        for ep in entry_points(self.group):
            dist = getattr(ep, "dist", None)
            origin = dist.name if dist is not None else f"entry point {ep.value}"
            self.add_lazy(ep.name, ep.value, origin=origin,
                          version=dist.version if dist is not None else None)

    # ------------------------------------------------------------------ registering
    def add(self, name: str, obj: Any, *, origin: str | None = None,
            version: str | None = None) -> T:
        """Register ``obj`` as ``name``; the same object again is a no-op, another one an error."""
        if not isinstance(name, str) or not name:
            raise RegistryError(f"{self.kind} names must be non-empty strings, got {name!r}")
        existing = self._entries.get(name)
        if existing is not None and existing.loaded and existing.source is obj:
            return existing.value  # type: ignore[return-value]
        value = self._validate(name, obj) if self._validate else obj
        if origin is None:
            origin, version = origin_of(obj)
        if existing is not None:
            if existing.loaded and existing.value is value:
                return value
            if not existing.loaded and existing.target == _target_of(obj):
                # The lazy entry's module is being imported and registers its object itself.
                existing.value, existing.target, existing.source = value, None, obj
                return value
            raise RegistryError(
                f"{self.kind} {name!r} from {_describe(origin, version)} clashes with"
                f" {self.kind} {name!r} from {_describe(existing.origin, existing.version)};"
                " rename one of them (or uninstall/unload one plugin)"
            )
        self._entries[name] = Entry(name, value, origin, version, source=obj)
        return value

    def add_lazy(self, name: str, target: str, *, origin: str, version: str | None = None) -> None:
        """Register ``name`` as ``"module:attr"``, imported on first use."""
        existing = self._entries.get(name)
        if existing is not None:
            if existing.target == target or (existing.loaded and
                                             _target_of(existing.source) == target):
                return
            raise RegistryError(
                f"{self.kind} {name!r} from {_describe(origin, version)} ({target}) clashes with"
                f" {self.kind} {name!r} from {_describe(existing.origin, existing.version)};"
                " rename one of them (or uninstall/unload one plugin)"
            )
        self._entries[name] = Entry(name, None, origin, version, target)

    def decorator(self, name: str | None = None) -> Callable[[Any], Any]:
        """``@reg.decorator("name")``: register the decorated object and return it unchanged."""

        def decorate(obj: Any) -> Any:
            self.add(name if name is not None else obj.name, obj)
            return obj

        return decorate

    # ------------------------------------------------------------------ reading
    def names(self) -> list[str]:
        """Registered names (lazy ones included, nothing imported)."""
        self.discover()
        return sorted(self._entries, key=self._order) if self._order else sorted(self._entries)

    def entry(self, name: str) -> Entry[T]:
        """The entry of ``name`` (resolved); ``RegistryError`` listing valid names otherwise."""
        self.discover()
        entry = self._entries.get(name) if isinstance(name, str) else None
        if entry is None:
            raise RegistryError(
                f"unknown {self.kind} {name!r}; registered: {', '.join(self.names()) or '(none)'}"
            )
        if not entry.loaded:
            self._resolve(entry)
        return entry

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return self.entry(name).value if name in self else default

    def loaded_names(self) -> set[str]:
        """Names whose object is imported (no discovery, no import)."""
        return {n for n, e in self._entries.items() if e.loaded}

    def set_version(self, name: str, origin: str, version: str | None) -> None:
        """Fill in the version of an entry registered (by ``origin``) before it was readable."""
        entry = self._entries.get(name)
        if entry is not None and entry.origin == origin and entry.version is None:
            entry.version = version

    def origin(self, name: str) -> str:
        return self.entry(name).origin

    def version(self, name: str) -> str | None:
        return self.entry(name).version

    def _resolve(self, entry: Entry[T]) -> None:
        target = entry.target
        assert target is not None
        try:
            with registering_as(entry.origin, entry.version):
                obj = import_target(target)
        except KeyboardInterrupt:
            raise
        except BaseException as err:  # SystemExit from sys.exit() at import included
            raise RegistryError(
                f"{self.kind} {entry.name!r} from {_describe(entry.origin, entry.version)}:"
                f" cannot import {target}: {type(err).__name__}: {err}"
            ) from err
        if entry.target is not None:  # not registered by its own import
            value = self._validate(entry.name, obj) if self._validate else obj
            entry.value, entry.target, entry.source = value, None, obj

    # ------------------------------------------------------------------ mapping protocol
    def __getitem__(self, name: str) -> T:
        try:
            return self.entry(name).value  # type: ignore[return-value]
        except RegistryError as err:
            raise KeyError(name) from err

    def __setitem__(self, name: str, obj: T) -> None:
        origin, version = origin_of(obj)
        self._entries[name] = Entry(name, obj, origin, version, source=obj)

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self.discover()
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._entries


#: entry-point group -> its registry (each made with ``group=``).
_GROUPED: dict[str, Registry[Any]] = {}


def grouped_registries() -> dict[str, Registry[Any]]:
    """Every registry created so far with an entry-point group, by group."""
    return dict(_GROUPED)


def entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    """Installed entry points of ``group``, each (name, value) once."""
    seen: set[tuple[str, str]] = set()
    found = []
    for ep in importlib.metadata.entry_points(group=group):
        if (ep.name, ep.value) not in seen:
            seen.add((ep.name, ep.value))
            found.append(ep)
    return found


def _target_of(obj: Any) -> str | None:
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    return f"{module}:{qualname}" if module and qualname else None


def _describe(origin: str, version: str | None) -> str:
    return f"{origin} {version}" if version else origin
