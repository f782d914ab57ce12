"""Error types of the stream layer.

`BadPacket` is the one error a decoder raises for input it cannot read: the
stream routes the message to the dead-letter topic with ``str(error)`` as the
reason and goes on.
"""


class AlertformerError(Exception):
    """Base of every error alertformer raises on purpose."""


class BadPacket(AlertformerError):
    """An alert message that cannot be decoded; the message says why."""


class ConfigError(AlertformerError):
    """Invalid configuration; the message names the field."""
