"""Peak-memory measurement: known allocations in a fresh subprocess, budgets, failures."""

import pytest
import torch

from harness.measure.memory import (
    MemoryResult,
    cuda_peak_memory,
    is_oom_error,
    measure_cpu_peak,
    parse_target,
    peak_memory,
)
from harness.measure.stats import fit_power_law

MiB = 1 << 20
ALLOC = "memory_workloads:allocate_bytes"


def _close(measured: int | None, expected: int) -> bool:
    assert measured is not None
    return abs(measured - expected) <= max(0.1 * expected, 4 * MiB)


def test_known_allocation_is_measured_within_tolerance():
    result = measure_cpu_peak(ALLOC, {"n": 200 * MiB}, timeout_s=120)
    assert result.status == "ok", result.error
    assert _close(result.peak_bytes, 200 * MiB)
    assert result.baseline_bytes is not None and result.baseline_bytes > 0
    assert result.method in ("vmhwm", "sampler")
    assert result.to_dict()["peak_bytes"] == result.peak_bytes


def test_peak_scales_linearly_with_allocation():
    sizes = [32 * MiB, 64 * MiB, 128 * MiB]
    peaks = []
    for n in sizes:
        result = measure_cpu_peak(ALLOC, {"n": n}, timeout_s=120)
        assert result.status == "ok", result.error
        assert _close(result.peak_bytes, n)
        peaks.append(result.peak_bytes)
    assert fit_power_law(sizes, peaks).exponent == pytest.approx(1.0, abs=0.05)


def test_sampler_fallback_sees_the_allocation():
    result = measure_cpu_peak(ALLOC, {"n": 128 * MiB}, timeout_s=120, method="sampler")
    assert result.status == "ok", result.error
    assert result.method == "sampler"
    assert _close(result.peak_bytes, 128 * MiB)


@pytest.mark.slow
def test_torch_inputs_belong_to_the_baseline_not_the_peak():
    result = measure_cpu_peak(
        "memory_workloads:allocate_tensor",
        {"n": 64 * MiB, "input_bytes": 128 * MiB},
        timeout_s=180,
    )
    assert result.status == "ok", result.error
    assert _close(result.peak_bytes, 64 * MiB)
    assert result.baseline_bytes > 128 * MiB


def test_budget_kills_the_child_as_oom():
    result = measure_cpu_peak(ALLOC, {"n": 256 * MiB}, budget_bytes=16 * MiB, timeout_s=120)
    assert result.status == "oom"
    assert result.peak_bytes is None
    assert "budget" in result.error


@pytest.mark.parametrize(
    ("target", "kwargs", "status", "text"),
    [
        ("memory_workloads:raise_error", {"message": "bad shape"}, "error", "bad shape"),
        ("memory_workloads:raise_memory_error", {}, "oom", "MemoryError"),
        ("memory_workloads:fail_in_setup", {}, "error", "setup: KeyError"),
        ("harness.measure.no_such_module:f", {}, "error", "No module named"),
    ],
)
def test_failures_are_results_not_crashes(target, kwargs, status, text):
    result = measure_cpu_peak(target, kwargs, timeout_s=120)
    assert result.status == status
    assert text in result.error
    assert result.peak_bytes is None


def test_timeout_kills_the_child():
    result = measure_cpu_peak("memory_workloads:sleep", {"seconds": 60}, timeout_s=1.0)
    assert result.status == "timeout"
    assert result.wall_s < 30


def test_peak_memory_dispatches_to_the_cpu_subprocess():
    result = peak_memory(ALLOC, {"n": 32 * MiB}, device="cpu", timeout_s=120)
    assert isinstance(result, MemoryResult)
    assert result.status == "ok"
    assert _close(result.peak_bytes, 32 * MiB)


def test_bad_arguments_raise_value_errors():
    with pytest.raises(ValueError, match=r"package\.module:function"):
        measure_cpu_peak("no_colon_here", {})
    with pytest.raises(ValueError, match="identifiers"):
        parse_target("harness.measure:not a name")
    with pytest.raises(ValueError, match="JSON"):
        measure_cpu_peak(ALLOC, {"n": object()})
    with pytest.raises(ValueError, match="budget_bytes"):
        measure_cpu_peak(ALLOC, {"n": 1}, budget_bytes=-5)
    with pytest.raises(ValueError, match="timeout_s"):
        measure_cpu_peak(ALLOC, {"n": 1}, timeout_s=0)
    with pytest.raises(ValueError, match="device"):
        peak_memory(ALLOC, {"n": 1}, device="tpu")
    with pytest.raises(ValueError, match="CUDA"):
        cuda_peak_memory(lambda: None, device="cpu")


def test_oom_error_classification():
    assert is_oom_error(MemoryError())
    assert is_oom_error(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried ..."))
    assert is_oom_error(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not is_oom_error(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_oom_error(ValueError("out of memory"))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_peak_of_a_known_allocation():
    def work():
        x = torch.empty(64 * MiB, dtype=torch.uint8, device="cuda")
        x.fill_(1)

    peak = cuda_peak_memory(work, "cuda")
    assert 64 * MiB <= peak <= 64 * MiB + 4 * MiB


def test_forkserver_launcher_measures_like_a_fresh_interpreter():
    """Each fork-server child is its own process: same peak, budget and error handling."""
    forked = [measure_cpu_peak(ALLOC, {"n": n * MiB}, timeout_s=120, launcher="forkserver")
              for n in (64, 128)]
    assert [r.status for r in forked] == ["ok", "ok"], [r.error for r in forked]
    assert _close(forked[0].peak_bytes, 64 * MiB) and _close(forked[1].peak_bytes, 128 * MiB)
    oom = measure_cpu_peak(ALLOC, {"n": 256 * MiB}, budget_bytes=16 * MiB, timeout_s=120,
                           launcher="forkserver")
    assert oom.status == "oom" and "budget" in oom.error
    failed = measure_cpu_peak("memory_workloads:raise_error", {"message": "bad shape"},
                              launcher="forkserver")
    assert failed.status == "error" and "bad shape" in failed.error
    with pytest.raises(ValueError, match="launcher"):
        measure_cpu_peak(ALLOC, {"n": 1}, launcher="thread")
