"""Dead-letter records: the original message (cut to a size limit), where it came from, and why it was rejected.

A dead letter must always fit the dead-letter topic, or the one bad input that made it
blocks its partition for good (every restart replays it). So the payload is cut to
`max_payload_bytes` and keeps its full length and SHA-256; key and reason are cut too.
"""
import hashlib
import time

from confluent_kafka import Message

from models.version import __version__
from stream import avro_io

DEADLETTER_SCHEMA = "alertformer.deadletter"
DEFAULT_MAX_PAYLOAD_BYTES = 262_144  # kafka.deadletter_max_payload_bytes
MAX_KEY_BYTES = 1024  # a Kafka key is an object id; anything longer is cut (record and message key)
MAX_REASON_CHARS = 2000
# Bytes a dead letter may need beyond its payload: key, reason (UTF-8, up to 4 bytes a char),
# topic name (Kafka: at most 249 chars), fixed fields, the Avro framing and Kafka's record overhead.
OVERHEAD_BYTES = MAX_KEY_BYTES * 2 + MAX_REASON_CHARS * 4 + 249 + 1024


def dead_letter(msg: Message, error: Exception,
                max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> tuple[bytes | None, bytes]:
    """Build the ``(key, value)`` of the dead-letter message for `msg` rejected with `error`.

    The value is at most ``max_payload_bytes + OVERHEAD_BYTES`` long.
    """
    _, timestamp_ms = msg.timestamp()
    payload = msg.value() or b""
    key = msg.key()
    key = key[:MAX_KEY_BYTES] if key is not None else None
    record = {
        "payload": payload[:max_payload_bytes],
        "payloadBytes": len(payload),
        "payloadSha256": hashlib.sha256(payload).hexdigest(),
        "payloadTruncated": len(payload) > max_payload_bytes,
        "key": key,
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "kafkaTimestampMs": timestamp_ms,
        "reason": str(error)[:MAX_REASON_CHARS],
        "errorType": type(error).__name__,
        "deadLetteredAtMs": time.time_ns() // 1_000_000,
        "alertformerVersion": __version__,
    }
    return key, avro_io.encode(DEADLETTER_SCHEMA, record)
