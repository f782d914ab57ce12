"""Service configuration: a TOML file, then ``ALERTFORMER_SECTION__KEY`` environment overrides.

Example: ``ALERTFORMER_KAFKA__BOOTSTRAP_SERVERS=broker:9092`` overrides ``[kafka]
bootstrap_servers`` of the file named by ``--config`` or ``ALERTFORMER_CONFIG``.
Validation errors become `ConfigError` naming the field (``kafka.sasl_mechanism: ...``).
Secrets are `SecretStr` (or parts of URLs) and never appear in `masked()` or in logs: loading a
configuration registers its secrets with `stream.secrets.mask_in_logs`.
"""
import json
import os
import re
import types
import typing
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from redis.connection import parse_url as parse_redis_url
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError, TomlConfigSettingsSource

from models.paths import SHIPPED_CHECKPOINTS, checkpoint_path
from models.priors import prior_weights
from models.taxonomy import CLASS_IDS, ID_TO_INDEX, class_id
from stream.deadletter import OVERHEAD_BYTES as DEADLETTER_OVERHEAD_BYTES
from stream.errors import ConfigError
from stream.secrets import MASK, is_secret_name, mask_in_logs, mask_url, url_secrets


AlertFormat = Literal["auto", "rubin", "ztf", "elasticc", "fink-ztf"]
# The default young_sn rule (README, Follow-up rules): "young" is a rise of a few weeks at most.
YOUNG_SN_MIN_LIKELIHOOD = 0.8
YOUNG_SN_MAX_AGE_DAYS = 30.0
YOUNG_SN_MIN_REAL_BOGUS = 0.5
YOUNG_SN_MAX_STAR_SCORE = 0.5
# ZTF's jdstarthist counts any earlier detection at the position (bogus ones, host variability): 5 of 32
# train/val SNe looked 2-6 years old by it. A long-lived variable or AGN has hundreds of detections.
YOUNG_SN_HISTORY_DETECTIONS = 20
# KafkaSettings fields that are librdkafka consumer settings: field -> librdkafka name.
_CONSUMER_SETTINGS = {"consumer_queue_kbytes": "queued.max.messages.kbytes",
                      "consumer_fetch_backoff_ms": "fetch.queue.backoff.ms"}
# librdkafka settings derived from kafka.max_message_bytes / max_input_message_bytes: not in kafka.extra.
_SIZE_SETTINGS = {"message.max.bytes": "max_message_bytes", "fetch.max.bytes": "max_input_message_bytes",
                  "receive.message.max.bytes": "max_input_message_bytes"}
LIBRDKAFKA_FETCH_MAX_BYTES = 52_428_800  # librdkafka's default fetch.max.bytes, kept when inputs are smaller
FETCH_RESPONSE_MARGIN_BYTES = 1_048_576  # receive.message.max.bytes above fetch.max.bytes (librdkafka: >= 512)


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def updated(self, **changes):
        """A validated copy with `changes` (``model_copy(update=...)`` would skip validation)."""
        return type(self).model_validate(self.model_dump() | changes)


class ClusterSettings(_Section):
    """A connection to one Kafka cluster (address, security, consumer tuning); `extra` passes any librdkafka
    setting through."""

    SECTION: ClassVar[str] = "kafka"  # how messages name this section
    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    consumer_queue_kbytes: int = Field(
        262_144, ge=1, le=2_097_151,
        description="librdkafka queued.max.messages.kbytes: prefetched messages a consumer holds, kB. 256 MB holds "
                    "~1,900 Rubin alerts of ~135 kB, so a scoring.batch_size of 1000 fills from memory; librdkafka's "
                    "64 MB held ~480, so batches came up short and consume waited on fetches")
    consumer_fetch_backoff_ms: int = Field(
        50, ge=0, le=300_000,
        description="librdkafka fetch.queue.backoff.ms: once the prefetch queue is full, fetch again after this "
                    "long. librdkafka's 1000 ms left the queue short after each batch was taken, so consume waited "
                    "out scoring.batch_timeout_ms for a partial batch")
    max_input_message_bytes: int = Field(
        16_777_216, ge=1, le=1_000_000_000,
        description="the largest input message read and decoded; a larger one is dead-lettered as oversized. The "
                    "consumers' fetch.max.bytes and receive.message.max.bytes are raised to fetch it")
    connect_timeout_s: float = Field(
        15.0, gt=0, le=600, description="at start, a broker must answer within this long, or the command stops "
                                        "with a configuration error (unreachable, TLS or SASL handshake failed)")
    extra: dict[str, str] = Field(default_factory=dict, repr=False)  # may hold secrets (ssl.key.password)

    @model_validator(mode="after")
    def _sasl_complete(self):
        if self.security_protocol.startswith("SASL_"):
            missing = [f for f in ("sasl_mechanism", "sasl_username", "sasl_password") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"security_protocol {self.security_protocol} needs {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _settings_not_in_extra(self):
        fields = type(self).model_fields
        for name, field in ({v: k for k, v in _CONSUMER_SETTINGS.items()} | _SIZE_SETTINGS).items():
            if name in self.extra and field in fields:
                raise ValueError(f"extra: set {name} with {self.SECTION}.{field}")
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

    def consumer_config(self) -> dict[str, int]:
        """librdkafka settings of consumers only (a producer would warn about them).

        The fetch limits let a message of `max_input_message_bytes` through, so an oversized
        input is read (and dead-lettered) instead of stalling its partition.
        """
        fetch_max_bytes = max(LIBRDKAFKA_FETCH_MAX_BYTES, self.max_input_message_bytes + FETCH_RESPONSE_MARGIN_BYTES)
        return {name: getattr(self, field) for field, name in _CONSUMER_SETTINGS.items()} | {
            "fetch.max.bytes": fetch_max_bytes,
            "receive.message.max.bytes": fetch_max_bytes + FETCH_RESPONSE_MARGIN_BYTES,
        }

    def as_kafka(self) -> "KafkaSettings":
        """This cluster's connection as `KafkaSettings` (a producer's, with the default sizes)."""
        return KafkaSettings(**{name: getattr(self, name) for name in ClusterSettings.model_fields})

    def secret_values(self) -> list[str]:
        """The SASL password and the `extra` values whose name looks secret."""
        secrets = [self.sasl_password.get_secret_value()] if self.sasl_password is not None else []
        return secrets + [v for k, v in self.extra.items() if is_secret_name(k)]

    def masked(self) -> dict:
        """JSON-ready, with the password and secret-looking `extra` values masked."""
        dumped = self.model_dump(mode="json")
        dumped["extra"] = {k: MASK if is_secret_name(k) else v for k, v in self.extra.items()}
        return dumped


class KafkaSettings(ClusterSettings):
    """The one cluster of inputs and outputs, or, beside `[input.kafka]`, the output cluster; also the sizes
    of what alertformer writes."""

    max_message_bytes: int = Field(
        1_000_000, ge=65_536, le=100_000_000,
        description="librdkafka message.max.bytes of the producers: the largest record alertformer writes. Keep it "
                    "at or below the output topics' max.message.bytes (Kafka's default 1,048,588), so a record too "
                    "large is refused locally, for that record alone, instead of failing the transaction")
    deadletter_max_payload_bytes: int = Field(
        262_144, ge=0,
        description="a dead letter keeps this many bytes of the bad message (plus its length and SHA-256), so it "
                    "always fits under max_message_bytes")

    @model_validator(mode="after")
    def _sizes_fit(self):
        if self.deadletter_max_payload_bytes + DEADLETTER_OVERHEAD_BYTES > self.max_message_bytes:
            raise ValueError(f"deadletter_max_payload_bytes {self.deadletter_max_payload_bytes} + "
                             f"{DEADLETTER_OVERHEAD_BYTES} bytes of metadata exceeds max_message_bytes "
                             f"{self.max_message_bytes}: dead letters would not fit")
        return self


StartPosition = Literal["earliest", "latest"] | datetime


class InputKafkaSettings(ClusterSettings):
    """The cluster alerts come from, usually someone else's and read-only: what to read and where to start.

    Nothing is ever written to it except the group's informational offset commits.
    """

    SECTION: ClassVar[str] = "input.kafka"
    group_id: str | None = Field(None, description="consumer group on the input cluster (default: "
                                 "scoring.group_id); brokers often require it to start with your user name")
    topics: list[str] = Field(default_factory=list, description="topics to read (default: the keys of "
                              "topics.inputs); a topic not in topics.inputs is decoded as format auto")
    topic_pattern: str | None = Field(None, description="or a regular expression of topic names, e.g. "
                                      "'fink_.*_ztf'; topics created later join the subscription")
    start_position: StartPosition = Field(
        "earliest", description="where a partition starts that has neither a stored position nor a committed "
                                "offset of the group: earliest, latest, or a time (RFC 3339, e.g. "
                                "2026-01-15T00:00:00Z: the first alert at or after it)")

    @model_validator(mode="after")
    def _one_subscription(self):
        if self.topics and self.topic_pattern:
            raise ValueError("set topics or topic_pattern, not both")
        if self.topic_pattern is not None:
            try:
                re.compile(self.topic_pattern)
            except re.error as err:
                raise ValueError(f"topic_pattern {self.topic_pattern!r} is not a regular expression: {err}") from None
        if isinstance(self.start_position, datetime) and self.start_position.tzinfo is None:
            raise ValueError("start_position needs a time zone, e.g. 2026-01-15T00:00:00Z")
        return self

    def start_offset_ms(self) -> int | None:
        """`start_position` as ms since the Unix epoch, or None for earliest/latest."""
        if isinstance(self.start_position, datetime):
            return int(self.start_position.timestamp() * 1000)
        return None


class InputSettings(_Section):
    """``[input.kafka]``: the input cluster. Present, outputs go to ``[output.kafka]`` (or ``[kafka]``)."""

    kafka: InputKafkaSettings


class OutputSettings(_Section):
    """``[output.kafka]``: your own cluster, for outputs, transactions and the stored input positions."""

    kafka: KafkaSettings


class RedisSettings(_Section):
    """The state store. Credentials go in `username`/`password` (or in the URL, never both)."""

    url: str = Field("redis://127.0.0.1:6379/0", description="redis://[user[:password]@]host[:port][/db], "
                     "rediss://... (TLS) or unix:///path/to/socket")
    prefix: str = "alertformer"
    username: str | None = Field(None, description="Redis ACL user (default: the URL's, else 'default')")
    password: SecretStr | None = Field(None, description="secret: never logged; better than a password in the URL")

    @field_validator("url")
    @classmethod
    def _is_redis_url(cls, url: str) -> str:
        try:
            parse_redis_url(url)
        except ValueError as err:
            raise ValueError(f"{mask_url(url)} is not a Redis URL ({err}); expected redis://host:port/db, "
                             "rediss://... or unix:///path") from None
        return url

    @model_validator(mode="after")
    def _one_password(self):
        if self.password is not None and urlsplit(self.url).password:
            raise ValueError("password is set both in url and in password; keep one")
        return self

    def client_options(self) -> dict:
        """Credentials to pass to ``redis.Redis.from_url(url, ...)`` beside the URL's own."""
        options = {"username": self.username} if self.username else {}
        if self.password is not None:
            options["password"] = self.password.get_secret_value()
        return options


class TopicSettings(_Section):
    """Topic names. `inputs` maps each alert topic to its packet format."""

    inputs: dict[str, AlertFormat] = Field(default_factory=lambda: {"alerts": "auto"})
    scored: str = "alertformer.scored"
    classifications: str = "alertformer.classifications"
    followup: str = "alertformer.followup"
    deadletter: str = "alertformer.deadletter"
    labels: str = "alertformer.labels"
    input_offsets: str = Field(
        "alertformer.input-offsets", description="with [input.kafka]: the compacted topic of the output cluster "
                                                 "holding each input partition's next offset, written in the "
                                                 "transaction of the outputs")
    partitions: int = Field(4, ge=1)

    def all_names(self) -> list[str]:
        return [*self.inputs, *self.output_names()]

    def output_names(self) -> list[str]:
        """The topics alertformer writes (the input positions' topic aside: it is compacted)."""
        return [self.scored, self.classifications, self.followup, self.deadletter, self.labels]


class SkyRegion(_Section):
    """A cone on the sky (ICRS, degrees)."""

    ra_deg: float = Field(ge=0, lt=360)
    dec_deg: float = Field(ge=-90, le=90)
    radius_deg: float = Field(gt=0, le=180)


class FollowupRule(_Section):
    """A follow-up rule: every condition that is set must hold. One trigger per object and rule.

    Conditions on the alert context (real/bogus, star-likeness) are not applied to an alert
    whose packet does not carry the field (e.g. Rubin alerts have no star score). A known
    solar-system object never triggers any rule (`stream.rules.SOLAR_SYSTEM_MATCH_ARCSEC`).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    min_sn_likelihood: float | None = Field(None, ge=0, le=1)
    min_flare_likelihood: float | None = Field(None, ge=0, le=1)
    min_prob: dict[str, float] | None = Field(
        None, description="per-class probability thresholds, by class name or ELAsTiCC2 id, e.g. {KN = 0.5}")
    min_visits: int = Field(1, ge=1)
    min_detections: int = Field(1, ge=1)
    max_age_days: float | None = Field(None, gt=0, description="days since the source's first detection, at most")
    young_history_detections: int | None = Field(
        None, ge=1, description="with max_age_days: a source with at most this many detections ever at its "
                                "position (ZTF ndethist, Rubin nDiaSources) counts as young whatever its first "
                                "detection (a few old spurious detections make jdstarthist years old)")
    min_real_bogus: float | None = Field(None, ge=0, le=1, description="real/bogus score (ZTF drb or rb), at least")
    max_star_score: float | None = Field(
        None, ge=0, le=1, description="no catalogued source within star_match_arcsec with a star score above this")
    star_match_arcsec: float = Field(1.5, gt=0, description="radius for max_star_score (arcsec)")
    max_mag_ab: float | None = Field(None, description="latest |flux| at least this bright (AB mag)")
    max_host_redshift: float | None = Field(
        None, ge=0, description="the likeliest host galaxy's redshift (spectroscopic, else photometric), at most: "
                                "nearby hosts (ELAsTiCC hostgal_*)")
    max_host_separation_arcsec: float | None = Field(
        None, gt=0, description="distance to the likeliest host galaxy, at most (arcsec; ELAsTiCC hostgal_snsep)")
    region: SkyRegion | None = None
    surveys: list[Literal["rubin", "ztf", "elasticc"]] | None = None

    @model_validator(mode="after")
    def _known_classes(self):
        if self.young_history_detections is not None and self.max_age_days is None:
            raise ValueError("young_history_detections qualifies max_age_days, which is not set")
        for name, threshold in (self.min_prob or {}).items():
            class_index(name)  # raises ValueError naming the class
            if not 0 <= threshold <= 1:
                raise ValueError(f"min_prob[{name}] = {threshold}: a probability must be in [0, 1]")
        return self


def class_index(name: str) -> int:
    """Model output index of a class given by ELAsTiCC2 id or any name `models.taxonomy.class_id` accepts.

    >>> class_index("2232"), class_index("m-dwarf flare"), class_index("SN Ia")
    (3, 4, 0)
    """
    return ID_TO_INDEX[class_id(name)]


def _default_rules() -> list[FollowupRule]:
    """Young supernovae: likely SN, detected for at most 30 days (or at most 20 times ever), real, not on a
    star; bright flares."""
    return [FollowupRule(name="young_sn", min_sn_likelihood=YOUNG_SN_MIN_LIKELIHOOD, min_visits=3,
                         max_age_days=YOUNG_SN_MAX_AGE_DAYS, young_history_detections=YOUNG_SN_HISTORY_DETECTIONS,
                         min_real_bogus=YOUNG_SN_MIN_REAL_BOGUS, max_star_score=YOUNG_SN_MAX_STAR_SCORE),
            FollowupRule(name="flare", min_flare_likelihood=0.9)]


class FollowupSettings(_Section):
    rules: list[FollowupRule] = Field(default_factory=_default_rules)
    webhook_url: str | None = Field(None, description="POST each request as JSON here (TOM, chat)")
    webhook_timeout_s: float = Field(5.0, gt=0)
    webhook_retries: int = Field(3, ge=0)

    @model_validator(mode="after")
    def _unique_names(self):
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ValueError(f"rule names must be unique: {names}")
        return self


class ScoringSettings(_Section):
    """The scoring loop: batches, model, windows, state."""

    group_id: str = "alertformer"
    instance_id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]+$",
        description="stable id of this scorer process (default: the host name). Its transactional id is "
                    "{group_id}-{instance_id}: a restart with the same id aborts its crashed predecessor's "
                    "open transaction at once; two live processes need different ids")
    checkpoint: str | None = Field(None, description="serve this checkpoint and never swap: a path, or "
                                   "'shipped' (the default model) or 'shipped-small' (the faster distilled one, "
                                   "models/shipped/RECIPE.md); default: the registry's champion, else 'shipped'")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="fp32, or bf16 autocast: on CUDA, or on a CPU with AMX or AVX-512 BF16 (there with "
                            "attention kept in fp32). fp32 is the evaluation's reference; bf16 moved some of its "
                            "metrics by more than 0.5 points, and on an H200 it was no faster at a batch of 1,000 "
                            "(README, Performance)")
    torch_threads: int = Field(
        1, ge=0, description="torch intra-op threads of the scorer process, set at start-up; 0 = torch's default "
                             "(one per core). 1 leaves the other cores to librdkafka, decoding and Redis; see the "
                             "README's Performance section")
    forward_chunk_curves: int | None = Field(
        None, ge=1, description="curves per forward call: a batch is sorted by window length and scored in chunks "
                                "of this many (less padding; small chunks stay in CPU caches). Default: 64 on CPU, "
                                "the whole batch on CUDA")
    batch_size: int = Field(1000, ge=1, description="messages per batch (one transaction)")
    batch_timeout_ms: int = Field(200, ge=1, description="wait at most this long to fill a batch")
    max_visits: int = Field(64, ge=1, description="points per window: the detections, then the non-detections "
                            "nearest them (models.encode.window_indices)")
    history_ttl_s: int = Field(400 * 86400, ge=1, description="Redis light curves and scores expire after this")
    top_n: int = Field(1000, ge=1, description="length of the top-candidate sorted sets")
    class_prior: Literal["balanced", "lsst-plasticc", "ztf-alerts", "rates"] = Field(
        "balanced", description="class rates the published probabilities assume: balanced (as trained), "
                                "lsst-plasticc (the PLAsTiCC Rubin mix), ztf-alerts (an assumed ZTF stream mix, "
                                "models/priors.py) or rates (the table class_prior_rates)")
    class_prior_rates: dict[str, float] = Field(
        default_factory=dict, description="with class_prior = \"rates\": relative rate of every class, by name or id")

    @field_validator("checkpoint")
    @classmethod
    def _shipped_name(cls, value: str | None) -> str | None:
        return str(checkpoint_path(value)) if value in SHIPPED_CHECKPOINTS else value

    @model_validator(mode="after")
    def _known_prior(self):
        if self.class_prior_rates and self.class_prior != "rates":
            raise ValueError(f"class_prior_rates is set but class_prior is {self.class_prior!r}; set class_prior "
                             "= \"rates\" to use it")
        prior_weights(self.prior_by_id())  # raises ValueError naming the problem
        return self

    def prior_by_id(self) -> str | dict[int, float]:
        """The prior for `models.priors.prior_weights`: a name, or the rates table by ELAsTiCC2 id."""
        if self.class_prior != "rates":
            return self.class_prior
        return {CLASS_IDS[class_index(name)]: rate for name, rate in self.class_prior_rates.items()}


class SchemaRegistrySettings(_Section):
    """A Confluent schema registry, asked for Rubin schema ids that the bundled lsst-alert-packet lacks."""

    url: str | None = Field(None, description="e.g. https://usdf-alert-schemas-dev.slac.stanford.edu; unset: an "
                            "unknown schema id is a dead letter")
    username: str | None = Field(None, description="HTTP basic auth user, if the registry wants one")
    password: SecretStr | None = Field(None, description="secret: never logged")
    timeout_s: float = Field(10.0, gt=0, description="one request")

    @model_validator(mode="after")
    def _auth_complete(self):
        if (self.username is None) != (self.password is None):
            raise ValueError("set username and password together")
        if self.url is not None and urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError(f"url {mask_url(self.url)} is not an http(s) URL")
        return self


class RegistrySettings(_Section):
    """Where promoted models live. Scorers on several hosts share one directory (a shared mount)."""

    path: str | None = Field(None, description="registry root; unset = serve scoring.checkpoint or the shipped model")
    poll_interval_s: float = Field(5.0, gt=0, description="re-read the champion this often, besides notifications")


class TrainerSettings(_Section):
    """The re-fine-tuning service (`alertformer trainer`).

    Defined here, not in `training`: every process reads the one configuration (file and
    ``ALERTFORMER_*`` environment, as compose hands the same to the scorer and the trainer)
    and refuses unknown sections, so `StreamConfig` must know this one, and `stream` never
    imports `training`.
    """

    work_dir: str = Field(".trainer", description="label snapshots, state and the decision log")
    group_id: str = "alertformer-trainer"
    retrain_every_labels: int = Field(200, ge=1, description="retrain once this many new labels arrived")
    retrain_every_hours: float = Field(24.0, gt=0, description="or this long after the last decision, if any arrived")
    mode: Literal["full", "lora"] = Field("lora", description="fine-tune every weight, or LoRA adapters on attention")
    lora_rank: int = Field(4, ge=1)
    iters: int = Field(300, ge=1)
    batch_size: int = Field(128, ge=1)
    learning_rate: float = Field(3e-4, gt=0)
    replay_size: int = Field(2200, ge=0, description="simulated training curves replayed so old skills stay")
    replay_fraction: float = Field(0.5, ge=0, lt=1, description="share of each batch drawn from the replay set")
    holdout_size: int = Field(1100, ge=11, description="fixed simulated holdout (balanced), never trained on")
    holdout_seed: int = 20261128
    metric: Literal["macro_f1", "sn_vs_rest_ap", "flare_vs_rest_ap", "balanced_nll"] = "macro_f1"
    margin: float = Field(0.005, ge=0, description="the challenger must beat the champion by more than this")
    real_holdout: bool = Field(True, description="also judge on the held-out real ZTF packets (data/labeled, or "
                                                 "$ALERTFORMER_DATA): a challenger that loses there is not promoted")
    real_tolerance: float = Field(0.0, ge=0, description="how much worse than the champion on the real holdout a "
                                                         "challenger may be and still be promoted")
    device: Literal["auto", "cpu", "cuda"] = "auto"


class MetricsSettings(_Section):
    """Prometheus metrics (`stream.metrics`): off unless a port is set. Several processes on one host each need
    their own port (``ALERTFORMER_METRICS__PORT`` per process)."""

    port: int | None = Field(None, ge=1, le=65535, description="the scorer's /metrics port (README: 9108); unset: off")
    trainer_port: int | None = Field(None, ge=1, le=65535, description="the trainer's /metrics port (README: 9109)")
    host: str = Field("127.0.0.1", description="address to listen on; 0.0.0.0 for a Prometheus on another host")


class WebSettings(_Section):
    """`alertformer web`: the read-only pages over the Redis state."""

    host: str = Field("127.0.0.1", description="address to listen on; set token too when it is not loopback")
    port: int = Field(8080, ge=1, le=65535)
    token: SecretStr | None = Field(None, description="secret: when set, every page and API call needs "
                                                       "'Authorization: Bearer TOKEN' (or the cookie /login sets)")
    refresh_s: float = Field(5.0, gt=0, le=3600, description="the candidates page polls this often")


class StreamConfig(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ALERTFORMER_", env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    followup: FollowupSettings = Field(default_factory=FollowupSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    trainer: TrainerSettings = Field(default_factory=TrainerSettings)
    schema_registry: SchemaRegistrySettings = Field(default_factory=SchemaRegistrySettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    input: InputSettings | None = Field(None, description="[input.kafka]: read alerts from another cluster")
    output: OutputSettings | None = Field(None, description="[output.kafka]: the own cluster, beside [input.kafka]")

    @model_validator(mode="after")
    def _output_beside_input(self):
        if self.output is not None and self.input is None:
            raise ValueError("output.kafka is set without input.kafka: for one cluster use [kafka] alone; for "
                             "two, set [input.kafka] too")
        return self

    @property
    def two_clusters(self) -> bool:
        """Inputs on another cluster than outputs: input positions are stored in `topics.input_offsets`."""
        return self.input is not None

    def input_kafka(self) -> ClusterSettings:
        """The cluster the alerts are read from."""
        return self.input.kafka if self.input is not None else self.kafka

    def output_kafka(self) -> KafkaSettings:
        """The cluster outputs, transactions and input positions are written to."""
        return self.output.kafka if self.output is not None else self.kafka

    def output_section(self) -> str:
        """The section of the output cluster's settings, for messages."""
        return "output.kafka" if self.output is not None else "kafka"

    def roles(self) -> tuple[str | None, str | None]:
        """How messages name the input and the output cluster: ("input", "output") with two, nothing with one."""
        return ("input", "output") if self.two_clusters else (None, None)

    def input_group_id(self) -> str:
        return (self.input.kafka.group_id if self.input is not None else None) or self.scoring.group_id

    def input_subscription(self) -> list[str]:
        """What the input consumer subscribes to: topic names, or one ``^regex`` (librdkafka's pattern form)."""
        kafka = self.input.kafka if self.input is not None else None
        if kafka is not None and kafka.topic_pattern:
            return [kafka.topic_pattern if kafka.topic_pattern.startswith("^") else f"^{kafka.topic_pattern}"]
        if kafka is not None and kafka.topics:
            return list(kafka.topics)
        return list(self.topics.inputs)

    def input_topics_field(self) -> str:
        """The setting that names the input topics, for messages."""
        return "input.kafka.topics" if self.input is not None and self.input.kafka.topics else "topics.inputs"

    def clusters(self) -> dict[str, ClusterSettings]:
        """Each configured cluster by its section name, for masking and messages."""
        found = {"kafka": self.kafka}
        if self.input is not None:
            found["input.kafka"] = self.input.kafka
        if self.output is not None:
            found["output.kafka"] = self.output.kafka
        return found

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        # Precedence: explicit arguments, then environment, then the TOML file.
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls)

    def masked(self) -> dict:
        """The resolved configuration with secrets replaced by '**********', for the start-up log line.

        Masked: SecretStr fields (SASL and Redis passwords), the `extra` values of each cluster
        ([kafka], [input.kafka], [output.kafka]) whose name looks secret, the password in redis.url and registry.path (a URL with credentials), and the
        path and query of followup.webhook_url (where webhook services put the token).
        """
        dumped = self.model_dump(mode="json")
        for name, cluster in self.clusters().items():
            *parent, leaf = name.split(".")
            (dumped[parent[0]] if parent else dumped)[leaf] = cluster.masked()
        dumped["redis"]["url"] = mask_url(self.redis.url)
        if self.followup.webhook_url:
            dumped["followup"]["webhook_url"] = mask_url(self.followup.webhook_url, keep_path=False)
        if self.registry.path:
            dumped["registry"]["path"] = mask_url(self.registry.path)
        if self.schema_registry.url:
            dumped["schema_registry"]["url"] = mask_url(self.schema_registry.url)
        return dumped

    def secret_values(self) -> list[str]:
        """Every secret in this configuration, as text, for `stream.secrets.mask_in_logs`."""
        secrets = [s.get_secret_value() for s in (self.redis.password, self.schema_registry.password, self.web.token)
                   if s is not None]
        secrets += url_secrets(self.schema_registry.url)
        for cluster in self.clusters().values():
            secrets += cluster.secret_values()
        secrets += url_secrets(self.redis.url) + url_secrets(self.registry.path)
        secrets += url_secrets(self.followup.webhook_url, keep_path=False)
        return secrets


def one_line(err: ValidationError, section: str = "") -> str:
    """``"invalid configuration: redis.url: ...; ..."``: each error naming its field (never the value)."""
    lines = [f"{'.'.join(map(str, [section, *e['loc']] if section else e['loc'])) or 'config'}: {e['msg']}"
             for e in err.errors()]
    return "invalid configuration: " + "; ".join(lines)


ENV_PREFIX = "ALERTFORMER_"


def check_environment(environ: Mapping[str, str]) -> None:
    """ConfigError for an ``ALERTFORMER_<SECTION>__<KEY>`` variable of an unknown section, or one holding
    invalid JSON where the setting is a table or list (pydantic-settings would ignore the first and
    blame no variable for the second).

    Other ``ALERTFORMER_*`` variables without ``__`` (``ALERTFORMER_CONFIG``, ``ALERTFORMER_DATA``,
    the test and stack variables) are not settings and are left alone.
    """
    sections = StreamConfig.model_fields
    for name, value in environ.items():
        if not name.upper().startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        if section not in sections:
            raise ConfigError(f"{name}: unknown section {section!r} (sections: {', '.join(sections)})")
        field = _section_model(sections[section].annotation).model_fields.get(key.partition("__")[0])
        if field is not None and _is_structured(field.annotation) and "__" not in key:
            try:
                json.loads(value)
            except json.JSONDecodeError as err:
                raise ConfigError(f"{name}: invalid JSON ({err})") from None


def _section_model(annotation) -> type[BaseModel]:
    """The model of a section, also of an optional one (``InputSettings | None``)."""
    return next((a for a in typing.get_args(annotation) if a is not type(None)), annotation)


def _is_structured(annotation) -> bool:
    """Whether a setting of this type is read from the environment as JSON (a table, list or section)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_structured(a) for a in args if a is not type(None))
    origin = typing.get_origin(annotation) or annotation
    return origin in (dict, list) or (isinstance(origin, type) and issubclass(origin, BaseModel))


def load_config(path: str | os.PathLike | None = None, **overrides) -> StreamConfig:
    """Read the configuration from `path` (or ``$ALERTFORMER_CONFIG``) and the environment.

    Raises
    ------
    ConfigError
        If the file is missing or unreadable, or a field is invalid; the message names the field.
    """
    path = path or os.environ.get("ALERTFORMER_CONFIG")
    check_environment(os.environ)
    settings_cls = StreamConfig
    if path:
        if not Path(path).is_file():
            raise ConfigError(f"config file {path} does not exist")
        settings_cls = type("StreamConfig", (StreamConfig,),
                            {"model_config": {**StreamConfig.model_config, "toml_file": Path(path)}})
    try:
        config = settings_cls(**overrides)
    except ValidationError as err:
        raise ConfigError(one_line(err)) from None
    except SettingsError as err:  # check_environment catches the usual causes first
        raise ConfigError(f"environment: {err}") from None
    except ValueError as err:  # TOML syntax errors
        raise ConfigError(f"cannot read config file {path}: {err}") from None
    mask_in_logs(config.secret_values())
    return config
