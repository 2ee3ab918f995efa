"""Time limits for work that runs in this process (a cell, a check).

:func:`time_limit` raises :class:`TimeLimitExceeded` in the limited code once ``seconds`` have
passed. In the main thread it uses ``SIGALRM`` (interrupts sleeps and any Python code, and
native code as soon as it returns to Python); in another thread a watchdog raises the exception
asynchronously in that thread (Python code only). Work stuck inside one native call is stopped
only by killing its process: the pool and Ray executors do that for their workers.

``TimeLimitExceeded`` derives from ``BaseException`` so that the limited code's own
``except Exception`` handlers cannot swallow it; code that turns it into another exception
anyway (an import machinery wrapping whatever interrupted an import, say) still ends the block
with ``TimeLimitExceeded``, the other exception chained: once the limit fired, the work timed out.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import signal
import threading
import time
from collections.abc import Iterator

__all__ = ["TimeLimitExceeded", "grace_s", "time_limit"]


class TimeLimitExceeded(BaseException):
    """The limited work ran past its time limit."""

    def __init__(self, seconds: float = math.nan) -> None:
        super().__init__(f"no result within timeout_s={seconds:g} s; stopped")
        self.seconds = seconds


def grace_s(seconds: float) -> float:
    """Extra time a worker process gets past its limit before the driver kills it: the cell
    first gets the chance to stop itself and send back its own ``timeout`` record (the driver's
    clock starts before the worker's, which may still be importing on a loaded machine)."""
    return min(120.0, 10.0 + 0.1 * seconds)


def _usable(seconds: float | None) -> bool:
    return seconds is not None and math.isfinite(seconds) and seconds > 0


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`TimeLimitExceeded` inside the block after ``seconds`` (None: no limit)."""
    if not _usable(seconds):
        yield
        return
    assert seconds is not None
    if threading.current_thread() is threading.main_thread():
        with _alarm(seconds):
            yield
    else:
        with _watchdog(seconds):
            yield


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    fired = threading.Event()

    def fire(signum: int, frame: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        fired.set()
        raise TimeLimitExceeded(seconds)

    previous = signal.signal(signal.SIGALRM, fire)
    outer = signal.setitimer(signal.ITIMER_REAL, seconds)[0]
    started = time.monotonic()
    try:
        with _timed_out_if(fired, seconds):
            yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:  # an enclosing limit: give it back what is left of it (at least a tick)
            signal.setitimer(signal.ITIMER_REAL,
                             max(outer - (time.monotonic() - started), 1e-3))


@contextlib.contextmanager
def _timed_out_if(fired: threading.Event, seconds: float) -> Iterator[None]:
    """An exception that leaves the block after the limit ``fired`` is the time limit's (the
    limited code caught the interruption and raised something else): ``TimeLimitExceeded``."""
    try:
        yield
    except TimeLimitExceeded:
        raise
    except Exception as err:
        if fired.is_set():
            raise TimeLimitExceeded(seconds) from err
        raise


@contextlib.contextmanager
def _watchdog(seconds: float) -> Iterator[None]:
    target = threading.get_ident()
    done = threading.Event()
    fired = threading.Event()

    def watch() -> None:
        if not done.wait(seconds):
            fired.set()
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(target), ctypes.py_object(TimeLimitExceeded))

    thread = threading.Thread(target=watch, name="time-limit", daemon=True)
    thread.start()
    try:
        with _timed_out_if(fired, seconds):
            yield
    except TimeLimitExceeded as err:
        raise TimeLimitExceeded(seconds) from err.__cause__
    finally:
        done.set()
        thread.join()
        if fired.is_set():  # cancel an exception that has not been raised yet
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), None)
