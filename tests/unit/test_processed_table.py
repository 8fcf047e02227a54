"""The processed-events table against a plain ordered-dict model: never a key that was not added,
the most recent keys kept, the oldest dropped first, bounded by its capacity."""

from __future__ import annotations

import random
import threading
from collections import OrderedDict

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from streams.ledger_records import ledger_key
from streams.processed_table import DELETED, EMPTY, SLOT, ProcessedTable, _aligned, _Generation, digest

pytestmark = pytest.mark.timeout(60)

KEYS = [f"agent-{n % 3}/topic@0f1e2d3c/{n % 5}/{n}" for n in range(40)]
OPS = st.lists(
    st.tuples(st.sampled_from(["add", "add", "add", "discard", "known"]), st.sampled_from(KEYS)), max_size=120
)


def check_against_model(
    table: ProcessedTable, model: OrderedDict[str, None], recent: OrderedDict[str, None], universe: list[str]
) -> None:
    """``model`` holds the keys added and not discarded since, in the order of their last add;
    ``recent`` every key added, discarded or not, in the order of its last add."""
    known = {key for key in universe if table.known(*key.split("/", 1))}
    assert known <= model.keys(), f"reported keys that were not added: {known - model.keys()}"
    flags = [key in known for key in model]
    assert flags == sorted(flags), "a key is known while a later one was dropped: oldest go first"
    # The keys among the last half-capacity adds that were not discarded since (a discard frees room
    # but brings back no key dropped before it).
    newest = list(recent)[len(recent) - table.capacity // 2 :] if table.capacity // 2 else []
    assert {k for k in newest if k in model} <= known, "the most recent half of the capacity is kept"
    assert len(table) == len(known) <= table.capacity


def run_ops(capacity: int, ops: list[tuple[str, str]], universe: list[str]) -> None:
    table = ProcessedTable(capacity)
    model: OrderedDict[str, None] = OrderedDict()
    recent: OrderedDict[str, None] = OrderedDict()
    for op, key in ops:
        if op == "add":
            agent, event_id = key.split("/", 1)
            table.add(agent, [event_id])
            for seen in (model, recent):
                seen[key] = None
                seen.move_to_end(key)
        elif op == "discard":
            table.discard_keys([key])
            model.pop(key, None)
        check_against_model(table, model, recent, universe)


@settings(max_examples=300, deadline=None)
@given(capacity=st.integers(0, 12), ops=OPS)
# Keys dropped to make room, then newer keys discarded: the dropped ones stay dropped (the model's
# "most recent" once wrongly counted them again).
@example(
    capacity=2,
    ops=[("add", KEYS[2]), ("add", KEYS[0]), ("add", KEYS[1]), ("discard", KEYS[0]), ("discard", KEYS[1])],
)
@example(
    capacity=2,
    ops=[("add", KEYS[1]), ("add", KEYS[0]), ("discard", KEYS[0]), ("add", KEYS[0]), ("discard", KEYS[0])],
)
def test_matches_the_model(capacity: int, ops: list[tuple[str, str]]) -> None:
    run_ops(capacity, ops, KEYS)


def test_matches_the_model_on_a_long_seeded_sequence() -> None:
    rng = random.Random(20261130)
    universe = [f"agent/topic@ab/{n % 3}/{n}" for n in range(3000)]
    ops = [(rng.choice(["add"] * 8 + ["discard"]), rng.choice(universe)) for _ in range(6000)]
    table = ProcessedTable(1000)
    model: OrderedDict[str, None] = OrderedDict()
    recent: OrderedDict[str, None] = OrderedDict()
    for step, (op, key) in enumerate(ops):
        if op == "add":
            table.add_keys([key])
            for seen in (model, recent):
                seen[key] = None
                seen.move_to_end(key)
        else:
            table.discard_keys([key])
            model.pop(key, None)
        if step % 500 == 499:
            check_against_model(table, model, recent, universe)


def test_bounded_and_oldest_dropped_first() -> None:
    table = ProcessedTable(capacity=4)
    table.add("a", ["1", "2", "3", "4"])
    assert len(table) == 4 and all(table.known("a", k) for k in "1234")
    table.add("a", ["5"])  # the newer generation (3, 4) is full: the older one (1, 2) is dropped, reused
    assert not table.known("a", "1") and not table.known("a", "2")
    assert all(table.known("a", k) for k in "345") and len(table) == 3


def test_odd_capacity_stays_within_bounds() -> None:
    table = ProcessedTable(capacity=3)
    table.add("a", ["1", "2", "3", "4"])
    assert not table.known("a", "1") and table.known("a", "4") and len(table) <= 3


def test_a_key_added_again_is_dropped_last() -> None:
    table = ProcessedTable(capacity=4)
    table.add("a", ["1", "2", "3", "4", "1", "5", "6"])
    assert table.known("a", "1") and not table.known("a", "2")


def test_capacity_zero_keeps_nothing() -> None:
    table = ProcessedTable(capacity=0)
    table.add("a", ["1"])
    table.discard_keys(["a/1"])
    assert not table.known("a", "1") and len(table) == 0 and table.nbytes() == 0
    with pytest.raises(ValueError):
        ProcessedTable(capacity=-1)


def test_discarded_keys_are_forgotten_in_both_generations() -> None:
    table = ProcessedTable(capacity=10)
    table.add("a", [str(n) for n in range(8)])  # 0-4 in the older generation, 5-7 in the newer
    table.discard_keys(["a/1", "a/6", "a/never"])
    assert not table.known("a", "1") and not table.known("a", "6")
    assert len(table) == 6 and all(table.known("a", str(n)) for n in (0, 2, 3, 4, 5, 7))


def test_no_false_positives_among_many_keys() -> None:
    table = ProcessedTable(capacity=20_000)
    table.add("agent", [f"t@x/0/{n}" for n in range(50_000)])
    assert not any(table.known("agent", f"t@x/1/{n}") for n in range(50_000))
    assert not any(table.known("other", f"t@x/0/{n}") for n in range(50_000))
    assert all(table.known("agent", f"t@x/0/{n}") for n in range(40_000, 50_000))
    assert 10_000 <= len(table) <= 20_000


def test_memory_is_about_21_bytes_a_key_of_capacity() -> None:
    table = ProcessedTable(capacity=1_000_000)
    assert table.nbytes() < 22 * 1_000_000


# -- the slot layout ------------------------------------------------------------------------


def test_a_digest_is_never_a_marker() -> None:
    assert len(digest("a/1")) == SLOT and digest("a/1") == digest("a/1") != digest("a/2")
    assert {digest(k) for k in KEYS}.isdisjoint({EMPTY, DELETED})


def test_matches_across_two_slots_do_not_count() -> None:
    buf = bytearray(4 * SLOT)
    buf[0:SLOT] = b"\x01" * 8 + b"\x00" * 8  # ends in zero bytes, before an empty slot
    assert buf.find(EMPTY) == 8 and _aligned(buf, EMPTY, 8, len(buf)) == SLOT
    buf[SLOT : 2 * SLOT] = b"\x02" * SLOT
    straddling = b"\x00" * 8 + b"\x02" * 8
    assert buf.find(straddling) == 8 and _aligned(buf, straddling, 8, len(buf)) == -1


def test_probing_walks_past_full_windows_and_wraps_around() -> None:
    slots = 40  # more than two windows
    gen = _Generation(limit=slots - 1, slots=slots)
    digests = [bytes([n + 1]) * SLOT for n in range(slots - 1)]
    for d in digests:
        gen.insert(d, home=30)  # all in one cluster: slots 30 … 39, then 0 … 28
    assert [gen.find(d, home=30) for d in digests] == [(30 + n) % slots * SLOT for n in range(slots - 1)]
    assert gen.find(b"\x7f" * SLOT, home=30) == -1 and gen.find(b"\x7f" * SLOT, home=0) == -1
    gen.delete(gen.find(digests[0], home=30))
    assert gen.find(digests[5], home=30) == 35 * SLOT, "a deletion mark does not end the probe"
    gen.insert(b"\x7f" * SLOT, home=30)
    assert gen.find(b"\x7f" * SLOT, home=30) == 30 * SLOT, "a deleted slot is reused"
    gen.clear()
    assert gen.live == gen.used == 0 and gen.buf == bytearray(slots * SLOT)


def test_lookups_while_another_thread_adds_never_match_a_key_not_added() -> None:
    table = ProcessedTable(capacity=2000)  # small: many generation swaps
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            table.add("agent", [f"added/{n + i}" for i in range(100)])
            table.discard_keys([f"agent/added/{n}"])
            n += 100

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        false_positives = sum(table.known("agent", f"never/{n}") for n in range(100_000))
    finally:
        stop.set()
        thread.join()
    assert false_positives == 0


def test_keys_added_by_the_worker_are_echoes_once_while_a_reader_expects_them() -> None:
    table = ProcessedTable(100)
    table.add("a", ["e1"])
    assert not table.is_echo(b"a/e1")  # no reader: nothing kept
    table.expect_echoes = True
    table.add("a", ["e2", "e3"])
    assert table.is_echo(b"a/e2")
    assert not table.is_echo(b"a/e2")  # once
    assert not table.is_echo(b"b/e3")
    assert table.known("a", "e2") and table.known("a", "e3")
    table.stop_expecting_echoes()
    assert not table.is_echo(b"a/e3")


def test_echoes_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.processed_table as module

    monkeypatch.setattr(module, "ECHOES_MAX", 3)
    table = ProcessedTable(100)
    table.expect_echoes = True
    table.add("a", ["1", "2", "3"])
    table.add("a", ["4"])  # the reader fell behind: what it had not read back is forgotten
    assert not table.is_echo(b"a/1")
    assert table.is_echo(b"a/4")
    assert table.known("a", "1")


def test_a_table_of_capacity_zero_keeps_no_echoes() -> None:
    table = ProcessedTable(0)
    table.expect_echoes = True
    table.add("a", ["1"])
    assert not table.is_echo(b"a/1")


def test_a_key_is_the_same_whether_made_from_text_or_bytes_and_added_through_either_path() -> None:
    key = ledger_key("agent", "événement-1")
    assert key == "agent/événement-1".encode()
    assert digest(key) == digest("agent/événement-1")
    table = ProcessedTable(100)
    table.add_committed([key], [digest(key)])
    assert table.known("agent", "événement-1")
    assert table.known_digest(digest(ledger_key("agent", "événement-1")))
    table.add_keys([b"agent/from-the-ledger"])  # how the reader adds keys it read
    assert table.known("agent", "from-the-ledger")
    table.discard_keys([b"agent/from-the-ledger"])
    assert not table.known("agent", "from-the-ledger")
