"""Floor 2: settings, the topic catalog, Kafka clients, the Faust app, event views, routing."""
