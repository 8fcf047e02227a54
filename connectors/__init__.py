"""Floor 3: Debezium connector configs, the embedded-engine bridge to Kafka, the Connect REST client.

- ``*.json``: connector files in Kafka Connect's REST shape; the same file is PUT to Connect
  (``vigil connectors apply``) or run by the embedded engine (``vigil connectors run``).
- :mod:`connectors.config` (pure): loading files and translating them to engine properties.
- :mod:`connectors.records` (pure): event ids from source positions, and the message headers.
- :mod:`connectors.state` (pure): the state file ``status`` reads.
- :mod:`connectors.engine` and :mod:`connectors._jvm`: the embedded engine (JPype) bridged to Kafka.
- :mod:`connectors.connect_client`: the Kafka Connect REST client.
- :mod:`connectors.database`: the heartbeat table and replication-slot lag.
"""
