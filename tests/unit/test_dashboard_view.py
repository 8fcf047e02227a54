"""The dashboard's pure parts: alerts grouped by tier, a dead letter's summary from its headers."""

from __future__ import annotations

import datetime as dt

from ops.browse import letter_summary
from ops.dashboard import alerts_by_tier
from ops.tail import DecodedValue, TailedMessage


def test_alerts_are_grouped_by_tier_with_every_tier_present() -> None:
    rows = [("warning", "drift", "a", None, "{}"), ("critical", "absence", "b", None, "{}")]
    grouped = alerts_by_tier(rows)
    assert list(grouped) == ["critical", "warning"]
    assert [r[2] for r in grouped["warning"]] == ["a"] and [r[2] for r in grouped["critical"]] == ["b"]
    assert alerts_by_tier([]) == {"critical": [], "warning": []}


def test_a_dead_letter_is_summarised_from_its_headers() -> None:
    message = TailedMessage(
        topic="vigil.dlq",
        partition=1,
        offset=7,
        timestamp=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        key="k",
        headers=[
            ("vigil-agent", "order-watch"),
            ("vigil-source-topic", "orders"),
            ("vigil-source-partition", "0"),
            ("vigil-source-offset", "42"),
            ("vigil-error-type", "HandlerError"),
            ("vigil-error", "boom"),
        ],
        value=DecodedValue("text", "v"),
    )
    letter = letter_summary(message)
    assert (letter.partition, letter.offset, letter.agent) == (1, 7, "order-watch")
    assert letter.source == "orders/0/42" and letter.error == "HandlerError boom"
    assert letter_summary(TailedMessage("vigil.dlq", 0, 0, None, None, [], message.value)).agent is None
