"""Sinks: consume outbox topics and perform each event's external effect once, keyed by the outbox id.

``run_sink(settings, sink, topics, group, stop_event)`` is the loop; the sinks are
:class:`WebhookSink`, :class:`SlackSink` and :class:`FileSink`. Deliveries are recorded in
``vigil.deliveries``.
"""

from __future__ import annotations

from agents.sinks.base import DeliveryRejectedError, DeliveryRetryableError, Sink
from agents.sinks.file import FileSink
from agents.sinks.runner import CONSUMER_CONFIG, DEFAULT_POLICY, SinkRunner, SinkStats, run_sink
from agents.sinks.webhook import SlackSink, WebhookSink

__all__ = [
    "CONSUMER_CONFIG",
    "DEFAULT_POLICY",
    "DeliveryRejectedError",
    "DeliveryRetryableError",
    "FileSink",
    "Sink",
    "SinkRunner",
    "SinkStats",
    "SlackSink",
    "WebhookSink",
    "run_sink",
]
