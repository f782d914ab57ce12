"""The alertformer service: Kafka in/out, alert decoding, windowing, scoring, state."""
