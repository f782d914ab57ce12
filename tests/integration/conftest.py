"""Fixtures for the scoring stream: a small random-weight checkpoint, synthetic Rubin alert streams, and a second,
SASL/SCRAM broker with ACLs playing a survey's read-only cluster."""
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from models.checkpoint import save_checkpoint
from models.model import AlertTransformer, ModelConfig
from stream.config import StreamConfig
from stream.decode import encode_rubin
from stream.kafka_io import make_producer

RUBIN_VERSION = "10.0"
REPO = Path(__file__).resolve().parents[2]
ADMIN, ADMIN_PASSWORD = "admin", "Adm1n-secret"  # the source broker's super user
SCORER, SCORER_PASSWORD = "scorer", "Sc0rer-pass"  # a user with only the ACLs a test grants


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def sasl_source(tmp_path_factory):
    """Bootstrap of a second broker (deploy/stack.sh), SASL/SCRAM-SHA-512 with ACLs: a survey's cluster."""
    env = os.environ | {"ALERTFORMER_STACK_DIR": str(tmp_path_factory.mktemp("source-stack")),
                        "KAFKA_PORT": str(_free_port()), "KAFKA_CONTROLLER_PORT": str(_free_port()),
                        "REDIS_PORT": str(_free_port()), "KAFKA_SUPER_USER": ADMIN,
                        "KAFKA_SUPER_PASSWORD": ADMIN_PASSWORD, "KAFKA_SCRAM_USERS": f"{SCORER}:{SCORER_PASSWORD}"}
    script = REPO / "deploy" / "stack.sh"
    subprocess.run([script, "up"], env=env, check=True, capture_output=True)
    try:
        yield f"127.0.0.1:{env['KAFKA_PORT']}"
    finally:
        subprocess.run([script, "down"], env=env, check=False, capture_output=True)


def sasl(bootstrap: str, user: str, password: str) -> dict:
    """Settings of a cluster section for `user` on the SASL broker."""
    return {"bootstrap_servers": bootstrap, "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": user, "sasl_password": password}


def client_config(settings: dict) -> dict:
    """librdkafka settings of `sasl(...)`."""
    return {"bootstrap.servers": settings["bootstrap_servers"], "security.protocol": settings["security_protocol"],
            "sasl.mechanism": settings["sasl_mechanism"], "sasl.username": settings["sasl_username"],
            "sasl.password": settings["sasl_password"]}


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """An untrained model: the stream's delivery and state do not depend on its skill."""
    torch.manual_seed(0)
    model = AlertTransformer(ModelConfig(d_model=32, n_heads=2, n_layers=1))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, model, metrics={}, train_config={"note": "random weights for tests"},
                    data={"seed": 0}, code_version=None)
    return path


@dataclass(frozen=True)
class SyntheticAlert:
    key: bytes
    value: bytes
    alert_id: int
    object_id: str


def rubin_alerts(n_objects: int, alerts_per_object: int, seed: int = 0,
                 with_history: bool = True) -> list[SyntheticAlert]:
    """Rubin v10 alerts: each object's k-th alert carries its k-1 earlier detections as prvDiaSources.

    Alerts are interleaved across objects in time order, as a survey would send them. Without
    `with_history` each alert carries only its own detection.
    """
    rng = np.random.default_rng(seed)
    base_id = int(rng.integers(1, 2**40)) * 1000
    alerts = []
    for k in range(alerts_per_object):
        for j in range(n_objects):
            object_id = base_id + j
            points = [{"diaSourceId": base_id * 10 + j * 100 + i, "diaObjectId": object_id, "visit": 1000 + i,
                       "midpointMjdTai": 61000.0 + 2.0 * i + 0.01 * j, "band": "ugrizy"[i % 6],
                       "psfFlux": float(1000 + 500 * i + rng.normal(0, 50)), "psfFluxErr": 60.0,
                       "ra": 10.0 + j * 0.01, "dec": -30.0} for i in range(k + 1)]
            record = {"diaSourceId": points[-1]["diaSourceId"], "diaSource": points[-1],
                      "prvDiaSources": points[:-1] if with_history else [], "prvDiaForcedSources": []}
            alerts.append(SyntheticAlert(str(object_id).encode(), encode_rubin(record, RUBIN_VERSION, fill_defaults=True),
                                         points[-1]["diaSourceId"], str(object_id)))
    return alerts


@pytest.fixture
def stream_config(stack, topic_factory, tiny_checkpoint):
    """A StreamConfig on fresh topics, group and Redis prefix."""
    run = uuid.uuid4().hex[:8]
    return StreamConfig(
        kafka={"bootstrap_servers": stack["bootstrap"]},
        redis={"url": stack["redis_url"], "prefix": f"test-{run}"},
        topics={"inputs": {topic_factory("alerts"): "auto"}, "scored": topic_factory("scored"),
                "classifications": topic_factory("classifications"), "followup": topic_factory("followup"),
                "deadletter": topic_factory("deadletter"), "labels": topic_factory("labels")},
        scoring={"group_id": f"scorer-{run}", "instance_id": f"i-{run}", "checkpoint": str(tiny_checkpoint),
                 "batch_size": 50, "batch_timeout_ms": 100},
    )


def config_env(config: StreamConfig) -> dict[str, str]:
    """The same configuration as ALERTFORMER_* environment variables, for a scorer subprocess (secrets in clear)."""
    import json

    def flatten(prefix: str, values: dict) -> dict[str, str]:
        env = {}
        for key, value in values.items():
            name = f"{prefix}__{key.upper()}"
            if value is None:
                continue
            if key == "kafka" and isinstance(value, dict):  # [input.kafka], [output.kafka]: one variable per field
                env |= flatten(name, value)
            else:
                env[name] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
        return env

    dumped = config.model_dump(mode="json")
    for name, cluster in config.clusters().items():  # model_dump masks SecretStr values
        *parent, leaf = name.split(".")
        section = dumped[parent[0]] if parent else dumped
        section[leaf]["sasl_password"] = cluster.sasl_password.get_secret_value() if cluster.sasl_password else None
    dumped["redis"]["password"] = config.redis.password.get_secret_value() if config.redis.password else None
    env = {}
    for section, values in dumped.items():
        if values is not None:
            env |= flatten(f"ALERTFORMER_{section.upper()}", values)
    return env


def top_candidates(client, keys, score: str) -> dict[bytes, float]:
    """Every object in the top-candidate sets of `score` (all time buckets; a test may straddle two), with its
    highest score there."""
    found: dict[bytes, float] = {}
    for key in client.scan_iter(f"{keys.prefix}:top:{score}:*"):
        for member, value in client.zrange(key, 0, -1, withscores=True):
            found[member] = max(value, found.get(member, value))
    return found


def produce(config: StreamConfig, alerts, extra=()) -> None:
    """Produce `alerts` (`SyntheticAlert`s, keyed by object) and `extra` raw values (key ``bad``) to the input topic."""
    producer = make_producer(config.kafka)
    topic = next(iter(config.topics.inputs))
    for a in alerts:
        producer.produce(topic, a.value, a.key)
    for value in extra:
        producer.produce(topic, value, b"bad")
    assert producer.flush(30) == 0


def wait_for(predicate, polls: int = 1800, interval_s: float = 0.05) -> bool:
    """Poll `predicate` until it holds, at most `polls` times `interval_s` apart; whether it holds at the end."""
    for _ in range(polls):
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())
