"""Service configuration: a TOML file, then ``ALERTFORMER_SECTION__KEY`` environment overrides.

Example: ``ALERTFORMER_KAFKA__BOOTSTRAP_SERVERS=broker:9092`` overrides ``[kafka]
bootstrap_servers`` of the file named by ``--config`` or ``ALERTFORMER_CONFIG``.
Validation errors become `ConfigError` naming the field (``kafka.sasl_mechanism: ...``).
Secrets are `SecretStr` and never appear in `masked()` or in logs.
"""
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, TomlConfigSettingsSource

from stream.errors import ConfigError

_SECRET_WORDS = ("password", "secret", "key", "token")

AlertFormat = Literal["auto", "rubin", "ztf", "elasticc"]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    """Connection to the alert broker; `extra` passes any librdkafka setting through."""

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    extra: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _sasl_complete(self):
        if self.security_protocol.startswith("SASL_"):
            missing = [f for f in ("sasl_mechanism", "sasl_username", "sasl_password") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"security_protocol {self.security_protocol} needs {', '.join(missing)}")
        return self

    def client_config(self) -> dict[str, str]:
        """librdkafka settings shared by every consumer, producer and admin client."""
        conf = {"bootstrap.servers": self.bootstrap_servers, "security.protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL_"):
            conf |= {
                "sasl.mechanism": self.sasl_mechanism,
                "sasl.username": self.sasl_username,
                "sasl.password": self.sasl_password.get_secret_value(),
            }
        return conf | self.extra


class RedisSettings(_Section):
    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "alertformer"


class TopicSettings(_Section):
    """Topic names. `inputs` maps each alert topic to its packet format."""

    inputs: dict[str, AlertFormat] = Field(default_factory=lambda: {"alerts": "auto"})
    scored: str = "alertformer.scored"
    classifications: str = "alertformer.classifications"
    followup: str = "alertformer.followup"
    deadletter: str = "alertformer.deadletter"
    labels: str = "alertformer.labels"
    partitions: int = Field(4, ge=1)

    def all_names(self) -> list[str]:
        return [*self.inputs, self.scored, self.classifications, self.followup, self.deadletter, self.labels]


class StreamConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ALERTFORMER_", env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        # Precedence: explicit arguments, then environment, then the TOML file.
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)

    def masked(self) -> dict:
        """The resolved configuration with secrets replaced by '**********', for the start-up log line."""
        dumped = self.model_dump(mode="json")
        dumped["kafka"]["extra"] = {k: "**********" if any(s in k for s in _SECRET_WORDS) else v
                                    for k, v in self.kafka.extra.items()}
        return dumped


def load_config(path: str | os.PathLike | None = None, **overrides) -> StreamConfig:
    """Read the configuration from `path` (or ``$ALERTFORMER_CONFIG``) and the environment.

    Raises
    ------
    ConfigError
        If the file is missing or unreadable, or a field is invalid; the message names the field.
    """
    path = path or os.environ.get("ALERTFORMER_CONFIG")
    settings_cls = StreamConfig
    if path:
        if not Path(path).is_file():
            raise ConfigError(f"config file {path} does not exist")
        settings_cls = type("StreamConfig", (StreamConfig,),
                            {"model_config": {**StreamConfig.model_config, "toml_file": Path(path)}})
    try:
        return settings_cls(**overrides)
    except ValidationError as err:
        lines = [f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in err.errors()]
        raise ConfigError("invalid configuration: " + "; ".join(lines)) from None
    except ValueError as err:  # TOML syntax errors
        raise ConfigError(f"cannot read config file {path}: {err}") from None
