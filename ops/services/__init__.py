"""The embedded real services: a private PostgreSQL cluster and the tansu Kafka-protocol broker."""
