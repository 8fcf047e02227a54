"""Schedule maths: which slots of a schedule are due, and what to do with each. Pure, no I/O.

A schedule is a cron expression (in a time zone), an interval (``every``) or one time (``at``). Its
*slots* are the instants it is due. :func:`decide` takes a schedule's state and the time now and
says which due slots to fire, which to skip and why (misfire or overlap policy), which one to hold
(``buffer_one``), and when the schedule is next due. The scheduler (``agents/scheduler.py``) reads
the state, calls it and writes the outcome.

Cron runs on local wall-clock time in its zone (as people read a cron line):

- a wall time that occurs twice (clocks go back) fires once, at its first occurrence;
- a wall time that does not exist (clocks go forward) fires once, at the first instant after the
  gap (as Vixie cron runs jobs of a skipped hour right after the change);
- slots are strictly increasing instants: two wall times that land on one instant fire once.

croniter is used only for wall-time arithmetic on naive datetimes; its own time-zone handling
misplaces slots around DST changes, so the conversion to instants is done here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from schemas.errors import ConfigurationError

#: At most this many slots are looked at in one decision (a year of a 1 s schedule is not).
MAX_SLOTS_PER_DECISION = 1000


class Kind(StrEnum):
    CRON = "cron"
    EVERY = "every"
    AT = "at"
    WAKEUP = "wakeup"


class Overlap(StrEnum):
    """What to do with a slot due while the schedule's previous run is still in flight (as Temporal)."""

    SKIP = "skip"
    BUFFER_ONE = "buffer_one"
    ALLOW = "allow"


class Misfire(StrEnum):
    """What to do with slots missed while no scheduler ran (late by more than the grace)."""

    RUN_ONCE = "run_once"
    SKIP = "skip"
    CATCH_UP = "catch_up"


# -- parsing ------------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str) -> timedelta:
    """``30s``, ``5m``, ``1h30m``, ``2d``, ``500ms`` (a bare number is seconds)."""
    raw = text.strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", raw):
        seconds = float(raw)
    else:
        pos = 0
        seconds = 0.0
        for match in _DURATION_PART.finditer(raw):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if pos != len(raw) or not raw:
            raise ConfigurationError(
                f"cannot read the duration {text!r}: write it like 30s, 5m, 1h30m, 2d or 500ms"
            )
    if seconds <= 0:
        raise ConfigurationError(f"the duration {text!r} must be more than zero")
    return timedelta(seconds=seconds)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(
            f"unknown time zone {name!r}: use an IANA name such as UTC or Europe/London"
        ) from exc


def check_cron(expression: str) -> None:
    """Refuse what croniter would not read, or reads differently from what the user meant."""
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise ConfigurationError(
            f"cron expression {expression!r} has {len(fields)} fields: give 5 "
            "(minute hour day month weekday) or 6 (the same, then seconds)"
        )
    if not croniter.is_valid(expression):
        raise ConfigurationError(f"cron expression {expression!r} is not valid (see `man 5 crontab`)")


def parse_at(text: str, tz: str = "UTC", *, now: datetime | None = None) -> datetime:
    """A one-shot time: ISO 8601 (without an offset it is read in ``tz``), or ``+DURATION`` from now."""
    raw = text.strip()
    if raw.startswith("+"):
        return (now or datetime.now(UTC)) + parse_duration(raw[1:])
    try:
        when = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ConfigurationError(
            f"cannot read the time {text!r}: give ISO 8601 (2030-01-31T09:00, optionally with +01:00) "
            "or +DURATION (+10m)"
        ) from exc
    if when.tzinfo is None:
        when = to_instant(when, zone(tz))
    return when.astimezone(UTC)


def next_wall_time(clock: str, tz: str, now: datetime) -> datetime:
    """The next instant after ``now`` when the clock in ``tz`` reads ``clock`` (``03:00``), or an
    ISO 8601 time (``--by`` of a watch)."""
    if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2})?", clock.strip()):
        parts = [int(p) for p in clock.strip().split(":")]
        hour, minute, second = [*parts, 0][:3]
        local_now = now.astimezone(zone(tz)).replace(tzinfo=None)
        candidate = local_now.replace(hour=hour, minute=minute, second=second, microsecond=0)
        if candidate <= local_now:
            candidate += timedelta(days=1)
        return to_instant(candidate, zone(tz))
    return parse_at(clock, tz, now=now)


# -- wall time to instants ----------------------------------------------------------------


def to_instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant (UTC) of naive wall time ``wall`` in ``tz``: the first occurrence of a repeated
    wall time; the first instant after the gap for one that does not exist."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first
    # In a gap: fold=1 reads it with the offset after the change, which lands before the change.
    low = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = first
    if low > high:
        low, high = high, low
    # The first instant whose wall time is at or after ``wall`` (wall time jumps forward there).
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(tz).replace(tzinfo=None) >= wall:
            high = mid
        else:
            low = mid
    return high.replace(microsecond=0) if high.microsecond else high


@dataclass(frozen=True)
class Spec:
    """What a schedule is: its kind, expression and zone, and (for ``every``) its anchor."""

    kind: Kind
    expression: str
    timezone: str = "UTC"
    anchor: datetime | None = None

    def every(self) -> timedelta:
        return parse_duration(self.expression)


def slots_after(spec: Spec, after: datetime) -> Iterator[datetime]:
    """The schedule's slots strictly after ``after``, in order (UTC)."""
    if spec.kind in (Kind.AT, Kind.WAKEUP):
        at = datetime.fromisoformat(spec.expression).astimezone(UTC)
        if at > after:
            yield at
        return
    if spec.kind == Kind.EVERY:
        step = spec.every()
        anchor = spec.anchor or datetime(1970, 1, 1, tzinfo=UTC)
        n = max(0, int((after - anchor) / step))
        while True:
            slot = anchor + n * step
            if slot > after:
                yield slot
            n += 1
    tz = zone(spec.timezone)
    wall = after.astimezone(tz).replace(tzinfo=None)
    # Start a little back: wall time ran backwards if ``after`` is in a repeated hour.
    it = croniter(spec.expression, wall - timedelta(hours=3))
    last = after
    while True:
        candidate = to_instant(it.get_next(datetime), tz)
        if candidate > last:
            last = candidate
            yield candidate


def next_slot(spec: Spec, after: datetime) -> datetime | None:
    return next(iter(slots_after(spec, after)), None)


def due_slots(
    spec: Spec, after: datetime, now: datetime, limit: int = MAX_SLOTS_PER_DECISION
) -> list[datetime]:
    """Slots in ``(after, now]``; at most ``limit`` (the latest ones if there are more)."""
    found: list[datetime] = []
    for slot in slots_after(spec, after):
        if slot > now:
            break
        found.append(slot)
        if len(found) > limit:
            found.pop(0)
    return found


# -- the decision -------------------------------------------------------------------------


@dataclass(frozen=True)
class State:
    """What the scheduler knows of one schedule when it is due."""

    spec: Spec
    overlap: Overlap
    misfire: Misfire
    catch_up_window: timedelta
    #: The last slot decided (fired or skipped); slots after it are new. None: never decided.
    last_slot: datetime | None
    next_fire_at: datetime | None
    #: Whether the previous fired slot's run has not committed yet.
    in_flight: bool
    buffered: datetime | None = None


@dataclass
class Decision:
    fire: list[datetime] = field(default_factory=list)
    #: (slot, reason): ``missed`` (misfire policy) or ``overlap`` (overlap policy).
    skipped: list[tuple[datetime, str]] = field(default_factory=list)
    #: The slot held to run after the in-flight one (``buffer_one``); None: nothing held.
    buffered: datetime | None = None
    last_slot: datetime | None = None
    next_fire_at: datetime | None = None


def decide(state: State, now: datetime, grace: timedelta) -> Decision:
    """What to do with ``state``'s due slots at ``now``. A slot later than ``grace`` is *missed*
    (no scheduler ran at its time) and goes by the misfire policy; then the overlap policy applies
    to the slots left, in order, with the buffered slot (if any) first."""
    decision = Decision(buffered=state.buffered, last_slot=state.last_slot)
    if state.last_slot is not None:
        after = state.last_slot
    elif state.next_fire_at is not None:
        after = state.next_fire_at - timedelta(microseconds=1)
    else:
        return decision
    due = due_slots(state.spec, after, now)
    if due:
        decision.last_slot = due[-1]
    missed = [s for s in due if now - s > grace]
    on_time = [s for s in due if now - s <= grace]
    candidates: list[datetime] = []
    if missed:
        if state.misfire == Misfire.RUN_ONCE:
            keep = {missed[-1]}
        elif state.misfire == Misfire.CATCH_UP:
            keep = {s for s in missed if now - s <= state.catch_up_window}
        else:
            keep = set()
        decision.skipped += [(s, "missed") for s in missed if s not in keep]
        candidates += [s for s in missed if s in keep]
    candidates += on_time

    in_flight = state.in_flight
    if state.buffered is not None and not in_flight:
        decision.fire.append(state.buffered)
        decision.buffered = None
        in_flight = True
    for slot in candidates:
        if state.overlap == Overlap.ALLOW or not in_flight:
            decision.fire.append(slot)
            in_flight = True
        elif state.overlap == Overlap.BUFFER_ONE and decision.buffered is None:
            decision.buffered = slot
        else:
            decision.skipped.append((slot, "overlap"))
    decision.next_fire_at = next_slot(state.spec, decision.last_slot or after)
    return decision


def heartbeat_period(spec: Spec, after: datetime) -> timedelta | None:
    """The gap between the next two slots: how often the schedule's heartbeat is expected."""
    slots = slots_after(spec, after)
    first = next(slots, None)
    second = next(slots, None)
    if first is None or second is None:
        return None
    return second - first


def tick_event_id(schedule: str, slot: datetime) -> str:
    """The event id of a schedule's tick: the same (schedule, slot) always gives the same id."""
    return f"tick:{schedule}@{slot.astimezone(UTC).isoformat(timespec='microseconds')}"


def wakeup_event_id(wakeup_id: str) -> str:
    return f"wakeup:{wakeup_id}"
