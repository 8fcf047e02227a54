"""The names of the Kafka headers Vigil writes and reads: one place, so no two spellings drift apart.

Pure data.
"""

from __future__ import annotations

#: Stable id of the event (every message Vigil writes).
EVENT_ID = "vigil-event-id"
#: Trace id, carried from the event that caused a message to every message it caused.
TRACE_ID = "vigil-trace-id"
#: Dead letters: why, and where the original message was.
ERROR = "vigil-error"
ERROR_TYPE = "vigil-error-type"
SOURCE_TOPIC = "vigil-source-topic"
SOURCE_PARTITION = "vigil-source-partition"
SOURCE_OFFSET = "vigil-source-offset"
#: A dead letter sent without the original value (the topic refused it), and why.
VALUE_OMITTED = "vigil-value-omitted"
#: Dead letters and sinks: which agent or sink gave up, after how many attempts.
AGENT = "vigil-agent"
SINK = "vigil-sink"
ATTEMPTS = "vigil-attempts"
#: A replay's copies: one id per replay run.
REPLAY_ID = "vigil-replay-id"
#: Outbox messages, as Debezium's Outbox Event Router writes them: the outbox id and the event type.
OUTBOX_ID = "id"
OUTBOX_TYPE = "type"
