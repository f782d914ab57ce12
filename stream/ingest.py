"""Decode a batch of Kafka messages; what cannot be decoded becomes a dead-letter output."""
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka import Message

from stream.alert import DecodedAlert
from stream.deadletter import dead_letter
from stream.decode import get_decoder
from stream.errors import BadPacket
from stream.loop import Output

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ingested:
    """A decoded alert with the coordinates of the message it came from."""

    alert: DecodedAlert
    topic: str
    partition: int
    offset: int
    kafka_timestamp_ms: int


class Ingest:
    """Per-topic decoders (``{topic: format}``) and the dead-letter topic."""

    def __init__(self, formats: Mapping[str, str], deadletter_topic: str):
        self.decoders = {topic: get_decoder(fmt) for topic, fmt in formats.items()}
        self.deadletter_topic = deadletter_topic

    def __call__(self, messages: list[Message]) -> tuple[list[Ingested], list[Output]]:
        """Split `messages` into decoded alerts and dead-letter outputs; keeps input order."""
        good, dead = [], []
        for msg in messages:
            try:
                alert = self.decoders[msg.topic()](msg.value() or b"")
            except BadPacket as err:
                dead.append(self._dead(msg, err))
                continue
            except Exception as err:  # a decoder bug must not block the partition: keep the message
                log.exception("decoder failed topic=%s partition=%d offset=%d", msg.topic(), msg.partition(), msg.offset())
                dead.append(self._dead(msg, err))
                continue
            good.append(Ingested(alert, msg.topic(), msg.partition(), msg.offset(), msg.timestamp()[1]))
        return good, dead

    def _dead(self, msg: Message, err: Exception) -> Output:
        key, value = dead_letter(msg, err)
        return Output(self.deadletter_topic, value, key)
