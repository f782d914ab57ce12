"""Alerts through the real broker: replay → consume → decode, with a malformed message dead-lettered."""
import uuid

import pytest

from stream import avro_io
from stream.ingest import Ingest
from stream.kafka_io import make_consumer, make_producer
from stream.loop import TransactionalLoop, sequential
from stream.replay import load_packets, replay

pytestmark = pytest.mark.integration


def test_replay_decode_and_dead_letter(kafka_settings, topic_factory, shared_data, read_committed):
    alerts_topic, dlq_topic = topic_factory("alerts"), topic_factory("deadletter")
    packets = load_packets([shared_data / "ztf" / "alerts", shared_data / "rubin"])
    assert len(packets) == 2 + 25
    producer = make_producer(kafka_settings)
    malformed = b"\x00\x00\x00\x03\xe8" + b"\x02truncated"  # Rubin magic, schema id 1000, cut short
    producer.produce(alerts_topic, malformed, b"bad-object")
    producer.flush(10)
    report = replay(producer, alerts_topic, packets, progress=False)
    assert report["sent"] == len(packets) and report["failed"] == 0

    ingest = Ingest({alerts_topic: "auto"}, dlq_topic)
    decoded = []

    def process(messages):
        good, dead = ingest(messages)
        decoded.extend(good)
        return dead

    group = f"test-{uuid.uuid4()}"
    loop = TransactionalLoop(make_consumer(kafka_settings, group), make_producer(kafka_settings, f"{group}-txn"),
                             [alerts_topic], sequential(process), batch_size=10)
    stats = loop.run(max_messages=len(packets) + 1, timeout_s=60)

    assert stats.messages_in == len(packets) + 1
    assert len(decoded) == len(packets)
    assert {d.alert.survey for d in decoded} == {"ztf", "rubin"}
    assert {(d.partition, d.offset) for d in decoded}.__len__() == len(packets)
    # Every replayed packet's key is the object id its decode reports.
    assert sorted(d.alert.object_id.encode() for d in decoded) == sorted(p.key for p in packets)

    dead = read_committed(dlq_topic, expected=1)
    assert len(dead) == 1
    name, record = avro_io.decode(dead[0].value())
    assert name == "alertformer.deadletter"
    assert record["payload"] == malformed and record["topic"] == alerts_topic
    assert record["errorType"] == "BadPacket" and record["reason"]
    assert dead[0].key() == b"bad-object"
