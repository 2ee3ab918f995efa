"""Which input a task produces: ``text`` (token ids), ``image`` (pixels) or ``audio`` (frames).

A task loader declares its modality with :func:`declare_modality` (under ``register_task``);
undeclared tasks are text. :func:`task_modality` reads it without loading any data, e.g. for
``harness list``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["MODALITIES", "declare_modality", "task_modality"]

MODALITIES = ("text", "image", "audio")
F = TypeVar("F", bound=Callable[..., object])


def declare_modality(*modalities: str) -> Callable[[F], F]:
    """Decorator: mark a task loader as producing ``modalities`` inputs (several when the data
    decides, e.g. a folder of images or of sounds)."""
    bad = [m for m in modalities if m not in MODALITIES]
    if bad or not modalities:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modalities!r}")

    def mark(loader: F) -> F:
        loader.modality = "|".join(modalities)  # type: ignore[attr-defined]
        return loader

    return mark


def task_modality(name: str) -> str:
    """The modality of registered task ``name``, e.g. ``"audio"`` or ``"image|audio"``
    (``ValueError`` for an unknown name)."""
    from harness.data.registry import _loader

    return str(getattr(_loader(name), "modality", "text"))
