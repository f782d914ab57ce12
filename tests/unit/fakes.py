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
    """Records produced messages; `refuse(value) -> error code or None` decides which produce() calls fail."""

    def __init__(self, refuse=lambda topic, value: None):
        self.refuse, self.produced, self.calls = refuse, [], []

    def produce(self, topic, value, key=None, headers=None):
        code = self.refuse(topic, value)
        if code is not None:
            raise kafka_exception(code)
        self.produced.append((topic, value, key))

    def poll(self, timeout_s=0): return 0
    def init_transactions(self, timeout_s=None): self.calls.append("init")
    def begin_transaction(self): self.calls.append("begin")
    def send_offsets_to_transaction(self, offsets, metadata, timeout_s=None): self.calls.append("send_offsets")
    def commit_transaction(self, timeout_s=None): self.calls.append("commit")
    def abort_transaction(self, timeout_s=None): self.calls.append("abort")


class FakeConsumer:
    def __init__(self, batches=()):
        self.batches = list(batches)

    def subscribe(self, topics, on_revoke=None, on_lost=None): pass
    def consume(self, n, timeout_s): return self.batches.pop(0) if self.batches else []
    def assignment(self): return []
    def consumer_group_metadata(self): return None
    def committed(self, partitions, timeout=None): return []
    def close(self): pass
