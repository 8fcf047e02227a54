"""mask_url: passwords and tokens out of every URL Vigil prints, the rest of the URL kept."""

from __future__ import annotations

import logging

import pytest

from streams.redact import MaskingFormatter, mask_url, mask_urls_in


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            "postgresql://vigil:s3cret@db.internal:5432/vigil",
            "postgresql://vigil:***@db.internal:5432/vigil",
        ),
        (
            "postgresql+psycopg://vigil:s3cret@127.0.0.1:5432/vigil?sslmode=require",
            "postgresql+psycopg://vigil:***@127.0.0.1:5432/vigil?sslmode=require",
        ),
        # A percent-encoded "@" and ":" in the password.
        (
            "postgresql://postgres:p%40ss%3Aw@127.0.0.1:5433/vigil",
            "postgresql://postgres:***@127.0.0.1:5433/vigil",
        ),
        # An unencoded "@" in the password: the last "@" starts the host.
        ("postgresql://u:p@ss@h:1/d", "postgresql://u:***@h:1/d"),
        # No password: unchanged.
        ("postgresql://postgres@127.0.0.1:5433/vigil", "postgresql://postgres@127.0.0.1:5433/vigil"),
        ("postgresql://127.0.0.1/vigil", "postgresql://127.0.0.1/vigil"),
        # Empty password still says nothing.
        ("postgresql://u:@h/d", "postgresql://u:***@h/d"),
        # Password in the query string.
        (
            "postgresql://u@h/d?password=s3cret&sslmode=verify-full",
            "postgresql://u@h/d?password=***&sslmode=verify-full",
        ),
        ("http://user:pw@connect:8083/", "http://user:***@connect:8083/"),
        (
            "https://hooks.example.com/in?token=abc&channel=ops",
            "https://hooks.example.com/in?token=***&channel=ops",
        ),
        ("https://h/x?access_token=abc", "https://h/x?access_token=***"),
        ("https://h/x?api_key=abc&sig=zz", "https://h/x?api_key=***&sig=***"),
        (
            "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX",
            "https://hooks.slack.com/services/T000/B000/***",
        ),
        (
            "https://discord.com/api/webhooks/123/tok-en",
            "https://discord.com/api/webhooks/123/***",
        ),
        ("SASL_SSL://vigil:pw@kafka-1:9092", "SASL_SSL://vigil:***@kafka-1:9092"),
        # No secret: unchanged.
        ("https://receiver.example.com/hook", "https://receiver.example.com/hook"),
        ("http://127.0.0.1:8083", "http://127.0.0.1:8083"),
        ("file:///tmp/x.jsonl", "file:///tmp/x.jsonl"),
        # Bootstrap lists are not URLs.
        ("kafka-1:9092,kafka-2:9092", "kafka-1:9092,kafka-2:9092"),
        # libpq key=value strings.
        (
            "host=127.0.0.1 port=5432 password=s3cret user=vigil",
            "host=127.0.0.1 port=5432 password=*** user=vigil",
        ),
        ("host=h password = 'a b\\' c' dbname=d", "host=h password = *** dbname=d"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_masking_is_idempotent() -> None:
    once = mask_url("postgresql://u:pw@h:1/d?token=t")
    assert mask_url(once) == once


def test_unparseable_url_hides_everything_after_the_scheme() -> None:
    assert mask_url("postgresql://u:pw@[::1:5432/d") == "postgresql://***"


def test_urls_in_text_are_masked() -> None:
    text = "cannot reach postgresql://u:pw@h:1/d (retrying) and https://hooks.slack.com/services/T/B/sec"
    assert mask_urls_in(text) == (
        "cannot reach postgresql://u:***@h:1/d (retrying) and https://hooks.slack.com/services/T/B/***"
    )


def test_log_lines_are_masked() -> None:
    record = logging.LogRecord(
        "x", logging.WARNING, __file__, 1, "cannot reach %s", ("postgresql://u:pw@h/d",), None
    )
    assert MaskingFormatter("%(message)s").format(record) == "cannot reach postgresql://u:***@h/d"
