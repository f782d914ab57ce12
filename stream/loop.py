"""The consume → process → produce loop, exactly once: one Kafka transaction per batch.

Per batch (after librdkafka's transactions.c):

1. ``consume`` up to `batch_size` messages or `batch_timeout_s`;
2. ``prepare(messages)`` starts the batch's work and returns its ``finish``;
3. the batch before it is finished: ``finish()`` returns its `BatchResult`, the output
   messages (outputs, dead letters), then ``begin_transaction``, produce them,
   ``send_offsets_to_transaction`` with the offsets after its own messages;
4. ``commit_transaction``: retriable errors retry the commit; ``txn_requires_abort``
   aborts and rewinds the consumer to the committed offsets (the batch and the one
   prepared after it are read again; ``on_discard()`` drops what was prepared);
   an output refused for itself (too large, invalid; by ``produce`` or later in
   its delivery report) aborts, and the same batch is produced again with that
   output's input dead-lettered (`stream.refused`), with no rewind;
   fatal errors, and a timeout of any transactional call (its outcome is unknown),
   raise `Fatal` for a supervisor to restart the process with a fresh producer; a call
   that does not return at all is ended by the `Watchdog` (exit code 3);
5. the result's ``after_commit(messages, refused)``: side effects that must follow the commit (Redis
   state), told which inputs were dead-lettered for a refused output.

The time of each step goes into `times` (`stream.stages.StageTimes`), which the loop's owner
may share to time its own stages in the same record.

So one batch is prepared while the one before it finishes: the scoring service
runs a batch's forward pass on a worker thread while this thread consumes,
decodes and windows the next one. While a batch waits to be finished, the next
``consume`` only takes what is already fetched (no wait), so a quiet stream does
not hold it back.

No transaction is open while ``consume`` runs. A rebalance fires inside
``consume``: when partitions are revoked, the waiting batch is finished and
committed first, in the callback, while they are still ours; when they are lost,
it is dropped (its offsets were not committed, so their new owner reads it again).

With `positions` (`stream.positions.StoredPositions`: inputs on another cluster than the
outputs), the offsets go into the transaction as records of the positions topic instead of
``send_offsets_to_transaction``; each newly assigned partition starts at its stored position;
an abort rewinds to the stored positions; after each commit the offsets are also committed to
the input group (informational); a revoked partition is released with one more record.
"""
import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from stream.errors import AbortTxn, ConfigError, Fatal, Retriable
from stream.kafka_io import ACCESS_ERRORS, access_cause, classify, is_record_error
from stream.refused import Refused
from stream.stages import StageTimes
from stream.watchdog import Watchdog

if TYPE_CHECKING:
    from stream.positions import StoredPositions

log = logging.getLogger(__name__)
# Each transactional call: past it librdkafka raises (Fatal: outcome unknown), past it + a margin the watchdog
# exits 3. A healthy call takes milliseconds; after a broker crash librdkafka may never return, and the time
# until the watchdog fires is time without scoring: with 15 s, a scorer stuck at the crash is restarted about
# when a restarted broker is ready (the chaos suite measured 52 s to the next scored alert with 30 s).
TXN_TIMEOUT_S = 15.0
QUEUE_FULL_BACKOFF_S = 0.1  # poll this long when the local producer queue is full, then retry
COMMIT_RETRIES = 5
RERUN_FAILED_ROUNDS = 3  # rounds in a row with nothing newly refused, after a refusal, before giving up
# Consumer errors that end the loop as a configuration error (exit 2); a missing topic is checked at start, and
# later only logged (a topic may be re-created).
REFUSALS = ACCESS_ERRORS - {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC}


@dataclass(frozen=True)
class Output:
    """One message to produce inside the batch's transaction; `source` is the input message it stems from."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: Sequence[tuple[str, bytes]] = ()
    source: Message | None = None
    reason: str | None = None  # a dead letter's error type, for the metrics (not produced)


@dataclass
class LoopStats:
    batches: int = 0
    messages_in: int = 0
    messages_out: int = 0
    aborts: int = 0
    consumer_errors: int = 0
    record_errors: int = 0  # outputs the producer refused (size, content), dead-lettered instead
    last_batch_ms: float = 0.0


@dataclass(frozen=True)
class BatchResult:
    """What a batch's ``finish()`` gives the loop: its outputs, and what to run once their transaction has
    committed (None: nothing), called with the batch's messages and those of them whose outputs the
    producer refused, so that the committed transaction holds their dead letters instead (`stream.refused`)."""

    outputs: list[Output]
    after_commit: Callable[[list[Message], list[Message]], None] | None = None


Process = Callable[[list[Message]], list[Output]]
Finish = Callable[[], BatchResult]
Prepare = Callable[[list[Message]], Finish]


def sequential(process: Process) -> Prepare:
    """A `Prepare` that runs `process` when the batch is finished: for work with nothing to overlap."""
    return lambda messages: lambda: BatchResult(process(messages))


def batch_offsets(messages: list[Message], owned: set[tuple[str, int]]) -> list[TopicPartition]:
    """Offsets to commit after `messages`: per partition in `owned`, its last offset + 1."""
    last: dict[tuple[str, int], int] = {}
    for msg in messages:
        key = (msg.topic(), msg.partition())
        last[key] = max(last.get(key, -1), msg.offset())
    return [TopicPartition(topic, partition, offset + 1) for (topic, partition), offset in last.items()
            if (topic, partition) in owned]


class TransactionalLoop:
    """Run `prepare` and its ``finish`` over batches of `consumer`'s messages, producing the outputs with
    `producer` (transactional, ``init_transactions`` done here) in one transaction per batch.

    Every blocking call into librdkafka (the transactional calls, ``committed``, ``close``) runs under a
    `Watchdog` deadline: one that does not return ends the process with exit code 3. A transactional call
    that times out leaves the transaction's outcome unknown: `Fatal`, and the producer is not used again.

    A plain function of the messages goes in as ``sequential(process)``. An output that the producer or the
    broker refuses for itself (too large, invalid: `is_record_error`) aborts the transaction; the batch is
    produced again with that output's input message as ``dead_letter(source, reason)`` (`stream.refused`);
    only if that fails too does the transaction fail.
    """

    def __init__(self, consumer: Consumer, producer: Producer, topics: Sequence[str], prepare: Prepare,
                 batch_size: int = 500, batch_timeout_s: float = 0.2,
                 on_idle: Callable[[], None] | None = None, on_discard: Callable[[], None] | None = None,
                 dead_letter: Callable[[Message, Exception], Output] | None = None,
                 txn_timeout_s: float = TXN_TIMEOUT_S, watchdog: Watchdog | None = None,
                 positions: "StoredPositions | None" = None, input_label: str = "",
                 times: StageTimes | None = None):
        self.consumer, self.producer, self.prepare = consumer, producer, prepare
        self.times = times or StageTimes()  # the loop's stages; its owner may time its own in the same record
        self.positions = positions
        self.input_label = input_label  # how errors name the input (its group id, and cluster with two)
        self.txn_timeout_s = txn_timeout_s
        self.watchdog = watchdog or Watchdog()
        self.on_idle, self.on_discard = on_idle, on_discard
        self.dead_letter = dead_letter
        self.batch_size, self.batch_timeout_s = batch_size, batch_timeout_s
        self.stats = LoopStats()
        self._stopping = False
        self._failed = False
        self._waiting: tuple[list[Message], Finish] | None = None  # prepared, not yet finished
        self._txn("init_transactions", self.producer.init_transactions, self.txn_timeout_s)
        assigned = {"on_assign": self._on_assign} if positions is not None else {}
        self.consumer.subscribe(list(topics), on_revoke=self._on_revoke, on_lost=self._on_lost, **assigned)

    def stop(self, *_signal_args) -> None:
        """Finish the batch in hand, commit it and leave the group (safe from a signal handler)."""
        self._stopping = True

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT stop the loop after the batch in hand; the watchdog bounds how long that may take."""
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self.watchdog.watch_signals()

    def run(self, max_messages: int | None = None, timeout_s: float | None = None,
            idle_timeout_s: float | None = None) -> LoopStats:
        """Loop until stopped, `max_messages` consumed, `timeout_s` elapsed or `idle_timeout_s`
        without messages while partitions are assigned; then close the consumer."""
        start = last_message = time.monotonic()
        try:
            while not self._stopping:
                now = time.monotonic()
                waiting = len(self._waiting[0]) if self._waiting else 0
                if max_messages is not None and self.stats.messages_in + waiting >= max_messages:
                    break
                if timeout_s is not None and now - start > timeout_s:
                    break
                if idle_timeout_s is not None and now - last_message > idle_timeout_s:
                    break
                t0, cpu0 = time.perf_counter(), time.thread_time()
                messages = self._consume(0.0 if self._waiting else self.batch_timeout_s)
                self.times.add("consume" if messages else "idle", time.perf_counter() - t0, time.thread_time() - cpu0)
                if messages or not self.consumer.assignment():
                    last_message = time.monotonic()
                idle = not messages and self._waiting is None
                prepared = None
                if messages:
                    with self.times.timing("prepare"):
                        prepared = (messages, self.prepare(messages))
                if not self._finish_waiting():
                    prepared = None  # the rewind reads it again
                self._waiting = prepared
                if idle and self.on_idle:
                    self.on_idle()
            self._finish_waiting()
        except BaseException:
            self._failed = True  # closing must not use the producer again (no release: the next owner fences)
            raise
        finally:
            try:
                with self.watchdog.deadline("consumer close", self.txn_timeout_s):
                    self.consumer.close()
            finally:
                self.watchdog.close()
        return self.stats

    def _consume(self, timeout_s: float) -> list[Message]:
        messages = []
        for msg in self.consumer.consume(self.batch_size, timeout_s):
            if msg.error():
                if msg.error().code() in REFUSALS:  # the credentials or the rights: waiting will not mend them
                    what = f"topic {msg.topic()}" if msg.topic() else "consumer group"
                    raise ConfigError(f"{self.input_label}{what}: {access_cause(msg.error())}")
                self.stats.consumer_errors += 1
                log.warning("consumer error=%s", msg.error())
            else:
                messages.append(msg)
        return messages

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Stored positions: start each new partition where the last committed transaction left it, and commit
        that start to the input group too: a process killed between a transaction and its informational commit
        left the group behind, and with no later message on the partition lag tools would show scored alerts
        as pending for good."""
        if not partitions:
            return
        with self.watchdog.deadline("input positions", 3 * self.positions.store.timeout_s):
            starts = self.positions.assign(consumer, partitions, self.txn_timeout_s)
        consumer.incremental_assign(starts)
        self._commit_to_input_group([tp for tp in starts if tp.offset >= 0])

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._waiting:
            log.info("partitions revoked: committing the waiting batch first partitions=%d", len(partitions))
            self._finish_waiting()
        if self.positions is not None and not self._failed:
            self._release(partitions)

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._waiting:
            log.warning("partitions lost: dropping the waiting batch (not committed) messages=%d partitions=%d",
                        len(self._waiting[0]), len(partitions))
            self._waiting = None
            self._discard()
        if self.positions is not None:
            self.positions.forget(partitions)  # not released: the new owner fences this process

    def _release(self, partitions: list[TopicPartition]) -> None:
        """Hand revoked partitions over in one transaction of released positions (failure: the new owner
        fences this process instead)."""
        outputs = self.positions.release(partitions)
        if not outputs:
            return
        try:
            self._txn("begin_transaction", self.producer.begin_transaction)
            for out in outputs:
                self._send(out)
            self._commit()
        except KafkaException as err:
            failure = classify(err)
            if isinstance(failure, Fatal):  # fenced: the partitions' next owner has taken over already
                raise failure from err
            log.warning("releasing revoked partitions failed; their next owner fences this process error=%s",
                        err.args[0])
            try:
                self._txn("abort_transaction", self.producer.abort_transaction, self.txn_timeout_s)
            except KafkaException as abort_err:
                raise Fatal(f"abort_transaction failed: {abort_err}") from abort_err

    def _discard(self) -> None:
        """Tell the owner that every prepared batch was dropped."""
        if self.on_discard:
            self.on_discard()

    def _finish_waiting(self) -> bool:
        """Finish and commit the waiting batch, if any; False if its transaction was aborted (and rewound)."""
        if self._waiting is None:
            return True
        (messages, finish), self._waiting = self._waiting, None
        return self._run_batch(messages, finish)

    def _run_batch(self, messages: list[Message], finish: Finish) -> bool:
        t0, cpu0 = time.perf_counter(), time.thread_time()
        with self.times.timing("finish"):
            result = finish()
        outputs = result.outputs
        owned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        offsets = batch_offsets(messages, owned)
        refused = Refused(self.dead_letter)
        failed_rounds = 0
        while True:
            sent = refused.outputs(outputs)
            try:
                if self._transaction(offsets, sent, refused):
                    break
                failure = AbortTxn("an output was refused")
            except KafkaException as err:
                failure = classify(err)
                if not isinstance(failure, AbortTxn | Retriable):
                    raise failure from err
                self.producer.poll(0)  # delivery reports not served yet
                if not refused and not refused.pending:
                    self.abort_and_rewind(failure)
                    self._discard()
                    return False
            # A round in which an output was refused: abort, then the same batch (whose outputs and offsets are
            # in hand, so no rewind) with the refused inputs dead-lettered. librdkafka fails the round after a
            # broker's refusal once more (OUT_OF_ORDER_SEQUENCE_NUMBER: the refused records' sequence numbers).
            dead = refused.settle()
            self.stats.record_errors += dead
            failed_rounds = 0 if dead else failed_rounds + 1
            if failed_rounds > RERUN_FAILED_ROUNDS:
                raise Fatal(f"the transaction failed {failed_rounds} times after its refused outputs were "
                            f"dead-lettered: {failure}")
            log.warning("output refused: aborting, then producing the batch again with %d more input(s) "
                        "dead-lettered", dead)
            self._abort(failure)
        if self.positions is not None:
            self.positions.committed(offsets)
            self._commit_to_input_group(offsets)
        self.stats.batches += 1
        self.stats.messages_in += len(messages)
        self.stats.messages_out += len(sent)
        batch_s = time.perf_counter() - t0
        self.times.add("batch", batch_s, time.thread_time() - cpu0)
        self.stats.last_batch_ms = batch_s * 1e3
        if result.after_commit:
            result.after_commit(messages, refused.inputs(messages))
        return True

    def _transaction(self, offsets: list[TopicPartition], outputs: list[Output], refused: Refused) -> bool:
        """One transaction of `outputs` and the input `offsets` (the group's, or the stored positions' records):
        True if committed, False (the transaction left open) if the producer refused an output for itself
        (noted in `refused`)."""
        self._txn("begin_transaction", self.producer.begin_transaction)
        with self.times.timing("produce"):
            for out in outputs:
                try:
                    self._send(out, refused.on_delivery(out))
                except KafkaException as err:
                    if not is_record_error(err.args[0]):
                        raise
                    refused.refused_now(out, err.args[0])
        if refused.pending:
            return False
        if self.positions is not None:
            with self.times.timing("produce"):
                for out in self.positions.stage(offsets):
                    self._send(out)
        else:
            self._txn("send_offsets_to_transaction", self.producer.send_offsets_to_transaction,
                      offsets, self.consumer.consumer_group_metadata(), self.txn_timeout_s)
        self._commit()
        return True

    def _commit_to_input_group(self, offsets: list[TopicPartition]) -> None:
        """The input group's offsets, for the input cluster's lag tools; never read back (stored positions are)."""
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as err:
            log.debug("informational offset commit to the input group failed error=%s", err.args[0])

    def _send(self, out: Output, on_delivery: Callable | None = None) -> None:
        give_up = time.monotonic() + self.txn_timeout_s
        while True:
            try:
                self.producer.produce(out.topic, out.value, out.key, headers=list(out.headers) or None,
                                      on_delivery=on_delivery)
                return
            except BufferError:
                if time.monotonic() > give_up:  # the broker takes nothing: as a timed-out transactional call
                    raise Fatal(f"the producer queue stayed full for {self.txn_timeout_s:g} s") from None
                self.producer.poll(QUEUE_FULL_BACKOFF_S)

    def _txn(self, what: str, call: Callable, *args):
        """``call(*args)`` under a watchdog deadline; a librdkafka timeout is `Fatal` (outcome unknown).

        After a timed-out commit, abort or offsets call the coordinator may have aborted the
        transaction and bumped the producer's epoch; using this producer again gave ``_FENCED``
        errors after broker restarts. A new process gets a fresh producer, and its
        ``init_transactions`` settles the old transaction.
        """
        with self.watchdog.deadline(what, self.txn_timeout_s):
            try:
                return call(*args)
            except KafkaException as err:
                if err.args[0].code() == KafkaError._TIMED_OUT:
                    raise Fatal(f"{what} timed out after {self.txn_timeout_s:g} s: the transaction's outcome is "
                                f"unknown, so this producer is not used again ({err.args[0].str()})") from err
                raise

    def _commit(self) -> None:
        with self.times.timing("commit"):
            self._commit_with_retries()

    def _commit_with_retries(self) -> None:
        for attempt in range(COMMIT_RETRIES):
            try:
                self._txn("commit_transaction", self.producer.commit_transaction, self.txn_timeout_s)
                return
            except KafkaException as err:
                failure = classify(err)
                if not isinstance(failure, Retriable) or attempt == COMMIT_RETRIES - 1:
                    raise
                log.warning("commit retry attempt=%d error=%s", attempt + 1, failure)

    def _abort(self, reason: Exception) -> None:
        log.warning("aborting transaction reason=%s", reason)
        self.stats.aborts += 1
        try:
            self._txn("abort_transaction", self.producer.abort_transaction, self.txn_timeout_s)
        except KafkaException as err:
            raise Fatal(f"abort_transaction failed: {err}") from err

    def abort_and_rewind(self, reason: Exception) -> None:
        """Abort the open transaction and seek every assigned partition back to its committed offset.

        The caller drops the batch prepared after the aborted one: the rewind reads it again.
        """
        self._abort(reason)
        if self.positions is not None:
            committed = self.positions.rewind(self.consumer.assignment())
        else:
            with self.watchdog.deadline("consumer committed", self.txn_timeout_s):
                committed = self.consumer.committed(self.consumer.assignment(), timeout=self.txn_timeout_s)
        for tp in committed:
            # A partition without a committed offset restarts from the group's reset policy; stored positions
            # give the logical start (earliest, latest) of a partition not committed yet.
            offset = tp.offset if tp.offset >= 0 or self.positions is not None else OFFSET_BEGINNING
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
