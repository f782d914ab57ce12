"""The consume → process → produce loop, exactly once: one Kafka transaction per batch.

Per batch (after librdkafka's transactions.c):

1. ``consume`` up to `batch_size` messages or `batch_timeout_s`;
2. ``begin_transaction``;
3. ``process(messages)`` returns the output messages (outputs, dead letters);
4. produce them, ``send_offsets_to_transaction`` with the consumer's positions;
5. ``commit_transaction``: retriable errors retry the commit; ``txn_requires_abort``
   aborts and rewinds the consumer to the committed offsets (the batch is read
   again); fatal errors raise `Fatal` for a supervisor to restart the process;
6. ``on_committed(messages)``: side effects that must follow the commit (Redis state).

No transaction is open while ``consume`` runs, so a rebalance (which fires inside
``consume``) never finds uncommitted work: revoked partitions need no commit and a
lost assignment nothing to abort.
"""
import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition

from stream.errors import AbortTxn, Fatal, Retriable
from stream.kafka_io import classify

log = logging.getLogger(__name__)
TXN_TIMEOUT_S = 30.0  # each transactional call; past it librdkafka raises, and the error is classified
QUEUE_FULL_BACKOFF_S = 0.1  # poll this long when the local producer queue is full, then retry
COMMIT_RETRIES = 5


@dataclass(frozen=True)
class Output:
    """One message to produce inside the batch's transaction."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass
class LoopStats:
    batches: int = 0
    messages_in: int = 0
    messages_out: int = 0
    aborts: int = 0
    consumer_errors: int = 0
    last_batch_ms: float = 0.0
    extra: dict = field(default_factory=dict)


Process = Callable[[list[Message]], list[Output]]


class TransactionalLoop:
    """Run `process` over batches of `consumer`'s messages, producing its outputs with `producer`
    (transactional, ``init_transactions`` done here) in one transaction per batch."""

    def __init__(self, consumer: Consumer, producer: Producer, topics: Sequence[str], process: Process,
                 batch_size: int = 500, batch_timeout_s: float = 0.2,
                 on_committed: Callable[[list[Message]], None] | None = None,
                 on_idle: Callable[[], None] | None = None):
        self.consumer, self.producer, self.process = consumer, producer, process
        self.on_committed, self.on_idle = on_committed, on_idle
        self.batch_size, self.batch_timeout_s = batch_size, batch_timeout_s
        self.stats = LoopStats()
        self._stopping = False
        self.producer.init_transactions(TXN_TIMEOUT_S)
        self.consumer.subscribe(list(topics))

    def stop(self, *_signal_args) -> None:
        """Finish the batch in hand, commit it and leave the group (safe from a signal handler)."""
        self._stopping = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run(self, max_messages: int | None = None, timeout_s: float | None = None,
            idle_timeout_s: float | None = None) -> LoopStats:
        """Loop until stopped, `max_messages` consumed, `timeout_s` elapsed or `idle_timeout_s`
        without messages while partitions are assigned; then close the consumer."""
        start = last_message = time.monotonic()
        try:
            while not self._stopping:
                now = time.monotonic()
                if max_messages is not None and self.stats.messages_in >= max_messages:
                    break
                if timeout_s is not None and now - start > timeout_s:
                    break
                if idle_timeout_s is not None and now - last_message > idle_timeout_s:
                    break
                messages = self._consume()
                if messages or not self.consumer.assignment():
                    last_message = time.monotonic()
                if messages:
                    self._run_batch(messages)
                elif self.on_idle:
                    self.on_idle()
        finally:
            self.consumer.close()
        return self.stats

    def _consume(self) -> list[Message]:
        messages = []
        for msg in self.consumer.consume(self.batch_size, self.batch_timeout_s):
            if msg.error():
                self.stats.consumer_errors += 1
                log.warning("consumer error=%s", msg.error())
            else:
                messages.append(msg)
        return messages

    def _run_batch(self, messages: list[Message]) -> None:
        t0 = time.perf_counter()
        try:
            self.producer.begin_transaction()
            outputs = self.process(messages)
            for out in outputs:
                self._produce(out)
            self.producer.send_offsets_to_transaction(
                self.consumer.position(self.consumer.assignment()),
                self.consumer.consumer_group_metadata(), TXN_TIMEOUT_S)
            self._commit()
        except KafkaException as err:
            failure = classify(err)
            if isinstance(failure, AbortTxn | Retriable):
                self.abort_and_rewind(failure)
                return
            raise failure from err
        self.stats.batches += 1
        self.stats.messages_in += len(messages)
        self.stats.messages_out += len(outputs)
        self.stats.last_batch_ms = (time.perf_counter() - t0) * 1e3
        if self.on_committed:
            self.on_committed(messages)

    def _produce(self, out: Output) -> None:
        while True:
            try:
                self.producer.produce(out.topic, out.value, out.key, headers=list(out.headers) or None)
                return
            except BufferError:
                self.producer.poll(QUEUE_FULL_BACKOFF_S)

    def _commit(self) -> None:
        for attempt in range(COMMIT_RETRIES):
            try:
                self.producer.commit_transaction(TXN_TIMEOUT_S)
                return
            except KafkaException as err:
                failure = classify(err)
                if not isinstance(failure, Retriable) or attempt == COMMIT_RETRIES - 1:
                    raise
                log.warning("commit retry attempt=%d error=%s", attempt + 1, failure)

    def abort_and_rewind(self, reason: Exception) -> None:
        """Abort the open transaction and seek every assigned partition back to its committed offset."""
        log.warning("aborting transaction reason=%s", reason)
        self.stats.aborts += 1
        try:
            self.producer.abort_transaction(TXN_TIMEOUT_S)
        except KafkaException as err:
            raise Fatal(f"abort_transaction failed: {err}") from err
        committed = self.consumer.committed(self.consumer.assignment(), timeout=TXN_TIMEOUT_S)
        for tp in committed:
            # A partition without a committed offset restarts from the group's reset policy.
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else -2))
