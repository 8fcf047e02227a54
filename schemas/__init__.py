"""Floor 1: Vigil's Avro records, the codec, and the root of the exception tree."""
