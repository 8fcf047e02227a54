"""Names read from connector files reach SQL only as quoted identifiers, or not at all."""

from __future__ import annotations

import pytest

from connectors.config import parse_connector, parse_qualified_name
from schemas.errors import ConfigurationError


def _doc(**config: str) -> dict[str, object]:
    return {
        "name": "c",
        "config": {"connector.class": "io.debezium.connector.postgresql.PostgresConnector", **config},
    }


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("public.vigil_heartbeat", ("public", "vigil_heartbeat")),
        ("Public.Beats", ("public", "beats")),  # unquoted names fold to lower case, as in SQL
        ('"Public"."Beats"', ("Public", "Beats")),
        ("beats", ("beats",)),
        (' public . "x y" ', ("public", "x y")),
        ('"hb; DROP TABLE victim; --"', ("hb; DROP TABLE victim; --",)),
        ('public."a""b"', ("public", 'a"b')),
    ],
)
def test_qualified_names_are_read_as_sql_reads_them(text: str, parts: tuple[str, ...]) -> None:
    assert parse_qualified_name(text) == parts


@pytest.mark.parametrize(
    "text", ["", "a.b.c", "public.x; DROP TABLE y", "a b", '"unterminated', "1abc", "public.", "x--"]
)
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match=r"schema\.table"):
        parse_qualified_name(text)


def test_heartbeat_table_with_a_quoted_odd_name_is_kept_whole() -> None:
    query = "INSERT INTO \"hb; DROP TABLE victim; --\" (id, beat_at) VALUES ('x', now())"
    spec = parse_connector(_doc(**{"heartbeat.action.query": query}))
    assert spec.heartbeat_table == '"hb; DROP TABLE victim; --"'
    assert parse_qualified_name(spec.heartbeat_table) == ("hb; DROP TABLE victim; --",)


def test_heartbeat_table_stops_at_the_name() -> None:
    spec = parse_connector(_doc(**{"heartbeat.action.query": "INSERT INTO public.hb; DROP TABLE victim"}))
    assert spec.heartbeat_table == "public.hb"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("slot.name", "vigil; DROP TABLE victim"),
        ("slot.name", "Vigil"),  # Postgres refuses upper case in slot names
        ("slot.name", "x" * 64),
        ("publication.name", "pub; DROP TABLE victim"),
        ("publication.name", 'pub"'),
        ("publication.name", "1pub"),
    ],
)
def test_slot_and_publication_names_must_be_plain(key: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=key):
        parse_connector(_doc(**{key: value}))


def test_plain_slot_and_publication_names_pass() -> None:
    spec = parse_connector(_doc(**{"slot.name": "vigil_demo_2", "publication.name": "Vigil_Demo"}))
    assert (spec.slot_name, spec.publication_name) == ("vigil_demo_2", "Vigil_Demo")
