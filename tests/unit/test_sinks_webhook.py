"""The webhook and Slack sinks map HTTP answers to delivered / retry / rejected (httpx test transport, no network)."""

from __future__ import annotations

import json

import httpx
import pytest

from agents.outbox_mapping import OutboxEvent
from agents.sinks import DeliveryRejectedError, DeliveryRetryableError, SlackSink, WebhookSink

EVENT = OutboxEvent(
    id="0b6c3a8e-6d0f-4a7e-9a57-4c2f2f7c1d11",
    topic="vigil.outbox.order",
    key="order-42",
    type="OrderFailed",
    trace_id="trace-1",
    payload={"order": 42},
)


def _client(handler: httpx.MockTransport) -> httpx.Client:
    return httpx.Client(transport=handler)


def _answer(status: int, headers: dict[str, str] | None = None) -> tuple[httpx.Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, headers=headers, text="nope" if status >= 300 else "ok")

    return _client(httpx.MockTransport(handle)), seen


def test_2xx_is_delivered_with_the_idempotency_key() -> None:
    client, seen = _answer(204)
    WebhookSink("hook", "http://receiver/in", client=client, headers={"Authorization": "Bearer t"}).deliver(
        EVENT, 1
    )
    (request,) = seen
    assert request.method == "POST" and str(request.url) == "http://receiver/in"
    assert request.headers["Idempotency-Key"] == EVENT.id
    assert request.headers["Authorization"] == "Bearer t"
    assert json.loads(request.content)["payload"] == {"order": 42}


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_transient_answers_are_retryable_with_the_servers_hint(status: int) -> None:
    client, _ = _answer(status, {"Retry-After": "7"})
    with pytest.raises(DeliveryRetryableError) as info:
        WebhookSink("hook", "http://receiver/in", client=client).deliver(EVENT, 1)
    assert info.value.retry_after == 7.0 and info.value.code == str(status)


@pytest.mark.parametrize("status", [301, 400, 401, 403, 404, 422])
def test_other_answers_are_rejected_for_good(status: int) -> None:
    client, _ = _answer(status)
    with pytest.raises(DeliveryRejectedError, match=f"HTTP {status}"):
        WebhookSink("hook", "http://receiver/in", client=client).deliver(EVENT, 1)


@pytest.mark.parametrize(
    "error", [httpx.ConnectTimeout("slow"), httpx.ReadTimeout("slow"), httpx.ConnectError("refused")]
)
def test_timeouts_and_connection_errors_are_retryable(error: httpx.TransportError) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise error

    with pytest.raises(DeliveryRetryableError):
        WebhookSink("hook", "http://receiver/in", client=_client(httpx.MockTransport(handle))).deliver(
            EVENT, 1
        )


def test_slack_sink_posts_text() -> None:
    client, seen = _answer(200)
    SlackSink("slack", "https://hooks.example/T/B/x", client=client).deliver(EVENT, 1)
    assert set(json.loads(seen[0].content)) == {"text"}
    assert seen[0].headers["Idempotency-Key"] == EVENT.id
