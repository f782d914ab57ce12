"""In-memory stand-ins for confluent-kafka's Message, Producer and Consumer, for loop unit tests."""
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException


@dataclass
class FakeMessage:
    _value: bytes | None
    _key: bytes | None = b"k"
    _topic: str = "alerts"
    _partition: int = 0
    _offset: int = 0

    def value(self): return self._value
    def key(self): return self._key
    def topic(self): return self._topic
    def partition(self): return self._partition
    def offset(self): return self._offset
    def timestamp(self): return (1, 1_700_000_000_000)
    def error(self): return None


def kafka_exception(code: int) -> KafkaException:
    return KafkaException(KafkaError(code))


class FakeProducer:
    """Records produced messages. `refuse(topic, value) -> error code or None` decides which produce() calls
    raise; `refuse_later` which records the broker refuses after produce() returned: their delivery reports
    carry the error (all records of that topic and partition 0 in the transaction, as a broker refuses a whole
    produce request) and the commit fails with an abortable error."""

    def __init__(self, refuse=lambda topic, value: None, refuse_later=lambda topic, value: None):
        self.refuse, self.refuse_later = refuse, refuse_later
        self.produced, self.calls, self.committed = [], [], []
        self._txn = []

    def produce(self, topic, value, key=None, headers=None, on_delivery=None):
        code = self.refuse(topic, value)
        if code is not None:
            raise kafka_exception(code)
        self.produced.append((topic, value, key))
        self._txn.append((topic, value, key, on_delivery))

    def poll(self, timeout_s=0): return 0
    def init_transactions(self, timeout_s=None): self.calls.append("init")
    def begin_transaction(self): self.calls.append("begin"); self._txn = []
    def send_offsets_to_transaction(self, offsets, metadata, timeout_s=None): self.calls.append("send_offsets")
    def abort_transaction(self, timeout_s=None): self.calls.append("abort")

    def commit_transaction(self, timeout_s=None):
        self.calls.append("commit")
        codes = [self.refuse_later(topic, value) for topic, value, _, _ in self._txn]
        failed_topics = {topic for (topic, *_), code in zip(self._txn, codes) if code is not None}
        for topic, value, key, on_delivery in self._txn:
            code = next((c for (t, *_), c in zip(self._txn, codes) if t == topic and c is not None), None)
            if on_delivery:
                on_delivery(KafkaError(code) if code is not None else None, FakeMessage(value, key, topic))
        if failed_topics:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "refused", txn_requires_abort=True))
        self.committed.extend((topic, value, key) for topic, value, key, _ in self._txn)


class FakeConsumer:
    def __init__(self, batches=()):
        self.batches = list(batches)

    def subscribe(self, topics, on_revoke=None, on_lost=None): pass
    def consume(self, n, timeout_s): return self.batches.pop(0) if self.batches else []
    def assignment(self): return []
    def consumer_group_metadata(self): return None
    def committed(self, partitions, timeout=None): return []
    def close(self): pass
