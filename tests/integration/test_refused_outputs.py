"""Records the broker refuses after produce() returned (the topic's max.message.bytes is below the producer's
message.max.bytes) on a real Kafka: the input of the refused record becomes a dead letter with the reason, the
records sent in the same produce request are not lost, and every input has exactly one output."""
import uuid

import numpy as np
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from stream import avro_io
from stream.deadletter import dead_letter
from stream.kafka_io import make_consumer, make_producer
from stream.loop import Output, TransactionalLoop, sequential

pytestmark = pytest.mark.integration
TOPIC_MAX_MESSAGE_BYTES = 20_000  # the output topic's limit; the producer's stays at 1,000,000
BIG_BYTES = 60_000  # an output this large (random, so lz4 cannot shrink it) is refused by the broker only


def _small_topic(kafka_settings) -> str:
    name = f"test.small.{uuid.uuid4().hex[:10]}"
    admin = AdminClient(kafka_settings.client_config())
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1,
                                  config={"max.message.bytes": str(TOPIC_MAX_MESSAGE_BYTES)})])[name].result(30)
    return name


def test_a_record_the_broker_refuses_becomes_its_inputs_dead_letter(kafka_settings, topic_factory, read_committed):
    inputs, out_topic, dlq = topic_factory("in", partitions=1), _small_topic(kafka_settings), topic_factory("dlq")
    rng = np.random.default_rng(3)
    big_at = {7, 31}
    producer = make_producer(kafka_settings)
    for i in range(40):
        producer.produce(inputs, str(i).encode(), str(i).encode())
    assert producer.flush(30) == 0

    def process(messages):  # one output per input; the inputs of `big_at` give one too large for the topic
        return [Output(out_topic, rng.bytes(BIG_BYTES) if int(m.value()) in big_at else b"ok-" + m.value(),
                       m.key(), source=m) for m in messages]

    group = f"g-{uuid.uuid4().hex[:8]}"
    loop = TransactionalLoop(make_consumer(kafka_settings, group), make_producer(kafka_settings, f"t-{group}"),
                             [inputs], sequential(process), batch_size=40, batch_timeout_s=1.0,
                             dead_letter=lambda msg, err: Output(dlq, dead_letter(msg, err)[1], msg.key(), source=msg))
    stats = loop.run(max_messages=40, timeout_s=60)

    assert stats.messages_in == 40 and stats.record_errors == len(big_at)
    scored = sorted(int(m.value()[3:]) for m in read_committed(out_topic, 40 - len(big_at)))
    dead = [avro_io.decode(m.value())[1] for m in read_committed(dlq, len(big_at))]
    assert scored == [i for i in range(40) if i not in big_at]  # the others of the refused request: not lost
    assert sorted(int(d["payload"]) for d in dead) == sorted(big_at)
    assert all(d["reason"].startswith(f"produce to {out_topic} failed: Broker: Message size too large")
               for d in dead)
    assert stats.aborts >= 1  # the transaction in which the broker refused a record did not commit
