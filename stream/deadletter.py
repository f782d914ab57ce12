"""Dead-letter records: the original message whole, where it came from, and why it was rejected."""
import time

from confluent_kafka import Message

from alertformer import __version__
from stream import avro_io

DEADLETTER_SCHEMA = "alertformer.deadletter"


def dead_letter(msg: Message, error: Exception) -> tuple[bytes | None, bytes]:
    """Build the ``(key, value)`` of the dead-letter message for `msg` rejected with `error`."""
    _, timestamp_ms = msg.timestamp()
    record = {
        "payload": msg.value() or b"",
        "key": msg.key(),
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "kafkaTimestampMs": timestamp_ms,
        "reason": str(error),
        "errorType": type(error).__name__,
        "deadLetteredAtMs": time.time_ns() // 1_000_000,
        "alertformerVersion": __version__,
    }
    return msg.key(), avro_io.encode(DEADLETTER_SCHEMA, record)
