"""The embedded real services: a private PostgreSQL cluster, Apache Kafka (KRaft) and Kafka Connect."""
