"""`alertformer run`: the scoring service, wired from the configuration.

Per batch: decode (bad → dead letter) → window with the stored history → scores
(`Scorer.score`: forward passes over length-sorted chunks) → follow-up rules and
journal → scored-alert, classification and follow-up records, produced in the
batch's Kafka transaction with the consumer offsets → after the commit, Redis
state and the optional webhook.

The loop (`stream.loop`) prepares a batch while the one before it finishes:
`prepare` decodes, windows and encodes, and hands the forward pass to a worker
thread; `finish` takes the probabilities, builds the records and returns them with
what follows their commit (`stream.loop.BatchResult`). A batch's windows are built
before the batch ahead of it has written its curves to Redis, so `prepare` lays the
curves of batches still in flight over what Redis returns.
"""
import json
import logging
import socket
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
import redis
from confluent_kafka import KafkaException, Message, TopicPartition

from models.checkpoint import CheckpointMismatch
from models.registry import ModelRegistry, RegistryError
from models.taxonomy import CLASS_NAMES, N_CLASSES
from stream import avro_io
from stream.config import StreamConfig, load_config
from stream.errors import ConfigError, NonFiniteScores
from stream.hotswap import ChampionWatcher
from stream.journal import FollowupJournal
from stream.rules import evaluate as evaluate_rules, followup_record
from stream.webhook import WebhookSink
from stream.history import HistoryStore
from stream.decode.registry import registry_schemas
from stream.ingest import Ingest, IngestedBatch
from stream.kafka_io import check_cluster, check_input, input_label, make_consumer, make_producer
from stream.positions import stored_positions
from stream.keys import Keys
from stream.loop import BatchResult, Finish, Output, TransactionalLoop
from stream.metrics import ScorerMetrics, serve as serve_metrics
from stream.redis_io import RedisHealth, check_credentials, make_redis
from stream.publish import scored_batch, scored_outputs
from stream.score import EncodedBatch, Scorer, Scores, served_checkpoint, set_torch_threads
from stream.scored import ScoredBatch
from stream.stages import StageTimes
from stream.state import StateWriter
from stream.window import build_windows

log = logging.getLogger(__name__)
REDIS_TIMEOUT_S = 2.0  # a slow Redis must not hold a batch (and its transaction) for long
HISTORY_POINTS_FACTOR = 2  # stored points per object = this × max_visits (room for dedupe)
FOLLOWUP_SCHEMA = "alertformer.followup"
TRANSACTION_TIMEOUT_MS = 30_000  # a crashed scorer's open transaction is aborted after this at worst
# Python's default 5 ms GIL switch interval makes the forward thread wait up to 5 ms for the GIL after each
# chunk while this thread decodes; 0.5 ms let the two threads overlap fully on 2 cores (README, Performance).
GIL_SWITCH_INTERVAL_S = 0.0005


@dataclass(frozen=True)
class Finished:
    """What a finished batch leaves for after its commit (Redis state, metrics, webhook)."""

    batch: ScoredBatch | None  # the alerts scored and published (None: none)
    merged: dict  # object id -> merged light curve, to store
    n_scored: int
    n_dead: int  # dead letters: undecodable inputs and non-finite scores
    dropped_points: int  # implausible history points the decoders left out
    requests: list[dict]  # follow-up requests, for the webhook
    dead_reasons: Counter = field(default_factory=Counter)  # dead letters by error type, for the metrics
    scored_messages: list = field(default_factory=list)  # the input message of each row of `batch`
    request_rows: list[int] = field(default_factory=list)  # the row of `batch` of each request

    def without(self, refused: list[Message]) -> "Finished":
        """This batch less the alerts of the `refused` inputs, which the loop dead-lettered because the
        producer refused one of their outputs: their scores must reach neither Redis nor the webhook, and they
        count as dead letters of reason ``refused_output``."""
        if not refused or self.batch is None:
            return self
        gone = {id(m) for m in refused}
        keep = np.array([id(m) not in gone for m in self.scored_messages])
        if keep.all():
            return self
        kept_rows = np.cumsum(keep) - 1  # old row -> new row, where kept
        requests = [(r, int(kept_rows[row])) for r, row in zip(self.requests, self.request_rows) if keep[row]]
        n_refused = int((~keep).sum())
        return replace(self, batch=self.batch.select(keep) if keep.any() else None, n_scored=int(keep.sum()),
                       n_dead=self.n_dead + n_refused,
                       dead_reasons=self.dead_reasons + Counter(refused_output=n_refused),
                       requests=[r for r, _ in requests],
                       scored_messages=[m for m, k in zip(self.scored_messages, keep) if k],
                       request_rows=[row for _, row in requests])


@dataclass
class RunSummary:
    """What this process has committed: alerts scored, dead letters, follow-up requests, and the
    scored alerts counted by their most probable class (canonical names, `models.taxonomy`)."""

    alerts_scored: int = 0
    dead_letters: int = 0
    followup_requests: int = 0
    top_classes: Counter = field(default_factory=Counter)

    def add(self, probs: np.ndarray | None, n_dead: int, n_requests: int) -> None:
        """Count a committed batch: `probs` (B, C) of its scored alerts (None: none scored)."""
        if probs is not None and len(probs):
            counts = np.bincount(probs.argmax(axis=1), minlength=N_CLASSES)  # (C,)
            self.alerts_scored += len(probs)
            self.top_classes.update({CLASS_NAMES[i]: int(n) for i, n in enumerate(counts) if n})
        self.dead_letters += n_dead
        self.followup_requests += n_requests

    def as_dict(self) -> dict:
        """JSON-ready, classes from the most frequent."""
        return {"alerts_scored": self.alerts_scored, "dead_letters": self.dead_letters,
                "followup_requests": self.followup_requests, "top_classes": dict(self.top_classes.most_common())}


BatchObserver = Callable[[list[Message], float], None]


class ScoringService:
    """The scoring service of `config` (module docstring).

    `times` holds the seconds spent per stage since the start (`stream.stages`); `on_batch`, if set,
    is called after each committed batch (and its Redis state) with the batch's messages and the
    wall-clock time, in ms, at which its transaction committed: what `alertformer bench` reads.
    `metrics` holds its Prometheus metrics (`stream.metrics`), served when ``metrics.port`` is set.
    """

    def __init__(self, config: StreamConfig, scorer: Scorer | None = None):
        self.config = config
        self.summary = RunSummary()
        self.times = StageTimes()
        self.on_batch: BatchObserver | None = None
        self.metrics = ScorerMetrics()
        scoring = config.scoring
        self.instance_id = scoring.instance_id or socket.gethostname()
        keys = Keys(config.redis.prefix)
        self.redis = make_redis(config.redis, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
        check_credentials(self.redis, config.redis)
        self.redis_health = RedisHealth()  # every Redis call of this process counts its outages here
        self.history = HistoryStore(self.redis, keys, scoring.history_ttl_s,
                                    HISTORY_POINTS_FACTOR * scoring.max_visits, self.redis_health)
        self.state = StateWriter(self.redis, keys, self.history, self.instance_id, scoring.history_ttl_s,
                                 scoring.top_n, self.times, self.redis_health)
        input_kafka, output_kafka = config.input_kafka(), config.output_kafka()
        self.ingest = Ingest(config.topics.inputs, config.topics.deadletter, input_kafka.max_input_message_bytes,
                             output_kafka.deadletter_max_payload_bytes, registry_schemas(config))
        self.ingest.prepare(config.input_subscription())
        set_torch_threads(scoring.torch_threads)  # before the model loads (quantisation and forward use them)
        try:
            registry = ModelRegistry(config.registry.path) if config.registry.path else None
        except RegistryError as err:
            raise ConfigError(f"registry.path: {err}") from None
        self.scorer = scorer or self._initial_scorer(registry)
        topics = config.topics  # the model loaded: a broker and the output topics, before any thread starts
        outputs = {"scored": topics.scored, "classifications": topics.classifications, "followup": topics.followup,
                   "deadletter": topics.deadletter} | ({"input_offsets": topics.input_offsets}
                                                       if config.two_clusters else {})
        _, output_role = config.roles()
        check_input(config)
        check_cluster(output_kafka, outputs, compacted=("input_offsets",), role=output_role,
                      section=config.output_section())
        self.journal = FollowupJournal(self.redis, keys, scoring.history_ttl_s)
        followup = config.followup
        self.webhook = (WebhookSink(followup.webhook_url, followup.webhook_timeout_s, followup.webhook_retries)
                        if followup.webhook_url else None)
        self.watcher = None
        if registry is not None and not scoring.checkpoint:
            self.watcher = ChampionWatcher(registry, self.redis, keys, scoring, self.scorer.version,
                                           config.registry.poll_interval_s).start()
        transactional_id = f"{scoring.group_id}-{self.instance_id}"
        self.loop = TransactionalLoop(
            make_consumer(input_kafka, config.input_group_id()),
            make_producer(output_kafka, transactional_id, **{"transaction.timeout.ms": TRANSACTION_TIMEOUT_MS}),
            config.input_subscription(), self.prepare,
            positions=stored_positions(config, transactional_id) if config.two_clusters else None,
            input_label=input_label(config, config.input_group_id()),
            batch_size=scoring.batch_size, batch_timeout_s=scoring.batch_timeout_ms / 1e3,
            on_idle=self.idle, on_discard=self.discard, dead_letter=self.ingest.dead,
            times=self.times)
        self._forward = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forward")
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        self._in_flight: deque[dict] = deque()  # merged curves of prepared batches not yet in Redis, oldest first
        if config.metrics.port:
            serve_metrics(self.metrics.registry, config.metrics.host, config.metrics.port)
        log.info("scorer ready instance=%s transactional_id=%s model=%s config=%s",
                 self.instance_id, transactional_id, self.scorer.version, config.masked())

    def _initial_scorer(self, registry: ModelRegistry | None) -> Scorer:
        """An explicit checkpoint, else the registry's champion, else the shipped model."""
        scoring = self.config.scoring
        try:
            served = served_checkpoint(scoring, registry)
            if served.version is None:
                return Scorer.from_checkpoint(served.path, scoring)
            return Scorer.from_file(served.path, served.version, scoring)
        except (RegistryError, CheckpointMismatch) as err:
            raise ConfigError(f"registry.path: champion {registry.champion()} cannot be served: {err}") from None

    def prepare(self, messages: list[Message]) -> Finish:
        """Decode, window and encode the batch, start its forward pass; return the function that finishes it."""
        self.redis_health.new_batch()
        swapped = self.watcher.take() if self.watcher else None
        if swapped is not None:
            log.info("model swapped from=%s to=%s", self.scorer.version, swapped.version)
            self.scorer = swapped
        ingest_ms = time.time_ns() // 1_000_000
        times = self.times
        with times.timing("decode"):
            good, dead = self.ingest.batch(messages)
        if not len(good):
            self._in_flight.append({})
            only_dead = Finished(None, {}, 0, len(dead), 0, [], _reasons(dead))
            return lambda: BatchResult(list(dead), partial(self.committed, only_dead))
        history = self._history(good.alerts.object_id.tolist())
        scorer = self.scorer
        with times.timing("windows"):
            windows = build_windows(good.alerts, history, scorer.context_fields_by_survey)
        self._in_flight.append(windows.merged)
        with times.timing("encode"):
            encoded = scorer.encode_batch(windows.curves, windows.model_contexts)
        probabilities = self._forward.submit(self._probabilities, scorer, encoded)

        def finish() -> BatchResult:
            with times.timing("forward_wait"):
                probs = probabilities.result()
            scores = scorer.scores(encoded, probs)
            finite = scores.finite()  # (B,) bool
            scored, scores, rejected = self._finite(good, scores, finite)
            with times.timing("scored_batch"):
                batch = scored_batch(scored, scores, windows.select(finite)) if len(scored) else None
            outputs = list(dead) + rejected
            requests = []
            if batch is not None:
                with times.timing("avro_encode"):
                    outputs += scored_outputs(scored, batch, ingest_ms, self.config.topics.scored,
                                              self.config.topics.classifications)
                with times.timing("rules"):
                    requests = self.followups(batch)
            outputs += [Output(self.config.topics.followup, avro_io.encode(FOLLOWUP_SCHEMA, r), r["objectId"].encode(),
                               source=scored.messages[i]) for i, r in requests]
            done = Finished(batch, windows.merged, len(scored), len(dead) + len(rejected),
                            int(good.alerts.dropped_points.sum()), [r for _, r in requests],
                            _reasons(list(dead) + rejected), scored.messages, [i for i, _ in requests])
            return BatchResult(outputs, partial(self.committed, done))

        return finish

    def _probabilities(self, scorer: Scorer, encoded: EncodedBatch) -> np.ndarray:
        """`scorer.probabilities` of `encoded`, timed: runs on the forward thread."""
        with self.times.timing("forward"):
            return scorer.probabilities(encoded)

    def _finite(self, good: IngestedBatch, scores: Scores,
                finite: np.ndarray) -> tuple[IngestedBatch, Scores, list[Output]]:
        """The alerts whose scores are `finite` ((B,) bool, `Scores.finite`) and their scores; dead letters
        for the others.

        The hot path's guard: a NaN probability must reach neither an output, nor Redis (a NaN
        score fails the batch's top-candidate write), nor the follow-up rules.
        """
        if finite.all():
            return good, scores, []
        rejected = [self.ingest.dead(m, NonFiniteScores("model produced non-finite scores"))
                    for m, ok in zip(good.messages, finite) if not ok]
        log.error("model produced non-finite scores alerts=%d model=%s", len(rejected), scores.model_version)
        return good.select(finite), scores.select(finite), rejected

    def _history(self, object_ids: list[str]) -> dict:
        """Stored curves of `object_ids`, with those of batches in flight laid over them (newest wins)."""
        with self.times.timing("redis_read"):
            history = self.history.get(object_ids)
        for merged in self._in_flight:
            history.update((o, merged[o]) for o in object_ids if o in merged)
        return history

    def discard(self) -> None:
        """The loop dropped every prepared batch (an abort rewound the consumer, or partitions were lost)."""
        self._in_flight.clear()

    def followups(self, batch) -> list[tuple[int, dict]]:
        """Follow-up requests of the batch, with the index of their alert: rules, then the journal (one per
        object and rule).

        If Redis is down the journal cannot be asked; the requests are emitted anyway
        (counted as an outage): a repeated request is cheaper than a missed young supernova.
        """
        triggers = evaluate_rules(self.config.followup.rules, batch)
        if not triggers:
            return []
        if self.redis_health.usable():
            try:
                triggers = self.journal.claim(triggers, batch)
            except redis.RedisError as err:
                self.redis_health.outage("followup-journal", err)
        created_ms = time.time_ns() // 1_000_000
        return [(t.index, followup_record(batch, t.index, t.rule, created_ms)) for t in triggers]

    def committed(self, done: Finished, messages: list[Message], refused: list[Message]) -> None:
        """After the transaction of the batch `done` (of `messages`) committed: its side effects, then `on_batch`.

        The alerts of `refused` inputs, dead-lettered in that transaction for a refused output, are left out.
        """
        committed_ms = time.time_ns() / 1e6  # commit_transaction has just returned
        with self.times.timing("redis_write"):
            self._after_commit(done.without(refused), messages)
        if self.on_batch:
            self.on_batch(messages, committed_ms)

    def _after_commit(self, done: Finished, messages: list[Message]) -> None:
        """The committed batch's side effects: webhook, metrics, run summary, Redis state."""
        if self.webhook:
            for request in done.requests:
                self.webhook.submit(request)
        now_ms = time.time_ns() // 1_000_000
        latencies_ms = now_ms - np.fromiter((m.timestamp()[1] for m in messages), dtype=np.int64, count=len(messages))
        reasons = done.dead_reasons
        self.state.metrics.record_batch(done.n_scored, done.n_dead, latencies_ms, done.dropped_points, reasons)
        self.summary.add(None if done.batch is None else done.batch.probs, done.n_dead, len(done.requests))
        self.state.metrics.counters["aborts"] = self.loop.stats.aborts
        lag = self.lag_by_partition()
        self.state.write_batch(done.batch, done.merged, None if lag is None else sum(lag.values()),
                               self.scorer.version)
        self.metrics.committed(len(messages), done.n_scored, reasons, latencies_ms,
                               [r["rule"] for r in done.requests], self.times.as_dict())
        self.metrics.state(self.loop.stats.batches, self.loop.stats.aborts, self.redis_health.outages,
                           self.scorer.version, lag)
        if self._in_flight:
            self._in_flight.popleft()  # this batch's curves: in Redis now

    def idle(self) -> None:
        self.redis_health.new_batch()
        self.state.heartbeat(self.scorer.version, self.lag())

    def lag(self) -> int | None:
        """Messages behind the high watermarks of the assigned partitions (cached, no broker call)."""
        lag = self.lag_by_partition()
        return None if lag is None else sum(lag.values())

    def lag_by_partition(self) -> dict[tuple[str, int], int] | None:
        """(topic, partition) → messages behind its high watermark, for the assigned partitions whose position
        and watermark are known (cached, no broker call); None before an assignment."""
        consumer = self.loop.consumer
        try:
            positions = consumer.position(consumer.assignment())
        except KafkaException:  # not assigned yet, or closing
            return None
        lag = {}
        for tp in positions:
            _, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), cached=True)
            if high >= 0 and tp.offset >= 0:
                lag[(tp.topic, tp.partition)] = max(high - tp.offset, 0)
        return lag

    def run(self, **limits):
        try:
            return self.loop.run(**limits)
        finally:
            self._forward.shutdown(wait=False, cancel_futures=True)
            self.state.leave()
            if self.watcher:
                self.watcher.stop()
            if self.webhook:
                self.webhook.close()


def _reasons(dead: list[Output]) -> Counter:
    """Dead-letter outputs counted by error type."""
    return Counter(o.reason or "unknown" for o in dead)


def cmd_run(args) -> int:
    """``alertformer run``: serve until stopped or idle, then print what this process committed as JSON."""
    overrides = {}
    if args.checkpoint or args.instance_id:
        overrides["scoring"] = {k: v for k, v in (("checkpoint", args.checkpoint), ("instance_id", args.instance_id)) if v}
    config = load_config(args.config)
    if overrides:
        config = config.model_copy(update={"scoring": config.scoring.model_copy(update=overrides["scoring"])})
    service = ScoringService(config)
    service.loop.install_signal_handlers()
    stats = service.run(max_messages=args.max_messages, idle_timeout_s=args.idle_timeout_s)
    log.info("stopped messages_in=%d messages_out=%d batches=%d aborts=%d",
             stats.messages_in, stats.messages_out, stats.batches, stats.aborts)
    print(json.dumps(service.summary.as_dict()))  # what this process committed
    return 0
