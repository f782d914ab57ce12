"""deploy/docker-compose.yml and the Dockerfile, checked against the command line and the configuration.

No Docker engine here: the file is parsed, every command is parsed by the parser that will run it,
every environment is loaded as the service's configuration, and the addresses in it must be those
the Kafka and Redis services listen on.
"""
import os
from pathlib import Path
from urllib.parse import urlparse

import pytest

from alertformer.cli import build_parser
from stream.config import KafkaSettings, RedisSettings, StreamConfig, load_config

yaml = pytest.importorskip("yaml")  # PyYAML: not a dependency of alertformer
REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OURS = sorted(name for name, service in SERVICES.items() if "build" in service)
KAFKA = SERVICES["kafka"]["environment"]


def listeners(setting: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` → {NAME: (host, port)}."""
    pairs = (item.split("://") for item in KAFKA[setting].split(","))
    return {name: (address.rsplit(":", 1)[0], int(address.rsplit(":", 1)[1])) for name, address in pairs}


def published(service: str) -> dict[int, tuple[str, int]]:
    """``[HOST_IP:]HOST_PORT:CONTAINER_PORT`` → {container port: (host ip, host port)}."""
    ports = {}
    for mapping in SERVICES[service].get("ports", []):
        *host_ip, host_port, container_port = str(mapping).split(":")
        ports[int(container_port)] = (host_ip[0] if host_ip else "0.0.0.0", int(host_port))
    return ports


def service_config(name: str, monkeypatch) -> StreamConfig:
    environment = SERVICES[name].get("environment", {})
    sections = set(StreamConfig.model_fields)
    for key in environment:  # pydantic-settings ignores unknown sections: check them here
        assert key.startswith("ALERTFORMER_") and key.removeprefix("ALERTFORMER_").split("__")[0].lower() in sections, key
    for key in [k for k in os.environ if k.startswith("ALERTFORMER_")]:
        monkeypatch.delenv(key)
    for key, value in environment.items():
        monkeypatch.setenv(key, str(value))
    return load_config(None)


def test_the_expected_services():
    assert {"kafka", "redis", "topics", "registry", "scorer", "trainer"} <= set(SERVICES)
    for name in OURS:
        assert SERVICES[name]["build"] == ".." and (REPO / "Dockerfile").is_file()


@pytest.mark.parametrize("name", OURS)
def test_every_command_parses(name):
    command = SERVICES[name]["command"]
    assert command[0] == "alertformer"
    build_parser(command[1]).parse_args(command[1:])  # SystemExit (exit code 2) if it does not


def test_the_dockerfile_runs_the_scoring_service():
    lines = (REPO / "Dockerfile").read_text().splitlines()
    [cmd] = [line for line in lines if line.startswith("CMD ")]
    assert cmd == 'CMD ["alertformer", "run"]' and SERVICES["scorer"]["command"] == ["alertformer", "run"]
    build_parser("run").parse_args(["run"])
    copied = {line.split()[1] for line in lines if line.startswith("COPY ")}
    assert {"alertformer", "stream", "models", "training", "pyproject.toml"} <= copied
    # The registry's first champion is the shipped checkpoint of the copied source tree.
    assert "/app/models/shipped/alertformer.pt" in SERVICES["registry"]["command"]
    assert "WORKDIR /app" in lines and (REPO / "models" / "shipped" / "alertformer.pt").is_file()


def test_kafka_has_an_internal_and_an_external_listener():
    bound, advertised = listeners("KAFKA_LISTENERS"), listeners("KAFKA_ADVERTISED_LISTENERS")
    assert set(bound) == {"INTERNAL", "EXTERNAL", "CONTROLLER"} and set(advertised) == {"INTERNAL", "EXTERNAL"}
    assert KAFKA["KAFKA_INTER_BROKER_LISTENER_NAME"] == "INTERNAL"
    assert KAFKA["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    protocols = dict(item.split(":") for item in KAFKA["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(protocols) == set(bound)
    assert KAFKA["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"1@kafka:{bound['CONTROLLER'][1]}"
    for name in ("INTERNAL", "EXTERNAL"):
        assert advertised[name][1] == bound[name][1]
    assert advertised["INTERNAL"][0] == "kafka"
    # The host reaches EXTERNAL through the published port, at the address the default settings use.
    assert published("kafka") == {bound["EXTERNAL"][1]: ("127.0.0.1", advertised["EXTERNAL"][1])}
    assert KafkaSettings().bootstrap_servers == ":".join(map(str, advertised["EXTERNAL"]))
    for setting in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
        assert KAFKA[setting] == 1  # a single node, or transactions hang (DESIGN.md)


def test_redis_is_published_where_the_default_settings_look():
    default = urlparse(RedisSettings().url)
    assert published("redis") == {6379: (default.hostname, default.port)}
    assert "--port" not in SERVICES["redis"]["command"]  # so it listens on 6379 in its container


@pytest.mark.parametrize("name", OURS)
def test_every_environment_is_a_valid_configuration_with_reachable_addresses(name, monkeypatch):
    config = service_config(name, monkeypatch)
    host, port = config.kafka.bootstrap_servers.rsplit(":", 1)
    assert (host, int(port)) == listeners("KAFKA_ADVERTISED_LISTENERS")["INTERNAL"]
    redis_url = urlparse(config.redis.url)
    assert redis_url.hostname == "redis" and redis_url.port == 6379
    assert set(SERVICES[name]["depends_on"]) & {"kafka", "topics", "registry"}


@pytest.mark.parametrize("name, directories", [
    ("registry", ["registry.path"]), ("scorer", ["registry.path"]), ("trainer", ["registry.path", "trainer.work_dir"]),
])
def test_the_services_that_share_the_registry_mount_it_where_the_configuration_says(name, directories, monkeypatch):
    config = service_config(name, monkeypatch)
    mounts = dict(volume.split(":")[::-1] for volume in SERVICES[name]["volumes"])  # container path → volume
    for setting in directories:
        section, key = setting.split(".")
        path = getattr(getattr(config, section), key)
        assert path in mounts and mounts[path] in COMPOSE["volumes"], (name, setting, path)
    assert mounts.get(config.registry.path) == "registry"  # one volume for every service's registry


def test_the_scorer_has_a_stable_instance_id(monkeypatch):
    assert service_config("scorer", monkeypatch).scoring.instance_id
