"""Measurement: timing, peak memory (CPU subprocess / CUDA), environment capture, statistics.

>>> from harness.measure import time_callable, measure_cpu_peak, summarize
>>> result = time_callable(lambda: sum(range(1000)), threads=1)
>>> result.n >= 5
True

Names load lazily from their submodules, so the memory-measuring child process (which imports
this package) starts without pulling in torch or scipy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.measure.env import available_devices, capture_environment, resolve_device
    from harness.measure.memory import (
        MemoryResult,
        cuda_peak_memory,
        measure_cpu_peak,
        peak_memory,
    )
    from harness.measure.stats import (
        PowerFit,
        bootstrap_ci,
        fit_power_law,
        mcnemar,
        median_iqr,
        paired_bootstrap_test,
        paired_ttest,
        summarize,
    )
    from harness.measure.timing import TimingResult, time_callable, tokens_per_second

_EXPORTS = {
    "available_devices": "env",
    "capture_environment": "env",
    "resolve_device": "env",
    "MemoryResult": "memory",
    "cuda_peak_memory": "memory",
    "measure_cpu_peak": "memory",
    "peak_memory": "memory",
    "PowerFit": "stats",
    "bootstrap_ci": "stats",
    "fit_power_law": "stats",
    "mcnemar": "stats",
    "median_iqr": "stats",
    "paired_bootstrap_test": "stats",
    "paired_ttest": "stats",
    "summarize": "stats",
    "TimingResult": "timing",
    "time_callable": "timing",
    "tokens_per_second": "timing",
}

__all__ = [
    "MemoryResult",
    "PowerFit",
    "TimingResult",
    "available_devices",
    "bootstrap_ci",
    "capture_environment",
    "cuda_peak_memory",
    "fit_power_law",
    "mcnemar",
    "measure_cpu_peak",
    "median_iqr",
    "paired_bootstrap_test",
    "paired_ttest",
    "peak_memory",
    "resolve_device",
    "summarize",
    "time_callable",
    "tokens_per_second",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness.measure' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"harness.measure.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
