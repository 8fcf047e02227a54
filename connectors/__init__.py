"""Floor 3: Debezium connector configs and the Kafka Connect REST client.

- ``*.json``: connector files in Kafka Connect's REST shape; the same file is PUT to the embedded
  Connect worker and to a production one (``vigil connectors apply``).
- :mod:`connectors.config` (pure): loading files; the database address put in place of the
  file's placeholder.
- :mod:`connectors.connect_client`: the Kafka Connect REST client.
- :mod:`connectors.database`: the heartbeat table, replication-slot lag, dropping a slot.
"""
