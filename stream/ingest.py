"""Decode a batch of Kafka messages; what cannot be decoded becomes a dead-letter output.

Rubin packets in the Confluent wire format (topics of format ``rubin`` or ``auto``) go through
the batch decoder `stream.decode.fast.FastRubinDecoder`, ZTF container files (topics of format ``ztf``
or ``auto``) through `stream.decode.fast.ztf.FastZtfDecoder`, one call per batch each; everything else
(ELAsTiCC, schemaless Rubin, Fink's ZTF with the schema in the key) through the per-message decoders.
"""
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from confluent_kafka import Message

from stream.alert import AlertBatch, DecodedAlert
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


@dataclass(frozen=True, eq=False)
class IngestedBatch:
    """A batch's decoded alerts as columns (`AlertBatch`), with the coordinates of the message each came from.

    Attributes
    ----------
    alerts : AlertBatch
    messages : list of Message, (B,)
        Each alert's message (it becomes a dead letter if one of its outputs cannot be produced).
    topic : list of str, (B,)
    partition, offset, kafka_timestamp_ms : (B,) int64
    """

    alerts: AlertBatch
    messages: list
    topic: list[str]
    partition: np.ndarray
    offset: np.ndarray
    kafka_timestamp_ms: np.ndarray

    def __len__(self) -> int:
        return len(self.alerts)

    @classmethod
    def of(cls, alerts: AlertBatch, messages: list) -> "IngestedBatch":
        """`alerts` with the coordinates read from their `messages`."""
        n = len(messages)
        return cls(alerts, messages, [m.topic() for m in messages],
                   np.fromiter((m.partition() for m in messages), dtype=np.int64, count=n),
                   np.fromiter((m.offset() for m in messages), dtype=np.int64, count=n),
                   np.fromiter((m.timestamp()[1] for m in messages), dtype=np.int64, count=n))

    def select(self, keep: np.ndarray) -> "IngestedBatch":
        """The alerts where `keep` ((B,) bool) is true, in order."""
        if keep.all():
            return self
        return IngestedBatch(self.alerts.take(keep), [m for m, k in zip(self.messages, keep) if k],
                             [t for t, k in zip(self.topic, keep) if k], self.partition[keep], self.offset[keep],
                             self.kafka_timestamp_ms[keep])

    def items(self) -> list[Ingested]:
        """One `Ingested` per alert (the per-alert form, for callers outside the hot path)."""
        return [Ingested(alert, topic, partition, offset, ts, message) for alert, topic, partition, offset, ts, message
                in zip(self.alerts.alerts(), self.topic, self.partition.tolist(), self.offset.tolist(),
                       self.kafka_timestamp_ms.tolist(), self.messages)]


class Ingest:
    """Per-topic decoders (``{topic: format}``) and the dead-letter topic.

    Messages longer than `max_input_bytes` are dead-lettered as oversized without decoding;
    dead letters keep `max_payload_bytes` of the message (`stream.deadletter`).
    """

    def __init__(self, formats: Mapping[str, str], deadletter_topic: str,
                 max_input_bytes: int | None = None, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 registry: RegistrySchemas | None = None):
        self.formats = dict(formats)  # a topic not named (one of input.kafka's topics or pattern) is "auto"
        self.registry = registry  # Rubin schema ids lsst-alert-packet lacks are looked up there
        self.decoders = {}
        self.fast_rubin = None  # made for the first wire-format message of a rubin or auto topic
        self.fast_ztf = None  # made for the first container file of a ztf or auto topic
        self.deadletter_topic = deadletter_topic
        self.max_input_bytes, self.max_payload_bytes = max_input_bytes, max_payload_bytes

    def prepare(self, subscription: list[str]) -> None:
        """Make now the batch decoders that the topics of `subscription` (names, or a ``^regex`` whose
        topics are "auto") can need, so that the first batch does not wait for their kernels to load
        (~0.4 s for Rubin's)."""
        formats = {DEFAULT_FORMAT if topic.startswith("^") else self._format(topic) for topic in subscription}
        if formats & {"rubin", "auto"}:
            self.fast_rubin = self.fast_rubin or FastRubinDecoder(registry=self.registry)
        if formats & {"ztf", "auto"}:
            self.fast_ztf = self.fast_ztf or FastZtfDecoder()

    def _format(self, topic: str) -> str:
        return self.formats.get(topic, DEFAULT_FORMAT)

    def _decoder(self, topic: str):
        if topic not in self.decoders:
            fmt = self._format(topic)
            opts = {"registry": self.registry} if self.registry is not None and fmt in ("rubin", "auto") else {}
            self.decoders[topic] = get_decoder(fmt, **opts)
        return self.decoders[topic]

    def _batched(self, messages: list[Message], decided: dict, formats: tuple[str, ...], magic: bytes) -> list[int]:
        """Indices of the messages not yet `decided`, of a topic in `formats`, that start with `magic`."""
        return [i for i, m in enumerate(messages) if i not in decided and self._format(m.topic()) in formats
                and (m.value() or b"")[:len(magic)] == magic]

    def decode_columns(self, messages: list[Message]) -> tuple[AlertBatch, np.ndarray, dict[int, Exception]]:
        """The alerts that decoded, in input order, as columns; the (K,) message index of each; and per
        message that did not, the exception that rejected it."""
        errors: dict[int, Exception] = {i: err for i, err in enumerate(map(self._oversized, messages))
                                        if err is not None}
        parts, indices = [], []
        wire = self._batched(messages, errors, ("rubin", "auto"), RUBIN_WIRE_MAGIC)
        if wire:
            self.fast_rubin = self.fast_rubin or FastRubinDecoder(registry=self.registry)
            self._decode_batch(self.fast_rubin, messages, wire, parts, indices, errors)
        containers = self._batched(messages, errors, ("ztf", "auto"), CONTAINER_MAGIC)
        if containers:
            self.fast_ztf = self.fast_ztf or FastZtfDecoder()
            self._decode_batch(self.fast_ztf, messages, containers, parts, indices, errors)
        decided = set(errors).union(*(ix.tolist() for ix in indices))
        slow, slow_index = [], []
        for i, msg in enumerate(messages):
            if i not in decided:
                try:
                    key = {"key": msg.key()} if self._format(msg.topic()) in KEYED_FORMATS else {}
                    slow.append(self._decoder(msg.topic())(msg.value() or b"", **key))
                    slow_index.append(i)
                except Exception as err:  # BadPacket; anything else is a decoder bug, dead-lettered by the caller
                    errors[i] = err
        if slow or not parts:
            parts.append(AlertBatch.from_alerts(slow))
            indices.append(np.array(slow_index, dtype=np.int64))
        alerts, index = parts[0], indices[0]
        if len(parts) > 1:
            alerts, index = AlertBatch.concatenate(parts), np.concatenate(indices)
        if np.any(np.diff(index) < 0):
            order = np.argsort(index, kind="stable")
            alerts, index = alerts.take(order), index[order]
        return alerts, index, errors

    @staticmethod
    def _decode_batch(decoder, messages: list[Message], chosen: list[int], parts: list, indices: list,
                      errors: dict) -> None:
        """Decode ``messages[chosen]`` in one batch: its alerts into `parts` (their message indices into
        `indices`), its rejections into `errors`."""
        batch, rejected = decoder.decode_batch([messages[i].value() for i in chosen])
        alerts, decoded = batch.decoded()
        chosen = np.asarray(chosen, dtype=np.int64)
        parts.append(alerts)
        indices.append(chosen[decoded])
        errors.update((int(chosen[j]), err) for j, err in rejected.items())

    def _oversized(self, msg: Message) -> BadPacket | None:
        size = len(msg.value() or b"")
        if self.max_input_bytes is not None and size > self.max_input_bytes:
            return BadPacket(f"oversized: message of {size} bytes exceeds kafka.max_input_message_bytes "
                             f"{self.max_input_bytes}")
        return None

    def batch(self, messages: list[Message]) -> tuple[IngestedBatch, list[Output]]:
        """Split `messages` into the decoded alerts, as columns, and dead-letter outputs; keeps input order."""
        alerts, index, errors = self.decode_columns(messages)
        dead = []
        for i in sorted(errors):
            msg, err = messages[i], errors[i]
            if not isinstance(err, BadPacket):  # a decoder bug must not block the partition
                log.error("decoder failed topic=%s partition=%d offset=%d error=%r",
                          msg.topic(), msg.partition(), msg.offset(), err)
            dead.append(self.dead(msg, err))
        return IngestedBatch.of(alerts, [messages[i] for i in index.tolist()]), dead

    def __call__(self, messages: list[Message]) -> tuple[list[Ingested], list[Output]]:
        """`batch`, with one `Ingested` per decoded alert."""
        good, dead = self.batch(messages)
        return good.items(), dead

    def dead(self, msg: Message, err: Exception) -> Output:
        """The dead-letter output of `msg`, rejected with `err`."""
        key, value = dead_letter(msg, err, self.max_payload_bytes)
        return Output(self.deadletter_topic, value, key, source=msg, reason=type(err).__name__)
