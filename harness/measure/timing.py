"""Wall-clock timing of a callable: warm-up, then many measurements summarised by median and IQR.

CPU timing uses ``torch.utils.benchmark.Timer`` with the thread count set and recorded; CUDA timing
uses CUDA events around blocks of calls, synchronising before reading them.

``time_interleaved`` times several callables side by side, round by round (the measured work, a
reference at the same shape, a fixed calibration kernel), so that per-round ratios cancel the
drift of a shared machine; it watches the machine's load while it measures (``LoadMonitor``),
never runs more torch threads than there are idle cores, and says when the machine was visibly
busy (``noisy``). Every per-round sample is kept: the release gate tests distributions, not
summaries.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.measure.stats import median_iqr

__all__ = [
    "CALIBRATION_FLOPS",
    "MIN_MEASUREMENTS",
    "MIN_ROUNDS",
    "InterleavedTiming",
    "LoadMonitor",
    "TimingResult",
    "calibration_kernel",
    "default_threads",
    "fix_allocator",
    "peak_flops",
    "time_callable",
    "time_interleaved",
    "timing_threads",
    "tokens_per_second",
]

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

        fix_allocator()
        n_threads = torch.get_num_threads() if threads is None else threads
        return _time_cpu(fn, n_threads, warmup, min_run_time, max_runs, label)
    return _time_cuda(fn, dev, warmup, min_run_time, max_runs, label)


# ---------------------------------------------------------------------------------------------
# machine load

#: Other processes using more than this many cores (on average, while a timing ran) mark it noisy.
BUSY_CORES = 0.5
#: CPU steal above this fraction of the machine's time marks a timing noisy (a shared VM host).
BUSY_STEAL = 0.05
_PROBE_S = 0.1  # how long ``timing_threads`` watches the idle machine before choosing threads


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads() -> int:
    """torch threads a run uses when it names none: every core this process may use but one.

    An OpenMP parallel region waits for its slowest thread, so when torch has a thread on every
    core, any other runnable process (the OS, the harness's own driver, a load monitor) preempts
    one of them and the whole call waits a scheduler slice. Measured on the 2-core machine, 20
    fresh processes of identical code on a quiet machine: with 2 threads, ``standard`` forward
    at N=512 was bimodal (2.0-2.3 ms or 3.5-4.6 ms per process) and ``linear`` at 1024 ranged
    1.2-5.7 ms; under one busy core, 2 threads took 64 ms where 1 took 3.6 ms
    (docs/PERFORMANCE.md section 7). Leaving one core free costs peak speed and buys timings
    that repeat. One core: one thread."""
    return max(1, _cpu_count() - 1)


#: glibc mallopt parameters and the fixed values timing processes use (see ``fix_allocator``)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 * 2**20  # glibc's largest on 64-bit: blocks above it are always mmapped
_TRIM_THRESHOLD = 512 * 2**20
_ALLOCATOR: dict[str, Any] = {}


def fix_allocator() -> dict[str, Any]:
    """Fix glibc malloc's mmap and trim thresholds in this process (once; the answer is cached).

    glibc raises its mmap threshold whenever a freed mmapped block was larger than it, so how
    a process's tensors of 128 KiB to 32 MiB are allocated (heap, reused; or fresh mmapped pages,
    page-faulted on every call) depends on that process's history. Measured on the 2-core
    machine, one torch thread, 8 fresh processes each: ``linear`` forward at N=1024 took
    2.7-6.2 ms per process with glibc's defaults and 1.9-2.2 ms with the thresholds fixed
    (docs/PERFORMANCE.md section 7). Setting either threshold turns the adjustment off. Returns
    what was set (recorded with timings); empty where the C library has no ``mallopt`` (not
    glibc), where nothing changes."""
    if _ALLOCATOR:
        return dict(_ALLOCATOR)
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        _ALLOCATOR["allocator"] = "default (no glibc mallopt)"
        return dict(_ALLOCATOR)
    ok = (mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) == 1
          and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1)
    _ALLOCATOR["allocator"] = (f"glibc fixed: mmap_threshold {_MMAP_THRESHOLD}, trim_threshold "
                               f"{_TRIM_THRESHOLD}" if ok else "default (mallopt refused)")
    return dict(_ALLOCATOR)


def _proc_stat() -> dict[str, float] | None:
    """Machine-wide busy / steal / total CPU seconds and runnable processes (Linux), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    out: dict[str, float] = {}
    hz = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
    for line in lines:
        parts = line.split()
        if parts and parts[0] == "cpu":
            # user nice system idle iowait irq softirq steal guest guest_nice
            ticks = [float(x) for x in parts[1:9]]
            ticks += [0.0] * (8 - len(ticks))
            out["total_s"] = sum(ticks) / hz
            out["idle_s"] = (ticks[3] + ticks[4]) / hz
            out["steal_s"] = ticks[7] / hz
        elif parts and parts[0] == "procs_running":
            out["procs_running"] = float(parts[1])
    return out if "total_s" in out else None


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 3)
    except (AttributeError, OSError):
        return None


class LoadMonitor:
    """The machine's load over an interval: what other processes did while we measured.

    ``start()`` and ``stop()`` read ``/proc/stat`` (Linux; elsewhere only the load average is
    known), this process's CPU time and the wall clock. ``summary()`` gives the 1-minute load
    average and the runnable processes (other than this one) before and after, the CPU steal
    fraction, and ``others_cores``: the cores' worth of CPU time used by other processes during
    the interval (machine busy time minus ours, over wall time).
    """

    def __init__(self) -> None:
        self._start: tuple[float, float, dict[str, float] | None, float | None] | None = None
        self._stop: tuple[float, float, dict[str, float] | None, float | None] | None = None

    @staticmethod
    def _snapshot() -> tuple[float, float, dict[str, float] | None, float | None]:
        return time.perf_counter(), time.process_time(), _proc_stat(), _loadavg()

    def start(self) -> LoadMonitor:
        self._start, self._stop = self._snapshot(), None
        return self

    def stop(self) -> LoadMonitor:
        if self._start is None:
            raise ValueError("LoadMonitor.stop() called before start()")
        self._stop = self._snapshot()
        return self

    def summary(self) -> dict[str, Any]:
        """Plain dict for a record's ``load`` field (see docs/RESULTS.md)."""
        if self._start is None or self._stop is None:
            raise ValueError("LoadMonitor.summary() needs start() and stop() first")
        (w0, c0, s0, l0), (w1, c1, s1, l1) = self._start, self._stop
        wall = max(w1 - w0, 1e-9)
        out: dict[str, Any] = {"cpu_count": _cpu_count(), "seconds": round(wall, 4),
                               "loadavg_before": l0, "loadavg_after": l1,
                               "runnable_before": None, "runnable_after": None,
                               "steal_fraction": None, "others_cores": None}
        if s0 is not None and s1 is not None:
            # procs_running counts this process (reading /proc/stat) as running
            out["runnable_before"] = max(int(s0.get("procs_running", 1)) - 1, 0)
            out["runnable_after"] = max(int(s1.get("procs_running", 1)) - 1, 0)
            total = s1["total_s"] - s0["total_s"]
            busy = total - (s1["idle_s"] - s0["idle_s"]) - (s1["steal_s"] - s0["steal_s"])
            out["steal_fraction"] = round((s1["steal_s"] - s0["steal_s"]) / total, 4) \
                if total > 0 else 0.0
            out["others_cores"] = round(max(busy - (c1 - c0), 0.0) / wall, 3)
        return out


def busy_reason(load: Mapping[str, Any], threads: int | None = None,
                requested: int | None = None) -> str | None:
    """Why a timing taken under ``load`` (a ``LoadMonitor.summary``) is not trustworthy, or None.

    Noisy when other processes used more than ``BUSY_CORES`` cores while it ran, when the
    hypervisor stole more than ``BUSY_STEAL`` of the CPU time, or when fewer torch threads than
    requested ran because cores were busy.
    """
    reasons = []
    others = load.get("others_cores")
    if others is not None and others > BUSY_CORES:
        reasons.append(f"other processes used {others:.2f} of {load.get('cpu_count')} cores")
    steal = load.get("steal_fraction")
    if steal is not None and steal > BUSY_STEAL:
        reasons.append(f"CPU steal {steal:.0%}")
    if threads is not None and requested is not None and threads < requested:
        reasons.append(f"ran {threads} torch thread(s) instead of {requested}: cores were busy")
    return "; ".join(reasons) or None


def timing_threads(requested: int, device: str = "cpu") -> tuple[int, dict[str, Any]]:
    """Torch threads to time with: ``requested``, but never more than the idle cores.

    Watches the machine for ``_PROBE_S`` seconds (other processes' CPU use, ``LoadMonitor``);
    idle cores = CPUs - that use (rounded up). One thread and CUDA timings keep ``requested``
    (without watching). Returns the thread count and the load seen.
    """
    if requested <= 1 or not device.startswith("cpu"):
        return requested, {}  # nothing to reduce: no need to watch
    monitor = LoadMonitor().start()
    time.sleep(_PROBE_S)
    load = monitor.stop().summary()
    others = load.get("others_cores")
    busy = math.ceil(others - 0.25) if others is not None else 0  # ignore background flicker
    idle = max(1, int(load["cpu_count"]) - max(busy, 0))
    return max(1, min(requested, idle)), load


# ---------------------------------------------------------------------------------------------
# interleaved timing

#: Fewest rounds an interleaved timing runs: a one-sided Mann-Whitney U test on 10 vs 10
#: samples can reach p = 5e-6, so even a comparison corrected for many cells can decide.
MIN_ROUNDS = 10
#: Aim for about this many rounds in ``min_run_time`` when calls are fast.
_TARGET_ROUNDS = 30
#: Size of the calibration matmul (CPU; CUDA uses 4x): 2 * n^3 floating-point operations.
CALIBRATION_SIZE = 256
CALIBRATION_FLOPS = 2 * CALIBRATION_SIZE**3


def calibration_kernel(device: str = "cpu") -> tuple[Callable[[], Any], float]:
    """A fixed-size float32 matmul on seeded random inputs, and its floating-point operations.

    Its speed (GFLOP/s) tells how fast the machine (or the moment) was, independent of the code
    under test.
    """
    import torch

    n = CALIBRATION_SIZE * (4 if device.startswith("cuda") else 1)
    gen = torch.Generator().manual_seed(1234)
    a = torch.randn(n, n, generator=gen).to(device)
    b = torch.randn(n, n, generator=gen).to(device)
    out = torch.empty(n, n, device=device)

    def kernel() -> Any:
        return torch.matmul(a, b, out=out)

    return kernel, float(2 * n**3)


#: Size of the CUDA peak matmul: large enough to keep every SM busy (2 * n^3 operations).
PEAK_SIZE_CUDA = 8192
_PEAKS: dict[tuple[str, str, int], float] = {}
_TORCH_DTYPES = ("float32", "float64", "bfloat16", "float16")


def peak_flops(device: str = "cpu", dtype: str = "float32", threads: int | None = None,
               repeats: int = 15) -> float:
    """The machine's measured peak FLOP/s on ``device`` in ``dtype``: the best of ``repeats``
    timings of a matmul (CPU: the calibration matmul, in ``dtype``, with ``threads`` torch
    threads, default the current setting; CUDA: an 8192 x 8192 matmul in ``dtype``). Measured
    once per process, device, dtype and thread count. The best, not the median: interference
    on a shared machine only ever adds time (and a multi-threaded CPU peak is never taken below
    the one-threaded one)."""
    import torch

    if dtype not in _TORCH_DTYPES:
        raise ValueError(f"peak_flops: dtype must be one of {_TORCH_DTYPES}, got {dtype!r}")
    dev = _normalize_device(device)
    cuda = dev.startswith("cuda")
    used = torch.get_num_threads() if threads is None else threads
    key = (dev, dtype, 0 if cuda else used)
    if key in _PEAKS:
        return _PEAKS[key]
    n = PEAK_SIZE_CUDA if cuda else CALIBRATION_SIZE
    torch_dtype = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(1234)
    a = torch.randn(n, n, generator=gen).to(dev, torch_dtype)
    b = torch.randn(n, n, generator=gen).to(dev, torch_dtype)
    out = torch.empty(n, n, device=dev, dtype=torch_dtype)
    previous = torch.get_num_threads()
    torch.set_num_threads(used)
    try:
        number = 1 if cuda else 4
        _block_time(lambda: torch.matmul(a, b, out=out), number, dev)  # warm-up
        best = min(_block_time(lambda: torch.matmul(a, b, out=out), number, dev)
                   for _ in range(repeats))
    finally:
        torch.set_num_threads(previous)
    _PEAKS[key] = 2.0 * n**3 / best
    if not cuda and used > 1:
        # More threads never have a lower peak than one: on a shared machine whose cores are
        # busy, a multi-threaded matmul can stall far below the one-threaded rate.
        _PEAKS[key] = max(_PEAKS[key], peak_flops(dev, dtype, threads=1, repeats=repeats))
    return _PEAKS[key]


@dataclass(frozen=True)
class InterleavedTiming:
    """The result of ``time_interleaved``: one ``TimingResult`` per callable (their ``times``
    aligned round by round), the load seen, the threads used and why the timing is noisy."""

    results: dict[str, TimingResult]
    rounds: int
    threads: int
    requested_threads: int
    load: dict[str, Any]
    noisy: str | None

    def ratio(self, numerator: str, denominator: str) -> list[float]:
        """Per-round ``time[numerator] / time[denominator]`` (same round, so drift cancels)."""
        a, b = self.results[numerator].times, self.results[denominator].times
        return [x / y for x, y in zip(a, b, strict=True)]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(torch.device(device))


def _block_time(fn: Callable[[], Any], number: int, device: str) -> float:
    """Seconds per call of one block of ``number`` calls (synchronised on CUDA)."""
    _sync(device)
    start = time.perf_counter()
    for _ in range(number):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / number


def _block_sizes(fns: Mapping[str, Callable[[], Any]], warmup: int, target: float, dev: str,
                 given: Mapping[str, int] | None) -> dict[str, int]:
    """Warm each callable up, then the calls per block that last about ``target`` seconds (a
    probe call each; ``given`` sizes skip it)."""
    numbers = {}
    for name, fn in fns.items():
        for _ in range(max(warmup, 0)):
            fn()
        if given and name in given:
            numbers[name] = max(1, int(given[name]))
            continue
        per_call = _block_time(fn, 1, dev)
        numbers[name] = max(1, math.ceil(target / per_call)) if per_call > 0 else 1
    return numbers


def time_interleaved(
    fns: Mapping[str, Callable[[], Any]],
    *,
    device: str = "cpu",
    threads: int | None = None,
    warmup: int = 1,
    min_run_time: float = 0.2,
    min_rounds: int = MIN_ROUNDS,
    max_rounds: int = 200,
    label: str = "",
    adapt_threads: bool = True,
    numbers: Mapping[str, int] | None = None,
) -> InterleavedTiming:
    """Time several zero-argument callables side by side, round by round.

    Each round runs one block of calls of every callable (the order rotates from round to round,
    so none always runs first); a block lasts about ``min_run_time / 30`` (at least 1 ms) so
    timer overhead is negligible. Rounds go on until the first callable has been timed for
    ``min_run_time`` seconds and at least ``min_rounds`` rounds ran (at most ``max_rounds``).
    Per-round times are aligned, so ``InterleavedTiming.ratio`` gives per-round ratios in which
    the machine's drift cancels.

    Threads: ``threads`` (default: the current torch setting), reduced to the idle cores when
    ``adapt_threads`` (``timing_threads``); the load during the rounds is recorded and a busy
    machine is named in ``noisy`` (``busy_reason``).

    ``numbers``: calls per block for each callable, e.g. an earlier window's
    ``results[name].number_per_run``; given, the probe call that sizes a block is skipped.
    """
    import torch

    if not fns:
        raise ValueError("time_interleaved: give at least one callable")
    for name, fn in fns.items():
        if not callable(fn):
            raise ValueError(f"time_interleaved: {name!r} is not callable")
    dev = _normalize_device(device)
    requested = torch.get_num_threads() if threads is None else threads
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise ValueError(f"threads must be a positive int or None, got {threads!r}")
    if isinstance(min_rounds, bool) or not isinstance(min_rounds, int) or min_rounds < 2:
        raise ValueError(f"min_rounds must be an int >= 2, got {min_rounds!r}")
    if not isinstance(max_rounds, int) or max_rounds < min_rounds:
        raise ValueError(f"max_rounds must be an int >= min_rounds ({min_rounds}), got"
                         f" {max_rounds!r}")
    if not min_run_time > 0:
        raise ValueError(f"min_run_time must be > 0 seconds, got {min_run_time!r}")
    allocator = fix_allocator() if dev == "cpu" else {}
    used = timing_threads(requested, dev)[0] if adapt_threads else requested
    previous = torch.get_num_threads()
    torch.set_num_threads(used)
    names = list(fns)
    try:
        numbers = _block_sizes(fns, warmup, max(_MIN_BLOCK_S, min_run_time / _TARGET_ROUNDS),
                               dev, numbers)
        times: dict[str, list[float]] = {name: [] for name in names}
        monitor = LoadMonitor().start()
        spent = 0.0
        rounds = 0
        while rounds < max_rounds and (rounds < min_rounds or spent < min_run_time):
            shift = rounds % len(names)
            for name in names[shift:] + names[:shift]:
                per_call = _block_time(fns[name], numbers[name], dev)
                times[name].append(per_call)
                if name == names[0]:
                    spent += per_call * numbers[name]
            rounds += 1
        load = monitor.stop().summary()
    finally:
        torch.set_num_threads(previous)
    results = {name: _summarize(times[name], used, dev, numbers[name], f"{label} {name}".strip())
               for name in names}
    noisy = busy_reason(load, used, requested) if dev == "cpu" else None
    return InterleavedTiming(results, rounds, used, requested, {**load, **allocator}, noisy)


def tokens_per_second(result: TimingResult, tokens: int) -> float:
    """Throughput from a timing: ``tokens`` processed per call divided by the median call time."""
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens <= 0:
        raise ValueError(
            f"tokens must be a positive int (tokens processed per call), got {tokens!r}"
        )
    if result.median_s <= 0:
        raise ValueError(f"result.median_s must be > 0 to compute a rate, got {result.median_s}")
    return tokens / result.median_s
