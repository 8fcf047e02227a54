"""The HTTP ingest's pure part: authentication and turning request bodies into ``DriftEvent``s.

Three body shapes: Vigil's own (``POST /ingest/drift``: one event object or a list), Prometheus
Alertmanager's webhook (version 4) and Grafana alerting's webhook, firing and resolved. Each
alert's event id comes from its fingerprint, status and time (``startsAt`` when firing, ``endsAt``
when resolved), so a webhook delivered twice, or an alert repeated by ``repeat_interval``, is one
event. Bad input raises :class:`~schemas.errors.IngestRejected` with the status and the reason.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from schemas.errors import ConfigurationError, IngestRejected
from streams.drift_events import drift_record

SIGNATURE_HEADER = "x-vigil-signature"
CRITICAL_LABELS = frozenset({"critical", "page", "error", "high", "fatal", "emergency"})
_FRACTION = re.compile(r"(\.\d{6})\d+")


def authenticate(headers: Mapping[str, str], body: bytes, token: str | None) -> None:
    """Accept ``Authorization: Bearer <token>`` or ``X-Vigil-Signature: sha256=<HMAC-SHA256 of the
    body>``, both compared in constant time; else raise 401 (the reason never echoes a secret)."""
    if not token:
        raise IngestRejected(401, "ingest is disabled: set VIGIL_INGEST_TOKEN on the server")
    lower = {k.lower(): v for k, v in headers.items()}
    authorization = lower.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        if hmac.compare_digest(authorization[7:].strip().encode(), token.encode()):
            return
        raise IngestRejected(401, "wrong bearer token")
    signature = lower.get(SIGNATURE_HEADER, "")
    if signature.startswith("sha256="):
        expected = hmac.new(token.encode(), body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(signature[7:].strip().lower().encode(), expected.encode()):
            return
        raise IngestRejected(401, "wrong HMAC signature")
    raise IngestRejected(
        401, "no credentials: send Authorization: Bearer <token> or X-Vigil-Signature: sha256=<hmac>"
    )


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IngestRejected(400, f"body is not JSON: {exc}") from exc


def parse_time(value: Any, where: str) -> datetime:
    """RFC 3339 (nanoseconds allowed, as Go writes them) or epoch seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    if not isinstance(value, str):
        raise IngestRejected(422, f"{where}: a time must be RFC 3339 text or epoch seconds")
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", value.replace("Z", "+00:00")))
    except ValueError as exc:
        raise IngestRejected(422, f"{where}: {value!r} is not an RFC 3339 time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _labels(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise IngestRejected(422, f"{where}: labels must be an object of strings")
    return {str(k): str(v) for k, v in value.items()}


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise IngestRejected(422, f"{where}: must be a number")
    try:
        return float(value)
    except ValueError as exc:
        raise IngestRejected(422, f"{where}: {value!r} is not a number") from exc


def _record(where: str, **fields: Any) -> dict[str, Any]:
    try:
        return drift_record(**fields)
    except ConfigurationError as exc:
        raise IngestRejected(422, f"{where}: {exc}") from exc


def parse_drift(body: bytes) -> list[dict[str, Any]]:
    """``POST /ingest/drift``: ``{"source", "metric", "value", "severity"?, "labels"?, "observed_at"?,
    "statistic"?, "score"?, "id"?}`` or a list of them."""
    document = _json(body)
    items = document if isinstance(document, list) else [document]
    if not items:
        raise IngestRejected(422, "an empty list: send at least one drift event")
    records = []
    for index, item in enumerate(items):
        where = f"event #{index + 1}"
        if not isinstance(item, dict):
            raise IngestRejected(422, f"{where}: must be a JSON object")
        missing = [k for k in ("source", "metric", "value") if k not in item]
        if missing:
            raise IngestRejected(422, f"{where}: missing field(s) {', '.join(missing)}")
        at = parse_time(item["observed_at"], f"{where}.observed_at") if "observed_at" in item else None
        records.append(
            _record(
                where,
                source=str(item["source"]),
                metric=str(item["metric"]),
                value=_number(item["value"], f"{where}.value"),
                severity=str(item.get("severity", "warning")),
                labels=_labels(item.get("labels"), where),
                observed_at=at,
                statistic=str(item.get("statistic", "external")),
                score=_number(item["score"], f"{where}.score") if "score" in item else None,
                event_id=str(item["id"]) if item.get("id") else None,
            )
        )
    return records


def _alert_value(alert: Mapping[str, Any]) -> float:
    """Grafana's ``values`` (first numeric), else an annotation ``value``, else 1 (firing) / 0."""
    values = alert.get("values")
    if isinstance(values, dict):
        for value in values.values():
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
    annotation = (alert.get("annotations") or {}).get("value")
    try:
        return float(str(annotation))
    except (TypeError, ValueError):
        return 1.0 if alert.get("status") == "firing" else 0.0


def parse_alerts(body: bytes, source: str) -> list[dict[str, Any]]:
    """Alertmanager (``version: "4"``) and Grafana alerting webhooks: one event per alert."""
    document = _json(body)
    if not isinstance(document, dict) or not isinstance(document.get("alerts"), list):
        raise IngestRejected(422, f"not a {source} webhook payload: no 'alerts' list")
    if source == "alertmanager" and str(document.get("version", "4")) != "4":
        raise IngestRejected(422, f"Alertmanager webhook version {document.get('version')!r}: only 4 is read")
    common = _labels(document.get("commonLabels"), "commonLabels")
    records = []
    for index, alert in enumerate(document["alerts"]):
        where = f"alert #{index + 1}"
        if not isinstance(alert, dict):
            raise IngestRejected(422, f"{where}: must be an object")
        status = alert.get("status")
        if status not in ("firing", "resolved"):
            raise IngestRejected(422, f"{where}: status must be firing or resolved, not {status!r}")
        labels = {**common, **_labels(alert.get("labels"), where)}
        metric = labels.get("alertname")
        if not metric:
            raise IngestRejected(422, f"{where}: no alertname label")
        if status == "resolved":
            severity = "resolved"
            at = parse_time(alert.get("endsAt"), f"{where}.endsAt")
        else:
            severity = "critical" if labels.get("severity", "").lower() in CRITICAL_LABELS else "warning"
            at = parse_time(alert.get("startsAt"), f"{where}.startsAt")
        fp = str(alert.get("fingerprint") or "") or None
        records.append(
            _record(
                where,
                source=source,
                metric=metric,
                value=_alert_value(alert),
                severity=severity,
                labels=labels,
                observed_at=at,
                statistic="external",
                fp=fp,
            )
        )
    return records


def parse_body(kind: str, body: bytes) -> list[dict[str, Any]]:
    """The drift events of a request to ``/ingest/<kind>``."""
    if kind == "drift":
        return parse_drift(body)
    if kind in ("alertmanager", "grafana"):
        return parse_alerts(body, kind)
    raise IngestRejected(404, f"no ingest named {kind!r}: use drift, alertmanager or grafana")
