"""An event loop that stands still is logged, with the code it stood in (a stall shows as latency).

Every agent of a worker runs on one event loop: a handler, a library or Vigil itself that blocks it
(a synchronous call, a long computation) holds up every event of every agent meanwhile, and the
only trace is a latency spike. A thread of its own asks the loop to run a tiny callback every
:data:`BEAT_S`; when the callback has not run :data:`STALL_MS` later, the thread takes the loop
thread's stack, and once the loop answers, logs how long it stood still and where. A loop that
stands still for :data:`STILL_S` is logged while it stands, with where it is then: a handler that
never returns would otherwise leave no trace at all.

A stall of the whole process (the machine's CPU taken by others) also shows: then the stack is
wherever the loop happened to be, and the thread's own wait was late as well, which the log says.
When the loop's thread runs no Python code of its own (no deeper than where it waits when idle: in
the loop's C code, a C function, or waiting for the interpreter lock that another thread holds),
the log says so, and lists where the other threads were instead.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

from agents.named_thread import NamedThread

log = logging.getLogger(__name__)

#: How often the loop is asked to answer.
BEAT_S = 0.05
#: A loop that has not answered after this long is logged.
STALL_MS = 100.0
#: Innermost frames of the loop thread's stack put in the log line.
STACK_FRAMES = 12
#: Innermost frames of each other thread's stack, when the loop's thread ran no Python code.
OTHER_FRAMES = 4
#: A loop still standing still after this many seconds is logged while it stands (and again every
#: as many seconds): a handler that never returns (a deadlock, a call without a timeout) would
#: otherwise leave no trace, as the stall is logged when the loop answers.
STILL_S = 10.0
#: Every how many answered beats the loop thread's idle depth is looked at again (walking its frames
#: makes frame objects for the hot path's frames, a cost not worth paying 20 times a second).
DEPTH_EVERY = 20


def _depth(frame: FrameType | None) -> int:
    depth = 0
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth


@dataclass(frozen=True)
class Sample:
    """Where the threads were while the loop stood still."""

    #: The loop thread's innermost frames (formatted, innermost last).
    stack: list[str]
    #: Whether the loop thread was no deeper than when it waits idle: it ran no Python code.
    outside_python: bool
    #: Other threads by name, with their innermost frames (when ``outside_python``).
    others: list[tuple[str, list[str]]]


def thread_frames(
    frames: Mapping[int, FrameType], depth: int, *, skip: Collection[int | None] = ()
) -> list[tuple[str, list[str]]]:
    """Each thread of ``frames`` (``sys._current_frames()``) but those in ``skip``, named (", daemon"
    added for a daemon thread), with its innermost ``depth`` frames formatted, innermost last."""
    names = {t.ident: (t.name, t.daemon) for t in threading.enumerate()}
    threads = []
    for ident, frame in frames.items():
        if ident in skip:
            continue
        name, daemon = names.get(ident, (str(ident), True))
        threads.append((f"{name}, daemon" if daemon else name, traceback.format_stack(frame)[-depth:]))
    return threads


def format_threads(threads: Sequence[tuple[str, Sequence[str]]]) -> str:
    return "\n".join(f"  [{name}]\n{''.join(stack).rstrip()}" for name, stack in threads)


class LoopWatch:
    """Watches one event loop from a daemon thread; :meth:`start` from the loop's own thread."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        stall_ms: float = STALL_MS,
        beat_s: float = BEAT_S,
        still_s: float = STILL_S,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.loop = loop
        self.stall_s = stall_ms / 1000
        self.beat_s = beat_s
        self.still_s = still_s
        self._clock = clock
        self._answered = threading.Event()
        self._stop = threading.Event()
        self._loop_thread: int | None = None
        self._thread: threading.Thread | None = None
        #: The least depth of the loop thread's stack seen when it answered: where it waits idle.
        self._idle_depth: int | None = None
        #: Stalls logged so far.
        self.stalls = 0
        #: Reports of a stall made while it went on (:data:`STILL_S`).
        self.still_reports = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._loop_thread = threading.get_ident()
        self._thread = NamedThread(target=self._run, name="vigil-loop-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _answer(self) -> None:
        self._answered.set()

    def _run(self) -> None:
        answered = 0
        while not self._stop.wait(self.beat_s):
            self._answered.clear()
            asked = self._clock()
            try:
                self.loop.call_soon_threadsafe(self._answer)
            except RuntimeError:  # the loop closed
                return
            if self._answered.wait(self.stall_s):
                # Every beat of the first second (the first may be answered while the loop is busy,
                # and a stall soon after would be judged by that depth), then every DEPTH_EVERY.
                if answered < DEPTH_EVERY or answered % DEPTH_EVERY == 0:
                    self._learn_idle_depth()
                answered += 1
                continue
            seen = self._clock()
            sample = self.sample()
            next_still = asked + self.still_s
            while not self._answered.wait(self.beat_s):
                if self._stop.is_set() or self.loop.is_closed():
                    return
                if self._clock() >= next_still:
                    self.report_still(self._clock() - asked, self.sample())
                    next_still += self.still_s
            self.stalls += 1
            self.report(self._clock() - asked, seen - asked, sample)

    def _learn_idle_depth(self) -> None:
        depth = _depth(sys._current_frames().get(self._loop_thread or 0))
        if depth and (self._idle_depth is None or depth < self._idle_depth):
            self._idle_depth = depth

    def sample(self) -> Sample:
        frames = sys._current_frames()
        frame = frames.get(self._loop_thread or 0)
        stack = traceback.format_stack(frame)[-STACK_FRAMES:] if frame is not None else []
        outside = frame is not None and self._idle_depth is not None and _depth(frame) <= self._idle_depth
        others = (
            thread_frames(frames, OTHER_FRAMES, skip={self._loop_thread, threading.get_ident()})
            if outside
            else []
        )
        return Sample(stack, outside, others)

    def report_still(self, stood_s: float, sample: Sample) -> None:
        """The loop has not answered for ``stood_s`` and still does not."""
        self.still_reports += 1
        log.warning(
            "the event loop has stood still for %.0f s and still does: every agent of this worker waits "
            "(a handler that blocks: a synchronous call without a timeout, a lock); %s",
            stood_s,
            _where(sample),
        )

    def report(self, stood_s: float, seen_after_s: float, sample: Sample) -> None:
        late = seen_after_s - self.stall_s
        where = _where(sample)
        log.warning(
            "the event loop stood still for %.0f ms: every agent of this worker waited meanwhile%s; %s",
            stood_s * 1000,
            f" (this watch itself ran {late * 1000:.0f} ms late: the process got no CPU)"
            if late >= self.stall_s
            else "",
            where,
        )


def _where(sample: Sample) -> str:
    stack = "".join(sample.stack).rstrip() or "  (no stack)"
    if sample.outside_python:
        # The loop's own stack too: the idle depth is a heuristic, and a wrong one must not hide it.
        return (
            "the loop's thread ran no Python code of its own (it was in C: the event loop, a C "
            "function it called, or waiting for the interpreter lock while another thread held "
            "it); the other threads were in:\n"
            + format_threads(sample.others)
            + "\nand the loop's thread in (innermost last):\n"
            + stack
        )
    return "the loop's thread was in (innermost last):\n" + stack
