"""Two clusters: alerts read from a SASL/SCRAM source broker whose ACLs allow the scorer only to read the alert
topic and use its group; outputs, transactions and the input positions on the session's own broker.

Exactly once across the two: kill -9 at random points, and a two-scorer rebalance where one is killed
and the survivor takes its partitions over (fencing the dead one's transactional id).
"""
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid

import pytest
import redis
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType)
from conftest import (ADMIN, ADMIN_PASSWORD, SCORER, SCORER_PASSWORD, client_config, config_env,
                      rubin_alerts, sasl)

from stream import avro_io
from stream.health import create_topics
from stream.keys import Keys

pytestmark = pytest.mark.integration
MALFORMED = [b"\x00\x00\x00\x03\xe8\x02cut"]


@pytest.fixture
def alert_topic(sasl_source):
    """A fresh alert topic on the source, readable by the scorer (topic and its group prefix), nothing more."""
    admin_conf = client_config(sasl(sasl_source, ADMIN, ADMIN_PASSWORD))
    admin = AdminClient(admin_conf)
    name = f"alerts.{uuid.uuid4().hex[:10]}"
    admin.create_topics([NewTopic(name, 4, 1)])[name].result(30)
    principal = f"User:{SCORER}"
    acls = [AclBinding(ResourceType.TOPIC, name, ResourcePatternType.LITERAL, principal, "*", op,
                       AclPermissionType.ALLOW) for op in (AclOperation.READ, AclOperation.DESCRIBE)]
    acls.append(AclBinding(ResourceType.GROUP, f"{SCORER}-", ResourcePatternType.PREFIXED, principal, "*",
                           AclOperation.READ, AclPermissionType.ALLOW))
    for future in admin.create_acls(acls).values():
        future.result(30)
    return name


@pytest.fixture
def two_cluster_config(stream_config, sasl_source, alert_topic, tiny_checkpoint):
    """The session's stream_config (outputs on the session broker) reading `alert_topic` from the source."""
    run = uuid.uuid4().hex[:8]
    offsets_topic = f"test.input-offsets.{run}"
    create_topics(stream_config.kafka.client_config(), [offsets_topic], 1, topic_config={"cleanup.policy": "compact"})
    dumped = stream_config.model_dump()
    dumped["kafka"] = stream_config.kafka  # keeps the SecretStr values whole
    dumped["topics"] |= {"inputs": {alert_topic: "auto"}, "input_offsets": offsets_topic}
    dumped["input"] = {"kafka": sasl(sasl_source, SCORER, SCORER_PASSWORD) | {"group_id": f"{SCORER}-{run}"}}
    return type(stream_config)(**dumped)


def produce_to_source(source: str, topic: str, alerts, extra=()) -> None:
    producer = Producer(client_config(sasl(source, ADMIN, ADMIN_PASSWORD)))
    for a in alerts:
        producer.produce(topic, a.value, a.key)
    for value in extra:
        producer.produce(topic, value, b"bad")
    assert producer.flush(60) == 0


def _alerts_done(client, keys, instance_id) -> int:
    value = client.hget(keys.consumer(instance_id), "alerts")
    return int(value) if value else 0


def _wait_for_members(source: str, group: str, n: int, timeout_s: float) -> bool:
    """Until the input group on the source has `n` members, each with partitions assigned."""
    admin = AdminClient(client_config(sasl(source, ADMIN, ADMIN_PASSWORD)))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            description = admin.describe_consumer_groups([group])[group].result(10)
            members = description.members
            if len(members) == n and all(m.assignment.topic_partitions for m in members):
                return True
        except KafkaException:
            pass  # not there yet
        time.sleep(0.5)
    return False


def _exactly_once(read_committed, config, alerts, n_dead: int = 0) -> None:
    scored = [avro_io.decode(m.value())[1] for m in read_committed(config.topics.scored, len(alerts))]
    ids = [r["alertId"] for r in scored]
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} duplicates"
    assert sorted(ids) == sorted(a.alert_id for a in alerts), "lost or foreign alerts"
    classifications = [avro_io.decode_schemaless("elasticc.v0_9_1.brokerClassification", m.value())
                       for m in read_committed(config.topics.classifications, len(alerts))]
    assert sorted(c["alertId"] for c in classifications) == sorted(a.alert_id for a in alerts)
    assert len(read_committed(config.topics.deadletter, n_dead)) == n_dead


def test_scorer_may_not_write_to_the_source(sasl_source, alert_topic):
    """The ACLs: the scorer's user reads the alert topic; writing there, or creating a topic, is refused."""
    conf = client_config(sasl(sasl_source, SCORER, SCORER_PASSWORD))
    errors = []
    producer = Producer(conf | {"message.timeout.ms": 10_000})
    producer.produce(alert_topic, b"x", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(20)
    assert errors and errors[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    admin = AdminClient(conf)  # alive until the answer comes
    future = admin.create_topics([NewTopic("alertformer.scored", 1, 1)])["alertformer.scored"]
    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
        future.result(20)


def test_kill_9_across_two_clusters_gives_exactly_one_output_per_input(two_cluster_config, sasl_source, alert_topic,
                                                                       read_committed):
    source = sasl_source
    alerts = rubin_alerts(n_objects=40, alerts_per_object=20, seed=21)
    produce_to_source(source, alert_topic, alerts, MALFORMED)
    config = two_cluster_config.model_copy(update={"scoring": two_cluster_config.scoring.updated(batch_size=20)})
    env = os.environ | config_env(config)
    cmd = [sys.executable, "-m", "alertformer.cli", "run"]
    client, keys = redis.Redis.from_url(config.redis.url), Keys(config.redis.prefix)
    rng = random.Random(13)
    kills_mid_stream, scored_at_kills = 0, []
    for _ in range(3):
        client.delete(keys.consumer(config.scoring.instance_id))
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Kill at a random point once this process has committed a random number of alerts (its counter), so
        # that the kill lands mid-stream however fast the machine is.
        target, deadline = rng.randint(1, 150), time.monotonic() + 120
        while _alerts_done(client, keys, config.scoring.instance_id) < target and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        committed = len(read_committed(config.topics.scored, len(alerts), timeout_s=2))
        kills_mid_stream += 0 < committed < len(alerts)
        scored_at_kills.append(committed)
    print(json.dumps({"fault": "kill -9 across two clusters", "alerts": len(alerts), "scored_at_kills": scored_at_kills}))
    assert kills_mid_stream >= 2, "the kills did not land mid-stream; the test proves nothing"
    final = subprocess.run(cmd + ["--idle-timeout-s", "5"], env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-3000:]
    _exactly_once(read_committed, config, alerts, n_dead=len(MALFORMED))

    # The input group's offsets on the source were committed too (informational, for lag tools).
    consumer = Consumer(client_config(sasl(source, SCORER, SCORER_PASSWORD)) | {"group.id": config.input_group_id()})
    committed = consumer.committed([TopicPartition(alert_topic, p) for p in range(4)], timeout=20)
    consumer.close()
    assert sum(tp.offset for tp in committed) == len(alerts) + len(MALFORMED)


def test_rebalance_across_two_clusters_survivor_takes_over(two_cluster_config, sasl_source, alert_topic,
                                                          read_committed, tmp_path):
    """Two scorers share the input group; one is killed (-9) mid-stream; the survivor fences it, takes over its
    partitions at their stored positions and scores the rest, exactly once."""
    source = sasl_source
    first = rubin_alerts(n_objects=40, alerts_per_object=4, seed=22)
    second = rubin_alerts(n_objects=40, alerts_per_object=4, seed=23)
    config = two_cluster_config
    client, keys = redis.Redis.from_url(config.redis.url), Keys(config.redis.prefix)
    cmd = [sys.executable, "-m", "alertformer.cli", "run"]
    logs = [tmp_path / f"scorer-{i}.log" for i in range(2)]  # files: a pipe nobody reads could block a scorer

    def log_tails() -> str:
        return " | ".join(log.read_text()[-3000:] for log in logs)

    procs = []
    for i, log in enumerate(logs):
        with log.open("w") as stderr:  # the child keeps its own copy of the descriptor
            procs.append(subprocess.Popen(cmd + ["--instance-id", f"scorer-{i}"], env=os.environ | config_env(config),
                                          stdout=subprocess.DEVNULL, stderr=stderr))
    try:
        assert _wait_for_members(source, config.input_group_id(), 2, timeout_s=180), "scorers did not both join"
        produce_to_source(source, alert_topic, first)
        deadline = time.monotonic() + 120
        while min(_alerts_done(client, keys, f"scorer-{i}") for i in range(2)) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if min(_alerts_done(client, keys, f"scorer-{i}") for i in range(2)) == 0:
            pytest.fail("both should get partitions: " + log_tails())
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()
        produce_to_source(source, alert_topic, second)
        # Wait for the outcome, not for a timer: the killed member's partitions reach the survivor after
        # the session timeout (10 s) and a rebalance, which took over 20 s on a loaded machine.
        scored = read_committed(config.topics.scored, len(first) + len(second), timeout_s=240)
        assert len(scored) == len(first) + len(second), f"{len(scored)} scored: " + log_tails()
        procs[1].send_signal(signal.SIGTERM)
        assert procs[1].wait(timeout=60) == 0, log_tails()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert "fencing the previous owner of input partitions transactional_id=" in logs[1].read_text()
    _exactly_once(read_committed, config, first + second)
