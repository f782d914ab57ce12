"""Kafka clients configured the way alertformer needs them, and Kafka error classification.

Errors follow confluent-kafka's three outcomes: ``retriable()`` → retry,
``txn_requires_abort()`` → abort and rewind to the committed offsets,
``fatal()`` or no flag → raise `Fatal` and let a supervisor restart the process.
"""
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from stream.config import ClusterSettings, KafkaSettings, StreamConfig
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


def is_record_error(err: KafkaError | None) -> bool:
    """True if `err` (raised by ``produce`` or in a delivery report) refuses that record only: it becomes a
    dead letter."""
    return err is not None and not err.fatal() and err.code() in RECORD_ERRORS


SESSION_TIMEOUT_MS = 10_000  # a crashed member's partitions move to the others after this
QUIET_LOG_LEVEL = 0  # librdkafka syslog level of the start-up probe: its retries would print hundreds of lines
LOG_EVERY_S = 30.0  # librdkafka's log: at most one line per facility this often (a dead broker repeats each second)
# librdkafka's syslog levels (0 emergency .. 7 debug) as Python logging levels.
SYSLOG_LEVELS = {0: logging.CRITICAL, 1: logging.CRITICAL, 2: logging.CRITICAL, 3: logging.ERROR, 4: logging.WARNING,
                 5: logging.INFO, 6: logging.INFO, 7: logging.DEBUG}
# Errors that no retry mends: the credentials or the rights are wrong, or the topic is missing (exit 2).
ACCESS_ERRORS = frozenset({
    KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC})


class LibrdkafkaLog:
    """librdkafka's own log through Python logging (logger ``librdkafka``): WARNING and above only, at most
    one line per facility every `every_s`, with the number of lines held back since the last one."""

    def __init__(self, every_s: float = LOG_EVERY_S):
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._held: Counter = Counter()
        self._lock = threading.Lock()
        self._log = logging.getLogger("librdkafka")

    def log(self, level: int, fmt: str, *args) -> None:
        level = SYSLOG_LEVELS.get(level, level)  # confluent-kafka passes Python levels; syslog ones, just in case
        if level < logging.WARNING:
            return
        facility = str(args[0]) if args else fmt
        now = time.monotonic()
        with self._lock:
            if facility in self._last and now - self._last[facility] < self.every_s:
                self._held[facility] += 1
                return
            self._last[facility] = now
            held = self._held.pop(facility, 0)
        suffix = f" ({held} similar lines held back)" if held else ""
        self._log.log(level, (fmt % args if args else fmt) + suffix)


LIBRDKAFKA_LOG = LibrdkafkaLog()


def _client(factory: Callable[[dict], object], conf: dict, kafka: ClusterSettings):
    """``factory(conf)`` logging through `LIBRDKAFKA_LOG`, with librdkafka's refusal of a setting as a
    ConfigError naming it."""
    try:
        return factory({"logger": LIBRDKAFKA_LOG} | conf)
    except KafkaException as err:
        text = err.args[0].str()
        field = f"{kafka.SECTION}.extra" if any(f'"{name}"' in text for name in kafka.extra) else kafka.SECTION
        raise ConfigError(f"{field}: {text}") from None


def _prefix(role: str | None) -> str:
    """How messages name the cluster: ``input cluster: `` or ``output cluster: `` with two, nothing with one."""
    return f"{role} cluster: " if role else ""


def connect(kafka: ClusterSettings, role: str | None = None, section: str | None = None):
    """An admin client of `kafka` and the cluster's metadata, or, if no broker answers within
    `kafka.connect_timeout_s` (refused, unreachable, TLS or SASL handshake failed), a ConfigError naming the
    setting (in `section`, default ``kafka.SECTION``), the cluster (`role`, with two) and the cause."""
    errors: list[KafkaError] = []
    admin = _client(AdminClient, kafka.client_config() | {"error_cb": errors.append, "log_level": QUIET_LOG_LEVEL},
                    kafka)
    try:
        return admin, admin.list_topics(timeout=kafka.connect_timeout_s)
    except KafkaException as err:
        admin.poll(0)  # serves error_cb: the connection errors behind the timeout
        cause = next((e for e in errors if e.code() != KafkaError._ALL_BROKERS_DOWN), err.args[0])
        section = section or kafka.SECTION
        field = (f"{section}.sasl_mechanism/sasl_username/sasl_password"
                 if cause.code() in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED)
                 else f"{section}.bootstrap_servers")
        raise ConfigError(f"{field}: {_prefix(role)}no broker of {kafka.bootstrap_servers} answered within "
                          f"{kafka.connect_timeout_s:g} s ({section}.connect_timeout_s): {cause.str()}") from None


def check_readable(kafka: ClusterSettings, topics: Iterable[tuple[str, str]], role: str | None = None,
                   section: str | None = None) -> None:
    """ConfigError naming the setting and the cluster if no broker answers, or a topic of `topics` ((setting,
    topic) pairs) does not exist or is not authorised to this user."""
    admin, metadata = connect(kafka, role, section)
    for field, name in topics:
        topic = metadata.topics.get(name)
        if topic is None or topic.error is not None:  # ask for it by name: an unauthorised topic says so then
            topic = admin.list_topics(name, timeout=kafka.connect_timeout_s).topics.get(name)
        error = topic.error if topic is not None else KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)
        if error is not None:
            raise ConfigError(f"{field}: {_prefix(role)}topic {name} on {kafka.bootstrap_servers}: "
                              f"{access_cause(error, kafka.sasl_username)}")


def check_input(config: StreamConfig) -> None:
    """The input cluster answers and each input topic exists and may be read (a pattern's topics are not
    checked: it may match none yet)."""
    role, _ = config.roles()
    section = "input.kafka" if config.two_clusters else "kafka"
    kafka = config.input_kafka()
    if config.input is not None and config.input.kafka.topic_pattern:
        connect(kafka, role, section)
        return
    check_readable(kafka, [(config.input_topics_field(), name) for name in config.input_subscription()], role,
                   section)


def input_label(config: StreamConfig, group_id: str) -> str:
    """How the loop's errors name the input: its cluster (with two) and consumer group."""
    return f"input cluster, group {group_id}: " if config.two_clusters else f"group {group_id}: "


def access_cause(error: KafkaError, username: str | None = None) -> str:
    """What an access error means, in a few words."""
    user = f" to user {username}" if username else ""
    if error.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
        return "does not exist"
    if error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
        return f"not authorised{user} (TOPIC_AUTHORIZATION_FAILED)"
    if error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
        return f"not authorised{user} (GROUP_AUTHORIZATION_FAILED)"
    return error.str()


def check_cluster(kafka: KafkaSettings, topics: Mapping[str, str], compacted: Collection[str] = (),
                  role: str | None = None, section: str | None = None) -> None:
    """Fail fast, with one line, if no broker answers within `kafka.connect_timeout_s` (refused, TLS or SASL
    handshake failed), a topic of `topics` (setting name -> topic) does not exist, or one would refuse a
    record of `kafka.max_message_bytes` (the broker would fail whole transactions, every replay again), or one
    named in `compacted` is not compacted (retention would delete what it holds).

    Raises
    ------
    ConfigError
        Naming the setting: ``kafka.bootstrap_servers``, ``kafka.sasl_*`` or ``topics.<name>``, and with two
        clusters the cluster (`role`).
    """
    admin, metadata = connect(kafka, role, section)
    missing = [f"topics.{field}: {_prefix(role)}topic {name} does not exist" for field, name in topics.items()
               if name not in metadata.topics]
    if missing:
        raise ConfigError("; ".join(missing) + f" on {kafka.bootstrap_servers} (alertformer health "
                          "--create-topics creates the configured topics)")
    resources = {field: ConfigResource(ConfigResource.Type.TOPIC, name) for field, name in topics.items()}
    described = admin.describe_configs(list(resources.values()), request_timeout=kafka.connect_timeout_s)
    for field, resource in resources.items():
        settings = next(f for r, f in described.items() if r.name == resource.name).result()
        limit = int(settings["max.message.bytes"].value)
        if field in compacted and "compact" not in settings["cleanup.policy"].value:
            raise ConfigError(f"topics.{field}: topic {resource.name} has cleanup.policy "
                              f"{settings['cleanup.policy'].value}, not compact: retention would delete the stored "
                              "positions (alertformer health --create-topics creates it compacted)")
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
    """An idempotent producer with lz4-compressed batches; transactional when an id is given (delivery reports
    for failed records only)."""
    conf = kafka.client_config() | {
        "message.max.bytes": kafka.max_message_bytes,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
    }
    if transactional_id:
        conf["transactional.id"] = transactional_id
        # The loop's delivery callbacks only look for refused records (`stream.refused`): no Python call for
        # each record that arrived.
        conf["delivery.report.only.error"] = True
    return _client(Producer, conf | overrides, kafka)
