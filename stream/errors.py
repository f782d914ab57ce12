"""Error types of the stream layer.

`Retriable`, `AbortTxn` and `Fatal` sort Kafka errors (`stream.kafka_io.classify`).

`BadPacket` is the one error a decoder raises for input it cannot read: the
stream routes the message to the dead-letter topic with ``str(error)`` as the
reason and goes on.

The base `AlertformerError` and `ConfigError` live in the bottom layer (`models.errors`).
"""
from models.errors import AlertformerError, ConfigError

__all__ = ["AbortTxn", "AlertformerError", "BadPacket", "ConfigError", "Fatal", "NonFiniteScores", "ProduceRefused",
           "Retriable"]


class BadPacket(AlertformerError):
    """An alert message that cannot be decoded; the message says why."""


class NonFiniteScores(AlertformerError):
    """The model gave an alert a NaN or infinite probability; the alert is dead-lettered, never published."""


class ProduceRefused(AlertformerError):
    """The producer refused an output record (too large, invalid); its input is dead-lettered with this reason."""


class Retriable(AlertformerError):
    """A transient Kafka error: the same call may succeed if repeated."""


class AbortTxn(AlertformerError):
    """The transaction must be aborted and the consumer rewound to the committed offsets."""


class Fatal(AlertformerError):
    """The process cannot continue (fenced, or an error without a recovery flag); exit non-zero."""
