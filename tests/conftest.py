"""Shared fixtures. The real Kafka and Redis start once per test session, only when a test needs them.

Set ALERTFORMER_TEST_BOOTSTRAP and ALERTFORMER_TEST_REDIS_URL to use a running stack instead;
otherwise deploy/stack.sh starts one on free ports in a temporary directory and stops it at the end.
"""
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The repository's data folder (sample alerts and labelled data, see data/README.md)."""
    return DATA


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """``{"bootstrap": ..., "redis_url": ...}`` of a real Kafka (KRaft) and Redis."""
    if os.environ.get("ALERTFORMER_TEST_BOOTSTRAP"):
        yield {"bootstrap": os.environ["ALERTFORMER_TEST_BOOTSTRAP"],
               "redis_url": os.environ.get("ALERTFORMER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")}
        return
    env = os.environ | {
        "ALERTFORMER_STACK_DIR": str(tmp_path_factory.mktemp("stack")),
        "KAFKA_PORT": str(_free_port()),
        "KAFKA_CONTROLLER_PORT": str(_free_port()),
        "REDIS_PORT": str(_free_port()),
    }
    script = REPO / "deploy" / "stack.sh"
    subprocess.run([script, "up"], env=env, check=True)
    try:
        yield {"bootstrap": f"127.0.0.1:{env['KAFKA_PORT']}", "redis_url": f"redis://127.0.0.1:{env['REDIS_PORT']}/0"}
    finally:
        subprocess.run([script, "down"], env=env, check=False)


@pytest.fixture
def kafka_settings(stack):
    from stream.config import KafkaSettings

    return KafkaSettings(bootstrap_servers=stack["bootstrap"])


@pytest.fixture
def topic_factory(kafka_settings):
    """Create uniquely named topics: ``topic_factory("alerts", partitions=4) -> name``."""
    from stream.health import create_topics

    def make(stem: str, partitions: int = 4) -> str:
        name = f"test.{stem}.{uuid.uuid4().hex[:10]}"
        create_topics(kafka_settings.client_config(), [name], partitions)
        return name

    return make


@pytest.fixture
def read_committed(kafka_settings):
    """``read_committed(topic, expected, timeout_s=30)``: every committed message of a topic.

    Reads until `expected` messages arrived (or the timeout), then one more second, so that
    duplicates beyond `expected` would be seen too.
    """
    from confluent_kafka import Consumer

    def read(topic: str, expected: int, timeout_s: float = 30.0) -> list:
        consumer = Consumer(kafka_settings.client_config() | {
            "group.id": f"reader-{uuid.uuid4()}", "auto.offset.reset": "earliest",
            "isolation.level": "read_committed", "enable.auto.commit": False})
        consumer.subscribe([topic])
        out, deadline = [], time.monotonic() + timeout_s
        while len(out) < expected and time.monotonic() < deadline:
            out += [m for m in consumer.consume(1000, 0.5) if not m.error()]
        out += [m for m in consumer.consume(1000, 1.0) if not m.error()]
        consumer.close()
        return out

    return read


def pytest_ignore_collect(collection_path):
    """conftest.py files hold fixtures, not doctests. With --doctest-modules pytest would import each
    again as the module "conftest", and tests/chaos/conftest.py (collected before this file) would
    shadow this one: an import-file-mismatch error that stops the whole run."""
    return True if collection_path.name == "conftest.py" else None
