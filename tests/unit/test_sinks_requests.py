"""What the sinks send: the webhook envelope and headers, Slack text, file lines."""

from __future__ import annotations

import json

from agents.outbox_mapping import OutboxEvent
from agents.sinks.requests import (
    build_slack_request,
    build_webhook_request,
    file_line,
    line_id,
    slack_text,
)

EVENT = OutboxEvent(
    id="0b6c3a8e-6d0f-4a7e-9a57-4c2f2f7c1d11",
    topic="vigil.outbox.order",
    key="order-42",
    type="OrderFailed",
    trace_id="trace-1",
    payload={"order": 42},
)


def test_webhook_request_carries_the_outbox_id_as_idempotency_key() -> None:
    request = build_webhook_request(
        EVENT, "http://hook/x", {"Authorization": "Bearer s", "Idempotency-Key": "no"}
    )
    assert request.url == "http://hook/x"
    assert request.headers["Idempotency-Key"] == EVENT.id  # cannot be overridden by extra headers
    assert request.headers["Authorization"] == "Bearer s"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Vigil-Trace-Id"] == "trace-1"
    assert request.headers["X-Vigil-Event-Type"] == "OrderFailed"
    assert json.loads(request.body) == {
        "id": EVENT.id,
        "type": "OrderFailed",
        "aggregateid": "order-42",
        "topic": "vigil.outbox.order",
        "trace_id": "trace-1",
        "payload": {"order": 42},
    }


def test_same_event_same_request() -> None:
    assert build_webhook_request(EVENT, "http://h") == build_webhook_request(EVENT, "http://h")


def test_slack_text_uses_the_payloads_text_when_there_is_one() -> None:
    event = OutboxEvent(EVENT.id, EVENT.topic, "k", "Alert", EVENT.id, {"text": "disk full on db-1"})
    assert slack_text(event) == "disk full on db-1"


def test_slack_text_summarises_other_payloads_and_is_bounded() -> None:
    text = slack_text(EVENT)
    assert text.startswith("*OrderFailed* `order-42`\n```") and '"order": 42' in text
    big = OutboxEvent(EVENT.id, EVENT.topic, None, None, EVENT.id, {"blob": "x" * 10_000})
    bounded = slack_text(big, limit=100)
    assert len(bounded) == 100 and bounded.endswith("…") and bounded.startswith("*event*")


def test_slack_request_is_a_text_post_with_the_same_key() -> None:
    request = build_slack_request(EVENT, "https://hooks.slack.example/T/B/x")
    assert json.loads(request.body) == {"text": slack_text(EVENT)}
    assert request.headers["Idempotency-Key"] == EVENT.id


def test_file_line_is_one_json_line_whose_id_reads_back() -> None:
    line = file_line(EVENT)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert line_id(line.rstrip(b"\n")) == EVENT.id
    assert line_id(b'{"id": "x"') is None  # torn
    assert line_id(b"[1]") is None
    assert line_id(b'{"id": 1}') is None
