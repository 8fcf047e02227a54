"""The live view of ``vigil up``: a snapshot turned into the view and the plain summary line."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import pytest
from rich.console import Console

from ops.live import (
    TOPICS_SHOWN,
    AgentActivity,
    Part,
    Snapshot,
    agent_activity,
    child_part,
    duration,
    flows,
    http_urls,
    is_shown_topic,
    render,
    summary_line,
    with_relay_heartbeat,
)
from streams.settings import load_settings

AT = datetime(2026, 11, 30, 12, 0, 5, tzinfo=UTC)


def _snapshot(**changes: object) -> Snapshot:
    base = Snapshot(
        at=AT,
        uptime_s=125,
        services=(
            Part("postgres", "ok", True, "wal_level=logical"),
            Part("kafka", "ok", True, "1 broker(s)"),
            Part("connect", "ok", True, "Kafka Connect 4.3.1"),
            Part("http", "ok", True, "http://127.0.0.1:6066"),
        ),
        connectors=(
            Part("vigil-demo", "RUNNING", True, "slot lag 1,234 B"),
            Part("vigil-outbox", "FAILED", False, "failed tasks: 0"),
        ),
        children=(child_part("worker", "running", 4321, None, 0),),
        topics=flows(
            {"cdc.public.orders": 100, "vigil.outbox.notifications": 5},
            {"cdc.public.orders": 1100, "vigil.outbox.notifications": 5, "vigil.ticks": 3},
            2.0,
        ),
        agents=(AgentActivity("order-watch", 480, 2, 35), AgentActivity("drift-router", 0, 0, None)),
        alerts=("heartbeat nightly-backup absent since 2026-11-30 11:00",),
        urls=http_urls(load_settings(http_port=6066, http_host=None)),
    )
    return Snapshot(**{**base.__dict__, **changes})


def _text(snapshot: Snapshot, width: int = 160) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(render(snapshot))
    return out.getvalue()


def test_rates_come_from_end_offsets_between_two_refreshes_busiest_first() -> None:
    got = flows({"a": 10, "b": 50, "gone": 9}, {"a": 30, "b": 50, "c": 7}, 4.0)
    assert [(f.topic, f.events, f.rate) for f in got] == [("a", 30, 5.0), ("b", 50, 0.0), ("c", 7, None)]


def test_the_first_refresh_has_no_rates_and_a_recreated_topic_never_goes_negative() -> None:
    assert all(f.rate is None for f in flows(None, {"a": 3, "b": 4}, 1.0))
    assert flows({"a": 100}, {"a": 20}, 1.0)[0].rate == 0.0
    assert flows({"a": 1}, {"a": 5}, 0.0)[0].rate is None


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("cdc.public.orders", True),
        ("vigil.outbox.notifications", True),
        ("drift.events", True),
        ("__consumer_offsets", False),
        ("vigil-__assignor-__leader", False),
        ("vigil-connect-offsets", False),
    ],
)
def test_internal_topics_are_not_shown(name: str, shown: bool) -> None:
    assert is_shown_topic(name) is shown


def test_urls_name_the_dashboard_metrics_and_ingest_on_the_http_port() -> None:
    urls = dict(http_urls(load_settings(http_port=7070, http_host=None)))
    assert urls["dashboard"] == "http://127.0.0.1:7070/"
    assert urls["metrics"] == "http://127.0.0.1:7070/metrics"
    assert urls["health"] == "http://127.0.0.1:7070/healthz"
    assert "http://127.0.0.1:7070/ingest/drift" in urls["ingest"] and "disabled" in urls["ingest"]
    with_token = dict(http_urls(load_settings(http_port=7070, http_host=None, ingest_token="t")))
    assert (
        with_token["ingest"].startswith("POST http://127.0.0.1:7070/ingest/")
        and "disabled" not in with_token["ingest"]
    )
    assert dict(http_urls(load_settings(http_port=1, http_host="0.0.0.0")))["metrics"].startswith(
        "http://127.0.0.1:1/"
    )
    assert dict(http_urls(load_settings(http_port=1, http_host="::1")))["dashboard"] == "http://[::1]:1/"


def test_a_childs_state_says_whether_it_is_fine_and_why_not() -> None:
    assert child_part("worker", "running", 7, None, 0) == Part("worker", "running", True, "pid 7")
    restarting = child_part("worker", "restarting", 7, 1, 2)
    assert restarting.ok is None and restarting.detail == "pid 7, exit code 1, 2 restart(s)"
    assert child_part("sink", "exited", 8, -9, 0).ok is False
    assert child_part("sink", "not started", None, None, 0) == Part("sink", "not started", False, "")


def test_agents_merge_status_lag_with_the_last_minutes_runs() -> None:
    status_agents = [{"agent": "a", "lag": {"t1": 3, "t2": 4}}, {"agent": "b", "lag": {}}]
    got = agent_activity(status_agents, {"a": (10, 1), "new": (2, 0)})
    assert got == (
        AgentActivity("a", 10, 1, 7),
        AgentActivity("b", 0, 0, None),
        AgentActivity("new", 2, 0, None),
    )


def test_the_view_shows_every_part_topic_agent_alert_and_url() -> None:
    text = _text(_snapshot())
    assert "running 2m05s" in text and "Ctrl-C stops everything" in text
    for expected in ("postgres", "kafka", "connect", "http", "connector vigil-demo", "RUNNING"):
        assert expected in text
    assert "connector vigil-outbox" in text and "FAILED" in text and "failed tasks: 0" in text
    assert "worker" in text and "pid 4321" in text
    lines = text.splitlines()
    orders = next(line for line in lines if "cdc.public.orders" in line)
    assert "1,100" in orders and "500" in orders
    assert re.search(r"order-watch +480 +2 +35 ", text), "agent, ok, failed, lag"
    assert "heartbeat nightly-backup absent" in text
    assert "http://127.0.0.1:6066/metrics" in text and "http://127.0.0.1:6066/" in text


def test_a_narrow_terminal_gets_the_tables_stacked() -> None:
    wide = _text(_snapshot(), width=160).splitlines()
    narrow = _text(_snapshot(), width=80).splitlines()
    assert any("Parts" in line and "Events per topic" in line for line in wide)
    assert not any("Parts" in line and "Events per topic" in line for line in narrow)
    assert any("cdc.public.orders" in line for line in narrow), "a topic name is not cut"
    assert all(len(line) <= 80 for line in narrow)


def test_names_are_shown_as_written_never_as_markup() -> None:
    text = _text(_snapshot(topics=flows(None, {"[bold]odd[/bold]": 1}, 1.0), alerts=("[red]x",)))
    assert "[bold]odd[/bold]" in text and "[red]x" in text


def test_a_quiet_view_says_so_and_many_topics_fold_into_one_line() -> None:
    many = {f"topic.{n:02d}": n for n in range(TOPICS_SHOWN + 3)}
    text = _text(_snapshot(alerts=(), topics=flows(None, many, 1.0), problems=("kafka: timed out",)))
    assert "Open alerts: none" in text
    assert "… 3 quieter topic(s)" in text and "topic.00" not in text and "topic.14" in text
    assert "could not read: kafka: timed out" in text


def test_the_summary_line_is_one_plain_line() -> None:
    assert summary_line(_snapshot()) == (
        "vigil up 2m05s | postgres ok, kafka ok, connect ok, http ok | connectors 1/2 running | "
        "worker running | 500 events/s on 1 topic(s) | runs last minute: 480 ok, 2 failed | lag 35 | "
        "open alerts 1"
    )
    quiet = summary_line(Snapshot(at=AT, uptime_s=3, problems=("runs: connection\n\trefused",)))
    assert quiet == (
        "vigil up 3s | services unknown | connectors 0/0 running | no children | 0 events/s on 0 topic(s) | "
        "runs last minute: 0 ok, 0 failed | lag 0 | open alerts 0 | could not read: runs: connection refused"
    )


def test_vigil_up_has_a_no_live_flag() -> None:
    from typer.testing import CliRunner

    from ops.cli import app

    result = CliRunner().invoke(app, ["up", "--help"])
    assert result.exit_code == 0 and "--no-live" in result.output


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (59.9, "59s"), (61, "1m01s"), (3725, "1h02m")])
def test_durations_are_short(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_the_relay_child_shows_what_its_heartbeat_says() -> None:
    children = (child_part("worker", "running", 7, None, 0), child_part("relay", "running", 8, None, 0))
    ok = {"name": "relay:vigil", "state": "ok", "published": 1234, "last_error": None}
    shown = with_relay_heartbeat(children, [ok], "relay:vigil", 5)
    assert shown[0] == children[0]
    assert shown[1] == Part("relay", "running", True, "pid 8, 1,234 published, backlog 5")
    failing = {**ok, "state": "unhealthy", "last_error": "broker down"}
    [_, relay] = with_relay_heartbeat(children, [failing], "relay:vigil", None)
    assert relay.ok is False and relay.detail.endswith("unhealthy: broker down")
    # another app's heartbeat, or none yet: the child as the supervisor sees it
    assert with_relay_heartbeat(children, [ok], "relay:other", 5) == children
