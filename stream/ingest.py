"""Decode a batch of Kafka messages; what cannot be decoded becomes a dead-letter output.

Rubin packets in the Confluent wire format (topics of format ``rubin`` or ``auto``) go through
the batch decoder `stream.decode.fast.FastRubinDecoder`, ZTF container files (topics of format ``ztf``
or ``auto``) through `stream.decode.fast.ztf.FastZtfDecoder`, one call per batch each; everything else
(ELAsTiCC, schemaless Rubin, Fink's ZTF with the schema in the key) through the per-message decoders.
"""
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import Message

from stream.alert import DecodedAlert
from stream.deadletter import DEFAULT_MAX_PAYLOAD_BYTES, dead_letter
from stream.decode import KEYED_FORMATS, get_decoder
from stream.decode.fast import FastRubinDecoder, FastZtfDecoder
from stream.decode.ztf import CONTAINER_MAGIC
from stream.decode.registry import RegistrySchemas
from stream.errors import BadPacket
from stream.loop import Output

log = logging.getLogger(__name__)
RUBIN_WIRE_MAGIC = b"\x00"
DEFAULT_FORMAT = "auto"


@dataclass(frozen=True)
class Ingested:
    """A decoded alert with the coordinates of the message it came from (and the message itself, which
    becomes a dead letter if one of its outputs cannot be produced)."""

    alert: DecodedAlert
    topic: str
    partition: int
    offset: int
    kafka_timestamp_ms: int
    message: Message


class Ingest:
    """Per-topic decoders (``{topic: format}``) and the dead-letter topic.

    Messages longer than `max_input_bytes` are dead-lettered as oversized without decoding;
    dead letters keep `max_payload_bytes` of the message (`stream.deadletter`).
    """

    def __init__(self, formats: Mapping[str, str], deadletter_topic: str,
                 max_input_bytes: int | None = None, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 registry: RegistrySchemas | None = None):
        self.formats = dict(formats)
        self.registry = registry  # Rubin schema ids lsst-alert-packet lacks are looked up there  # a topic not named (one of input.kafka's topics or pattern) is "auto"
        self.decoders = {}
        self.fast_rubin = None  # made for the first wire-format message of a rubin or auto topic
        self.fast_ztf = None  # made for the first container file of a ztf or auto topic
        self.deadletter_topic = deadletter_topic
        self.max_input_bytes, self.max_payload_bytes = max_input_bytes, max_payload_bytes

    def _format(self, topic: str) -> str:
        return self.formats.get(topic, DEFAULT_FORMAT)

    def _decoder(self, topic: str):
        if topic not in self.decoders:
            fmt = self._format(topic)
            opts = {"registry": self.registry} if self.registry is not None and fmt in ("rubin", "auto") else {}
            self.decoders[topic] = get_decoder(fmt, **opts)
        return self.decoders[topic]

    def _batched(self, messages: list[Message], results: list, formats: tuple[str, ...], magic: bytes) -> list[int]:
        """Indices of the messages not yet decided, of a topic in `formats`, that start with `magic`."""
        return [i for i, m in enumerate(messages) if results[i] is None and self._format(m.topic()) in formats
                and (m.value() or b"")[:len(magic)] == magic]

    def decode(self, messages: list[Message]) -> list[DecodedAlert | Exception]:
        """Per message, its alert or the exception that rejected it, in input order."""
        results: list[DecodedAlert | Exception | None] = [self._oversized(m) for m in messages]
        wire = self._batched(messages, results, ("rubin", "auto"), RUBIN_WIRE_MAGIC)
        if wire:
            self.fast_rubin = self.fast_rubin or FastRubinDecoder(registry=self.registry)
            self._decode_batch(self.fast_rubin, messages, wire, results)
        containers = self._batched(messages, results, ("ztf", "auto"), CONTAINER_MAGIC)
        if containers:
            self.fast_ztf = self.fast_ztf or FastZtfDecoder()
            self._decode_batch(self.fast_ztf, messages, containers, results)
        for i, msg in enumerate(messages):
            if results[i] is None:
                try:
                    key = {"key": msg.key()} if self._format(msg.topic()) in KEYED_FORMATS else {}
                    results[i] = self._decoder(msg.topic())(msg.value() or b"", **key)
                except Exception as err:  # BadPacket; anything else is a decoder bug, dead-lettered below
                    results[i] = err
        return results

    @staticmethod
    def _decode_batch(decoder, messages: list[Message], chosen: list[int], results: list) -> None:
        """Decode ``messages[chosen]`` in one batch into their `results` entries (alert or error)."""
        batch, errors = decoder.decode_batch([messages[i].value() for i in chosen])
        for j, alert in enumerate(batch.alerts()):
            results[chosen[j]] = alert if alert is not None else errors[j]

    def _oversized(self, msg: Message) -> BadPacket | None:
        size = len(msg.value() or b"")
        if self.max_input_bytes is not None and size > self.max_input_bytes:
            return BadPacket(f"oversized: message of {size} bytes exceeds kafka.max_input_message_bytes "
                             f"{self.max_input_bytes}")
        return None

    def __call__(self, messages: list[Message]) -> tuple[list[Ingested], list[Output]]:
        """Split `messages` into decoded alerts and dead-letter outputs; keeps input order."""
        good, dead = [], []
        for msg, result in zip(messages, self.decode(messages)):
            if isinstance(result, Exception):
                if not isinstance(result, BadPacket):  # a decoder bug must not block the partition
                    log.error("decoder failed topic=%s partition=%d offset=%d error=%r",
                              msg.topic(), msg.partition(), msg.offset(), result)
                dead.append(self.dead(msg, result))
            else:
                good.append(Ingested(result, msg.topic(), msg.partition(), msg.offset(), msg.timestamp()[1], msg))
        return good, dead

    def dead(self, msg: Message, err: Exception) -> Output:
        """The dead-letter output of `msg`, rejected with `err`."""
        key, value = dead_letter(msg, err, self.max_payload_bytes)
        return Output(self.deadletter_topic, value, key, source=msg, reason=type(err).__name__)
