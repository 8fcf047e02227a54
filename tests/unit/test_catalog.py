"""The topic catalog holds the contract's topics with the right configs."""

from __future__ import annotations

from streams.catalog import CATALOG, PROCESSED_EVENTS, catalog_names, cdc_topic, outbox_topic


def test_contract_topics_are_in_the_catalog() -> None:
    assert set(catalog_names()) >= {
        "drift.events",
        "drift.warning",
        "drift.critical",
        "vigil.processed-events",
        "vigil.ticks",
        "vigil.dlq",
    }


def test_processed_events_is_compacted() -> None:
    spec = next(s for s in CATALOG if s.name == PROCESSED_EVENTS)
    assert spec.configs["cleanup.policy"] == "compact"


def test_derived_topic_names() -> None:
    assert outbox_topic("order") == "vigil.outbox.order"
    assert cdc_topic("public", "orders") == "cdc.public.orders"
