"""Environment capture (what ran, where) and device resolution.

``capture_environment`` never raises for missing packages, a missing git checkout or an unreadable
``/proc``: such fields become None.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "available_devices", "capture_environment", "git_info",
           "peak_flops_by_dtype", "resolve_device"]

#: Distributions whose versions are recorded with every run.
PACKAGES = (
    "torch",
    "transformers",
    "datasets",
    "evaluate",
    "fairlearn",
    "pandas",
    "numpy",
    "scipy",
    "scikit-learn",
)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_info(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """``{"git_sha", "git_dirty"}`` of the checkout holding ``path`` (default: this package).

    Both are None outside a git checkout (or before the first commit). ``git_dirty`` counts
    modified, staged and untracked files.
    """
    root = Path(path) if path is not None else Path(__file__).resolve().parents[2]
    top = _git(root, "rev-parse", "--show-toplevel")
    sha = _git(root, "rev-parse", "HEAD") if top else None
    if not sha:
        return {"git_sha": None, "git_dirty": None}
    status = _git(root, "status", "--porcelain")
    return {"git_sha": sha, "git_dirty": None if status is None else bool(status)}


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def available_devices() -> list[str]:
    """Devices a suite can run on here: always ``"cpu"``, plus ``"cuda"`` when torch sees a GPU."""
    import torch

    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def resolve_device(device: str = "auto") -> str:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` into a concrete device string.

    ``"auto"`` picks CUDA when available, else CPU. Asking for CUDA without one (or for a GPU
    index that does not exist) raises ValueError.
    """
    if not isinstance(device, str):
        raise ValueError(
            f"device must be a string ('auto', 'cpu', 'cuda', 'cuda:N'), got {device!r}"
        )
    dev = device.strip().lower()
    if dev == "cpu":
        return "cpu"
    if dev not in ("auto", "cuda") and not (dev.startswith("cuda:") and dev[5:].isdigit()):
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    import torch

    has_cuda = torch.cuda.is_available()
    if dev == "auto":
        return "cuda" if has_cuda else "cpu"
    if not has_cuda:
        raise ValueError(
            f"device {device!r} asked for but CUDA is not available on this machine "
            "(torch.cuda.is_available() is False); use device='cpu' or 'auto'"
        )
    if dev.startswith("cuda:") and int(dev[5:]) >= torch.cuda.device_count():
        raise ValueError(
            f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s) "
            "visible; pick an index below that"
        )
    return dev


def capture_environment(device: str = "cpu") -> dict[str, Any]:
    """Describe the run's software and hardware for a results file.

    Keys: harness_version, git_sha, git_dirty, python, packages (name -> version or None),
    platform, machine, hostname, cpu_model, cpu_count, torch_threads, memory_total_bytes,
    device, device_name, cuda_version, cudnn_version, gpu_name, gpu_memory_bytes,
    peak_flops_per_s (dtype -> the measured matmul peak, :func:`peak_flops_by_dtype`).
    """
    import torch

    import harness

    dev = resolve_device(device)
    env: dict[str, Any] = {
        "harness_version": getattr(harness, "__version__", None),
        **git_info(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "packages": {name: _version(name) for name in PACKAGES},
        "platform": platform.platform(),
        "machine": platform.machine(),
        "hostname": socket.gethostname(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_total_bytes": None,
        "device": dev,
        "device_name": None,
        "cuda_version": None,
        "cudnn_version": None,
        "gpu_name": None,
        "gpu_memory_bytes": None,
    }
    try:
        import psutil

        env["memory_total_bytes"] = int(psutil.virtual_memory().total)
    except Exception:  # optional detail; never fail a run over it
        pass
    if dev.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(dev))
        env["cuda_version"] = torch.version.cuda
        env["cudnn_version"] = torch.backends.cudnn.version()
        env["gpu_name"] = props.name
        env["gpu_memory_bytes"] = int(props.total_memory)
        env["device_name"] = props.name
    else:
        env["device_name"] = env["cpu_model"]
    env["peak_flops_per_s"] = peak_flops_by_dtype(dev)
    return env


def peak_flops_by_dtype(device: str = "cpu") -> dict[str, Any]:
    """The measured matmul peak FLOP/s per dtype on ``device`` (CPU: float32 with the current
    torch threads, ``threads`` says how many; CUDA: float32, bfloat16, float16), the
    denominator of the throughput suite's ``<pass>_peak_fraction``. Never raises: a dtype that
    cannot be measured is None."""
    import torch

    from harness.measure.timing import peak_flops

    cuda = device.startswith("cuda")
    out: dict[str, Any] = {"threads": None if cuda else torch.get_num_threads(),
                           "method": "8192^2 matmul, best of 15" if cuda
                           else "calibration matmul (256^2), best of 15 blocks of 4"}
    for dtype in ("float32", "bfloat16", "float16") if cuda else ("float32",):
        try:
            out[dtype] = peak_flops(device, dtype)
        except Exception:  # optional detail; never fail a run over it
            out[dtype] = None
    return out
