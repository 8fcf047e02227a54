"""Ids derived from an input event (agents.context.derived_id) are uuid5's, made faster."""

from __future__ import annotations

import pickle
import uuid

from agents.context import _OUTPUT_NAMESPACE, derived_id


def test_derived_ids_are_uuid5_of_the_namespace() -> None:
    for i, event_id in enumerate(["e1", "ba1234-5", "é/✓", "", "x" * 300]):
        for kind in ("outbox", "wakeup"):
            made = derived_id(event_id, "agent.a-1", kind, i)
            expected = uuid.uuid5(_OUTPUT_NAMESPACE, f"agent.a-1\x1f{event_id}\x1f{kind}\x1f{i}")
            assert made == expected
            assert str(made) == str(expected) and made.hex == expected.hex and hash(made) == hash(expected)
            assert made.version == 5 and made.variant == uuid.RFC_4122
            assert made.is_safe == expected.is_safe
            assert pickle.loads(pickle.dumps(made)) == expected


def test_derived_ids_are_stable_and_distinct() -> None:
    assert derived_id("e", "a", "outbox", 0) == derived_id("e", "a", "outbox", 0)
    assert len({derived_id("e", "a", "outbox", n) for n in range(100)}) == 100
