"""Garbage collections long enough to stall the event loop are logged (a stall shows as latency).

The worker freezes what start-up made and makes young collections rare
(:func:`agents.worker.settle_garbage_collector`), so a collection should take a few milliseconds.
One that takes longer stops every agent of the worker meanwhile: the log line says which generation
and for how long, so a latency spike can be matched to it (or ruled out).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: Collections at least this long are logged.
SLOW_GC_MS = 50.0


class SlowCollections:
    """A ``gc.callbacks`` entry: times each collection from its ``start`` to its ``stop``."""

    def __init__(
        self, threshold_ms: float = SLOW_GC_MS, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.threshold_ms = threshold_ms
        self._clock = clock
        self._started: float | None = None
        #: Collections that took at least ``threshold_ms``.
        self.slow = 0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = self._clock()
            return
        if self._started is None:
            return
        took_ms = (self._clock() - self._started) * 1000
        self._started = None
        if took_ms >= self.threshold_ms:
            self.slow += 1
            log.warning(
                "garbage collection of generation %d took %.0f ms (%d objects freed): the worker's "
                "agents stood still meanwhile",
                info.get("generation", -1),
                took_ms,
                info.get("collected", 0),
            )
