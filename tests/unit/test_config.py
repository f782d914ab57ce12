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


@pytest.mark.parametrize("env, value, field", [
    ("ALERTFORMER_KAFKA__CONSUMER_QUEUE_KBYTES", "0", r"kafka\.consumer_queue_kbytes"),
    ("ALERTFORMER_KAFKA__CONSUMER_QUEUE_KBYTES", "2097152", r"kafka\.consumer_queue_kbytes"),
    ("ALERTFORMER_KAFKA__EXTRA", '{"queued.max.messages.kbytes": "1024"}', r"kafka: .*consumer_queue_kbytes"),
    ("ALERTFORMER_KAFKA__CONSUMER_FETCH_BACKOFF_MS", "-1", r"kafka\.consumer_fetch_backoff_ms"),
    ("ALERTFORMER_KAFKA__EXTRA", '{"fetch.queue.backoff.ms": "10"}', r"kafka: .*consumer_fetch_backoff_ms"),
    ("ALERTFORMER_SCORING__TORCH_THREADS", "-1", r"scoring\.torch_threads"),
    ("ALERTFORMER_SCORING__PRECISION", "fp16", r"scoring\.precision"),
    ("ALERTFORMER_SCORING__PRECISION", "int8", r"scoring\.precision"),  # measured, not served (README)
    ("ALERTFORMER_SCORING__FORWARD_CHUNK_CURVES", "0", r"scoring\.forward_chunk_curves"),
])
def test_performance_settings_are_validated(monkeypatch, env, value, field):
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match=field):
        load_config()


def test_performance_settings_defaults_and_overrides(monkeypatch):
    config = load_config()
    assert (config.kafka.consumer_queue_kbytes, config.kafka.consumer_fetch_backoff_ms) == (262_144, 50)
    assert (config.scoring.torch_threads, config.scoring.precision, config.scoring.forward_chunk_curves) == \
        (1, "fp32", None)
    monkeypatch.setenv("ALERTFORMER_SCORING__TORCH_THREADS", "0")
    monkeypatch.setenv("ALERTFORMER_SCORING__PRECISION", "bf16")
    monkeypatch.setenv("ALERTFORMER_SCORING__FORWARD_CHUNK_CURVES", "128")
    scoring = load_config().scoring
    assert (scoring.torch_threads, scoring.precision, scoring.forward_chunk_curves) == (0, "bf16", 128)


def test_int8_precision_in_a_file_is_one_line_naming_the_field(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[scoring]\nprecision = "int8"\n')
    with pytest.raises(ConfigError, match=r"scoring\.precision") as err:
        load_config(path)
    assert "\n" not in str(err.value)


def test_consumer_queue_settings_reach_the_consumer_only(monkeypatch):
    import stream.kafka_io as kafka_io
    from stream.config import KafkaSettings

    made = {}
    monkeypatch.setattr(kafka_io, "Consumer", lambda conf: made.setdefault("consumer", conf))
    monkeypatch.setattr(kafka_io, "Producer", lambda conf: made.setdefault("producer", conf))
    kafka = KafkaSettings(consumer_queue_kbytes=4096, consumer_fetch_backoff_ms=20)
    kafka_io.make_consumer(kafka, "g")
    kafka_io.make_producer(kafka)
    assert made["consumer"]["queued.max.messages.kbytes"] == 4096
    assert made["consumer"]["fetch.queue.backoff.ms"] == 20
    assert not {"queued.max.messages.kbytes", "fetch.queue.backoff.ms"} & set(made["producer"])


def test_annotated_example_states_the_defaults():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "deploy" / "config" / "alertformer.toml"
    assert load_config(example).model_dump() == load_config().model_dump()


def test_updated_sections_are_validated_and_keep_secrets():
    from pydantic import ValidationError

    from stream.config import KafkaSettings, ScoringSettings

    with pytest.raises(ValidationError, match="precision"):
        ScoringSettings().updated(precision="int8")  # model_copy(update=...) would have let it through
    kafka = KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="PLAIN", sasl_username="u", sasl_password="p")
    moved = kafka.updated(bootstrap_servers="broker:9093")
    assert (moved.bootstrap_servers, moved.sasl_password.get_secret_value()) == ("broker:9093", "p")


def test_message_sizes_reach_producer_and_consumer(monkeypatch):
    import stream.kafka_io as kafka_io
    from stream.config import KafkaSettings

    made = {}
    monkeypatch.setattr(kafka_io, "Consumer", lambda conf: made.setdefault("consumer", conf))
    monkeypatch.setattr(kafka_io, "Producer", lambda conf: made.setdefault("producer", conf))
    kafka = KafkaSettings(max_message_bytes=2_000_000, max_input_message_bytes=100_000_000)
    kafka_io.make_consumer(kafka, "g")
    kafka_io.make_producer(kafka)
    assert made["producer"]["message.max.bytes"] == 2_000_000
    # A 100 MB input is fetched whole: fetch and receive limits above it.
    assert made["consumer"]["fetch.max.bytes"] > 100_000_000
    assert made["consumer"]["receive.message.max.bytes"] > made["consumer"]["fetch.max.bytes"]
    assert KafkaSettings().consumer_config()["fetch.max.bytes"] == 52_428_800  # librdkafka's default kept


@pytest.mark.parametrize("env, field", [
    ({"ALERTFORMER_KAFKA__DEADLETTER_MAX_PAYLOAD_BYTES": "999000"}, r"kafka: .*deadletter_max_payload_bytes"),
    ({"ALERTFORMER_KAFKA__MAX_INPUT_MESSAGE_BYTES": "0"}, r"kafka\.max_input_message_bytes"),
    ({"ALERTFORMER_KAFKA__EXTRA": '{"message.max.bytes": "5000000"}'}, r"kafka: .*kafka\.max_message_bytes"),
    ({"ALERTFORMER_KAFKA__EXTRA": '{"fetch.max.bytes": "5000000"}'}, r"kafka: .*max_input_message_bytes"),
])
def test_message_size_settings_are_validated(monkeypatch, env, field):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=field):
        load_config()


def test_redis_password_and_webhook_token_are_masked(monkeypatch, caplog):
    import logging

    monkeypatch.setenv("ALERTFORMER_REDIS__URL", "redis://:Pw-in-url@cache:6379/0")
    monkeypatch.setenv("ALERTFORMER_FOLLOWUP__WEBHOOK_URL", "https://hooks.example.org/services/T1/B2/Tok3n")
    monkeypatch.setenv("ALERTFORMER_REGISTRY__PATH", "s3://reader:Reg1stry@bucket/models")
    config = load_config()
    masked = str(config.masked())
    for secret in ("Pw-in-url", "Tok3n", "Reg1stry"):
        assert secret not in masked
    assert config.masked()["redis"]["url"] == "redis://:**********@cache:6379/0"
    with caplog.at_level(logging.INFO):
        logging.getLogger("stream.anything").info("connecting url=%s hook=%s registry=%s", config.redis.url,
                                                  config.followup.webhook_url, config.registry.path)
    assert "Pw-in-url" not in caplog.text and "Tok3n" not in caplog.text and "Reg1stry" not in caplog.text
    assert "cache:6379" in caplog.text


def test_separate_redis_credentials(monkeypatch):
    monkeypatch.setenv("ALERTFORMER_REDIS__USERNAME", "scorer")
    monkeypatch.setenv("ALERTFORMER_REDIS__PASSWORD", "Sep4rate")
    config = load_config()
    assert config.redis.client_options() == {"username": "scorer", "password": "Sep4rate"}
    assert "Sep4rate" not in str(config.masked()) and "Sep4rate" not in repr(config)
    monkeypatch.setenv("ALERTFORMER_REDIS__URL", "redis://:other@cache:6379/0")
    with pytest.raises(ConfigError, match=r"redis: .*password is set both in url and in password"):
        load_config()


@pytest.mark.parametrize("url", ["localhost:6379", "redis://:pw@cache:port/0", "http://cache:6379"])
def test_non_url_redis_url_is_one_line_naming_the_field_without_the_password(monkeypatch, url):
    monkeypatch.setenv("ALERTFORMER_REDIS__URL", url)
    with pytest.raises(ConfigError, match=r"redis\.url: .*is not a Redis URL") as err:
        load_config()
    assert "\n" not in str(err.value) and ":pw@" not in str(err.value)


def test_unknown_section_in_the_environment_is_named(monkeypatch):
    monkeypatch.setenv("ALERTFORMER_BOGUS__X", "1")
    with pytest.raises(ConfigError, match=r"^ALERTFORMER_BOGUS__X: unknown section 'bogus'"):
        load_config()


def test_non_settings_variables_are_left_alone(monkeypatch):
    monkeypatch.setenv("ALERTFORMER_DATA", "/somewhere")
    monkeypatch.setenv("ALERTFORMER_STACK_DIR", "/tmp/x")
    assert load_config().redis.prefix == "alertformer"


@pytest.mark.parametrize("name, value", [("ALERTFORMER_TOPICS__INPUTS", "{alerts: auto}"),
                                         ("ALERTFORMER_KAFKA__EXTRA", "linger.ms=5"),
                                         ("ALERTFORMER_FOLLOWUP__RULES", "[{")])
def test_invalid_json_in_the_environment_names_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=rf"^{name}: invalid JSON"):
        load_config()


def test_unknown_section_in_a_file_is_named(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[bogus]\nx = 1\n")
    with pytest.raises(ConfigError, match=r"bogus: Extra inputs are not permitted"):
        load_config(path)


def test_class_prior_from_the_environment(monkeypatch):
    monkeypatch.setenv("ALERTFORMER_SCORING__CLASS_PRIOR", "lsst-plasticc")
    assert load_config().scoring.class_prior == "lsst-plasticc"  # a plain word, not JSON
    monkeypatch.setenv("ALERTFORMER_SCORING__CLASS_PRIOR", "rates")
    monkeypatch.setenv("ALERTFORMER_SCORING__CLASS_PRIOR_RATES",
                       '{"Ia": 47, "II": 29, "Ib/c": 5, "RR Lyrae": 6, "AGN": 3, "EB": 3, "flare": 3, "SLSN": 1, '
                       '"TDE": 0.4, "KN": 0.01, "dwarf nova": 1, "asteroid": 1}')
    assert load_config().scoring.prior_by_id()[2222] == 47


def test_shipped_checkpoints_by_name(monkeypatch):
    from models.paths import SHIPPED_CHECKPOINT, SMALL_CHECKPOINT

    monkeypatch.setenv("ALERTFORMER_SCORING__CHECKPOINT", "shipped-small")
    assert load_config().scoring.checkpoint == str(SMALL_CHECKPOINT)
    assert load_config().scoring.updated(checkpoint="shipped").checkpoint == str(SHIPPED_CHECKPOINT)
    monkeypatch.setenv("ALERTFORMER_SCORING__CHECKPOINT", "out/mine.pt")
    assert load_config().scoring.checkpoint == "out/mine.pt"  # a path stays a path


TWO_CLUSTERS = '''
[input.kafka]
bootstrap_servers = "alerts.example.org:9094"
security_protocol = "SASL_SSL"
sasl_mechanism = "SCRAM-SHA-512"
sasl_username = "reader"
sasl_password = "Read-0nly"
group_id = "reader-scoring"
topic_pattern = "fink_.*_ztf"
start_position = "2026-01-15T00:00:00Z"
extra = { "ssl.key.password" = "Pem-pass" }

[output.kafka]
bootstrap_servers = "own:9092"
security_protocol = "SASL_PLAINTEXT"
sasl_mechanism = "PLAIN"
sasl_username = "scorer"
sasl_password = "0wn-pass"
'''


def test_two_clusters_from_file_with_secrets_masked(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(TWO_CLUSTERS)
    config = load_config(path)
    assert config.two_clusters
    assert config.input_kafka().client_config()["sasl.password"] == "Read-0nly"
    assert config.output_kafka().client_config()["bootstrap.servers"] == "own:9092"
    assert config.input_group_id() == "reader-scoring"
    assert config.input_subscription() == ["^fink_.*_ztf"]
    assert config.input.kafka.start_offset_ms() == 1_768_435_200_000
    masked = str(config.masked())
    for secret in ("Read-0nly", "Pem-pass", "0wn-pass"):
        assert secret not in masked and secret not in repr(config)
        assert secret in config.secret_values()


def test_one_cluster_is_today_s_case():
    config = load_config()
    assert not config.two_clusters and config.output_kafka() is config.kafka and config.input_kafka() is config.kafka
    assert config.input_subscription() == ["alerts"] and config.input_group_id() == config.scoring.group_id


def test_two_clusters_from_environment(monkeypatch):
    monkeypatch.setenv("ALERTFORMER_INPUT__KAFKA__BOOTSTRAP_SERVERS", "in:9092")
    monkeypatch.setenv("ALERTFORMER_INPUT__KAFKA__TOPICS", '["lsst-alerts-v10"]')
    monkeypatch.setenv("ALERTFORMER_INPUT__KAFKA__START_POSITION", "latest")
    config = load_config()
    assert config.input_kafka().bootstrap_servers == "in:9092" and config.output_kafka() is config.kafka
    assert config.input_subscription() == ["lsst-alerts-v10"] and config.input.kafka.start_offset_ms() is None


@pytest.mark.parametrize("text, field", [
    ('[input.kafka]\nsecurity_protocol = "SASL_SSL"\n', r"input\.kafka: .*needs sasl_mechanism"),
    ('[input.kafka]\ntopics = ["a"]\ntopic_pattern = "b.*"\n', r"input\.kafka: .*set topics or topic_pattern"),
    ('[input.kafka]\ntopic_pattern = "("\n', r"input\.kafka: .*not a regular expression"),
    ('[input.kafka]\nstart_position = "yesterday"\n', r"input\.kafka\.start_position"),
    ('[input.kafka]\nstart_position = "2026-01-15T00:00:00"\n', r"input\.kafka: .*start_position needs a time zone"),
    ('[input.kafka]\nsasl_mechanism = "GSSAPI"\n', r"input\.kafka\.sasl_mechanism"),
    ('[input.kafka]\nbogus = 1\n', r"input\.kafka\.bogus"),
    ('[input.kafka]\nextra = { "fetch.queue.backoff.ms" = "1" }\n', r"input\.kafka: .*extra: .*input\.kafka\.consumer"),
    ('[output.kafka]\nbootstrap_servers = "x:1"\n', r"output\.kafka is set without input\.kafka"),
    ('[output.kafka]\nsecurity_protocol = "SASL_SSL"\n[input.kafka]\n', r"output\.kafka: .*needs sasl_mechanism"),
])
def test_two_cluster_settings_are_validated_naming_the_field(tmp_path, text, field):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=field) as err:
        load_config(path)
    assert "\n" not in str(err.value)


def test_schema_registry_settings_validated_and_masked(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[schema_registry]\nurl = "https://reg.example.org"\nusername = "me"\npassword = "Reg-pass"\n')
    config = load_config(path)
    assert "Reg-pass" not in str(config.masked()) and "Reg-pass" in config.secret_values()
    path.write_text('[schema_registry]\nurl = "https://reg.example.org"\nusername = "me"\n')
    with pytest.raises(ConfigError, match=r"schema_registry: .*username and password together"):
        load_config(path)
    path.write_text('[schema_registry]\nurl = "reg.example.org:8081"\n')
    with pytest.raises(ConfigError, match=r"schema_registry: .*not an http\(s\) URL"):
        load_config(path)


@pytest.mark.parametrize("name", ["rubin", "fink-ztf", "alerce-ztf", "lasair"])
def test_example_configs_of_the_streams_load(name, monkeypatch):
    from pathlib import Path

    monkeypatch.setenv("ALERTFORMER_INPUT__KAFKA__SASL_PASSWORD", "from-the-environment")
    config = load_config(Path(__file__).resolve().parents[2] / "deploy" / "config" / f"{name}.toml")
    assert config.two_clusters and config.input_subscription()
    assert config.output_kafka().bootstrap_servers == "kafka.example.org:9092"
