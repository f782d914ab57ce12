"""Poison pills against the real broker: a large garbage message among good alerts is dead-lettered
(cut to the configured size) and the good alerts are scored; the scorer does not stop."""
import hashlib
import uuid

import numpy as np
import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from conftest import rubin_alerts

from stream import avro_io
from stream.kafka_io import make_producer
from stream.service import ScoringService

pytestmark = pytest.mark.integration
BIG_TOPIC_MAX_MESSAGE_BYTES = 6_000_000  # the input topic accepts 5 MB messages; outputs keep Kafka's default


def _big_input_topic(kafka_settings) -> str:
    name = f"test.alerts-big.{uuid.uuid4().hex[:10]}"
    admin = AdminClient(kafka_settings.client_config())
    topic = NewTopic(name, num_partitions=2, replication_factor=1,
                     config={"max.message.bytes": str(BIG_TOPIC_MAX_MESSAGE_BYTES)})
    admin.create_topics([topic])[name].result(30)
    return name


def test_large_garbage_messages_are_dead_lettered_and_good_alerts_scored(stream_config, kafka_settings,
                                                                         read_committed):
    topic = _big_input_topic(kafka_settings)
    config = stream_config.model_copy(update={"topics": stream_config.topics.updated(inputs={topic: "auto"})})
    rng = np.random.default_rng(12)
    garbage = [rng.bytes(999_900), b"\x00\x00\x00\x03\xe8" + rng.bytes(5_000_000)]  # the second looks Rubin
    alerts = rubin_alerts(n_objects=10, alerts_per_object=2, seed=12)
    producer = make_producer(kafka_settings, **{"message.max.bytes": BIG_TOPIC_MAX_MESSAGE_BYTES - 100_000})
    for i, a in enumerate(alerts):
        producer.produce(topic, a.value, a.key)
        if i in (5, 12):
            producer.produce(topic, garbage[i == 12], b"poison")
    assert producer.flush(60) == 0
    n_in = len(alerts) + len(garbage)

    service = ScoringService(config)
    stats = service.run(max_messages=n_in, timeout_s=120)  # a Fatal (exit 3) would raise here
    assert stats.messages_in == n_in

    scored = [avro_io.decode(m.value())[1] for m in read_committed(config.topics.scored, len(alerts))]
    assert sorted(r["alertId"] for r in scored) == sorted(a.alert_id for a in alerts)
    dead = [avro_io.decode(m.value())[1] for m in read_committed(config.topics.deadletter, len(garbage))]
    assert len(dead) == len(garbage)
    limit = config.kafka.deadletter_max_payload_bytes
    for record in dead:
        original = next(g for g in garbage if len(g) == record["payloadBytes"])
        assert record["payloadTruncated"] and record["payload"] == original[:limit]
        assert record["payloadSha256"] == hashlib.sha256(original).hexdigest()
        assert record["reason"] and record["key"] == b"poison"
