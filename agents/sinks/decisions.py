"""What a sink does next: classify an HTTP answer, decide on a claimed delivery, name a dead letter.

Pure: imports no Kafka, database or HTTP client. :mod:`agents.sinks.runner` asks these functions
and does the I/O.
"""

from __future__ import annotations

import enum
import math

from agents.backoff import RetryPolicy
from streams import headers

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"

#: Added to a sink's dead letters, after the standard ones of :mod:`streams.deadletter`.
SINK_HEADER = headers.SINK
ATTEMPTS_HEADER = headers.ATTEMPTS


class HttpOutcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"


def classify_http_status(status: int) -> HttpOutcome:
    """2xx is done; 408, 429 and 5xx may pass later; any other answer will not change on retry."""
    if 200 <= status < 300:
        return HttpOutcome.DELIVERED
    if status in (408, 429) or status >= 500:
        return HttpOutcome.RETRY
    return HttpOutcome.REJECTED


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header in its delta-seconds form; None otherwise (dates ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        return None
    return seconds


class ClaimDecision(enum.Enum):
    ATTEMPT = "attempt"
    SKIP = "skip"
    GIVE_UP = "give-up"


def decide_claim(status: str, attempts: int, policy: RetryPolicy) -> ClaimDecision:
    """Given the delivery row after claiming it (``attempts`` counts this attempt too).

    ``delivered`` and ``failed`` rows are final: a delivery is never repeated once done, and a
    given-up one waits for an operator. A pending row past its budget is a message whose attempts
    keep dying mid-way (the process crashed, or crashed after dead-lettering it before recording
    that): give up rather than try forever.
    """
    if status != PENDING:
        return ClaimDecision.SKIP
    if attempts > policy.max_attempts:
        return ClaimDecision.GIVE_UP
    return ClaimDecision.ATTEMPT


def sink_dead_letter_headers(sink: str, attempts: int) -> list[tuple[str, bytes]]:
    """What a sink adds to a dead letter: which sink gave up, after how many attempts."""
    return [(SINK_HEADER, sink.encode("utf-8")), (ATTEMPTS_HEADER, str(attempts).encode("ascii"))]
