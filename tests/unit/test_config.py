"""Configuration: file, environment overrides, errors that name the field, masked secrets."""
import pytest

from stream.config import load_config
from stream.errors import ConfigError


def test_defaults_file_and_environment_precedence(tmp_path, monkeypatch):
    path = tmp_path / "c.toml"
    path.write_text('[kafka]\nbootstrap_servers = "file:9092"\n[topics]\npartitions = 8\n')
    monkeypatch.setenv("ALERTFORMER_KAFKA__BOOTSTRAP_SERVERS", "env:9092")
    config = load_config(path)
    assert config.kafka.bootstrap_servers == "env:9092"
    assert config.topics.partitions == 8
    assert config.redis.prefix == "alertformer"


def test_invalid_field_is_named(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[topics]\npartitions = 0\n")
    with pytest.raises(ConfigError, match=r"topics\.partitions"):
        load_config(path)


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[redis]\nprefx = 'x'\n")
    with pytest.raises(ConfigError, match=r"redis\.prefx"):
        load_config(path)


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[kafka\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(bad)


def test_sasl_scram_needs_credentials_and_masks_secret(monkeypatch):
    monkeypatch.setenv("ALERTFORMER_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ConfigError, match="sasl_mechanism, sasl_username, sasl_password"):
        load_config()
    monkeypatch.setenv("ALERTFORMER_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("ALERTFORMER_KAFKA__SASL_USERNAME", "broker")
    monkeypatch.setenv("ALERTFORMER_KAFKA__SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("ALERTFORMER_KAFKA__EXTRA", '{"ssl.key.password": "k3y", "linger.ms": "10"}')
    config = load_config()
    client = config.kafka.client_config()
    assert client["sasl.mechanism"] == "SCRAM-SHA-512" and client["sasl.password"] == "hunter2"
    assert client["linger.ms"] == "10"
    assert "hunter2" not in str(config.masked()) and "k3y" not in str(config.masked())
    assert "hunter2" not in repr(config)
