"""Kafka clients configured the way alertformer needs them, and Kafka error classification.

Errors follow confluent-kafka's three outcomes: ``retriable()`` → retry,
``txn_requires_abort()`` → abort and rewind to the committed offsets,
``fatal()`` or no flag → raise `Fatal` and let a supervisor restart the process.
"""
import logging
import uuid
from collections.abc import Callable, Collection, Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from stream.config import ClusterSettings, KafkaSettings
from stream.errors import AbortTxn, AlertformerError, ConfigError, Fatal, Retriable

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


# Errors of produce() that concern one record (its size or content), not the producer or the transaction.
RECORD_ERRORS = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_RECORD, KafkaError.INVALID_MSG,
                           KafkaError.RECORD_LIST_TOO_LARGE, KafkaError._BAD_MSG, KafkaError._INVALID_ARG})


def is_record_error(err: KafkaException) -> bool:
    """True if `err` (from ``produce``) rejects that record only: it becomes a dead letter."""
    kerr: KafkaError = err.args[0]
    return not kerr.fatal() and kerr.code() in RECORD_ERRORS


SESSION_TIMEOUT_MS = 10_000  # a crashed member's partitions move to the others after this
QUIET_LOG_LEVEL = 0  # librdkafka syslog level of the start-up probe: its retries would print hundreds of lines


def _client(factory: Callable[[dict], object], conf: dict, kafka: ClusterSettings):
    """``factory(conf)``, with librdkafka's refusal of a setting as a ConfigError naming it."""
    try:
        return factory(conf)
    except KafkaException as err:
        text = err.args[0].str()
        field = "kafka.extra" if any(f'"{name}"' in text for name in kafka.extra) else "kafka"
        raise ConfigError(f"{field}: {text}") from None


def check_cluster(kafka: KafkaSettings, topics: Mapping[str, str], compacted: Collection[str] = ()) -> None:
    """Fail fast, with one line, if no broker answers within `kafka.connect_timeout_s` (refused, TLS or SASL
    handshake failed), a topic of `topics` (setting name -> topic) does not exist, or one would refuse a
    record of `kafka.max_message_bytes` (the broker would fail whole transactions, every replay again), or one
    named in `compacted` is not compacted (retention would delete what it holds).

    Raises
    ------
    ConfigError
        Naming the setting: ``kafka.bootstrap_servers``, ``kafka.sasl_*`` or ``topics.<name>``.
    """
    errors: list[KafkaError] = []
    admin = _client(AdminClient, kafka.client_config() | {"error_cb": errors.append, "log_level": QUIET_LOG_LEVEL},
                    kafka)
    try:
        metadata = admin.list_topics(timeout=kafka.connect_timeout_s)
    except KafkaException as err:
        admin.poll(0)  # serves error_cb: the connection errors behind the timeout
        cause = next((e for e in errors if e.code() != KafkaError._ALL_BROKERS_DOWN), err.args[0])
        field = ("kafka.sasl_mechanism/sasl_username/sasl_password" if cause.code() == KafkaError._AUTHENTICATION
                 else "kafka.bootstrap_servers")
        raise ConfigError(f"{field}: no broker of {kafka.bootstrap_servers} answered within "
                          f"{kafka.connect_timeout_s:g} s (kafka.connect_timeout_s): {cause.str()}") from None
    missing = [f"topics.{field}: topic {name} does not exist" for field, name in topics.items()
               if name not in metadata.topics]
    if missing:
        raise ConfigError("; ".join(missing) + f" on {kafka.bootstrap_servers} (python -m stream.health "
                          "--create-topics creates the configured topics)")
    resources = {field: ConfigResource(ConfigResource.Type.TOPIC, name) for field, name in topics.items()}
    described = admin.describe_configs(list(resources.values()), request_timeout=kafka.connect_timeout_s)
    for field, resource in resources.items():
        settings = next(f for r, f in described.items() if r.name == resource.name).result()
        limit = int(settings["max.message.bytes"].value)
        if field in compacted and "compact" not in settings["cleanup.policy"].value:
            raise ConfigError(f"topics.{field}: topic {resource.name} has cleanup.policy "
                              f"{settings['cleanup.policy'].value}, not compact: retention would delete the stored "
                              "positions (python -m stream.health --create-topics creates it compacted)")
        if limit < kafka.max_message_bytes:
            raise ConfigError(f"kafka.max_message_bytes: {kafka.max_message_bytes} exceeds max.message.bytes "
                              f"{limit} of topic {resource.name} (topics.{field}); lower it, or raise the topic's")


def make_consumer(kafka: ClusterSettings, group_id: str, **overrides) -> Consumer:
    """A consumer-group member that reads committed data only and never commits by itself.

    Offsets are committed by the transactional producer (`send_offsets_to_transaction`),
    so ``enable.auto.commit`` is off; ``read_committed`` hides aborted outputs of
    upstream transactional producers. Membership is dynamic: a member that closes
    leaves the group at once (SIGTERM, scale-down); a crashed one is noticed after
    `SESSION_TIMEOUT_MS`. (Static membership, KIP-345, would make restarts instant but
    keeps a stopped member's partitions idle until its session times out.) The prefetch
    queue's size and refill are `KafkaSettings.consumer_config`.
    """
    conf = kafka.client_config() | kafka.consumer_config() | {
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "partition.assignment.strategy": "cooperative-sticky",
        "enable.partition.eof": False,
        "session.timeout.ms": SESSION_TIMEOUT_MS,
    }
    return _client(Consumer, conf | overrides, kafka)


def make_reader(kafka: ClusterSettings, isolation_level: str = "read_committed") -> Consumer:
    """A consumer outside any group (``assign`` only, commits nothing), to read a topic from a given offset."""
    conf = kafka.client_config() | kafka.consumer_config() | {
        "group.id": f"alertformer-reader-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
        "enable.auto.offset.store": False, "isolation.level": isolation_level, "enable.partition.eof": False}
    return _client(Consumer, conf, kafka)


def make_producer(kafka: KafkaSettings, transactional_id: str | None = None, **overrides) -> Producer:
    """An idempotent producer with lz4-compressed batches; transactional when an id is given."""
    conf = kafka.client_config() | {
        "message.max.bytes": kafka.max_message_bytes,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
    }
    if transactional_id:
        conf["transactional.id"] = transactional_id
    return _client(Producer, conf | overrides, kafka)
