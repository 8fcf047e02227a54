"""HTTP webhook and Slack-compatible webhook sinks (httpx, one POST per attempt).

Every POST carries ``Idempotency-Key: <outbox id>``. The one window ``vigil.deliveries`` cannot
close is a crash after the receiver acted but before ``delivered`` was committed: the retry then
carries the same key, so a receiver that honours ``Idempotency-Key`` acts once. Receivers that
ignore it may see that one event twice.
"""

from __future__ import annotations

import httpx

from agents.outbox_mapping import OutboxEvent
from agents.sinks.base import DeliveryRejectedError, DeliveryRetryableError
from agents.sinks.decisions import HttpOutcome, classify_http_status, parse_retry_after
from agents.sinks.requests import HttpRequest, build_slack_request, build_webhook_request


class _HttpSink:
    def __init__(self, name: str, url: str, *, timeout: float, client: httpx.Client | None) -> None:
        self._name = name
        self.url = url
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False)

    @property
    def name(self) -> str:
        return self._name

    def _request(self, event: OutboxEvent) -> HttpRequest:
        raise NotImplementedError

    def deliver(self, event: OutboxEvent, attempt: int) -> None:
        request = self._request(event)
        try:
            response = self._client.post(request.url, content=request.body, headers=request.headers)
        except httpx.TimeoutException as exc:
            raise DeliveryRetryableError(f"{self._name}: timed out: {exc}", code="timeout") from exc
        except httpx.TransportError as exc:
            raise DeliveryRetryableError(
                f"{self._name}: {type(exc).__name__}: {exc}", code="transport"
            ) from exc
        outcome = classify_http_status(response.status_code)
        if outcome is HttpOutcome.DELIVERED:
            return
        detail = f"{self._name}: HTTP {response.status_code} {response.text[:200]!r}"
        if outcome is HttpOutcome.RETRY:
            raise DeliveryRetryableError(
                detail,
                code=str(response.status_code),
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        raise DeliveryRejectedError(detail, code=str(response.status_code))

    def close(self) -> None:
        if self._own_client:
            self._client.close()


class WebhookSink(_HttpSink):
    """POSTs the event envelope (id, type, aggregateid, topic, trace_id, payload) as JSON."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        timeout: float = 10.0,
        headers: dict[str, str] | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        super().__init__(name, url, timeout=timeout, client=client)
        self.headers = dict(headers or {})

    def _request(self, event: OutboxEvent) -> HttpRequest:
        return build_webhook_request(event, self.url, self.headers)


class SlackSink(_HttpSink):
    """POSTs ``{"text": ...}`` to a Slack-compatible incoming webhook."""

    def __init__(
        self, name: str, url: str, *, timeout: float = 10.0, client: httpx.Client | None = None
    ) -> None:
        super().__init__(name, url, timeout=timeout, client=client)

    def _request(self, event: OutboxEvent) -> HttpRequest:
        return build_slack_request(event, self.url)
