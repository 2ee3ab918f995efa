"""One generic registry for attentions, tasks and suites.

A :class:`Registry` maps names to objects and remembers where each came from (its *origin*:
``built-in``, a distribution with its version, or a plugin module). Registering a name twice with
a different object is refused, naming both origins. An entry can be *lazy*: a ``"module:attr"``
string (an entry point's value) imported on first use, so listing names imports nothing.

>>> reg = Registry("widget")
>>> _ = reg.add("a", int, origin="built-in")
>>> reg.names(), reg.origin("a")
(['a'], 'built-in')
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["BUILTIN", "Entry", "Registry", "RegistryError", "origin_of", "registering_as"]

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
    """Origin and version of an object registered outside :func:`registering_as`: ``built-in``
    for the harness package, else ``module NAME``."""
    if _CURRENT_ORIGIN:
        return _CURRENT_ORIGIN[-1]
    module = getattr(obj, "__module__", None) or type(obj).__module__
    if module == "harness" or module.startswith("harness."):
        return BUILTIN, None
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
    ``order`` sorts :meth:`names` (alphabetical by default). Mapping access (``reg[name]``)
    resolves lazy entries; item assignment bypasses the duplicate check (tests patch entries).
    """

    def __init__(
        self,
        kind: str,
        *,
        validate: Callable[[str, Any], T] | None = None,
        order: Callable[[str], Any] | None = None,
    ) -> None:
        self.kind = kind
        self._validate = validate
        self._order = order
        self._entries: dict[str, Entry[T]] = {}

    # ------------------------------------------------------------------ registering
    def add(self, name: str, obj: Any, *, origin: str | None = None,
            version: str | None = None) -> T:
        """Register ``obj`` as ``name``; the same object again is a no-op, another one an error."""
        if not isinstance(name, str) or not name:
            raise RegistryError(f"{self.kind} names must be non-empty strings, got {name!r}")
        value = self._validate(name, obj) if self._validate else obj
        if origin is None:
            origin, version = origin_of(obj)
        existing = self._entries.get(name)
        if existing is not None:
            if existing.loaded and existing.value is value:
                return value
            if not existing.loaded and existing.target == _target_of(obj):
                # The lazy entry's module is being imported and registers its object itself.
                existing.value, existing.target = value, None
                return value
            raise RegistryError(
                f"{self.kind} {name!r} from {_describe(origin, version)} clashes with"
                f" {self.kind} {name!r} from {_describe(existing.origin, existing.version)};"
                " rename one of them (or uninstall/unload one plugin)"
            )
        self._entries[name] = Entry(name, value, origin, version)
        return value

    def add_lazy(self, name: str, target: str, *, origin: str, version: str | None = None) -> None:
        """Register ``name`` as ``"module:attr"``, imported on first use."""
        existing = self._entries.get(name)
        if existing is not None:
            if existing.target == target or (existing.loaded and
                                             _target_of(existing.value) == target):
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
        return sorted(self._entries, key=self._order) if self._order else sorted(self._entries)

    def entry(self, name: str) -> Entry[T]:
        """The entry of ``name`` (resolved); ``RegistryError`` listing valid names otherwise."""
        entry = self._entries.get(name) if isinstance(name, str) else None
        if entry is None:
            raise RegistryError(
                f"unknown {self.kind} {name!r}; registered: {', '.join(self.names()) or '(none)'}"
            )
        if not entry.loaded:
            self._resolve(entry)
        return entry

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return self.entry(name).value if name in self._entries else default

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
        except Exception as err:
            raise RegistryError(
                f"{self.kind} {entry.name!r} from {_describe(entry.origin, entry.version)}:"
                f" cannot import {target}: {type(err).__name__}: {err}"
            ) from err
        if entry.target is not None:  # not registered by its own import
            value = self._validate(entry.name, obj) if self._validate else obj
            entry.value, entry.target = value, None

    # ------------------------------------------------------------------ mapping protocol
    def __getitem__(self, name: str) -> T:
        try:
            return self.entry(name).value  # type: ignore[return-value]
        except RegistryError as err:
            raise KeyError(name) from err

    def __setitem__(self, name: str, obj: T) -> None:
        origin, version = origin_of(obj)
        self._entries[name] = Entry(name, obj, origin, version)

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries


def _target_of(obj: Any) -> str | None:
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    return f"{module}:{qualname}" if module and qualname else None


def _describe(origin: str, version: str | None) -> str:
    return f"{origin} {version}" if version else origin
