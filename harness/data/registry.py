"""The task registry: ``load_task(name, **params)`` builds a registered task's :class:`TaskData`.

A task is a function whose keyword-only arguments (with defaults) are its parameters; register it
with :func:`register_task`. Unknown names or parameters raise ``ValueError`` listing valid ones.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from harness.data.base import TaskData
from harness.registry import Registry

__all__ = ["list_tasks", "load_task", "register_task", "task_options"]

TaskLoader = Callable[..., TaskData]


def _check_loader(name: str, loader: object) -> TaskLoader:
    if not callable(loader):
        raise ValueError(f"register_task({name!r}) expects a function, got {loader!r}")
    return loader  # type: ignore[return-value]


#: Every task: built-ins, and plugins (entry points ``harness.tasks``, ``--plugin``).
_TASKS: Registry[TaskLoader] = Registry("task", validate=_check_loader, group="harness.tasks")


def register_task(name: str) -> Callable[[TaskLoader], TaskLoader]:
    """Decorator: register a loader (keyword-only parameters with defaults) under ``name``.

    A name already taken by another loader raises ``ValueError`` naming both origins.
    """
    return _TASKS.decorator(name)


def list_tasks() -> list[str]:
    """Names of all registered tasks, sorted."""
    return _TASKS.names()


def _loader(name: str) -> TaskLoader:
    return _TASKS.entry(name).value  # type: ignore[return-value]


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
