"""Stored input positions (two clusters): where a partition starts, what a transaction stores, how a partition
is handed over. The end-to-end proof is tests/integration/test_two_clusters.py."""
import json

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition
from fakes import FakeConsumer, FakeMessage, FakeProducer

from stream.loop import Output, TransactionalLoop, sequential
from stream.positions import PositionStore, Stored, StoredPositions, decode_position, position_key


class FakeStore(PositionStore):
    """A store whose topic is a dict; `claim` returns what is stored."""

    def __init__(self, stored=None):
        super().__init__(kafka=None, topic="positions", group_id="g", writer="g-me", timeout_s=1.0)
        self.stored = dict(stored or {})

    def claim(self, partitions):
        return {p: self.stored[p] for p in partitions if p in self.stored}


class SourceConsumer(FakeConsumer):
    """The input cluster: the group's committed offsets, offsets by time, and what is committed to it."""

    def __init__(self, batches=(), committed=None, by_time=None, assigned=()):
        super().__init__(batches)
        self.group_offsets, self.by_time, self.assigned = committed or {}, by_time or {}, list(assigned)
        self.commits = []

    def subscribe(self, topics, on_revoke=None, on_lost=None, on_assign=None):
        self.on_assign = on_assign

    def assignment(self): return [TopicPartition(t, p) for t, p in self.assigned]
    def committed(self, partitions, timeout=None):
        return [TopicPartition(tp.topic, tp.partition, self.group_offsets.get((tp.topic, tp.partition), -1001))
                for tp in partitions]
    def offsets_for_times(self, partitions, timeout=None):
        return [TopicPartition(tp.topic, tp.partition, self.by_time.get((tp.topic, tp.partition), -1))
                for tp in partitions]
    def commit(self, offsets=None, asynchronous=True): self.commits.append(offsets)
    def incremental_assign(self, partitions): self.assigned += [(tp.topic, tp.partition) for tp in partitions]


def test_a_partition_starts_at_its_stored_position_then_the_group_s_commit_then_the_start_position():
    store = FakeStore({("a", 0): Stored(40, "g-other", released=True)})
    consumer = SourceConsumer(committed={("a", 0): 7, ("a", 1): 12}, by_time={("a", 2): 30})
    positions = StoredPositions(store, OFFSET_END, start_ms=1_768_435_200_000)
    starts = positions.assign(consumer, [TopicPartition("a", p) for p in range(4)], timeout_s=1)
    assert [(tp.partition, tp.offset) for tp in starts] == [(0, 40), (1, 12), (2, 30), (3, OFFSET_END)]
    positions = StoredPositions(FakeStore(), OFFSET_BEGINNING)
    assert positions.assign(SourceConsumer(), [TopicPartition("a", 0)], timeout_s=1)[0].offset == OFFSET_BEGINNING


def test_an_assigned_partition_s_stored_position_is_committed_to_the_input_group():
    """A scorer killed after a transaction but before its informational commit left the input group one batch
    behind; the next owner catches the group up on assignment (start positions such as OFFSET_BEGINNING are
    not offsets, so they are not committed)."""
    store = FakeStore({("a", 0): Stored(801, "g-old")})
    consumer = SourceConsumer(committed={("a", 0): 800})
    loop = TransactionalLoop(consumer, FakeProducer(), ["a"], sequential(lambda batch: []),
                             positions=StoredPositions(store, OFFSET_BEGINNING))
    loop._on_assign(consumer, [TopicPartition("a", 0), TopicPartition("a", 1)])
    assert consumer.assigned == [("a", 0), ("a", 1)]
    assert [[(tp.topic, tp.partition, tp.offset) for tp in c] for c in consumer.commits] == [[("a", 0, 801)]]


def test_records_name_the_partition_and_writer_and_a_hand_over_releases_only_partitions_read():
    positions = StoredPositions(FakeStore(), OFFSET_END)
    positions.assign(SourceConsumer(), [TopicPartition("a", 0), TopicPartition("a", 1)], timeout_s=1)
    staged = positions.stage([TopicPartition("a", 0, 5)])
    assert [(o.topic, json.loads(o.key), decode_position(o.value)) for o in staged] == [
        ("positions", ["g", "a", 0], Stored(5, "g-me"))]
    positions.committed([TopicPartition("a", 0, 5)])
    released = positions.release([TopicPartition("a", 0), TopicPartition("a", 1)])  # a/1: never read
    assert [(o.key, decode_position(o.value)) for o in released] == [(position_key("g", "a", 0),
                                                                     Stored(5, "g-me", released=True))]
    assert positions.next == {}


def test_the_loop_stores_positions_in_the_transaction_and_commits_to_the_input_group_after():
    messages = [FakeMessage(b"x", _topic="a", _partition=0, _offset=i) for i in range(3)]
    consumer = SourceConsumer([messages], assigned=[("a", 0)])
    producer = FakeProducer()
    positions = StoredPositions(FakeStore(), OFFSET_BEGINNING)
    loop = TransactionalLoop(consumer, producer, ["a"], sequential(lambda batch: [Output("out", b"y")]),
                             positions=positions)
    loop.run(max_messages=3)
    assert "send_offsets" not in producer.calls
    stored = [(t, decode_position(v)) for t, v, _ in producer.produced if t == "positions"]
    assert stored == [("positions", Stored(3, "g-me"))]
    assert [(tp.topic, tp.partition, tp.offset) for tp in consumer.commits[0]] == [("a", 0, 3)]
    assert positions.next[("a", 0)] == 3
