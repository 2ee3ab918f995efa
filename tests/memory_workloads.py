"""Known workloads for checking the memory measurement (targets for ``measure_cpu_peak`` in the
tests; the measuring child imports this module from the test process's import path).

Each function builds inputs and returns the zero-argument ``work`` callable that the measuring
child runs once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = [
    "allocate_bytes",
    "allocate_tensor",
    "fail_in_setup",
    "raise_error",
    "raise_memory_error",
    "sleep",
]


def allocate_bytes(n: int) -> Callable[[], int]:
    """Work that allocates and touches ``n`` bytes (numpy), then frees them."""
    import numpy as np

    if n <= 0:
        raise ValueError(f"allocate_bytes: n must be > 0 bytes, got {n}")

    def work() -> int:
        block = np.empty(n, dtype=np.uint8)
        block.fill(1)  # touch every page so it becomes resident
        return int(block[::4096].sum())

    return work


def allocate_tensor(n: int, input_bytes: int = 0) -> Callable[[], float]:
    """Work that allocates a float32 torch tensor of ``n`` bytes; inputs of ``input_bytes`` are
    allocated at setup (so they belong to the baseline, not the peak)."""
    import torch

    inputs = torch.ones(max(1, input_bytes // 4), dtype=torch.float32)

    def work() -> float:
        out = torch.full((n // 4,), 2.0, dtype=torch.float32)
        return float(out[::1024].sum() + inputs[0])

    return work


def raise_error(message: str = "boom") -> Callable[[], None]:
    """Work that raises ``ValueError(message)``."""

    def work() -> None:
        raise ValueError(message)

    return work


def raise_memory_error() -> Callable[[], None]:
    """Work that raises ``MemoryError`` as an allocator would."""

    def work() -> None:
        raise MemoryError("simulated allocation failure")

    return work


def fail_in_setup() -> Callable[[], None]:
    """A target whose setup itself fails."""
    raise KeyError("missing input")


def sleep(seconds: float) -> Callable[[], None]:
    """Work that sleeps ``seconds`` (for timeout checks)."""

    def work() -> None:
        time.sleep(seconds)

    return work
