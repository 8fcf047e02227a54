"""A stop that takes long is logged, with where every thread is (what holds the process).

A worker told to stop (SIGTERM, Ctrl-C, a crash) finishes the batches it was handed, commits their
offsets, closes its consumers and producers and then exits. Each of those waits on the broker or
Postgres; one that does not answer holds the stop, and a supervisor (``vigil up``, Kubernetes) then
kills the process after its grace period with nothing in the log to say what held it. Once a stop
has taken :data:`REPORT_AFTER_S`, a daemon thread logs every thread's innermost frames, and again
every :data:`REPORT_EVERY_S` while the process lives on: the waits at exit (threads Python joins
before it exits) show too.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable

from agents.loop_watch import format_threads, thread_frames
from agents.named_thread import NamedThread

log = logging.getLogger(__name__)

#: Seconds into a stop after which the threads' stacks are logged.
REPORT_AFTER_S = 10.0
#: Seconds between two reports while the process has not exited.
REPORT_EVERY_S = 10.0
#: Innermost frames logged for each thread.
FRAMES = 8


def thread_stacks(frames: int = FRAMES, *, skip: int | None = None) -> str:
    """Every live thread by name (daemon or not) with its innermost ``frames`` frames, innermost last;
    ``skip``: a thread ident left out (the caller's own)."""
    return format_threads(thread_frames(sys._current_frames(), frames, skip={skip}))


def _awaits(coro: object) -> list[str]:
    """Where a coroutine waits: each frame down its chain of awaits, outermost first."""
    where = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            where.append(f"{frame.f_code.co_qualname} ({frame.f_code.co_filename}:{frame.f_lineno})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return where


def task_stacks(loop: asyncio.AbstractEventLoop, frames: int = FRAMES) -> str:
    """The loop's pending tasks with where each waits (innermost ``frames`` awaits, innermost last).

    Read from another thread while the loop runs: a diagnostic, retried when the set of tasks
    changes under it."""
    for _ in range(3):
        try:
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            break
        except RuntimeError:
            continue
    else:
        return "  (the tasks changed while being read)"
    lines = []
    for task in tasks:
        chain = _awaits(task.get_coro())[-frames:]
        lines.append(f"  [{task.get_name()}] " + " -> ".join(chain))
    return "\n".join(sorted(lines)) or "  (none)"


class StopWatch:
    """Arms once (:meth:`arm`, from any thread); reports from a daemon thread of its own."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        report_after_s: float = REPORT_AFTER_S,
        report_every_s: float = REPORT_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        #: The event loop whose pending tasks are reported too (while it is open).
        self.loop = loop
        self.report_after_s = report_after_s
        self.report_every_s = report_every_s
        self._clock = clock
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._disarmed = threading.Event()
        self.started_at: float | None = None
        #: Reports logged so far.
        self.reports = 0

    def arm(self, reason: str) -> None:
        """The stop began (``reason``: what began it); a second call changes nothing."""
        with self._lock:
            if self._thread is not None:
                return
            self.started_at = self._clock()
            self._thread = NamedThread(target=self._run, args=(reason,), name="vigil-stop-watch", daemon=True)
            self._thread.start()

    def disarm(self) -> None:
        """No more reports (the process exits on its own anyway; tests stop the thread with it)."""
        self._disarmed.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self, reason: str) -> None:
        wait = self.report_after_s
        while not self._disarmed.wait(wait):
            self.report(reason)
            wait = self.report_every_s

    def report(self, reason: str) -> None:
        assert self.started_at is not None
        self.reports += 1
        loop = self.loop
        if loop is None:
            tasks = ""
        elif loop.is_closed():
            tasks = "\nits event loop is closed"
        else:
            tasks = "\nits event loop's pending tasks wait in:\n" + task_stacks(loop)
        log.warning(
            "the worker has been stopping for %.0f s (%s) and has not exited; its threads are in "
            "(innermost last):\n%s%s",
            self._clock() - self.started_at,
            reason,
            thread_stacks(skip=threading.get_ident()),
            tasks,
        )
