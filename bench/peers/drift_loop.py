"""Peer of ``bench_drift``: the drift router as a plain confluent-kafka loop, state in memory.

Per batch of up to 500 messages: decode each ``DriftEvent`` (Avro, :mod:`schemas.codec`), skip an
event id already seen, decide with the same pure :func:`streams.drift_router.route` and default
policy the ``drift-router`` agent uses, and produce the routed record to the warning or critical
topic; then flush the producer and commit the batch's offsets. Its incidents live in a dict, so
it keeps nothing across a restart and writes no decision records: the floor of what routing costs.
Runs until SIGTERM. ``python -m bench.peers.drift_loop --bootstrap … --topic … --group …
--warning-topic … --critical-topic …``
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from bench.peers.work import EVENT_ID_HEADER, stop_on_sigterm
from schemas.codec import Codec
from streams.drift_events import as_epoch, fingerprint
from streams.drift_policy import Policy
from streams.drift_router import Incident, Signal, route


@dataclass
class MemoryRouter:
    """The router's state in memory: each fingerprint's incident, and the event ids already decided."""

    policy: Policy
    incidents: dict[str, Incident] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)

    def decide(self, record: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """The tier and the record to send there, or None (duplicate, muted, cooling down, …)."""
        event_id = str(record["id"])
        if event_id in self.seen:
            return None
        self.seen.add(event_id)
        fp = str(
            record.get("fingerprint") or fingerprint(record["source"], record["metric"], record["labels"])
        )
        rule = self.policy.rule_for(record["source"], record["metric"])
        signal = Signal(
            fp, record["source"], record["severity"], as_epoch(record["observed_at"]), record["labels"]
        )
        criticals = (
            [
                i
                for i in self.incidents.values()
                if i.source == signal.source and i.status == "open" and i.tier == "critical"
            ]
            if signal.severity == "warning"
            else []
        )
        decision = route(signal, self.incidents.get(fp), criticals, rule)
        if decision.incident is not None:
            self.incidents[fp] = decision.incident
        if decision.tier is None:
            return None
        routed = {
            **record,
            "fingerprint": fp,
            "severity": decision.severity,
            "id": f"{event_id}/drift-loop/0",
        }
        if decision.reason != "routed":
            routed["labels"] = {**record["labels"], "vigil_route_reason": decision.reason}
        return decision.tier, routed


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--warning-topic", required=True)
    parser.add_argument("--critical-topic", required=True)
    parser.add_argument("--batch", type=int, default=500)
    return parser.parse_args()


def main() -> None:
    args = arguments()
    stop = stop_on_sigterm()
    codec = Codec()
    router = MemoryRouter(Policy())
    tiers = {"warning": args.warning_topic, "critical": args.critical_topic}
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    # The same producer settings as Vigil's (streams.kafka.make_producer).
    producer = Producer(
        {"bootstrap.servers": args.bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5}
    )
    consumer.subscribe([args.topic])
    while not stop.is_set():
        messages = consumer.consume(args.batch, timeout=0.2)
        if not messages:
            continue
        offsets: dict[tuple[str, int], int] = {}
        for msg in messages:
            if msg.error() is not None:
                continue
            routed = router.decide(codec.decode(msg.value() or b"").record)
            if routed is not None:
                tier, record = routed
                producer.produce(
                    tiers[tier],
                    key=str(record["fingerprint"]).encode(),
                    value=codec.encode("DriftEvent", record),
                    headers=[(EVENT_ID_HEADER, str(record["id"]).encode())],
                )
            offsets[(msg.topic() or "", msg.partition() or 0)] = (msg.offset() or 0) + 1
        if producer.flush(30):
            raise RuntimeError("drift loop: the broker did not acknowledge the routed events within 30 s")
        consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False
        )
    consumer.close()


if __name__ == "__main__":
    main()
