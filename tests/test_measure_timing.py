"""Timing: measurement counts, summary statistics, thread handling, input validation."""

import time

import numpy as np
import pytest
import torch

from harness.measure.timing import MIN_MEASUREMENTS, TimingResult, time_callable, tokens_per_second


def _matmul():
    a = torch.randn(64, 64)
    b = torch.randn(64, 64)
    return lambda: a @ b


def test_cpu_timing_summary_is_consistent_and_records_threads():
    before = torch.get_num_threads()
    result = time_callable(_matmul(), threads=1, min_run_time=0.05, label="mm")
    assert isinstance(result, TimingResult)
    assert result.n == len(result.times) >= MIN_MEASUREMENTS
    assert result.threads == 1
    assert result.device == "cpu"
    assert result.label == "mm"
    q1, med, q3 = np.percentile(result.times, [25, 50, 75])
    assert (result.q1_s, result.median_s, result.q3_s) == pytest.approx((q1, med, q3))
    assert result.iqr_s == pytest.approx(q3 - q1)
    assert result.mean_s == pytest.approx(np.mean(result.times))
    assert 0 < result.q1_s <= result.median_s <= result.q3_s
    assert torch.get_num_threads() == before
    assert result.to_dict()["n"] == result.n


def test_threads_are_set_while_timing():
    seen = []

    def fn():
        seen.append(torch.get_num_threads())

    time_callable(fn, threads=1, warmup=1, min_run_time=0.01)
    assert set(seen) == {1}


def test_fast_calls_are_blocked_and_slow_calls_still_give_five_measurements():
    fast = time_callable(lambda: None, min_run_time=0.02)
    assert fast.number_per_run > 1

    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.01)

    result = time_callable(slow, warmup=1, min_run_time=0.001)
    assert result.n >= MIN_MEASUREMENTS
    assert result.number_per_run == 1
    assert len(calls) >= 1 + MIN_MEASUREMENTS
    # Per-call times really are per call: each sleeps at least 10 ms.
    assert min(result.times) >= 0.0099


def test_max_runs_caps_the_measurements():
    result = time_callable(lambda: None, min_run_time=0.05, max_runs=6)
    assert MIN_MEASUREMENTS <= result.n <= 6


def test_tokens_per_second_uses_the_median():
    result = TimingResult(0.5, 0.4, 0.6, 0.2, 0.5, 5, [0.5] * 5, 1, "cpu")
    assert tokens_per_second(result, 1000) == pytest.approx(2000.0)
    with pytest.raises(ValueError, match="tokens"):
        tokens_per_second(result, 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"device": "tpu"}, "device"),
        ({"threads": 0}, "threads"),
        ({"warmup": -1}, "warmup"),
        ({"min_run_time": 0}, "min_run_time"),
        ({"max_runs": 3}, "max_runs"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        time_callable(lambda: None, **kwargs)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_timing_with_events():
    a = torch.randn(512, 512, device="cuda")
    result = time_callable(lambda: a @ a, device="cuda", min_run_time=0.05)
    assert result.device == "cuda"
    assert result.n >= MIN_MEASUREMENTS
    assert 0 < result.q1_s <= result.median_s <= result.q3_s


# ---------------------------------------------------------------------------------------------
# interleaved timing, calibration kernel and machine load (logic only: no speed targets)


def test_interleaved_rounds_are_aligned_and_keep_every_sample():
    from harness.measure.timing import MIN_ROUNDS, calibration_kernel, time_interleaved

    kernel, flops = calibration_kernel()
    assert flops == 2 * 256**3
    a = torch.randn(32, 32)
    out = time_interleaved({"measured": lambda: a @ a, "calibration": kernel}, threads=1,
                           min_run_time=0.01, label="mm")
    assert out.rounds >= MIN_ROUNDS and out.threads == out.requested_threads == 1
    for result in out.results.values():
        assert len(result.times) == out.rounds and min(result.times) > 0
    ratios = out.ratio("calibration", "measured")
    cal, mine = out.results["calibration"].times, out.results["measured"].times
    assert ratios == pytest.approx([c / m for c, m in zip(cal, mine, strict=True)])
    assert {"others_cores", "loadavg_before", "runnable_after", "cpu_count"} <= set(out.load)
    with pytest.raises(ValueError, match="min_rounds"):
        time_interleaved({"m": lambda: None}, min_rounds=1)
    with pytest.raises(ValueError, match="not callable"):
        time_interleaved({"m": 3})  # type: ignore[dict-item]


def test_busy_reason_names_what_disturbed_a_timing():
    from harness.measure.timing import busy_reason

    quiet = {"others_cores": 0.05, "steal_fraction": 0.0, "cpu_count": 2}
    assert busy_reason(quiet, 2, 2) is None
    assert "1.20 of 2 cores" in busy_reason({**quiet, "others_cores": 1.2}, 2, 2)
    assert "steal" in busy_reason({**quiet, "steal_fraction": 0.2}, 2, 2)
    assert "1 torch thread(s) instead of 2" in busy_reason(quiet, 1, 2)
    assert busy_reason({"others_cores": None, "steal_fraction": None}) is None  # not Linux


def test_threads_never_exceed_idle_cores(monkeypatch):
    from harness.measure import timing

    def busy(others: float):
        return lambda self: {"cpu_count": 2, "others_cores": others}

    monkeypatch.setattr(timing, "_PROBE_S", 0.0)
    monkeypatch.setattr(timing.LoadMonitor, "summary", busy(1.0))
    assert timing.timing_threads(2)[0] == 1  # one core busy elsewhere: one thread
    monkeypatch.setattr(timing.LoadMonitor, "summary", busy(0.1))
    assert timing.timing_threads(2)[0] == 2  # background flicker is not a busy core
    monkeypatch.setattr(timing.LoadMonitor, "summary", busy(3.0))
    assert timing.timing_threads(2)[0] == 1  # never below one
    assert timing.timing_threads(1) == (1, {})  # nothing to reduce: no probe


def test_load_monitor_sees_this_process_apart_from_others():
    from harness.measure.timing import LoadMonitor

    monitor = LoadMonitor().start()
    end = time.perf_counter() + 0.05
    while time.perf_counter() < end:  # our own work is not "other processes"
        pass
    load = monitor.stop().summary()
    assert load["seconds"] >= 0.05
    if load["others_cores"] is not None:
        assert load["others_cores"] >= 0
    with pytest.raises(ValueError, match="before start"):
        LoadMonitor().stop()


def test_default_threads_leave_one_core_free(monkeypatch):
    from harness.measure import timing

    for cores, expected in ((1, 1), (2, 1), (16, 15)):
        monkeypatch.setattr(timing, "_cpu_count", lambda cores=cores: cores)
        assert timing.default_threads() == expected


_MALLOC_PROBE = """
import ctypes, sys
from harness.measure.timing import fix_allocator
libc = ctypes.CDLL("libc.so.6")
if not hasattr(libc, "mallinfo2"):
    print("skip"); sys.exit()
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
def mmapped_by(size):
    before = libc.mallinfo2().hblkhd
    p = libc.malloc(size)
    grew = libc.mallinfo2().hblkhd - before
    libc.free(ctypes.c_void_p(p))
    return grew
FIX = {fix}
if FIX:
    print(fix_allocator()["allocator"])
print(mmapped_by(4 * 2**20) > 0, mmapped_by(64 * 2**20) > 0)
"""


@pytest.mark.parametrize("fix", [False, True])
def test_fix_allocator_keeps_mid_sized_blocks_on_the_heap(fix):
    """In a fresh process glibc mmaps a 4 MiB block (fresh pages, faulted on every use);
    after ``fix_allocator`` it comes from the heap; 64 MiB stays mmapped either way."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _MALLOC_PROBE.format(fix=fix)],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    if out[0] == "skip":
        pytest.skip("not glibc >= 2.33 (no mallinfo2)")
    if fix:
        assert out[0].startswith("glibc fixed: mmap_threshold 33554432")
        assert out[1] == "False True"
    else:
        assert out[0] == "True True"


def test_fix_allocator_without_glibc_changes_nothing(monkeypatch):
    import ctypes

    from harness.measure import timing

    monkeypatch.setattr(timing, "_ALLOCATOR", {})

    def no_libc(*args, **kwargs):
        raise OSError("no C library here")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    assert timing.fix_allocator() == {"allocator": "default (no glibc mallopt)"}


def test_interleaved_block_sizes_given_skip_the_probe_call() -> None:
    """``numbers`` (an earlier window's block sizes): no probe call, each block that size."""
    from harness.measure.timing import time_interleaved

    calls = {"a": 0, "b": 0}

    def count(name):
        def fn():
            calls[name] += 1
        return fn

    t = time_interleaved({"a": count("a"), "b": count("b")}, warmup=0, min_run_time=1e-6,
                         min_rounds=3, max_rounds=3, numbers={"a": 5, "b": 2},
                         adapt_threads=False)
    assert t.rounds == 3 and calls == {"a": 15, "b": 6}
    assert t.results["a"].number_per_run == 5
    calls.update(a=0, b=0)
    time_interleaved({"a": count("a"), "b": count("b")}, warmup=0, min_run_time=1e-6,
                     min_rounds=3, max_rounds=3, adapt_threads=False)
    assert calls["a"] % 3 == 1  # one probe call, then 3 blocks of the probed size
