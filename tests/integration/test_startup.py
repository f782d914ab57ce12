"""Start-up against the real broker: a failed SASL handshake and a missing output topic are configuration
errors naming the setting, within kafka.connect_timeout_s, not a hang or a flood of librdkafka lines."""

import pytest

from stream.errors import ConfigError
from stream.service import ScoringService

pytestmark = pytest.mark.integration


@pytest.mark.timeout(60)  # bounded: 3 s of handshakes plus the model load; a hang fails the test
def test_failed_sasl_handshake_is_a_config_error_within_the_connect_timeout(stream_config):
    kafka = stream_config.kafka.updated(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                                        sasl_username="scorer", sasl_password="Not-the-one", connect_timeout_s=3)
    config = stream_config.model_copy(update={"kafka": kafka})
    with pytest.raises(ConfigError, match=r"^kafka\.sasl_mechanism/sasl_username/sasl_password: no broker") as err:
        ScoringService(config)
    assert "Not-the-one" not in str(err.value)


def test_missing_output_topic_is_named(stream_config):
    config = stream_config.model_copy(update={"topics": stream_config.topics.updated(scored="test.no-such-topic")})
    with pytest.raises(ConfigError, match=r"^topics\.scored: topic test\.no-such-topic does not exist"):
        ScoringService(config)


def test_output_topic_smaller_than_max_message_bytes_is_named(stream_config, kafka_settings):
    import uuid

    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"test.small.{uuid.uuid4().hex[:10]}"
    admin = AdminClient(kafka_settings.client_config())  # kept alive until the topic is created
    admin.create_topics([NewTopic(name, 1, 1, config={"max.message.bytes": "500000"})])[name].result(30)
    config = stream_config.model_copy(update={"topics": stream_config.topics.updated(deadletter=name)})
    with pytest.raises(ConfigError, match=rf"^kafka\.max_message_bytes: 1000000 exceeds max\.message\.bytes 500000 "
                                          rf"of topic {name} \(topics\.deadletter\)"):
        ScoringService(config)
