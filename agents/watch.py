"""The absence and repeated-failures monitor that runs in every worker.

Each round it (1) beats the heartbeats of the agents this worker runs (``agent:<name>``), (2) raises
one critical alert for every heartbeat overdue past its grace, and resolves it when beats return,
(3) raises one critical alert for an agent whose newest N runs failed (dead-lettered), and resolves
it at its next success. Alerts are ``DriftEvent``\\ s (source ``vigil``) published to
``drift.events`` and routed like any other drift.

Several workers run this monitor against one database: an alert is claimed in ``vigil.alerts``
(insert or reopen ``WHERE status = 'resolved'``, resolve ``WHERE status = 'open'``) in the same
transaction that publishes it, so the second worker waits for the first and then finds nothing to
do. A publish that fails rolls the claim back and the next round tries again; a commit that fails
after the publish makes the next round publish the same event id, which the router drops.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from agents.heartbeats import system_beat
from streams.watch import ABSENCE, FAILURES, alert_key, alert_record, failure_verdict

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[Mapping[str, Any]]], list[str]]

_OVERDUE = text(
    """
    SELECT h.name, h.next_expected_at + make_interval(secs => h.grace_seconds) AS since,
           extract(epoch FROM now() - h.next_expected_at) AS late_s, now() AS now
    FROM vigil.heartbeats h
    WHERE h.status <> 'paused' AND h.next_expected_at + make_interval(secs => h.grace_seconds) < now()
      AND NOT EXISTS (SELECT 1 FROM vigil.alerts a WHERE a.key = 'absence:' || h.name AND a.status = 'open')
    """
)
# The heartbeat must still be overdue when the claim is made: a beat that came in between wins.
_CLAIM_ABSENCE = text(
    """
    INSERT INTO vigil.alerts AS a (key, kind, subject, status, since, event_id, detail)
    SELECT :key, 'absence', :subject, 'open', :since, :event_id, CAST(:detail AS jsonb)
    WHERE EXISTS (
        SELECT 1 FROM vigil.heartbeats h
        WHERE h.name = :subject AND h.status <> 'paused'
          AND h.next_expected_at + make_interval(secs => h.grace_seconds) < now())
    ON CONFLICT (key) DO UPDATE SET
        status = 'open', since = EXCLUDED.since, event_id = EXCLUDED.event_id, opened_at = now(),
        resolved_at = NULL, resolved_event_id = NULL, detail = EXCLUDED.detail
    WHERE a.status = 'resolved'
    RETURNING key
    """
)
_MARK_OVERDUE = text("UPDATE vigil.heartbeats SET status = 'overdue' WHERE name = :name AND status = 'ok'")
_BACK = text(
    """
    SELECT a.key, a.subject, a.since, now() AS now
    FROM vigil.alerts a LEFT JOIN vigil.heartbeats h ON h.name = a.subject
    WHERE a.kind = 'absence' AND a.status = 'open'
      AND (h.name IS NULL OR h.status = 'paused'
           OR h.next_expected_at + make_interval(secs => h.grace_seconds) >= now())
    """
)
_CLAIM_RESOLVE = text(
    """
    UPDATE vigil.alerts SET status = 'resolved', resolved_at = now(), resolved_event_id = :event_id
    WHERE key = :key AND status = 'open' AND since = :since
    RETURNING key
    """
)
_WATCHED_AGENTS = text(
    """
    SELECT substr(h.name, 7) AS agent,
           coalesce((h.detail->>'alert_after_failures')::int, :default) AS threshold,
           a.status = 'open' AS alert_open, a.since AS alert_since
    FROM vigil.heartbeats h LEFT JOIN vigil.alerts a ON a.key = 'repeated-failures:' || substr(h.name, 7)
    WHERE h.name LIKE 'agent:%'
    """
)
_NEWEST_RUNS = text(
    """
    SELECT status, finished_at, error FROM vigil.runs
    WHERE agent = :agent AND finished_at IS NOT NULL AND status IN ('succeeded', 'failed', 'dead-lettered', 'rejected')
    ORDER BY finished_at DESC LIMIT :n
    """
)
# The streak's first failure: the oldest failed run after the newest run that did not fail.
_STREAK_START = text(
    """
    SELECT min(finished_at) FROM vigil.runs
    WHERE agent = :agent AND status IN ('failed', 'dead-lettered')
      AND finished_at > coalesce(
          (SELECT max(finished_at) FROM vigil.runs
           WHERE agent = :agent AND status IN ('succeeded', 'rejected')), '-infinity')
    """
)
_CLAIM_FAILURES = text(
    """
    INSERT INTO vigil.alerts AS a (key, kind, subject, status, since, event_id, detail)
    VALUES (:key, 'repeated-failures', :subject, 'open', :since, :event_id, CAST(:detail AS jsonb))
    ON CONFLICT (key) DO UPDATE SET
        status = 'open', since = EXCLUDED.since, event_id = EXCLUDED.event_id, opened_at = now(),
        resolved_at = NULL, resolved_event_id = NULL, detail = EXCLUDED.detail
    WHERE a.status = 'resolved'
    RETURNING key
    """
)


@dataclass(frozen=True)
class WatchedAgent:
    """An agent this worker runs, as its heartbeat declares it."""

    name: str
    topics: tuple[str, ...]
    alert_after_failures: int


class Monitor:
    """One worker's monitor; :meth:`round` is synchronous (run it in a thread)."""

    def __init__(
        self,
        engine: Engine,
        publish: Publish,
        *,
        agents: Sequence[WatchedAgent] = (),
        beat_every_s: float = 10.0,
        beat_grace_s: float = 30.0,
        default_failures_in_a_row: int = 3,
    ) -> None:
        self.engine = engine
        self.publish = publish
        self.agents = list(agents)
        self.beat_every_s = beat_every_s
        self.beat_grace_s = beat_grace_s
        self.default_failures_in_a_row = default_failures_in_a_row
        #: Alerts this monitor raised and resolved, for logs, tests and metrics.
        self.published: list[str] = []

    def beat_agents(
        self,
        alive: Callable[[str], bool] = lambda name: True,
        extra: Callable[[str], dict[str, Any]] = lambda name: {},
    ) -> None:
        """Beat ``agent:<name>`` for each agent that is alive (consuming, or with nothing to consume);
        ``extra`` adds to the row's detail (the lag measured)."""
        for watched in self.agents:
            if not alive(watched.name):
                log.warning("agent %s has lag and committed nothing lately: not beating", watched.name)
                continue
            detail = {"alert_after_failures": watched.alert_after_failures, "topics": list(watched.topics)}
            system_beat(
                self.engine,
                f"agent:{watched.name}",
                every_s=self.beat_every_s,
                grace_s=self.beat_grace_s,
                detail={**detail, **extra(watched.name)},
            )

    def round(self) -> list[str]:
        """Raise and resolve what is due; return the ids of the events published."""
        published = self.check_absence() + self.check_failures()
        self.published += published
        return published

    # -- absence --------------------------------------------------------------------------------

    def check_absence(self) -> list[str]:
        published: list[str] = []
        with self.engine.connect() as conn:
            overdue = [dict(r) for r in conn.execute(_OVERDUE).mappings().all()]
            back = [dict(r) for r in conn.execute(_BACK).mappings().all()]
        for row in overdue:
            record = alert_record(
                ABSENCE, row["name"], since=row["since"], severity="critical",
                value=float(row["late_s"]), observed_at=row["now"],
            )  # fmt: skip
            detail = {"late_seconds": float(row["late_s"])}
            with self.engine.begin() as conn:
                claimed = conn.execute(
                    _CLAIM_ABSENCE,
                    {
                        "key": alert_key(ABSENCE, row["name"]),
                        "subject": row["name"],
                        "since": row["since"],
                        "event_id": record["id"],
                        "detail": json.dumps(detail),
                    },
                ).first()
                if claimed is None:
                    continue
                conn.execute(_MARK_OVERDUE, {"name": row["name"]})
                published += self.publish([record])
            log.error(
                "heartbeat %s is overdue since %s: critical alert %s", row["name"], row["since"], record["id"]
            )
        for row in back:
            published += self._resolve(ABSENCE, row["subject"], row["since"], row["now"], value=0.0)
        return published

    def _resolve(self, kind: str, subject: str, since: datetime, now: datetime, *, value: float) -> list[str]:
        record = alert_record(kind, subject, since=since, severity="resolved", value=value, observed_at=now)
        with self.engine.begin() as conn:
            claimed = conn.execute(
                _CLAIM_RESOLVE, {"key": alert_key(kind, subject), "since": since, "event_id": record["id"]}
            ).first()
            if claimed is None:
                return []
            ids = self.publish([record])
        log.warning("%s alert on %s resolved: %s", kind, subject, record["id"])
        return ids

    # -- repeated failures ----------------------------------------------------------------------

    def check_failures(self) -> list[str]:
        published: list[str] = []
        with self.engine.connect() as conn:
            watched = [
                dict(r)
                for r in conn.execute(_WATCHED_AGENTS, {"default": self.default_failures_in_a_row})
                .mappings()
                .all()
            ]
        for agent in watched:
            published += self._check_agent(
                agent["agent"], int(agent["threshold"]), bool(agent["alert_open"]), agent["alert_since"]
            )
        return published

    def _check_agent(
        self, agent: str, threshold: int, alert_open: bool, alert_since: datetime | None
    ) -> list[str]:
        with self.engine.connect() as conn:
            runs = [dict(r) for r in conn.execute(_NEWEST_RUNS, {"agent": agent, "n": threshold}).mappings()]
            now = conn.execute(text("SELECT now()")).scalar_one()
            statuses = ["failed" if r["status"] == "dead-lettered" else r["status"] for r in runs]
            verdict = failure_verdict(statuses, threshold=threshold, alert_open=alert_open)
            if verdict.action == "open":
                since = conn.execute(_STREAK_START, {"agent": agent}).scalar_one()
        if verdict.action == "resolve" and alert_since is not None:
            return self._resolve(FAILURES, agent, alert_since, now, value=0.0)
        if verdict.action != "open" or since is None:
            return []
        record = alert_record(
            FAILURES, agent, since=since, severity="critical", value=float(verdict.streak), observed_at=now
        )
        detail = {"streak": verdict.streak, "threshold": threshold, "last_error": runs[0]["error"]}
        with self.engine.begin() as conn:
            claimed = _claim_failures(conn, agent, since, record["id"], detail)
            if not claimed:
                return []
            ids = self.publish([record])
        log.error("agent %s failed %d runs in a row: critical alert %s", agent, verdict.streak, record["id"])
        return ids


def _claim_failures(
    conn: Connection, agent: str, since: datetime, event_id: str, detail: dict[str, Any]
) -> bool:
    row = conn.execute(
        _CLAIM_FAILURES,
        {
            "key": alert_key(FAILURES, agent),
            "subject": agent,
            "since": since,
            "event_id": event_id,
            "detail": json.dumps(detail, default=str),
        },
    ).first()
    return row is not None
