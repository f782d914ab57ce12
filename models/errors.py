"""The error base of every layer, and the one configuration error.

`models` is the bottom layer, so `stream`, `training` and `bench` subclass `AlertformerError`
from here; the command line turns any of them into one line and exit code 2.
"""


class AlertformerError(Exception):
    """Base of every error alertformer raises on purpose."""


class ConfigError(AlertformerError):
    """Invalid configuration (a service setting, a training recipe key, a command-line value); the message
    names the field."""
