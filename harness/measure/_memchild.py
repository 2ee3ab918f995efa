"""Child process of :func:`harness.measure.memory.measure_cpu_peak` (not a public API).

Run as ``python -m harness.measure._memchild WRITE_FD`` with a JSON spec on stdin
(``target``, ``kwargs``, ``method``, ``sys_path``, ``plugins``). Sends JSON lines on ``WRITE_FD``:
``{"event": "ready", "baseline_bytes": ...}`` once inputs are built, then one
``{"event": "result", "status": ..., "peak_bytes": ..., ...}``.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import resource
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

from harness.measure.memory import is_oom_error, parse_target

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
#: ru_maxrss unit: kilobytes on Linux, bytes on macOS.
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024
#: After a reset the high-water mark may exceed the current RSS by at most this (bookkeeping lag).
_HWM_RESET_SLACK = 1 << 20


def _status_kb(*keys: str) -> dict[str, int]:
    """Selected ``kB`` fields of /proc/self/status, read in one go."""
    found: dict[str, int] = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            name, _, value = line.partition(":")
            if name in keys:
                found[name] = int(value.split()[0]) * 1024
    return found


def current_rss() -> int:
    """Resident set size of this process in bytes."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except OSError:
        import psutil

        return int(psutil.Process().memory_info().rss)


def reset_hwm() -> bool:
    """Reset the kernel's RSS high-water mark (VmHWM); True when it now matches the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        values = _status_kb("VmHWM", "VmRSS")
    except OSError:
        return False
    if "VmHWM" not in values or "VmRSS" not in values:
        return False
    return values["VmHWM"] - values["VmRSS"] <= _HWM_RESET_SLACK


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_UNIT


class _Sampler(threading.Thread):
    """Samples RSS about every millisecond; the fallback when VmHWM cannot be reset."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = current_rss()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.001):
            self.peak = max(self.peak, current_rss())

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return max(self.peak, current_rss())


def _measure(work: Callable[[], Any], method: str) -> tuple[int, str]:
    """Run ``work`` once and return (peak RSS in bytes, method used)."""
    if method in ("auto", "vmhwm") and reset_hwm():
        work()
        return _status_kb("VmHWM")["VmHWM"], "vmhwm"
    if method == "vmhwm":
        raise RuntimeError("method='vmhwm' asked for but /proc/self/clear_refs cannot reset VmHWM")
    before = _maxrss()
    sampler = _Sampler()
    sampler.start()
    try:
        work()
    finally:
        sampled = sampler.stop()
    after = _maxrss()
    # ru_maxrss is a lifetime peak: it says something about the work only if the work raised it.
    return (max(sampled, after) if after > before else sampled), "sampler"


def _failure(err: BaseException, stage: str) -> dict[str, Any]:
    status = "oom" if is_oom_error(err) else "error"
    return {"status": status, "error": f"{stage}: {type(err).__name__}: {err}"}


def run(spec: dict[str, Any], out: TextIO) -> None:
    """Build the work from ``spec``, measure it and write the JSON lines to ``out``."""

    def send(**message: Any) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    for path in spec.get("sys_path", []):
        if path not in sys.path:
            sys.path.append(path)
    try:
        if spec.get("plugins"):
            from harness.plugins import load_plugins

            load_plugins(spec["plugins"])  # the same plugins as the parent process
        module_name, func_name = parse_target(spec["target"])
        func = getattr(importlib.import_module(module_name), func_name)
        # What exists now (the imported modules) is not the setup's garbage: the collection
        # before the baseline scans only what the setup made (0.14 s per child otherwise)
        gc.freeze()
        work = func(**spec.get("kwargs", {}))
        if not callable(work):
            raise TypeError(
                f"target {spec['target']!r} returned {type(work).__name__}, not a callable; it "
                "must return a zero-argument function that does the work"
            )
    except BaseException as err:  # reported to the parent, never raised
        send(event="result", peak_bytes=None, baseline_bytes=None, **_failure(err, "setup"))
        return
    gc.collect()
    baseline = current_rss()
    send(event="ready", baseline_bytes=baseline)
    try:
        peak, method = _measure(work, spec.get("method", "auto"))
    except BaseException as err:
        send(event="result", peak_bytes=None, baseline_bytes=baseline, **_failure(err, "work"))
        return
    send(
        event="result",
        status="ok",
        peak_bytes=max(0, peak - baseline),
        baseline_bytes=baseline,
        error=None,
        method=method,
    )


def run_forked(spec: dict[str, Any], write_conn: Any, log_path: str) -> None:
    """Entry point of a fork-server child: output to ``log_path``, results on ``write_conn``."""
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    os.environ.update(spec.get("env") or {})
    with os.fdopen(os.dup(write_conn.fileno()), "w") as out:
        write_conn.close()
        run(spec, out)


def main() -> None:
    """Entry point: ``python -m harness.measure._memchild WRITE_FD`` with the spec on stdin."""
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        raise SystemExit(
            "usage: python -m harness.measure._memchild WRITE_FD  (spec JSON on stdin)"
        )
    spec = json.loads(sys.stdin.read())
    with os.fdopen(int(sys.argv[1]), "w") as out:
        run(spec, out)


if __name__ == "__main__":
    main()
