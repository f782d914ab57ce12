"""Input positions stored on the output cluster: exactly once when inputs and outputs live on two clusters.

A Kafka transaction spans one cluster only, so with a separate input cluster the consumer group's
offsets cannot join the outputs' transaction. As Kafka Connect's exactly-once source connectors
(KIP-618) and MirrorMaker 2 do, each batch's transaction also writes, per input partition, the next
offset to read into a compacted topic of the output cluster (`topics.input_offsets`). A partition
newly assigned starts from that stored position; the input group's committed offsets on the input
cluster (written after each transaction, for lag tools) are only a fallback for partitions never
stored, and then the configured start position.

Fencing. A transactional id per instance cannot stop another instance's zombie (one whose
partitions were taken away while it still ran) from committing after the new owner read the
positions. So every record names its writer's transactional id, and a writer that hands a
partition over cleanly (revoked, or stopping) writes a *released* record last. A new owner that
finds a partition's last record from another writer, not released, fences that writer first
(``init_transactions`` with its transactional id: its open transaction is aborted and any later
commit of it fails), then reads the positions again. See the README, "Two clusters".
"""
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, TopicPartition

from stream.config import KafkaSettings, StreamConfig
from stream.errors import Fatal
from stream.kafka_io import make_producer, make_reader
from stream.loop import Output

log = logging.getLogger(__name__)
READ_POLL_S = 0.2  # one consume call while reading the positions topic to its end
# Reading the positions may wait for a crashed writer's open transaction that nobody fences (another instance's, for
# other partitions) until the broker aborts it: the scorers' transaction.timeout.ms (30 s), plus a margin.
CLAIM_TIMEOUT_S = 45.0

Partition = tuple[str, int]  # (input topic, partition)


@dataclass(frozen=True)
class Stored:
    """A partition's last record: the next offset to read, who wrote it, whether it let the partition go."""

    offset: int
    writer: str
    released: bool = False


def position_key(group_id: str, topic: str, partition: int) -> bytes:
    """The record key of an input partition of a group (compaction keeps its last record)."""
    return json.dumps([group_id, topic, partition]).encode()


def encode_position(stored: Stored) -> bytes:
    return json.dumps({"offset": stored.offset, "writer": stored.writer, "released": stored.released}).encode()


def decode_position(value: bytes) -> Stored | None:
    """The record's position, or None for a record that is not one (ignored, logged)."""
    try:
        record = json.loads(value)
        return Stored(int(record["offset"]), str(record["writer"]), bool(record.get("released", False)))
    except (ValueError, KeyError, TypeError):
        return None


class PositionStore:
    """Reads and writes the stored input positions of one input group in the positions topic.

    Parameters
    ----------
    kafka : KafkaSettings
        The output cluster.
    topic : str
        The compacted positions topic on it.
    group_id : str
        The input consumer group (positions of other groups in the topic are ignored).
    writer : str
        This process's transactional id.
    timeout_s : float
        How long reading to the end may wait for open transactions to end (a crashed writer's,
        not fenced, ends at its transaction timeout).
    """

    def __init__(self, kafka: KafkaSettings, topic: str, group_id: str, writer: str, timeout_s: float):
        self.kafka, self.topic, self.group_id, self.writer, self.timeout_s = kafka, topic, group_id, writer, timeout_s

    def outputs(self, offsets: Iterable[tuple[str, int, int]], released: bool = False) -> list[Output]:
        """Records storing `offsets` ((topic, partition, next offset)), to produce in the batch's transaction."""
        return [Output(self.topic, encode_position(Stored(offset, self.writer, released)),
                       position_key(self.group_id, topic, partition)) for topic, partition, offset in offsets]

    def claim(self, partitions: Iterable[Partition]) -> dict[Partition, Stored]:
        """The stored positions of `partitions`, newly assigned to this process, once no earlier owner can
        write them any more: writers that did not release a partition are fenced, then the topic is read
        again."""
        partitions = set(partitions)
        stored = self.read(partitions)
        zombies = {s.writer for s in stored.values() if s.writer != self.writer and not s.released}
        if not zombies:
            return stored
        for writer in sorted(zombies):
            self.fence(writer)
        return self.read(partitions)

    def fence(self, writer: str) -> None:
        """Abort `writer`'s open transaction and make any later commit of it fail (its epoch is bumped)."""
        log.warning("fencing the previous owner of input partitions transactional_id=%s", writer)
        producer = make_producer(self.kafka, writer)
        try:
            producer.init_transactions(self.timeout_s)
        except KafkaException as err:
            raise Fatal(f"output cluster: could not fence transactional id {writer}: {err.args[0].str()}") from None
        finally:
            del producer  # librdkafka's handle goes with the object: the fence must not linger

    def read(self, partitions: set[Partition]) -> dict[Partition, Stored]:
        """The last committed record of each of `partitions` (absent: never stored), reading the whole topic
        to the end it had when called (its uncommitted high watermark: records of transactions still open
        then are waited for, so a commit that lands late is not missed)."""
        probe = make_reader(self.kafka, "read_uncommitted")
        try:
            metadata = probe.list_topics(self.topic, timeout=self.timeout_s).topics[self.topic]
            if metadata.error is not None:
                raise Fatal(f"output cluster: topics.input_offsets {self.topic}: {metadata.error.str()}")
            ends = {}
            for p in metadata.partitions:
                low, high = probe.get_watermark_offsets(TopicPartition(self.topic, p), timeout=self.timeout_s)
                if high > low:
                    ends[p] = high
        finally:
            probe.close()
        if not ends:
            return {}
        reader = make_reader(self.kafka, "read_committed")
        try:
            return self._read_to(reader, ends, partitions)
        finally:
            reader.close()

    def _read_to(self, reader: Consumer, ends: dict[int, int], partitions: set[Partition]) -> dict[Partition, Stored]:
        """Read committed records until each partition's position (past aborted records and transaction
        markers) reaches its end in `ends`."""
        reader.assign([TopicPartition(self.topic, p, 0) for p in ends])
        wanted = {position_key(self.group_id, t, p): (t, p) for t, p in partitions}
        found: dict[Partition, Stored] = {}
        deadline = time.monotonic() + self.timeout_s
        while ends:
            for msg in reader.consume(1000, READ_POLL_S):
                if msg.error():
                    raise Fatal(f"output cluster: reading topics.input_offsets {self.topic}: {msg.error().str()}")
                key = wanted.get(msg.key())
                stored = decode_position(msg.value()) if key else None
                if stored is not None:
                    found[key] = stored
            reached = reader.position([TopicPartition(self.topic, p) for p in ends])
            ends = {tp.partition: ends[tp.partition] for tp in reached if tp.offset < ends[tp.partition]}
            if ends and time.monotonic() > deadline:
                raise Fatal(f"output cluster: topics.input_offsets {self.topic} was not readable to its end within "
                            f"{self.timeout_s:g} s (a transaction stayed open)")
        return found


class StoredPositions:
    """The loop's side of stored positions: where each newly assigned input partition starts, what each
    transaction stores, where an abort rewinds to, what a clean hand-over writes.

    Parameters
    ----------
    store : PositionStore
    start_offset : int
        For a partition with neither a stored position nor a committed offset of the group:
        ``OFFSET_BEGINNING`` or ``OFFSET_END``, unless `start_ms` is given.
    start_ms : int, optional
        Start at the first message at or after this time (ms since the Unix epoch).
    """

    def __init__(self, store: PositionStore, start_offset: int = OFFSET_BEGINNING, start_ms: int | None = None):
        self.store, self.start_offset, self.start_ms = store, start_offset, start_ms
        self.next: dict[Partition, int] = {}  # per owned partition: the next offset as of the last commit

    def assign(self, consumer: Consumer, partitions: list[TopicPartition], timeout_s: float) -> list[TopicPartition]:
        """Where each of `partitions` starts: the stored position, else the group's committed offset on the
        input cluster, else the start position."""
        stored = self.store.claim((tp.topic, tp.partition) for tp in partitions)
        start = {(tp.topic, tp.partition): s.offset for tp, s in
                 ((tp, stored.get((tp.topic, tp.partition))) for tp in partitions) if s is not None}
        missing = [TopicPartition(tp.topic, tp.partition) for tp in partitions if (tp.topic, tp.partition) not in start]
        if missing:
            for tp in consumer.committed(missing, timeout=timeout_s):
                if tp.offset >= 0:
                    start[(tp.topic, tp.partition)] = tp.offset
        missing = [tp for tp in missing if (tp.topic, tp.partition) not in start]
        if missing and self.start_ms is not None:
            for tp in consumer.offsets_for_times([TopicPartition(t.topic, t.partition, self.start_ms) for t in missing],
                                                 timeout=timeout_s):
                start[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else OFFSET_END
        for tp in missing:
            start.setdefault((tp.topic, tp.partition), self.start_offset)
        self.next.update(start)
        log.info("input partitions assigned %s", " ".join(
            f"{t}/{p}@{o}{'(stored)' if (t, p) in stored else ''}" for (t, p), o in sorted(start.items())))
        return [TopicPartition(t, p, start[(t, p)]) for t, p in ((tp.topic, tp.partition) for tp in partitions)]

    def stage(self, offsets: list[TopicPartition]) -> list[Output]:
        """The records storing `offsets` (next offsets after a batch), for the batch's transaction."""
        return self.store.outputs((tp.topic, tp.partition, tp.offset) for tp in offsets)

    def committed(self, offsets: list[TopicPartition]) -> None:
        self.next.update(((tp.topic, tp.partition), tp.offset) for tp in offsets)

    def rewind(self, assignment: list[TopicPartition]) -> list[TopicPartition]:
        """Where an aborted transaction sends each assigned partition back to: its last stored position."""
        return [TopicPartition(tp.topic, tp.partition, self.next.get((tp.topic, tp.partition), self.start_offset))
                for tp in assignment]

    def release(self, partitions: list[TopicPartition]) -> list[Output]:
        """Records handing `partitions` over cleanly (their new owner need not fence this process); partitions
        never read from (no real offset) write none, so their new owner resolves the start as this one did."""
        keys = [(tp.topic, tp.partition) for tp in partitions]
        offsets = [(t, p, self.next[(t, p)]) for t, p in keys if self.next.get((t, p), -1) >= 0]
        self.forget(partitions)
        return self.store.outputs(offsets, released=True)

    def forget(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.next.pop((tp.topic, tp.partition), None)


def stored_positions(config: StreamConfig, writer: str, group_id: str | None = None) -> StoredPositions:
    """The stored positions of `config`'s input group (or of `group_id`), written by transactional id `writer`."""
    kafka = config.input.kafka
    store = PositionStore(config.output_kafka(), config.topics.input_offsets, group_id or config.input_group_id(),
                          writer, CLAIM_TIMEOUT_S)
    start = OFFSET_END if kafka.start_position == "latest" else OFFSET_BEGINNING
    return StoredPositions(store, start, kafka.start_offset_ms())
