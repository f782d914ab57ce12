"""Writer schemas from a Confluent schema registry, for wire-format ids the bundled schemas lack.

Rubin's stream names each packet's writer schema by its registry id. The ids of the schemas that
``lsst-alert-packet`` ships are known without asking; a newer one (a schema published after this
installation) is fetched once from the configured registry, through
``confluent_kafka.schema_registry``, parsed, and kept: later packets of that id make no request.
A registry that does not know the id, or does not answer, makes that packet a dead letter with the
reason, and the next packet asks again.
"""
import json
import threading

import fastavro

from stream.errors import BadPacket


class RegistrySchemas:
    """Parsed Avro writer schemas by id, fetched from a schema registry on first use.

    Parameters
    ----------
    client : confluent_kafka.schema_registry.SchemaRegistryClient
    url : str
        The registry's address, masked, for messages.
    """

    def __init__(self, client, url: str):
        self.client, self.url = client, url
        self._parsed: dict[int, dict] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> "RegistrySchemas":
        """From `stream.config.SchemaRegistrySettings` (its url set)."""
        from confluent_kafka.schema_registry import SchemaRegistryClient  # the extra, only when configured

        from stream.secrets import mask_url

        conf = {"url": settings.url, "timeout": settings.timeout_s}
        if settings.username:
            conf["basic.auth.user.info"] = f"{settings.username}:{settings.password.get_secret_value()}"
        return cls(SchemaRegistryClient(conf), mask_url(settings.url))

    def schema(self, schema_id: int) -> dict:
        """The parsed writer schema of `schema_id`.

        Raises
        ------
        BadPacket
            If the registry does not know the id, does not answer, or holds no Avro schema for it.
        """
        with self._lock:
            if schema_id in self._parsed:
                return self._parsed[schema_id]
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            registered = self.client.get_schema(schema_id)
        except SchemaRegistryError as err:
            raise BadPacket(f"schema id {schema_id}: the schema registry at {self.url} answered "
                            f"{err.http_status_code}: {err.error_message}") from None
        except Exception as err:  # the HTTP client's errors: refused, timed out, TLS
            raise BadPacket(f"schema id {schema_id}: the schema registry at {self.url} did not answer: "
                            f"{type(err).__name__}: {err}") from None
        if (registered.schema_type or "AVRO") != "AVRO":
            raise BadPacket(f"schema id {schema_id}: the schema registry holds a {registered.schema_type} schema")
        try:
            parsed = fastavro.parse_schema(json.loads(registered.schema_str))
        except (ValueError, fastavro.schema.SchemaParseException) as err:
            raise BadPacket(f"schema id {schema_id}: the registry's schema does not parse: {err}") from None
        with self._lock:
            self._parsed[schema_id] = parsed
        return parsed


def registry_schemas(config) -> RegistrySchemas | None:
    """The registry of `config` (`stream.config.StreamConfig`), or None if ``schema_registry.url`` is unset."""
    settings = config.schema_registry
    return RegistrySchemas.from_settings(settings) if settings.url else None
