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
        Estimate,
        PairedResult,
        PowerFit,
        adjust_pvalues,
        bootstrap_ci,
        exponent_verdict,
        fit_power_law,
        median_iqr,
        paired_bootstrap,
        paired_ttest,
        resample_indices,
        summarize,
        t_interval,
        wilson_interval,
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
    "Estimate": "stats",
    "PairedResult": "stats",
    "PowerFit": "stats",
    "adjust_pvalues": "stats",
    "bootstrap_ci": "stats",
    "exponent_verdict": "stats",
    "fit_power_law": "stats",
    "median_iqr": "stats",
    "paired_bootstrap": "stats",
    "paired_ttest": "stats",
    "resample_indices": "stats",
    "summarize": "stats",
    "t_interval": "stats",
    "wilson_interval": "stats",
    "TimingResult": "timing",
    "time_callable": "timing",
    "tokens_per_second": "timing",
}

__all__ = [
    "Estimate",
    "MemoryResult",
    "PairedResult",
    "PowerFit",
    "TimingResult",
    "adjust_pvalues",
    "available_devices",
    "bootstrap_ci",
    "capture_environment",
    "cuda_peak_memory",
    "exponent_verdict",
    "fit_power_law",
    "measure_cpu_peak",
    "median_iqr",
    "paired_bootstrap",
    "paired_ttest",
    "peak_memory",
    "resample_indices",
    "resolve_device",
    "summarize",
    "t_interval",
    "time_callable",
    "tokens_per_second",
    "wilson_interval",
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
