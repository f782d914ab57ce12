"""The transactional loop with in-memory Kafka stand-ins: an output the producer or the broker refuses turns its
input into a dead letter, in a new transaction of the same batch; the batch fails only if the dead letter does."""
import pytest
from confluent_kafka import KafkaError
from fakes import FakeConsumer, FakeMessage, FakeProducer

from stream.errors import Fatal
from stream.loop import BatchResult, Output, TransactionalLoop, sequential


def _loop(producer, outputs, dead_letter):
    return TransactionalLoop(FakeConsumer([[FakeMessage(b"x")]]), producer, ["alerts"],
                             sequential(lambda messages: outputs), dead_letter=dead_letter)


def _dead_letter(msg, err):
    return Output("dlq", b"dead:" + msg.value() + b":" + str(err).encode(), msg.key(), source=msg)


@pytest.mark.parametrize("code", [KafkaError.MSG_SIZE_TOO_LARGE, KafkaError._INVALID_ARG])
def test_a_refused_output_makes_its_input_one_dead_letter_in_place_of_all_its_outputs(code):
    big, small = FakeMessage(b"big-alert"), FakeMessage(b"small-alert")
    outputs = [Output("scored", b"ok", source=small), Output("scored", b"big", source=big),
               Output("classifications", b"big-class", source=big), Output("classifications", b"ok", source=small)]
    producer = FakeProducer(refuse=lambda topic, value: code if value == b"big" else None)
    stats = _loop(producer, outputs, _dead_letter).run(max_messages=1)
    topics_values = [(t, v.split(b":")[0] + (b":" + v.split(b":")[1] if t == "dlq" else b""))
                     for t, v, _ in producer.committed]
    assert topics_values == [("scored", b"ok"), ("dlq", b"dead:big-alert"), ("classifications", b"ok")]
    assert b"produce to scored failed" in producer.committed[1][1] and producer.committed[1][2] == b"k"
    assert producer.calls == ["init", "begin", "abort", "begin", "send_offsets", "commit"]
    assert stats.record_errors == 1 and stats.batches == 1 and stats.messages_out == 3


def test_a_refusal_in_a_delivery_report_aborts_and_the_batch_commits_with_the_largest_dead_lettered():
    """The broker refuses all records of a produce request: the largest is taken for the guilty one."""
    big, small = FakeMessage(b"big-alert"), FakeMessage(b"small-alert")
    outputs = [Output("scored", b"ok", source=small), Output("scored", b"b" * 100, source=big),
               Output("classifications", b"c", source=big)]
    producer = FakeProducer(refuse_later=lambda topic, value: KafkaError.MSG_SIZE_TOO_LARGE if value == b"b" * 100
                            else None)
    stats = _loop(producer, outputs, _dead_letter).run(max_messages=1)
    assert [(t, v[:14]) for t, v, _ in producer.committed] == [("scored", b"ok"), ("dlq", b"dead:big-alert")]
    assert producer.calls == ["init", "begin", "send_offsets", "commit", "abort", "begin", "send_offsets", "commit"]
    assert stats.record_errors == 1 and stats.batches == 1 and stats.aborts == 1


def test_the_transaction_fails_only_if_the_dead_letter_fails_too():
    source = FakeMessage(b"alert")
    producer = FakeProducer(refuse=lambda topic, value: KafkaError.MSG_SIZE_TOO_LARGE)
    loop = _loop(producer, [Output("scored", b"big", source=source)], _dead_letter)
    with pytest.raises(Fatal, match="cannot be dead-lettered: Broker: Message size too large"):
        loop.run(max_messages=1)
    assert "commit" not in producer.calls


def test_a_refused_dead_letter_in_a_delivery_report_fails_the_transaction():
    source = FakeMessage(b"alert")
    producer = FakeProducer(refuse_later=lambda topic, value: KafkaError.INVALID_RECORD)
    loop = _loop(producer, [Output("scored", b"v", source=source)], _dead_letter)
    with pytest.raises(Fatal, match="produce to dlq failed, and the record cannot be dead-lettered"):
        loop.run(max_messages=1)
    assert not producer.committed


def test_a_producer_error_that_is_not_about_the_record_is_not_dead_lettered():
    source = FakeMessage(b"alert")
    producer = FakeProducer(refuse=lambda topic, value: KafkaError._STATE)
    loop = _loop(producer, [Output("scored", b"v", source=source)], _dead_letter)
    with pytest.raises(Fatal):
        loop.run(max_messages=1)
    assert not producer.produced and "commit" not in producer.calls


def test_the_loop_times_its_stages_in_its_record():
    outputs = [Output("scored", b"ok", source=FakeMessage(b"x"))]
    loop = _loop(FakeProducer(), outputs, _dead_letter)
    loop.run(max_messages=1)
    times = loop.times.as_dict()
    assert all(times[stage] > 0 for stage in ("consume", "prepare", "finish", "produce", "commit", "batch"))
    assert times["batch"] >= times["finish"] + times["produce"] + times["commit"]
    assert times["decode"] == times["forward"] == 0  # the scoring service's own stages


@pytest.mark.parametrize("later", [False, True], ids=["by produce", "by the broker"])
def test_after_commit_is_told_which_inputs_were_dead_lettered_for_a_refused_output(later):
    big, small = FakeMessage(b"big-alert"), FakeMessage(b"small-alert")
    refuse = lambda topic, value: KafkaError.MSG_SIZE_TOO_LARGE if value == b"b" * 100 else None  # noqa: E731
    producer = FakeProducer(refuse_later=refuse) if later else FakeProducer(refuse=refuse)
    seen = []

    def prepare(messages):
        outputs = [Output("scored", b"b" * 100, source=big), Output("scored", b"ok", source=small)]
        return lambda: BatchResult(outputs, lambda committed, refused: seen.append((committed, refused)))

    TransactionalLoop(FakeConsumer([[big, small]]), producer, ["alerts"], prepare,
                      dead_letter=_dead_letter).run(max_messages=2)
    assert seen == [([big, small], [big])]
