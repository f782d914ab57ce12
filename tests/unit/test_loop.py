"""The transactional loop with in-memory Kafka stand-ins: outputs the producer refuses become dead letters."""
import pytest
from confluent_kafka import KafkaError
from fakes import FakeConsumer, FakeMessage, FakeProducer

from stream.errors import Fatal
from stream.loop import Output, TransactionalLoop, sequential


def _loop(producer, outputs, dead_letter):
    return TransactionalLoop(FakeConsumer([[FakeMessage(b"x")]]), producer, ["alerts"],
                             sequential(lambda messages: outputs), dead_letter=dead_letter)


def _dead_letter(msg, err):
    return Output("dlq", b"dead:" + str(err).encode(), msg.key(), source=msg)


@pytest.mark.parametrize("code", [KafkaError.MSG_SIZE_TOO_LARGE, KafkaError._INVALID_ARG])
def test_a_refused_output_becomes_its_inputs_dead_letter_and_the_batch_commits(code):
    source = FakeMessage(b"alert")
    outputs = [Output("scored", b"big", source=source), Output("scored", b"ok", source=source)]
    producer = FakeProducer(refuse=lambda topic, value: code if value == b"big" else None)
    loop = _loop(producer, outputs, _dead_letter)
    stats = loop.run(max_messages=1)
    assert [(t, v) for t, v, _ in producer.produced][1] == ("scored", b"ok")
    topic, value, key = producer.produced[0]
    assert topic == "dlq" and value.startswith(b"dead:produce to scored failed") and key == b"k"
    assert producer.calls[-1] == "commit" and stats.record_errors == 1 and stats.batches == 1


def test_the_transaction_fails_only_if_the_dead_letter_fails_too():
    source = FakeMessage(b"alert")
    producer = FakeProducer(refuse=lambda topic, value: KafkaError.MSG_SIZE_TOO_LARGE)
    loop = _loop(producer, [Output("scored", b"big", source=source)], _dead_letter)
    with pytest.raises(Fatal, match="Message size too large"):
        loop.run(max_messages=1)
    assert "commit" not in producer.calls


def test_a_producer_error_that_is_not_about_the_record_is_not_dead_lettered():
    source = FakeMessage(b"alert")
    producer = FakeProducer(refuse=lambda topic, value: KafkaError._STATE)
    loop = _loop(producer, [Output("scored", b"v", source=source)], _dead_letter)
    with pytest.raises(Fatal):
        loop.run(max_messages=1)
    assert not producer.produced and "commit" not in producer.calls
