"""Floor 3: Debezium connector configs, the embedded-engine bridge to Kafka, the Connect REST client."""
