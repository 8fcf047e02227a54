"""What the drift agents share: the policy, the codec, and their rows in Postgres (through the
handler's ``ctx.session``, so every read and write is part of the event's transaction)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from schemas.codec import Codec
from streams.drift_events import as_epoch, fingerprint
from streams.drift_policy import Policy
from streams.drift_router import Breaker, Incident

_state: dict[str, Any] = {"policy": Policy(), "codec": None}


def configure(drift_policy: Policy) -> None:
    """Set the policy the drift agents decide with (``VIGIL_DRIFT_POLICY``, loaded by the worker)."""
    _state["policy"] = drift_policy


def policy() -> Policy:
    result: Policy = _state["policy"]
    return result


def codec() -> Codec:
    if _state["codec"] is None:
        _state["codec"] = Codec()
    result: Codec = _state["codec"]
    return result


def fingerprint_of(record: Mapping[str, Any]) -> str:
    """The record's fingerprint, or one made of source, metric and labels when the producer gave none."""
    return str(record.get("fingerprint") or fingerprint(record["source"], record["metric"], record["labels"]))


def epoch(record: Mapping[str, Any]) -> float:
    return as_epoch(record["observed_at"])


def ts(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


# -- incidents ---------------------------------------------------------------------------


async def load_incident(session: AsyncSession, fp: str) -> Incident | None:
    row = (
        await session.execute(
            text(
                "SELECT fingerprint, source, labels, status, tier, extract(epoch FROM opened_at), "
                "extract(epoch FROM last_routed_at), warnings FROM vigil.drift_incidents "
                "WHERE fingerprint = :fp FOR UPDATE"
            ),
            {"fp": fp},
        )
    ).one_or_none()
    if row is None:
        return None
    return Incident(
        row[0], row[1], dict(row[2]), row[3], row[4], float(row[5]),
        None if row[6] is None else float(row[6]), tuple(float(t) for t in row[7]),
    )  # fmt: skip


async def open_criticals(session: AsyncSession, source: str) -> list[Incident]:
    rows = await session.execute(
        text(
            "SELECT fingerprint, labels, extract(epoch FROM opened_at) FROM vigil.drift_incidents "
            "WHERE source = :source AND status = 'open' AND tier = 'critical'"
        ),
        {"source": source},
    )
    return [Incident(r[0], source, dict(r[1]), "open", "critical", float(r[2])) for r in rows]


async def save_incident(session: AsyncSession, incident: Incident, metric: str, event_id: str) -> None:
    await session.execute(
        text(
            """
            INSERT INTO vigil.drift_incidents AS i (fingerprint, source, metric, labels, status, tier,
                opened_at, last_routed_at, warnings, last_event_id)
            VALUES (:fp, :source, :metric, CAST(:labels AS jsonb), :status, :tier, :opened_at,
                :last_routed_at, :warnings, :event_id)
            ON CONFLICT (fingerprint) DO UPDATE SET labels = EXCLUDED.labels, status = EXCLUDED.status,
                tier = EXCLUDED.tier, opened_at = EXCLUDED.opened_at,
                last_routed_at = EXCLUDED.last_routed_at, warnings = EXCLUDED.warnings,
                last_event_id = EXCLUDED.last_event_id, updated_at = now()
            """
        ),
        {
            "fp": incident.fingerprint,
            "source": incident.source,
            "metric": metric,
            "labels": json.dumps(dict(incident.labels)),
            "status": incident.status,
            "tier": incident.tier,
            "opened_at": ts(incident.opened_at),
            "last_routed_at": ts(incident.last_routed_at),
            "warnings": list(incident.warnings),
            "event_id": event_id,
        },
    )


async def record_decision(
    session: AsyncSession, event_id: str, fp: str, record: Mapping[str, Any], tier: str | None, reason: str
) -> None:
    await session.execute(
        text(
            """
            INSERT INTO vigil.drift_decisions (event_id, fingerprint, source, metric, value, statistic,
                score, severity, tier, reason, observed_at)
            VALUES (:event_id, :fp, :source, :metric, :value, :statistic, :score, :severity, :tier,
                :reason, :observed_at)
            ON CONFLICT (event_id) DO NOTHING
            """
        ),
        {
            "event_id": event_id,
            "fp": fp,
            "source": record["source"],
            "metric": record["metric"],
            "value": record["value"],
            "statistic": record["statistic"],
            "score": record["score"],
            "severity": record["severity"],
            "tier": tier,
            "reason": reason,
            "observed_at": ts(epoch(record)),
        },
    )


# -- circuit breakers --------------------------------------------------------------------


async def load_breaker(session: AsyncSession, agent: str, fp: str) -> Breaker | None:
    row = (
        await session.execute(
            text(
                "SELECT times, open, reason FROM vigil.drift_breakers "
                "WHERE agent = :agent AND fingerprint = :fp FOR UPDATE"
            ),
            {"agent": agent, "fp": fp},
        )
    ).one_or_none()
    return None if row is None else Breaker(tuple(float(t) for t in row[0]), bool(row[1]), str(row[2]))


async def save_breaker(session: AsyncSession, agent: str, fp: str, breaker: Breaker) -> None:
    await session.execute(
        text(
            """
            INSERT INTO vigil.drift_breakers (agent, fingerprint, times, open, reason, opened_at)
            VALUES (:agent, :fp, :times, :open, :reason, CASE WHEN :open THEN now() END)
            ON CONFLICT (agent, fingerprint) DO UPDATE SET times = EXCLUDED.times, open = EXCLUDED.open,
                reason = EXCLUDED.reason,
                opened_at = CASE WHEN EXCLUDED.open THEN coalesce(vigil.drift_breakers.opened_at, now()) END
            """
        ),
        {
            "agent": agent,
            "fp": fp,
            "times": list(breaker.times),
            "open": breaker.open,
            "reason": breaker.reason,
        },
    )
