"""The task registry: ``load_task(name, **params)`` builds a registered task's :class:`TaskData`.

A task is a function whose keyword-only arguments (with defaults) are its parameters; register it
with :func:`register_task`. Unknown names or parameters raise ``ValueError`` listing valid ones.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from harness.data.base import TaskData

__all__ = ["list_tasks", "load_task", "register_task", "task_options"]

TaskLoader = Callable[..., TaskData]
_TASKS: dict[str, TaskLoader] = {}


def register_task(name: str) -> Callable[[TaskLoader], TaskLoader]:
    """Decorator: register a loader (keyword-only parameters with defaults) under ``name``."""

    def decorate(loader: TaskLoader) -> TaskLoader:
        if not callable(loader):
            raise ValueError(f"register_task({name!r}) expects a function, got {loader!r}")
        existing = _TASKS.get(name)
        if existing is not None and existing is not loader:
            raise ValueError(f"task {name!r} is already registered by {existing.__qualname__}")
        _TASKS[name] = loader
        return loader

    return decorate


def list_tasks() -> list[str]:
    """Names of all registered tasks, sorted."""
    return sorted(_TASKS)


def _loader(name: str) -> TaskLoader:
    try:
        return _TASKS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown task {name!r}; registered: {', '.join(list_tasks())}") from None


def task_options(name: str) -> dict[str, Any]:
    """Parameter names of task ``name`` with their defaults."""
    params = inspect.signature(_loader(name)).parameters
    return {p.name: p.default for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def load_task(name: str, **params: Any) -> TaskData:
    """Build task ``name`` with ``params``; unknown names or parameters raise ``ValueError``."""
    loader = _loader(name)
    valid = task_options(name)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        listed = ", ".join(f"{k}={v!r}" for k, v in valid.items()) or "(none)"
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)} for task {name!r};"
            f" valid parameters: {listed}"
        )
    return loader(**params)
