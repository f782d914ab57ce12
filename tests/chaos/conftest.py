"""Chaos fixtures: a private stack per module (the tests kill its broker and freeze its Redis)."""
import uuid

import pytest
from chaos_kit import PrivateStack

from stream.config import StreamConfig
from stream.health import create_topics


@pytest.fixture(scope="module")
def private_stack(tmp_path_factory):
    stack = PrivateStack(tmp_path_factory.mktemp("chaos-stack"))
    stack.up()
    yield stack
    stack.down()


@pytest.fixture
def chaos_config(private_stack) -> StreamConfig:
    """A scorer configuration on fresh topics of the private stack (the shipped model)."""
    run = uuid.uuid4().hex[:8]
    names = {kind: f"chaos.{kind}.{run}" for kind in ("alerts", "scored", "classifications", "followup",
                                                        "deadletter", "labels")}
    config = StreamConfig(
        kafka={"bootstrap_servers": private_stack.bootstrap},
        redis={"url": private_stack.redis_url, "prefix": f"chaos-{run}"},
        topics={"inputs": {names["alerts"]: "auto"}, **{k: v for k, v in names.items() if k != "alerts"}},
        scoring={"group_id": f"chaos-{run}", "instance_id": f"c-{run}", "batch_size": 50, "batch_timeout_ms": 100},
    )
    create_topics(config.kafka.client_config(), config.topics.all_names(), partitions=4)
    return config
