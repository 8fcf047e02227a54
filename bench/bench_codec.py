"""Codec throughput: ``DriftEvent`` through Vigil's Avro codec vs ``json.dumps``/``json.loads``, one run.

Variants, each over the same records, timed in interleaved rounds by CPU time (best round kept,
since the machine is shared):
- ``avro single-object``: ``Codec.encode`` / ``Codec.decode`` (framing, fingerprint lookup; fastavro
  writes, the reader ``schemas.fastread`` generated for the schema reads; timestamps come back as
  ``datetime``).
- ``json.dumps/loads``: the same dict with ``observed_at`` as an ISO string (JSON has no datetime),
  left a string on decode. The baseline of the ratios.
- ``json + datetime``: as above plus ``isoformat``/``fromisoformat``, so the decoded value equals
  Avro's: the like-for-like comparison.
Target: Avro decode not slower than 1.5x JSON, i.e. a decode ratio of at least 0.67.
No broker needed.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

from bench.common import BenchContext, Measurement, with_ratio
from schemas.codec import Codec
from schemas.examples import EXAMPLES

BENCH = "codec"
BASELINE = "json.dumps/loads"
ROUNDS = 5


def _records(n: int) -> list[dict[str, Any]]:
    base = EXAMPLES["DriftEvent"]
    t0 = base["observed_at"]
    return [
        {
            **base,
            "id": f"prometheus/orders.latency_p99/{i}",
            "value": 400.0 + i % 97,
            "score": (i % 13) / 2.0,
            "severity": ("warning", "critical", "resolved")[i % 3],
            "labels": {"service": f"svc-{i % 17}", "env": "prod"},
            "observed_at": t0 + dt.timedelta(milliseconds=i),
        }
        for i in range(n)
    ]


def _rate(n: int, fn: Callable[[], None], rates: list[float]) -> None:
    # CPU time of this process: the machine is shared, and waiting for a core is not codec cost.
    start = time.process_time()
    fn()
    rates.append(n / max(time.process_time() - start, 1e-9))


def run(ctx: BenchContext) -> list[Measurement]:
    n = max(1000, int(20000 * ctx.scale))
    codec = Codec()
    records = _records(n)
    as_json = [{**r, "observed_at": r["observed_at"].isoformat()} for r in records]
    encoded = [codec.encode("DriftEvent", r) for r in records]
    dumped = [json.dumps(r) for r in as_json]
    assert codec.decode(encoded[0]).record == records[0]

    encode, decode = codec.encode, codec.decode
    dumps, loads, fromiso = json.dumps, json.loads, dt.datetime.fromisoformat

    def avro_roundtrip() -> None:
        for r in records:
            decode(encode("DriftEvent", r))

    def avro_decode() -> None:
        for b in encoded:
            decode(b)

    def json_roundtrip() -> None:
        for r in as_json:
            loads(dumps(r))

    def json_decode() -> None:
        for s in dumped:
            loads(s)

    def json_dt_roundtrip() -> None:
        for r in records:
            d = loads(dumps({**r, "observed_at": r["observed_at"].isoformat()}))
            d["observed_at"] = fromiso(d["observed_at"])

    def json_dt_decode() -> None:
        for s in dumped:
            d = loads(s)
            d["observed_at"] = fromiso(d["observed_at"])

    cases: dict[tuple[str, str], Callable[[], None]] = {
        ("avro single-object", "encode+decode records/s"): avro_roundtrip,
        ("avro single-object", "decode records/s"): avro_decode,
        (BASELINE, "encode+decode records/s"): json_roundtrip,
        (BASELINE, "decode records/s"): json_decode,
        ("json + datetime", "encode+decode records/s"): json_dt_roundtrip,
        ("json + datetime", "decode records/s"): json_dt_decode,
    }
    rates: dict[tuple[str, str], list[float]] = {case: [] for case in cases}
    for _ in range(ROUNDS):
        for case, fn in cases.items():
            _rate(n, fn, rates[case])

    sizes = {
        "avro single-object": sum(map(len, encoded)) / n,
        BASELINE: sum(len(s.encode()) for s in dumped) / n,
    }
    rows = [
        Measurement(
            BENCH,
            variant,
            metric,
            max(rates[(variant, metric)]),
            "records/s",
            target="decode >= 0.67x json (not slower than 1.5x)"
            if variant == "avro single-object" and metric.startswith("decode")
            else None,
            notes=f"{n} DriftEvents, best of {ROUNDS} interleaved rounds",
        )
        for variant, metric in cases
    ]
    rows += [
        Measurement(BENCH, variant, "bytes/record", size, "bytes", notes="framing included for Avro")
        for variant, size in sizes.items()
    ]
    return with_ratio(rows, BASELINE)
