"""Cron, interval and one-shot maths, across DST changes; misfire and overlap decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import islice

import pytest

from schemas.errors import ConfigurationError
from streams.schedule_maths import (
    Kind,
    Misfire,
    Overlap,
    Spec,
    State,
    check_cron,
    decide,
    next_wall_time,
    parse_at,
    parse_duration,
    slots_after,
    tick_event_id,
)

LONDON = "Europe/London"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def take(spec: Spec, after: datetime, n: int) -> list[datetime]:
    return list(islice(slots_after(spec, after), n))


def test_daily_cron_in_a_zone_follows_local_time_across_both_changes() -> None:
    spring = take(Spec(Kind.CRON, "0 9 * * *", LONDON), utc(2024, 3, 30, 0), 3)
    assert spring == [utc(2024, 3, 30, 9), utc(2024, 3, 31, 8), utc(2024, 4, 1, 8)]
    autumn = take(Spec(Kind.CRON, "0 9 * * *", LONDON), utc(2024, 10, 26, 0), 3)
    assert autumn == [utc(2024, 10, 26, 8), utc(2024, 10, 27, 9), utc(2024, 10, 28, 9)]


def test_a_repeated_wall_time_fires_once_at_its_first_occurrence() -> None:
    # 01:30 happens twice in London on 2024-10-27 (00:30 UTC in BST, 01:30 UTC in GMT).
    slots = take(Spec(Kind.CRON, "30 1 * * *", LONDON), utc(2024, 10, 26, 12), 3)
    assert slots == [utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1, 30), utc(2024, 10, 29, 1, 30)]


def test_a_missing_wall_time_fires_once_right_after_the_gap() -> None:
    # 01:30 does not exist in London on 2024-03-31: clocks go from 01:00 GMT to 02:00 BST (01:00 UTC).
    slots = take(Spec(Kind.CRON, "30 1 * * *", LONDON), utc(2024, 3, 30, 12), 3)
    assert slots == [utc(2024, 3, 31, 1), utc(2024, 4, 1, 0, 30), utc(2024, 4, 2, 0, 30)]


def test_half_hourly_cron_over_the_spring_gap_has_no_duplicates_and_stays_ordered() -> None:
    slots = take(Spec(Kind.CRON, "*/30 * * * *", LONDON), utc(2024, 3, 30, 23, 59), 5)
    assert slots == [
        utc(2024, 3, 31, 0, 0),  # 00:00 GMT
        utc(2024, 3, 31, 0, 30),  # 00:30 GMT
        utc(2024, 3, 31, 1, 0),  # 01:00 and 01:30 do not exist: once, at 02:00 BST
        utc(2024, 3, 31, 1, 30),  # 02:30 BST
        utc(2024, 3, 31, 2, 0),
    ]


def test_starting_inside_the_repeated_hour_never_goes_back() -> None:
    after = utc(2024, 10, 27, 1, 10)  # 01:10 GMT, the second 01:10
    slots = take(Spec(Kind.CRON, "*/30 * * * *", LONDON), after, 2)
    assert all(s > after for s in slots)
    assert slots == sorted(set(slots))


def test_six_fields_means_seconds_last() -> None:
    slots = take(Spec(Kind.CRON, "* * * * * */15"), utc(2024, 1, 1, 0, 0, 1), 3)
    assert slots == [utc(2024, 1, 1, 0, 0, 15), utc(2024, 1, 1, 0, 0, 30), utc(2024, 1, 1, 0, 0, 45)]


@pytest.mark.parametrize("bad", ["* * * *", "* * * * * * *", "61 * * * *", "nonsense"])
def test_bad_cron_is_refused_with_a_reason(bad: str) -> None:
    with pytest.raises(ConfigurationError):
        check_cron(bad)


def test_every_is_anchored() -> None:
    spec = Spec(Kind.EVERY, "30s", anchor=utc(2024, 1, 1, 0, 0, 5))
    assert take(spec, utc(2024, 1, 1, 0, 1), 2) == [utc(2024, 1, 1, 0, 1, 5), utc(2024, 1, 1, 0, 1, 35)]


def test_durations() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("500ms") == timedelta(milliseconds=500)
    assert parse_duration("2") == timedelta(seconds=2)
    for bad in ("", "0s", "5x", "s5", "-1s"):
        with pytest.raises(ConfigurationError):
            parse_duration(bad)


def test_at_and_wall_clock_deadlines() -> None:
    assert parse_at("2030-01-31T09:00", LONDON) == utc(2030, 1, 31, 9)
    assert parse_at("2030-07-31T09:00", LONDON) == utc(2030, 7, 31, 8)
    now = utc(2024, 7, 1, 12)
    assert parse_at("+10m", now=now) == utc(2024, 7, 1, 12, 10)
    assert next_wall_time("03:00", LONDON, now) == utc(2024, 7, 2, 2)
    assert next_wall_time("13:30", LONDON, now) == utc(2024, 7, 1, 12, 30)


def _state(**kw: object) -> State:
    base: dict[str, object] = {
        "spec": Spec(Kind.EVERY, "1s", anchor=utc(2024, 1, 1)),
        "overlap": Overlap.ALLOW,
        "misfire": Misfire.RUN_ONCE,
        "catch_up_window": timedelta(seconds=5),
        "last_slot": utc(2024, 1, 1, 0, 0, 0),
        "next_fire_at": utc(2024, 1, 1, 0, 0, 1),
        "in_flight": False,
    }
    base.update(kw)
    return State(**base)  # type: ignore[arg-type]


GRACE = timedelta(seconds=1)
NOW = utc(2024, 1, 1, 0, 0, 10, 500000)  # slots 1..10 due; 10 is on time, 1..9 missed


def test_misfire_run_once_fires_the_latest_missed_slot_and_the_on_time_one() -> None:
    d = decide(_state(), NOW, GRACE)
    assert d.fire == [utc(2024, 1, 1, 0, 0, 9), utc(2024, 1, 1, 0, 0, 10)]
    assert [s for s, why in d.skipped if why == "missed"] == [utc(2024, 1, 1, 0, 0, i) for i in range(1, 9)]
    assert d.last_slot == utc(2024, 1, 1, 0, 0, 10)
    assert d.next_fire_at == utc(2024, 1, 1, 0, 0, 11)


def test_misfire_skip_fires_only_the_on_time_slot() -> None:
    d = decide(_state(misfire=Misfire.SKIP), NOW, GRACE)
    assert d.fire == [utc(2024, 1, 1, 0, 0, 10)]
    assert len(d.skipped) == 9


def test_misfire_catch_up_fires_the_missed_slots_within_the_window() -> None:
    d = decide(_state(misfire=Misfire.CATCH_UP), NOW, GRACE)
    assert d.fire == [utc(2024, 1, 1, 0, 0, i) for i in range(6, 11)]
    assert [s for s, _ in d.skipped] == [utc(2024, 1, 1, 0, 0, i) for i in range(1, 6)]


def test_overlap_skip_records_the_slot_while_in_flight() -> None:
    now = utc(2024, 1, 1, 0, 0, 1, 100000)
    d = decide(_state(overlap=Overlap.SKIP, in_flight=True), now, GRACE)
    assert d.fire == []
    assert d.skipped == [(utc(2024, 1, 1, 0, 0, 1), "overlap")]
    d = decide(_state(overlap=Overlap.SKIP, in_flight=False), now, GRACE)
    assert d.fire == [utc(2024, 1, 1, 0, 0, 1)]


def test_overlap_buffer_one_holds_one_slot_and_fires_it_when_free() -> None:
    now = utc(2024, 1, 1, 0, 0, 2, 100000)
    d = decide(_state(overlap=Overlap.BUFFER_ONE, misfire=Misfire.CATCH_UP, in_flight=True), now, GRACE)
    assert d.fire == [] and d.buffered == utc(2024, 1, 1, 0, 0, 1)
    assert d.skipped == [(utc(2024, 1, 1, 0, 0, 2), "overlap")]
    later = _state(overlap=Overlap.BUFFER_ONE, in_flight=False, buffered=d.buffered, last_slot=d.last_slot)
    d2 = decide(later, now, GRACE)
    assert d2.fire == [utc(2024, 1, 1, 0, 0, 1)] and d2.buffered is None


def test_a_one_shot_fires_once_then_is_done() -> None:
    spec = Spec(Kind.AT, utc(2024, 1, 1, 0, 0, 5).isoformat())
    state = _state(spec=spec, last_slot=None, next_fire_at=utc(2024, 1, 1, 0, 0, 5))
    d = decide(state, utc(2024, 1, 1, 0, 0, 5, 200000), GRACE)
    assert d.fire == [utc(2024, 1, 1, 0, 0, 5)] and d.next_fire_at is None


def test_tick_ids_are_stable() -> None:
    a = tick_event_id("s", utc(2024, 1, 1))
    assert a == tick_event_id("s", datetime(2024, 1, 1, 1, tzinfo=timezone(timedelta(hours=1))))
    assert a != tick_event_id("s", utc(2024, 1, 1, 0, 0, 1))
