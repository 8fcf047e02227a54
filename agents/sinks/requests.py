"""The bytes each sink sends: webhook and Slack requests, file lines.

Pure: imports no HTTP client. The idempotency key of every delivery is the outbox id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agents.outbox_mapping import OutboxEvent

IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = "vigil-sink/1"
SLACK_TEXT_LIMIT = 3000


@dataclass(frozen=True)
class HttpRequest:
    """A POST to make: where, with which headers, which body."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def envelope(event: OutboxEvent) -> dict[str, Any]:
    """The JSON a webhook receives (and a file line holds): the payload with what identifies it."""
    return {
        "id": event.id,
        "type": event.type,
        "aggregateid": event.key,
        "topic": event.topic,
        "trace_id": event.trace_id,
        "payload": event.payload,
    }


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _headers(event: OutboxEvent, extra: dict[str, str] | None) -> dict[str, str]:
    headers = dict(extra or {})
    headers.update(
        {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            IDEMPOTENCY_HEADER: event.id,
            "X-Vigil-Event-Id": event.id,
            "X-Vigil-Trace-Id": event.trace_id,
        }
    )
    if event.type:
        headers["X-Vigil-Event-Type"] = event.type
    return headers


def build_webhook_request(
    event: OutboxEvent, url: str, extra_headers: dict[str, str] | None = None
) -> HttpRequest:
    """POST the envelope as JSON with ``Idempotency-Key: <outbox id>``."""
    return HttpRequest(url=url, body=_json_bytes(envelope(event)), headers=_headers(event, extra_headers))


def slack_text(event: OutboxEvent, limit: int = SLACK_TEXT_LIMIT) -> str:
    """A Slack message for the event: the payload's own ``text`` if it has one, else a summary."""
    payload = event.payload
    if isinstance(payload, dict) and isinstance(payload.get("text"), str) and payload["text"]:
        text: str = payload["text"]
    else:
        title = f"*{event.type or 'event'}*"
        if event.key:
            title += f" `{event.key}`"
        body = json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=True)
        text = f"{title}\n```{body}```"
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def build_slack_request(event: OutboxEvent, url: str) -> HttpRequest:
    """A Slack-compatible incoming-webhook POST: ``{"text": ...}``, same idempotency headers."""
    return HttpRequest(url=url, body=_json_bytes({"text": slack_text(event)}), headers=_headers(event, None))


def file_line(event: OutboxEvent) -> bytes:
    """One JSON line (newline included) for the file sink."""
    return _json_bytes(envelope(event)) + b"\n"


def line_id(line: bytes) -> str | None:
    """The ``id`` of a line :func:`file_line` wrote, or None for anything else (a torn line)."""
    try:
        value = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    found = value.get("id") if isinstance(value, dict) else None
    return found if isinstance(found, str) else None
