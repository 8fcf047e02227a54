"""The worker settles the garbage collector once it is up (a full collection stalled the loop)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from agents.worker import YOUNG_GC_THRESHOLD, settle_garbage_collector


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


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
