"""Step 2 of ``vigil up --demo``: a metric drifts slowly, is scored by the policy's windowed detector
and published to ``drift.events``; the built-in drift agents investigate, remediate behind an approval
(which the demo gives), and resolve."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from rich.markup import escape

from ops.demo_context import Story, payload_of, sink_lines
from ops.review import decide
from streams.catalog import outbox_topic
from streams.demo_script import (
    METRIC_LABELS,
    METRIC_NAME,
    METRIC_SOURCE,
    POLICY_TOML,
    REMEDIATION_TOPIC,
    metric_series,
)
from streams.drift_detect import Detection, WindowedDetector
from streams.drift_events import BaselineStats, drift_record, fingerprint
from streams.drift_policy import parse_policy
from streams.drift_publish import DriftPublisher


@dataclass
class MetricFeed:
    """The drifting metric: rows written to ``public.metrics``, read back and scored by the policy's
    windowed detector; each detection published to ``drift.events``."""

    story: Story
    labels: dict[str, str]
    detector: WindowedDetector
    publisher: DriftPublisher
    last_id: int = 0

    def write(self, values: Sequence[float]) -> None:
        with psycopg.connect(self.story.database_url) as conn:
            conn.execute(
                "INSERT INTO public.metrics (name, value) SELECT %s, unnest(%s::double precision[])",
                (METRIC_NAME, list(values)),
            )

    def detect(self) -> list[Detection]:
        """Score the rows written since the last call; publish and return what the detector found."""
        rows = self.story.query(
            "SELECT id, value, extract(epoch FROM observed_at) FROM public.metrics "
            "WHERE name = %s AND id > %s ORDER BY id",
            METRIC_NAME,
            self.last_id,
        )
        found = []
        for row_id, value, at in rows:
            self.last_id = row_id
            detection = self.detector.observe(float(value), float(at))
            if detection is None:
                continue
            record = drift_record(
                source=METRIC_SOURCE,
                metric=METRIC_NAME,
                value=detection.value,
                severity=detection.severity,
                labels=self.labels,
                observed_at=datetime.fromtimestamp(detection.observed_at, UTC),
                statistic=detection.statistic,
                score=detection.score,
                baseline=BaselineStats(**detection.baseline.__dict__),
            )
            (event_id,) = self.publisher.publish_records([record])
            self.story.say(
                f"  detector: [bold]{detection.severity}[/] {detection.statistic}={detection.score:.2f} "
                f"(window mean {detection.value:.1f}) → drift.events {escape(event_id)}"
            )
            found.append(detection)
        return found


def step_drift(story: Story) -> None:
    script = story.script
    labels = {**METRIC_LABELS, "run": story.batch}
    fp = fingerprint(METRIC_SOURCE, METRIC_NAME, labels)
    story.facts["drift_fingerprint"] = fp
    rule = parse_policy(POLICY_TOML).rule_for(METRIC_SOURCE, METRIC_NAME)
    series = metric_series(script)
    feed = MetricFeed(story, labels, WindowedDetector(rule), DriftPublisher(story.settings))
    feed.last_id = story.scalar("SELECT coalesce(max(id), 0) FROM public.metrics")
    try:
        feed.write(series.baseline)
        feed.detect()
        story.say(
            f"public.metrics: {len(series.baseline)} values of {METRIC_NAME} {labels} as the baseline; "
            f"the detector scores windows of {rule.window} ({rule.statistic}: warning ≥ "
            f"{rule.limits().warning:g}, critical ≥ {rule.limits().critical:g})"
        )
        for number, window in enumerate(series.rising, 1):
            story.stop.wait(script.window_pause_s)
            feed.write(window)
            story.say(f"  window {number}: mean {sum(window) / len(window):.1f}")
            feed.detect()
        report = story.wait_for(
            "report from drift-investigate",
            lambda: story.scalar(
                "SELECT reason FROM vigil.reviews WHERE agent = 'drift-investigate' AND reason LIKE %s",
                f"%{fp}%",
            ),
        )
        story.say(
            f"drift-investigate filed a report in the review queue: {escape(str(report).split(' {')[0])}"
        )
        pending = story.wait_for(
            "remediation waiting for approval from drift-remediate",
            lambda: story.scalar(
                "SELECT id::text FROM vigil.reviews WHERE agent = 'drift-remediate' AND status = 'pending' "
                "AND event_id LIKE %s",
                f"{METRIC_SOURCE}/{fp}/%",
            ),
        )
        reason = story.scalar("SELECT reason FROM vigil.reviews WHERE id::text = %s", pending)
        story.say(
            f"drift-remediate proposes its action, held for approval: {escape(str(reason))} (review {pending})"
        )
        decide(story.settings, story.console, pending, approve=True, who="vigil-demo")
        action = story.wait_for(
            "approved remediation delivered to the sink",
            lambda: sink_lines(
                story.sink_file,
                lambda e: (
                    e.get("topic") == outbox_topic(REMEDIATION_TOPIC)
                    and payload_of(e).get("fingerprint") == fp
                ),
            ),
        )
        payload = payload_of(action[0])
        story.say(
            f"the sink received [bold]{payload.get('action')}[/] {json.dumps(payload.get('params'))} "
            f"on {outbox_topic(REMEDIATION_TOPIC)}"
        )
        for number, window in enumerate(series.recovery, 1):
            story.stop.wait(script.window_pause_s)
            feed.write(window)
            story.say(f"  recovery window {number}: mean {sum(window) / len(window):.1f}")
            feed.detect()
        story.wait_for(
            "closed drift incident",
            lambda: story.scalar(
                "SELECT 1 FROM vigil.drift_incidents WHERE fingerprint = %s AND status = 'closed'", fp
            ),
        )
        story.say(f"the router closed incident {fp}: the metric is back to normal")
    finally:
        feed.publisher.close()
