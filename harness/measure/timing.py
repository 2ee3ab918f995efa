"""Wall-clock timing of a callable: warm-up, then many measurements summarised by median and IQR.

CPU timing uses ``torch.utils.benchmark.Timer`` with the thread count set and recorded; CUDA timing
uses CUDA events around blocks of calls, synchronising before reading them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.measure.stats import median_iqr

__all__ = ["MIN_MEASUREMENTS", "TimingResult", "time_callable", "tokens_per_second"]

#: Fewest measurements a timing collects, however long each call takes.
MIN_MEASUREMENTS = 5
#: Aim for about this many measurements in ``min_run_time`` when calls are fast.
_TARGET_BLOCKS = 50
#: A block of calls lasts at least this long, so timer overhead stays negligible.
_MIN_BLOCK_S = 1e-3


@dataclass(frozen=True)
class TimingResult:
    """Per-call wall time of a callable (seconds).

    ``times`` holds one per-call time per measurement (a block of ``number_per_run`` calls
    divided by that count); ``n`` is the number of measurements behind the median and quartiles.
    """

    median_s: float
    q1_s: float
    q3_s: float
    iqr_s: float
    mean_s: float
    n: int
    times: list[float] = field(repr=False)
    threads: int
    device: str
    number_per_run: int = 1
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for a results record."""
        return asdict(self)


def _normalize_device(device: str) -> str:
    """Accept ``cpu``, ``cuda`` or ``cuda:N``; raise ValueError otherwise."""
    if not isinstance(device, str):
        raise ValueError(f"device must be a string like 'cpu' or 'cuda:0', got {device!r}")
    dev = device.strip().lower()
    if dev == "cpu" or dev == "cuda":
        return dev
    if dev.startswith("cuda:") and dev[5:].isdigit():
        return dev
    raise ValueError(
        f"device {device!r} is not supported for timing; use 'cpu', 'cuda' or 'cuda:N'"
    )


def _block_size(per_call_s: float, min_run_time: float) -> int:
    """Calls per measurement so that a block lasts about ``min_run_time / _TARGET_BLOCKS``."""
    target = max(_MIN_BLOCK_S, min_run_time / _TARGET_BLOCKS)
    if per_call_s <= 0.0:
        return 1
    return max(1, math.ceil(target / per_call_s))


def _summarize(
    times: list[float], threads: int, device: str, number: int, label: str
) -> TimingResult:
    summary = median_iqr(times)
    return TimingResult(
        median_s=summary["median"],
        q1_s=summary["q1"],
        q3_s=summary["q3"],
        iqr_s=summary["iqr"],
        mean_s=sum(times) / len(times),
        n=len(times),
        times=list(times),
        threads=threads,
        device=device,
        number_per_run=number,
        label=label,
    )


def _time_cpu(
    fn: Callable[[], Any], threads: int, warmup: int, min_run_time: float, max_runs: int, label: str
) -> TimingResult:
    import torch
    from torch.utils import benchmark

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for _ in range(warmup):
            fn()
    finally:
        torch.set_num_threads(previous)
    timer = benchmark.Timer(
        stmt="fn()", globals={"fn": fn}, num_threads=threads, label=label or "time_callable"
    )
    # blocked_autorange sizes blocks so timer overhead is negligible (its sizing calls are extra
    # warm-up) and returns one per-call time per block.
    measurement = timer.blocked_autorange(min_run_time=min_run_time)
    times = list(measurement.times)
    number = measurement.number_per_run
    while len(times) < MIN_MEASUREMENTS:
        # Slow calls: ask for just enough further run time to reach the minimum count.
        needed = MIN_MEASUREMENTS - len(times)
        per_block = float(median_iqr(times)["median"]) * number
        extra = timer.blocked_autorange(min_run_time=max(0.5, needed - 0.5) * per_block)
        times.extend(extra.times)
        number = max(number, extra.number_per_run)
    return _summarize(times[-max_runs:], threads, "cpu", number, label)


def _time_cuda(
    fn: Callable[[], Any], device: str, warmup: int, min_run_time: float, max_runs: int, label: str
) -> TimingResult:
    import torch

    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for but CUDA is not available; use device='cpu'")
    with torch.cuda.device(torch.device(device)):
        torch.cuda.synchronize()
        per_call = 0.0
        for _ in range(warmup):
            start = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            per_call = time.perf_counter() - start
        number = _block_size(per_call, min_run_time) if warmup > 0 else 1
        times: list[float] = []
        total = 0.0
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        while len(times) < max_runs and (len(times) < MIN_MEASUREMENTS or total < min_run_time):
            begin.record()
            for _ in range(number):
                fn()
            end.record()
            end.synchronize()
            block_s = begin.elapsed_time(end) / 1000.0
            times.append(block_s / number)
            total += block_s
    return _summarize(times, torch.get_num_threads(), device, number, label)


def time_callable(
    fn: Callable[[], Any],
    *,
    device: str = "cpu",
    threads: int | None = None,
    warmup: int = 2,
    min_run_time: float = 0.2,
    max_runs: int = 200,
    label: str = "",
) -> TimingResult:
    """Time ``fn()`` (no arguments) and summarise the per-call time.

    Runs ``warmup`` untimed calls, then collects measurements for about ``min_run_time`` seconds
    and at least ``MIN_MEASUREMENTS`` of them, however slow each call is. Fast functions are timed
    in blocks of calls (``number_per_run``) so timer overhead stays negligible; each measurement is
    the block time divided by the block size. At most the last ``max_runs`` measurements are kept.

    Args:
        fn: the work to time; it must do real work on non-trivial inputs (never zeros).
        device: ``"cpu"`` (torch.utils.benchmark) or ``"cuda"``/``"cuda:N"`` (CUDA events).
        threads: torch intra-op threads for CPU timing (default: the current setting); recorded.
        warmup: untimed calls before measuring (>= 0).
        min_run_time: seconds of measured work to aim for (> 0).
        max_runs: cap on the number of measurements (>= MIN_MEASUREMENTS).
        label: free text stored with the result.
    """
    if not callable(fn):
        raise ValueError(f"fn must be a zero-argument callable, got {type(fn).__name__}")
    dev = _normalize_device(device)
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0, got {warmup!r}")
    if not min_run_time > 0:
        raise ValueError(f"min_run_time must be > 0 seconds, got {min_run_time!r}")
    if isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < MIN_MEASUREMENTS:
        raise ValueError(
            f"max_runs must be an int >= {MIN_MEASUREMENTS} (median/IQR need that many "
            f"measurements), got {max_runs!r}"
        )
    if dev == "cpu":
        import torch

        n_threads = torch.get_num_threads() if threads is None else threads
        return _time_cpu(fn, n_threads, warmup, min_run_time, max_runs, label)
    return _time_cuda(fn, dev, warmup, min_run_time, max_runs, label)


def tokens_per_second(result: TimingResult, tokens: int) -> float:
    """Throughput from a timing: ``tokens`` processed per call divided by the median call time."""
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens <= 0:
        raise ValueError(
            f"tokens must be a positive int (tokens processed per call), got {tokens!r}"
        )
    if result.median_s <= 0:
        raise ValueError(f"result.median_s must be > 0 to compute a rate, got {result.median_s}")
    return tokens / result.median_s
