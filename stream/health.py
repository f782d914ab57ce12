"""Wait until Kafka and Redis answer, and create the configured topics.

Kafka is ready only when a transactional producer completes ``init_transactions``:
on a fresh single node the transaction coordinator comes up after the broker
accepts connections, and a scorer started before that would hang.

    alertformer health --bootstrap 127.0.0.1:9092 --redis-url redis://127.0.0.1:6379/0 --create-topics
"""
import logging
import sys
import time
import uuid

import redis
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from pydantic import ValidationError

from stream.config import RedisSettings, load_config, one_line
from stream.errors import ConfigError
from stream.redis_io import check_access, make_redis
from stream.secrets import mask_in_logs, mask_url, url_secrets

log = logging.getLogger(__name__)
POLL_INTERVAL_S = 0.5  # between readiness probes
PROBE_TIMEOUT_S = 5.0  # one metadata or init_transactions call
COMPACTED_PARTITIONS = 1  # the input positions' topic: a record per input partition, read whole on each assignment


def wait_for_redis(settings: RedisSettings, deadline: float) -> None:
    """Ping until Redis answers (TimeoutError after `deadline`); ConfigError at once if it refuses the credentials
    or the scorer's scripts (`stream.redis_io.check_access`)."""
    client = make_redis(settings, socket_timeout=PROBE_TIMEOUT_S)
    while True:
        try:
            check_access(client, settings)
            return
        except redis.RedisError as err:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Redis at {mask_url(settings.url)} did not answer: {err}") from None
            time.sleep(POLL_INTERVAL_S)


def wait_for_kafka(client_config: dict, deadline: float) -> None:
    # Probes expect refused connections while the broker starts: keep librdkafka quiet (critical only).
    client_config = client_config | {"log_level": 2}
    admin = AdminClient(client_config)
    while True:
        try:
            admin.list_topics(timeout=PROBE_TIMEOUT_S)
            break
        except KafkaException as err:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Kafka at {client_config['bootstrap.servers']} did not answer: {err}") from None
            time.sleep(POLL_INTERVAL_S)
    producer = Producer(client_config | {"transactional.id": f"alertformer-health-{uuid.uuid4()}"})
    while True:
        try:
            producer.init_transactions(PROBE_TIMEOUT_S)
            return
        except KafkaException as err:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Kafka transactions are not available: {err}") from None
            time.sleep(POLL_INTERVAL_S)


def create_topics(client_config: dict, names, partitions: int, timeout_s: float = 30.0,
                  topic_config: dict[str, str] | None = None) -> list[str]:
    """Create the topics that do not exist yet (replication factor 1, `topic_config`); return those created."""
    admin = AdminClient(client_config)
    existing = admin.list_topics(timeout=timeout_s).topics
    wanted = [NewTopic(n, num_partitions=partitions, replication_factor=1, config=topic_config or {})
              for n in names if n not in existing]
    if not wanted:
        return []
    for name, future in admin.create_topics(wanted, operation_timeout=timeout_s).items():
        try:
            future.result()
        except KafkaException as err:
            if err.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
    return [t.topic for t in wanted]


def cmd_health(args) -> int:
    """``alertformer health``: 0 when both answer (and the topics exist, with `args.create_topics`), 1 if
    not within `args.timeout_s`, 2 on a configuration error."""
    mask_in_logs(url_secrets(args.redis_url))
    try:
        config = load_config(args.config)
        redis_settings = config.redis.updated(url=args.redis_url) if args.redis_url else config.redis
    except ValidationError as err:  # a bad --redis-url
        raise ConfigError(f"--redis-url: {one_line(err, 'redis')}") from None
    client_config = config.output_kafka().client_config()  # with [input.kafka], the own cluster: outputs only
    if args.bootstrap:
        client_config["bootstrap.servers"] = args.bootstrap
    deadline = time.monotonic() + args.timeout_s
    try:
        wait_for_redis(redis_settings, deadline)
        wait_for_kafka(client_config, deadline)
    except TimeoutError as err:
        print(f"not ready: {err}", file=sys.stderr)
        return 1
    if args.create_topics:
        topics = config.topics
        created = create_topics(client_config, topics.output_names() if config.two_clusters else topics.all_names(),
                                topics.partitions)
        if config.two_clusters:
            created += create_topics(client_config, [topics.input_offsets], COMPACTED_PARTITIONS,
                                     topic_config={"cleanup.policy": "compact"})
        log.info("topics created=%s", ",".join(created) or "none")
    log.info("ready kafka=%s redis=%s", client_config["bootstrap.servers"], mask_url(redis_settings.url))
    return 0
