"""The HTTP ingest's pure part: authentication, Vigil/Alertmanager/Grafana bodies, stable ids."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from schemas.codec import Codec
from schemas.errors import IngestRejected
from streams.drift_ingest import authenticate, parse_body

pytestmark = pytest.mark.timeout(30)

TOKEN = "s3cret-token"


def alertmanager(*alerts: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "version": "4",
            "groupKey": '{}:{alertname="HighLatency"}',
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "vigil",
            "groupLabels": {"alertname": "HighLatency"},
            "commonLabels": {"env": "prod"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": list(alerts),
        }
    ).encode()


FIRING_WARNING = {
    "status": "firing",
    "labels": {"alertname": "HighLatency", "service": "orders", "severity": "warning"},
    "annotations": {"value": "0.42"},
    "startsAt": "2024-05-17T09:30:15.123456789Z",
    "endsAt": "0001-01-01T00:00:00Z",
    "generatorURL": "http://prometheus/graph",
    "fingerprint": "a1b2c3d4e5f60718",
}
FIRING_CRITICAL = {
    **FIRING_WARNING,
    "labels": {"alertname": "ErrorRate", "service": "orders", "severity": "critical"},
    "fingerprint": "ffee000011112222",
}


def test_bearer_and_hmac_are_accepted_and_anything_else_refused() -> None:
    body = b"{}"
    authenticate({"Authorization": f"Bearer {TOKEN}"}, body, TOKEN)
    signature = hmac.new(TOKEN.encode(), body, hashlib.sha256).hexdigest()
    authenticate({"X-Vigil-Signature": f"sha256={signature}"}, body, TOKEN)
    for headers, token in [
        ({"Authorization": "Bearer nope"}, TOKEN),
        ({"X-Vigil-Signature": "sha256=00"}, TOKEN),
        ({}, TOKEN),
        ({"Authorization": f"Bearer {TOKEN}"}, None),
    ]:
        with pytest.raises(IngestRejected) as refused:
            authenticate(headers, body, token)
        assert refused.value.status == 401
        assert TOKEN not in refused.value.message


def test_alertmanager_firing_and_resolved_share_a_fingerprint_and_ids_are_stable() -> None:
    records = parse_body("alertmanager", alertmanager(FIRING_WARNING, FIRING_CRITICAL))
    assert [r["severity"] for r in records] == ["warning", "critical"]
    warning = records[0]
    assert warning["metric"] == "HighLatency" and warning["value"] == 0.42
    assert warning["labels"]["env"] == "prod" and warning["fingerprint"] == "a1b2c3d4e5f60718"
    assert parse_body("alertmanager", alertmanager(FIRING_WARNING))[0]["id"] == warning["id"]
    resolved = parse_body(
        "alertmanager",
        alertmanager({**FIRING_WARNING, "status": "resolved", "endsAt": "2024-05-17T10:00:00Z"}),
    )[0]
    assert resolved["severity"] == "resolved" and resolved["fingerprint"] == warning["fingerprint"]
    assert resolved["id"] != warning["id"]
    Codec().encode("DriftEvent", warning)  # a valid record


def test_grafana_values_give_the_value() -> None:
    body = json.dumps(
        {
            "receiver": "vigil",
            "status": "firing",
            "orgId": 1,
            "version": "1",
            "title": "[FIRING:1] cpu",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "cpu", "grafana_folder": "infra"},
                    "annotations": {},
                    "startsAt": "2024-05-17T09:30:15Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "values": {"B": 93.5},
                    "fingerprint": "0011223344556677",
                }
            ],
        }
    ).encode()
    (record,) = parse_body("grafana", body)
    assert (record["source"], record["metric"], record["value"]) == ("grafana", "cpu", 93.5)


def test_vigil_drift_bodies_one_or_many() -> None:
    one = parse_body("drift", b'{"source": "s", "metric": "m", "value": 1, "observed_at": 1715938215}')
    many = parse_body(
        "drift", b'[{"source": "s", "metric": "m", "value": 1, "severity": "critical", "labels": {"a": 1}}]'
    )
    assert one[0]["severity"] == "warning" and many[0]["labels"] == {"a": "1"}


@pytest.mark.parametrize(
    ("kind", "body", "status", "reason"),
    [
        ("drift", b"not json", 400, "not JSON"),
        ("drift", b'{"source": "s"}', 422, "missing field(s) metric, value"),
        ("drift", b'{"source": "s", "metric": "m", "value": "x"}', 422, "not a number"),
        ("drift", b'{"source": "s", "metric": "m", "value": 1, "severity": "bad"}', 422, "use warning"),
        ("alertmanager", b'{"alerts": 3}', 422, "no 'alerts' list"),
        ("alertmanager", alertmanager({**FIRING_WARNING, "status": "weird"}), 422, "firing or resolved"),
        ("alertmanager", alertmanager({**FIRING_WARNING, "startsAt": "yesterday"}), 422, "RFC 3339"),
        ("nope", b"{}", 404, "no ingest named"),
    ],
)
def test_bad_bodies_are_refused_with_the_reason(kind: str, body: bytes, status: int, reason: str) -> None:
    with pytest.raises(IngestRejected) as refused:
        parse_body(kind, body)
    assert refused.value.status == status and reason in refused.value.message
