"""Peak memory of one piece of work: fresh subprocess on CPU, caching-allocator peak on CUDA.

CPU protocol (one fresh process per measured cell)::

    parent: measure_cpu_peak("pkg.module:function", {"n": 1024}, budget_bytes=..., timeout_s=...)
    child:  import pkg.module; work = function(**kwargs)   # allocates inputs, returns a callable
            baseline = current RSS (after imports and input allocation)
            reset the RSS high-water mark; work(); peak = high-water mark - baseline
            report one JSON line on a private pipe

The parent watches the child's RSS every few milliseconds and kills it once it exceeds
``baseline + budget_bytes`` (status ``"oom"``), or when the machine's available memory falls
below a safety floor, so a measurement can never push the machine into swap or the OOM killer.
Out of memory is a recorded result, never a crash of the caller.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import psutil

__all__ = [
    "DEFAULT_MIN_AVAILABLE_BYTES",
    "FORK_PRELOAD",
    "MemoryResult",
    "cuda_peak_memory",
    "fork_server",
    "is_oom_error",
    "measure_cpu_peak",
    "parse_target",
    "peak_memory",
]

Status = Literal["ok", "oom", "error", "timeout"]

#: The parent kills a measured child when the machine's available memory drops below this.
DEFAULT_MIN_AVAILABLE_BYTES = 1 << 30
#: How often the parent samples the child's RSS.
_POLL_S = 0.002
#: How often the parent checks the machine's available memory.
_SYSTEM_POLL_S = 0.02
_OOM_WORDS = (
    "out of memory",
    "not enough memory",
    "cannot allocate memory",
    "can't allocate memory",
    "failed to allocate",
    "defaultcpuallocator",
    "memoryerror",
    "std::bad_alloc",
)


@dataclass(frozen=True)
class MemoryResult:
    """Outcome of one memory measurement.

    ``peak_bytes`` is the peak above ``baseline_bytes`` while the work ran (None unless status is
    ``"ok"``). ``method`` says how the peak was read: ``"vmhwm"`` (kernel RSS high-water mark,
    reset before the work), ``"sampler"`` (1 ms RSS sampling plus ``ru_maxrss``) or ``"cuda"``.
    """

    status: Status
    peak_bytes: int | None
    baseline_bytes: int | None
    error: str | None = None
    method: str | None = None
    wall_s: float | None = None
    budget_bytes: int | None = None

    @property
    def ok(self) -> bool:
        """True when the work finished and a peak was measured."""
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for a results record."""
        return asdict(self)


def is_oom_error(err: BaseException) -> bool:
    """True for MemoryError and for allocator errors (e.g. torch's) that mention memory."""
    if isinstance(err, MemoryError):
        return True
    if type(err).__name__ == "OutOfMemoryError":
        return True
    if isinstance(err, RuntimeError):
        text = str(err).lower()
        return any(word in text for word in _OOM_WORDS)
    return False


def parse_target(target: str) -> tuple[str, str]:
    """Split ``"package.module:function"`` into its parts; ValueError on a malformed target."""
    if not isinstance(target, str) or target.count(":") != 1:
        raise ValueError(
            f"target must look like 'package.module:function', got {target!r}; "
            "name an importable module and a function in it separated by one colon"
        )
    module, func = (part.strip() for part in target.split(":"))
    parts = module.split(".")
    if not module or not all(p.isidentifier() for p in parts) or not func.isidentifier():
        raise ValueError(
            f"target {target!r}: module {module!r} and function {func!r} must be dotted Python "
            "identifiers, e.g. 'mypkg.workloads:build'"
        )
    return module, func


def _check_kwargs(kwargs: Mapping[str, Any]) -> str:
    if not isinstance(kwargs, Mapping):
        raise ValueError(f"kwargs must be a dict of keyword arguments, got {type(kwargs).__name__}")
    try:
        return json.dumps(dict(kwargs))
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"kwargs must be JSON-serialisable to reach the measuring subprocess ({err}); "
            "pass sizes, names and seeds, and build tensors inside the target function"
        ) from err


def _check_budget(budget_bytes: int | None) -> None:
    if budget_bytes is not None and (
        isinstance(budget_bytes, bool) or not isinstance(budget_bytes, int) or budget_bytes <= 0
    ):
        raise ValueError(f"budget_bytes must be a positive int or None, got {budget_bytes!r}")


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-limit:].strip()


class _Watch:
    """Parent-side state while a child runs: reads its pipe and enforces the limits."""

    def __init__(self, read_fd: int) -> None:
        self.read_fd = read_fd
        self.buffer = b""
        self.messages: list[dict[str, Any]] = []
        self.baseline: int | None = None

    def drain(self, timeout: float) -> bool:
        """Read whatever the child sent; False once the pipe is closed."""
        ready, _, _ = select.select([self.read_fd], [], [], timeout)
        if not ready:
            return True
        chunk = os.read(self.read_fd, 65536)
        if not chunk:
            return False
        self.buffer += chunk
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if not line.strip():
                continue
            message = json.loads(line)
            if message.get("event") == "ready":
                self.baseline = int(message["baseline_bytes"])
            self.messages.append(message)
        return True

    def result(self) -> dict[str, Any] | None:
        for message in reversed(self.messages):
            if message.get("event") == "result":
                return message
        return None


def _plugin_specs() -> list[str]:
    """Plugins (``MODULE[:ATTR]``) loaded here, which the child must load too."""
    if "harness.plugins" not in sys.modules:
        return []
    from harness.plugins import loaded_plugin_specs

    return loaded_plugin_specs()


def measure_cpu_peak(
    target: str,
    kwargs: Mapping[str, Any] | None = None,
    *,
    budget_bytes: int | None = None,
    timeout_s: float = 600.0,
    env: Mapping[str, str] | None = None,
    min_available_bytes: int = DEFAULT_MIN_AVAILABLE_BYTES,
    method: Literal["auto", "vmhwm", "sampler"] = "auto",
    launcher: Literal["spawn", "forkserver"] = "spawn",
) -> MemoryResult:
    """Peak RSS above baseline of ``work()`` run once in a fresh Python process.

    Args:
        target: ``"package.module:function"``; ``function(**kwargs)`` allocates the inputs and
            returns the zero-argument callable ``work`` to measure.
        kwargs: JSON-serialisable keyword arguments for ``function``.
        budget_bytes: kill the child (status ``"oom"``) once its RSS exceeds baseline + budget;
            None means no per-cell budget (the system floor still applies). The baseline is
            taken after ``function`` returns, so the inputs it allocates are not counted.
        timeout_s: kill the child (status ``"timeout"``) after this many seconds, setup included.
        env: extra environment variables for the child (e.g. ``{"OMP_NUM_THREADS": "1"}``).
        min_available_bytes: kill the child (status ``"oom"``) when the machine's available memory
            drops below this, whatever the budget.
        method: ``"auto"`` uses the kernel high-water mark when it can be reset, else sampling.
        launcher: ``"spawn"`` starts a new interpreter per call (imports included in its time);
            ``"forkserver"`` forks each child from a server process that has already imported
            torch and the target's module, which saves the import time of every cell. Either way
            each measurement runs in a process of its own with its own baseline and peak.
    """
    module, func = parse_target(target)
    kwargs_json = _check_kwargs(kwargs or {})
    _check_budget(budget_bytes)
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0 seconds, got {timeout_s!r}")
    if method not in ("auto", "vmhwm", "sampler"):
        raise ValueError(f"method must be 'auto', 'vmhwm' or 'sampler', got {method!r}")
    if launcher not in ("spawn", "forkserver"):
        raise ValueError(f"launcher must be 'spawn' or 'forkserver', got {launcher!r}")

    spec = {
        "target": f"{module}:{func}",
        "kwargs": json.loads(kwargs_json),
        "method": method,
        "sys_path": [os.getcwd() if p == "" else p for p in sys.path],
        "plugins": _plugin_specs(),
    }
    if launcher == "forkserver":
        return _measure_forked(spec, module, env or {}, budget_bytes, timeout_s,
                               min_available_bytes)
    return _measure_spawned(spec, env or {}, budget_bytes, timeout_s, min_available_bytes)


def _measure_spawned(spec: dict[str, Any], env: Mapping[str, str], budget_bytes: int | None,
                     timeout_s: float, min_available_bytes: int) -> MemoryResult:
    """Run the measurement ``spec`` in a new interpreter (``python -m
    harness.measure._memchild``, this checkout first on its path, ``env`` added) and watch it."""
    repo_root = str(Path(__file__).resolve().parents[2])
    child_env = dict(os.environ)
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (repo_root, child_env.get("PYTHONPATH", "")) if p
    )
    child_env.update(env)
    read_fd, write_fd = os.pipe()
    log_fd, log_name = tempfile.mkstemp(prefix="harness-memchild-", suffix=".log")
    log_path = Path(log_name)
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness.measure._memchild", str(write_fd)],
            stdin=subprocess.PIPE,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
            env=child_env,
            close_fds=True,
        )
    except BaseException:
        os.close(read_fd)
        log_path.unlink(missing_ok=True)
        raise
    finally:
        os.close(write_fd)
        os.close(log_fd)
    try:
        if proc.stdin is not None:
            try:
                proc.stdin.write(json.dumps(spec).encode())
                proc.stdin.close()
            except BrokenPipeError:  # the child died at start-up; its exit is reported below
                pass
        return _watch_child(
            proc, read_fd, log_path, budget_bytes, timeout_s, min_available_bytes, start
        )
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(read_fd)
        log_path.unlink(missing_ok=True)


class _ForkedChild:
    """A multiprocessing child seen through the part of the ``Popen`` API the watcher uses."""

    def __init__(self, process: Any) -> None:
        self.process = process
        self.pid = process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.exitcode

    def poll(self) -> int | None:
        return self.process.exitcode

    def kill(self) -> None:
        self.process.kill()

    def wait(self, timeout: float | None = None) -> int | None:
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired("memory child", timeout or 0.0)
        return self.process.exitcode


#: What the fork server always preloads: the child's own module, torch, and symbolic_shapes (the
#: first backward with an explicit gradient imports it and sympy under it, ~0.3 s per child).
FORK_PRELOAD = ("harness.measure._memchild", "torch", "torch.fx.experimental.symbolic_shapes")
_FORKSERVER: dict[str, Any] = {}


def fork_server(*modules: str, start: bool = False) -> Any:
    """This process's fork-server context (``multiprocessing``'s "forkserver"): memory children,
    and a process pool that asks for it, fork from one server process that has imported
    :data:`FORK_PRELOAD` and ``modules`` once. The first call fixes what the server preloads;
    later calls get the same server (a module it lacks is imported by each child). ``start``:
    launch the server now, so it imports while this process does other work (else at its first
    child). A missing module is skipped by the server."""
    import multiprocessing

    ctx = _FORKSERVER.get("ctx")
    if ctx is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(dict.fromkeys([*FORK_PRELOAD, *modules])))
        _FORKSERVER["ctx"] = ctx
    if start:
        from multiprocessing import forkserver

        forkserver.ensure_running()
    return ctx


def _measure_forked(
    spec: dict[str, Any],
    module: str,
    env: Mapping[str, str],
    budget_bytes: int | None,
    timeout_s: float,
    min_available_bytes: int,
) -> MemoryResult:
    from harness.measure import _memchild

    ctx = fork_server(module)
    read_conn, write_conn = ctx.Pipe(duplex=False)
    fd, log_name = tempfile.mkstemp(prefix="harness-memchild-", suffix=".log")
    os.close(fd)
    log_path = Path(log_name)
    start = time.monotonic()
    process = ctx.Process(
        target=_memchild.run_forked, args=({**spec, "env": dict(env)}, write_conn, str(log_path))
    )
    try:
        process.start()
        write_conn.close()
        child = _ForkedChild(process)
        return _watch_child(child, read_conn.fileno(), log_path, budget_bytes,  # type: ignore[arg-type]
                            timeout_s, min_available_bytes, start)
    finally:
        if process.is_alive():
            process.kill()
        process.join()
        read_conn.close()
        log_path.unlink(missing_ok=True)


def _kill(proc: subprocess.Popen[bytes], status: Status, reason: str, baseline: int | None,
          wall: float, budget_bytes: int | None) -> MemoryResult:
    """Kill the child for breaking a limit; the result says which (``status``, ``reason``)."""
    proc.kill()
    return MemoryResult(status, None, baseline, reason, wall_s=wall, budget_bytes=budget_bytes)


def _reap(proc: subprocess.Popen[bytes], watch: _Watch, open_pipe: bool) -> None:
    """Read what an exited (or reporting) child still has in the pipe, then wait for it (killing
    it if it lingers after its report)."""
    if watch.result() is None:  # exited: lines may still sit in the pipe
        deadline = time.monotonic() + 1.0
        while open_pipe and time.monotonic() < deadline:
            open_pipe = watch.drain(0.05)
    try:
        proc.wait(timeout=5.0)
    except subprocess.TimeoutExpired:  # reported, but lingers at shutdown
        proc.kill()
        proc.wait()


def _silent_exit(code: int | None, log_path: Path, baseline: int | None,
                 budget_bytes: int | None, wall: float) -> MemoryResult:
    """The result of a child that exited without a report: ``"oom"`` when SIGKILL ended it (the
    kernel's OOM killer, most likely), else ``"error"``; the tail of its output in the message."""
    log = _tail(log_path)
    if code == -9:
        return MemoryResult(
            "oom",
            None,
            baseline,
            f"child killed by SIGKILL (likely the kernel OOM killer); output: {log}",
            wall_s=wall,
            budget_bytes=budget_bytes,
        )
    return MemoryResult(
        "error",
        None,
        baseline,
        f"child exited with code {code} without a result; output: {log}",
        wall_s=wall,
        budget_bytes=budget_bytes,
    )


def _watch_child(
    proc: subprocess.Popen[bytes],
    read_fd: int,
    log_path: Path,
    budget_bytes: int | None,
    timeout_s: float,
    min_available_bytes: int,
    start: float,
) -> MemoryResult:
    """Poll the child until it reports, exits, or breaks a limit."""
    watch = _Watch(read_fd)
    ps = psutil.Process(proc.pid)
    last_system_check = 0.0
    open_pipe = True
    while True:
        if open_pipe:
            open_pipe = watch.drain(_POLL_S)
        else:
            time.sleep(_POLL_S)
        now = time.monotonic()
        if watch.result() is not None or proc.poll() is not None:
            break
        try:
            rss = ps.memory_info().rss
        except psutil.Error:
            rss = 0
        if (
            budget_bytes is not None
            and watch.baseline is not None
            and (rss - watch.baseline > budget_bytes)
        ):
            return _kill(proc, "oom", f"RSS {rss} B exceeded baseline {watch.baseline} B + budget "
                         f"{budget_bytes} B; killed by the parent", watch.baseline,
                         now - start, budget_bytes)
        if now - last_system_check >= _SYSTEM_POLL_S:
            last_system_check = now
            available = psutil.virtual_memory().available
            if available < min_available_bytes:
                return _kill(proc, "oom", f"machine's available memory fell to {available} B "
                             f"(< floor {min_available_bytes} B) at child RSS {rss} B; killed by "
                             "the parent", watch.baseline, now - start, budget_bytes)
        if now - start > timeout_s:
            return _kill(proc, "timeout", f"no result within timeout_s={timeout_s} s; killed by "
                         "the parent", watch.baseline, now - start, budget_bytes)
    _reap(proc, watch, open_pipe)
    wall = time.monotonic() - start
    message = watch.result()
    if message is None:
        return _silent_exit(proc.returncode, log_path, watch.baseline, budget_bytes, wall)
    status = message["status"]
    peak = message.get("peak_bytes")
    baseline = message.get("baseline_bytes")
    if status == "ok" and budget_bytes is not None and peak is not None and peak > budget_bytes:
        # The work finished between two polls but still went over its budget.
        return MemoryResult(
            "oom",
            None,
            baseline,
            f"peak {peak} B above baseline exceeded budget {budget_bytes} B",
            method=message.get("method"),
            wall_s=wall,
            budget_bytes=budget_bytes,
        )
    return MemoryResult(
        status, peak, baseline, message.get("error"), message.get("method"), wall, budget_bytes
    )


def _load_work(target: str, kwargs: Mapping[str, Any]) -> Callable[[], Any]:
    """Import ``target`` and call it to get the work callable (used in-process for CUDA)."""
    module_name, func_name = parse_target(target)
    func = getattr(importlib.import_module(module_name), func_name)
    work = func(**dict(kwargs))
    if not callable(work):
        raise ValueError(
            f"target {target!r} returned {type(work).__name__}, not a callable; it must return "
            "a zero-argument function that does the work"
        )
    return work


def cuda_peak_memory(fn: Callable[[], Any], device: str = "cuda") -> int:
    """Bytes of CUDA memory allocated above the pre-call level at the peak of ``fn()``.

    Uses ``torch.cuda.reset_peak_memory_stats`` and ``max_memory_allocated`` minus
    ``memory_allocated`` before the call. Raises torch's OutOfMemoryError unchanged.
    """
    import torch

    if not (isinstance(device, str) and device.startswith("cuda")):
        raise ValueError(
            f"cuda_peak_memory needs a CUDA device like 'cuda' or 'cuda:0', got {device!r}"
        )
    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for but CUDA is not available; use device='cpu'")
    dev = torch.device(device)
    gc.collect()
    torch.cuda.synchronize(dev)
    before = torch.cuda.memory_allocated(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    fn()
    torch.cuda.synchronize(dev)
    return max(0, int(torch.cuda.max_memory_allocated(dev)) - int(before))


def _cuda_peak(
    target: str, kwargs: Mapping[str, Any], device: str, budget_bytes: int | None
) -> MemoryResult:
    import torch

    start = time.monotonic()
    baseline: int | None = None
    peak = 0
    failure: tuple[Status, str] | None = None
    try:
        work = _load_work(target, kwargs)
        baseline = int(torch.cuda.memory_allocated(torch.device(device)))
        peak = cuda_peak_memory(work, device)
    except Exception as err:
        failure = ("oom" if is_oom_error(err) else "error", f"{type(err).__name__}: {err}")
    work = None  # release inputs before the next cell
    wall = time.monotonic() - start
    if failure is not None:
        gc.collect()
        torch.cuda.empty_cache()
        return MemoryResult(failure[0], None, baseline, failure[1], "cuda", wall, budget_bytes)
    if budget_bytes is not None and peak > budget_bytes:
        return MemoryResult(
            "oom",
            None,
            baseline,
            f"peak {peak} B above baseline exceeded budget {budget_bytes} B",
            "cuda",
            wall,
            budget_bytes,
        )
    return MemoryResult("ok", peak, baseline, None, "cuda", wall, budget_bytes)


def peak_memory(
    target: str,
    kwargs: Mapping[str, Any] | None = None,
    *,
    device: str = "cpu",
    budget_bytes: int | None = None,
    timeout_s: float = 600.0,
) -> MemoryResult:
    """Peak memory of ``target``'s work: subprocess RSS on CPU, allocator peak on CUDA.

    On CUDA the work runs in this process (after ``target(**kwargs)`` builds it); a peak above
    ``budget_bytes`` or an allocator out-of-memory error is reported as ``"oom"``, and
    ``timeout_s`` is not enforced.
    """
    _check_budget(budget_bytes)
    if not isinstance(device, str):
        raise ValueError(f"device must be a string like 'cpu' or 'cuda:0', got {device!r}")
    if device == "cpu":
        return measure_cpu_peak(target, kwargs, budget_bytes=budget_bytes, timeout_s=timeout_s)
    if device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        parse_target(target)
        _check_kwargs(kwargs or {})
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for but CUDA is not available; use 'cpu'")
        return _cuda_peak(target, kwargs or {}, device, budget_bytes)
    raise ValueError(f"device {device!r} is not supported; use 'cpu', 'cuda' or 'cuda:N'")
