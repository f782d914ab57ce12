"""Kafka clients configured the way alertformer needs them, and Kafka error classification.

Errors follow confluent-kafka's three outcomes: ``retriable()`` → retry,
``txn_requires_abort()`` → abort and rewind to the committed offsets,
``fatal()`` or no flag → raise `Fatal` and let a supervisor restart the process.
"""
import logging

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from stream.config import KafkaSettings
from stream.errors import AbortTxn, AlertformerError, Fatal, Retriable

log = logging.getLogger(__name__)


def classify(err: KafkaException) -> AlertformerError:
    """Map a `KafkaException` from a transactional call to `Retriable`, `AbortTxn` or `Fatal`."""
    kerr: KafkaError = err.args[0]
    if kerr.fatal():
        return Fatal(str(kerr))
    if kerr.txn_requires_abort():
        return AbortTxn(str(kerr))
    if kerr.retriable():
        return Retriable(str(kerr))
    return Fatal(str(kerr))


SESSION_TIMEOUT_MS = 10_000  # a crashed member's partitions move to the others after this


def make_consumer(kafka: KafkaSettings, group_id: str, instance_id: str | None = None, **overrides) -> Consumer:
    """A consumer-group member that reads committed data only and never commits by itself.

    Offsets are committed by the transactional producer (`send_offsets_to_transaction`),
    so ``enable.auto.commit`` is off; ``read_committed`` hides aborted outputs of
    upstream transactional producers. With an `instance_id` the member is *static*
    (KIP-345): a restart with the same id takes its partitions back at once, without
    waiting for the crashed predecessor's session to time out. (A static member does
    not leave the group on close: after a scale-down its partitions move after
    `SESSION_TIMEOUT_MS`.)
    """
    conf = kafka.client_config() | {
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "partition.assignment.strategy": "cooperative-sticky",
        "enable.partition.eof": False,
        "session.timeout.ms": SESSION_TIMEOUT_MS,
    }
    if instance_id:
        conf["group.instance.id"] = instance_id
    return Consumer(conf | overrides)


def make_producer(kafka: KafkaSettings, transactional_id: str | None = None, **overrides) -> Producer:
    """An idempotent producer with lz4-compressed batches; transactional when an id is given."""
    conf = kafka.client_config() | {
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
    }
    if transactional_id:
        conf["transactional.id"] = transactional_id
    return Producer(conf | overrides)
