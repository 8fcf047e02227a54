"""An event loop that stands still is logged, with the code it stood in (a stall shows as latency).

Every agent of a worker runs on one event loop: a handler, a library or Vigil itself that blocks it
(a synchronous call, a long computation) holds up every event of every agent meanwhile, and the
only trace is a latency spike. A thread of its own asks the loop to run a tiny callback every
:data:`BEAT_S`; when the callback has not run :data:`STALL_MS` later, the thread takes the loop
thread's stack, and once the loop answers, logs how long it stood still and where.

A stall of the whole process (the machine's CPU taken by others) also shows: then the stack is
wherever the loop happened to be, and the thread's own wait was late as well, which the log says.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable

log = logging.getLogger(__name__)

#: How often the loop is asked to answer.
BEAT_S = 0.05
#: A loop that has not answered after this long is logged.
STALL_MS = 100.0
#: Innermost frames of the loop thread's stack put in the log line.
STACK_FRAMES = 12


class LoopWatch:
    """Watches one event loop from a daemon thread; :meth:`start` from the loop's own thread."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        stall_ms: float = STALL_MS,
        beat_s: float = BEAT_S,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.loop = loop
        self.stall_s = stall_ms / 1000
        self.beat_s = beat_s
        self._clock = clock
        self._answered = threading.Event()
        self._stop = threading.Event()
        self._loop_thread: int | None = None
        self._thread: threading.Thread | None = None
        #: Stalls logged so far.
        self.stalls = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._loop_thread = threading.get_ident()
        self._thread = threading.Thread(target=self._run, name="vigil-loop-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _answer(self) -> None:
        self._answered.set()

    def _run(self) -> None:
        while not self._stop.wait(self.beat_s):
            self._answered.clear()
            asked = self._clock()
            try:
                self.loop.call_soon_threadsafe(self._answer)
            except RuntimeError:  # the loop closed
                return
            if self._answered.wait(self.stall_s):
                continue
            seen = self._clock()
            stack = self._loop_stack()
            while not self._answered.wait(self.beat_s):
                if self._stop.is_set() or self.loop.is_closed():
                    return
            self.stalls += 1
            self.report(self._clock() - asked, seen - asked, stack)

    def _loop_stack(self) -> list[str]:
        frame = sys._current_frames().get(self._loop_thread or 0)
        if frame is None:
            return []
        return traceback.format_stack(frame)[-STACK_FRAMES:]

    def report(self, stood_s: float, seen_after_s: float, stack: list[str]) -> None:
        late = seen_after_s - self.stall_s
        log.warning(
            "the event loop stood still for %.0f ms: every agent of this worker waited meanwhile%s; "
            "the loop's thread was in (innermost last):\n%s",
            stood_s * 1000,
            f" (this watch itself ran {late * 1000:.0f} ms late: the process got no CPU)"
            if late >= self.stall_s
            else "",
            "".join(stack).rstrip() or "  (no stack)",
        )
