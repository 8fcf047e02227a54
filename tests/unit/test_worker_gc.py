"""The worker settles the garbage collector once it is up (a full collection stalled the loop)."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator

import pytest

from agents.gc_watch import SlowCollections
from agents.worker import YOUNG_GC_THRESHOLD, settle_garbage_collector


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    callbacks = list(gc.callbacks)
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
        gc.callbacks[:] = callbacks


def test_start_up_objects_are_frozen_and_young_collections_rarer(restored_gc: None) -> None:
    _, older, oldest = gc.get_threshold()
    settle_garbage_collector()
    assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, older, oldest)


def test_what_start_up_keeps_is_not_walked_again(restored_gc: None) -> None:
    kept = [[n] for n in range(10)]  # containers start-up made and keeps
    assert any(o is kept for o in gc.get_objects())
    settle_garbage_collector()
    frozen = gc.get_freeze_count()
    assert frozen >= len(kept)
    gc.collect()
    assert gc.get_freeze_count() == frozen
    assert not any(o is kept for o in gc.get_objects())  # the permanent generation is not walked


def test_a_slow_collection_is_logged_and_a_quick_one_is_not(caplog: pytest.LogCaptureFixture) -> None:
    times = iter([10.0, 10.004, 20.0, 20.120])
    watch = SlowCollections(threshold_ms=50, clock=lambda: next(times))
    with caplog.at_level(logging.WARNING, logger="agents.gc_watch"):
        watch("stop", {"generation": 0, "collected": 1})  # a stop without its start: ignored
        watch("start", {"generation": 0})
        watch("stop", {"generation": 0, "collected": 5})
        watch("start", {"generation": 2})
        watch("stop", {"generation": 2, "collected": 4000})
    assert watch.slow == 1
    assert [r.getMessage() for r in caplog.records] == [
        "garbage collection of generation 2 took 120 ms (4000 objects freed): the worker's agents stood "
        "still meanwhile"
    ]


def test_settling_twice_installs_one_watch(restored_gc: None) -> None:
    settle_garbage_collector()
    settle_garbage_collector()
    assert sum(isinstance(c, SlowCollections) for c in gc.callbacks) == 1
