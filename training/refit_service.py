"""`alertformer trainer`: labels in, periodic re-fine-tuning, promotion only on a better holdout score.

Loop: consume labels → parse (bad → dead-letter topic with the reason) → join each with its
object's light curve from Redis, snapshotted at the label's time (unknown objects → dead
letter) → append the snapshots to disk → commit the consumer offsets. Every
``retrain_every_labels`` new labels (or ``retrain_every_hours`` after the last decision),
`training.refit.refit` trains a challenger from the champion; it is registered with its
lineage whatever the outcome, promoted and announced only if `decide` says so, and the
decision is appended to ``decisions.jsonl`` with the figures of both models on both parts of
the holdout (simulated; real, the held-out real ZTF packets of `training.real_packets`).

A snapshot keeps what the scorer saw: the object's history from Redis (detections, forced
photometry or upper limits, as the decoders produced them) and the context of its latest
scored alert, so the challenger learns from the service's form of real data.

Crash safety: snapshots and ``state.json`` are replaced atomically; the registry's writes
are atomic; ``state.json`` moves past a batch of labels only after its decision is recorded.
Killed mid-training, the trainer leaves the champion as it was and, restarted, finds the
same labels pending and trains again. A redelivered label message is deduplicated.
"""
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import redis
from confluent_kafka import KafkaException

from models.checkpoint import load_checkpoint, save_checkpoint
from models.device import device_of
from models.paths import data_dir
from models.registry import ModelRegistry
from stream.config import StreamConfig
from stream.deadletter import dead_letter
from stream.errors import BadPacket, ConfigError
from stream.history import HistoryStore
from stream.hotswap import announce
from stream.kafka_io import make_consumer, make_producer
from stream.keys import Keys
from stream.metrics import TrainerMetrics, serve as serve_metrics
from stream.redis_io import RedisHealth, make_redis
from stream.state import read_contexts
from training.datasets import simulated, ztf_packet_set
from training.finetune import EvalSet
from training.labels import SnapshotStore, ms_to_mjd_tai, parse_label, snapshot
from training.refit import refit

log = logging.getLogger(__name__)
POLL_TIMEOUT_S = 1.0
MAX_LABELS_PER_POLL = 500
REDIS_TIMEOUT_S = 5.0
REDIS_RETRY_S = 2.0  # between attempts while Redis is unreachable
MAX_POLL_INTERVAL_MS = 4 * 3600 * 1000  # longer than any retraining round


def _check_real_packets() -> None:
    """A one-line configuration error at start when the real holdout's packets are missing."""
    packets = data_dir() / "labeled" / "ztf_packets"
    if not (packets / "alerts.parquet").is_file():
        raise ConfigError(f"trainer.real_holdout: no labelled real packets at {packets}; set ALERTFORMER_DATA to "
                          "the data folder, or trainer.real_holdout = false")


def _write_json_atomic(path: Path, value: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(value, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class TrainerService:
    def __init__(self, config: StreamConfig):
        self.config, self.settings = config, config.trainer
        if not config.registry.path:
            raise ConfigError("registry.path is not set: the trainer promotes into the model registry")
        self.registry = ModelRegistry(config.registry.path)
        if self.registry.champion() is None:
            raise ConfigError(f"registry {config.registry.path} has no champion; start one with "
                              "`alertformer models import models/shipped/alertformer.pt --promote`")
        self.work_dir = Path(self.settings.work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.store = SnapshotStore(self.work_dir / "snapshots")
        self.state_path = self.work_dir / "state.json"
        self.state = json.loads(self.state_path.read_text()) if self.state_path.is_file() else {
            "trained_through": 0, "last_decision_ms": int(time.time() * 1e3)}
        if self.settings.real_holdout:
            _check_real_packets()
        self._real_holdout: EvalSet | None = None  # built at the first retraining, as `fixed_sets`
        self.keys = Keys(config.redis.prefix)
        self.redis = make_redis(config.redis, socket_timeout=REDIS_TIMEOUT_S)
        self.redis_health = RedisHealth()
        self.history = HistoryStore(self.redis, self.keys, ttl_s=1, max_points=1, health=self.redis_health)  # reads
        # Training blocks polling for minutes: a long poll interval keeps the trainer in its group meanwhile.
        self.consumer = make_consumer(config.output_kafka(), self.settings.group_id,
                                      **{"max.poll.interval.ms": MAX_POLL_INTERVAL_MS})
        self.consumer.subscribe([config.topics.labels])
        self.producer = make_producer(config.output_kafka())
        self.device = device_of(self.settings.device)
        self._fixed_sets = None  # (context table, sets)
        self._context_fields: tuple[str, dict] | None = None  # (champion version, its context table)
        self.pending = len(self.store.load(since=self.state["trained_through"])[0])
        self._stopping = False
        self.metrics = TrainerMetrics()
        self.metrics.pending.set(self.pending)
        if config.metrics.trainer_port:
            serve_metrics(self.metrics.registry, config.metrics.host, config.metrics.trainer_port)
        log.info("trainer ready champion=%s pending_labels=%d mode=%s metric=%s", self.registry.champion(),
                 self.pending, self.settings.mode, self.settings.metric)

    def stop(self, *_signal_args) -> None:
        self._stopping = True

    # --- labels in ----------------------------------------------------------------
    def ingest(self, messages) -> int:
        """Snapshot the good labels, dead-letter the rest, commit; return labels accepted."""
        parsed = []
        for msg in messages:
            try:
                parsed.append((msg, parse_label(msg.value() or b"", f"{msg.topic()}/{msg.partition()}/{msg.offset()}")))
            except BadPacket as err:
                self._dead(msg, err)
        known = self._histories([label.object_id for _, label in parsed])
        if known is None:  # stopping during a Redis outage: commit nothing, the labels come again
            return 0
        curves, contexts = known
        until = ms_to_mjd_tai([label.labeled_ms for _, label in parsed]) if parsed else []
        accepted, snaps, snap_contexts = [], [], []
        for (msg, label), until_mjd_tai in zip(parsed, until):
            curve = curves.get(label.object_id)
            if curve is None:
                self._dead(msg, BadPacket(f"unknown object {label.object_id}: no light curve in Redis"))
                continue
            snap = snapshot(curve, until_mjd_tai)
            if len(snap) == 0:
                self._dead(msg, BadPacket(f"object {label.object_id} has no photometry before the label's time"))
                continue
            accepted.append(label)
            snaps.append(snap)
            snap_contexts.append(contexts[label.object_id])
        self.store.append(accepted, snaps, np.array(snap_contexts))
        self.producer.flush(30)
        if messages:
            self.consumer.commit(asynchronous=False)
        self.pending += len(accepted)
        self.metrics.pending.set(self.pending)
        return len(accepted)

    def _histories(self, object_ids: list[str]) -> tuple[dict, dict] | None:
        """Stored light curves and latest contexts; waits out a Redis outage (a missing curve must mean an
        unknown object, never an unreachable store). None if asked to stop meanwhile."""
        while True:
            outages = self.redis_health.outages
            self.redis_health.new_batch()  # every attempt asks Redis (a timeout must not read as "no history")
            curves = self.history.get(object_ids)
            if self.redis_health.outages == outages:
                try:
                    return curves, read_contexts(self.redis, self.keys, object_ids, self._champion_context_fields())
                except redis.RedisError as err:
                    self.redis_health.outage("contexts", err)
            if self._stopping:
                return None
            time.sleep(REDIS_RETRY_S)

    def _champion_context_fields(self) -> dict[str, tuple[str, ...]]:
        """Which context fields the champion is shown, per survey (its `ModelConfig`), read once per champion."""
        version = self.registry.champion()
        if self._context_fields is None or self._context_fields[0] != version:
            model, _ = load_checkpoint(self.registry.get(version).checkpoint)
            self._context_fields = (version, model.config.context_fields_by_survey)
        return self._context_fields[1]

    def _dead(self, msg, err: Exception) -> None:
        log.warning("label rejected topic=%s partition=%d offset=%d reason=%s", msg.topic(), msg.partition(),
                    msg.offset(), err)
        key, value = dead_letter(msg, err, self.config.output_kafka().deadletter_max_payload_bytes)
        self.producer.produce(self.config.topics.deadletter, value, key)

    # --- retraining ---------------------------------------------------------------
    def due(self) -> bool:
        if self.pending >= self.settings.retrain_every_labels:
            return True
        hours = (time.time() * 1e3 - self.state["last_decision_ms"]) / 3.6e6
        return self.pending > 0 and hours >= self.settings.retrain_every_hours

    def fixed_sets(self, max_visits: int, context_fields_by_survey: dict[str, tuple[str, ...]]):
        """(replay or None, val, holdout): simulated, seeded, with the contexts a model of table
        `context_fields_by_survey` is shown, built once per table. The holdout never enters training."""
        if self._fixed_sets is None or self._fixed_sets[0] != context_fields_by_survey:
            s, shown = self.settings, context_fields_by_survey
            replay = (simulated("train", s.replay_size, seed=s.holdout_seed, context_fields_by_survey=shown)
                      if s.replay_size else None)
            val = EvalSet.from_labeled("val", simulated("val", max(s.holdout_size // 2, 11), seed=s.holdout_seed,
                                                        context_fields_by_survey=shown), s.holdout_seed, max_visits)
            holdout = EvalSet.from_labeled("holdout", simulated("test", s.holdout_size, seed=s.holdout_seed,
                                                                context_fields_by_survey=shown),
                                           s.holdout_seed, max_visits)
            self._fixed_sets = (shown, (replay, val, holdout))
        return self._fixed_sets[1]

    def real_holdout(self, max_visits: int) -> EvalSet | None:
        """The real part of the holdout: the test part of the labelled real ZTF packets (never trained on), as
        fixed evaluation prefixes (4 per alert window, seeded); None when switched off."""
        if self.settings.real_holdout and self._real_holdout is None:
            self._real_holdout = EvalSet.from_labeled("real_holdout", ztf_packet_set("test"),
                                                      self.settings.holdout_seed, max_visits, draws=4, scheme="log")
        return self._real_holdout

    def retrain(self) -> dict:
        """One round: challenger, decision, registration, maybe promotion; returns the decision record."""
        champion_version = self.registry.champion()
        champion, _ = load_checkpoint(self.registry.get(champion_version).checkpoint, map_location=self.device)
        labels, through = self.store.load(since=self.state["trained_through"])
        replay, val, holdout = self.fixed_sets(champion.config.max_visits, champion.config.context_fields_by_survey)
        challenger, decision, summary = refit(champion, labels, replay, val, holdout, self.settings, self.device,
                                              seed=through, real_holdout=self.real_holdout(champion.config.max_visits))
        lineage = {"parent": champion_version, "labels": len(labels), "snapshot_files": [
            self.state["trained_through"] + 1, through], "label_classes": labels.class_counts(), **summary}
        metrics = {"holdout_champion": decision.champion, "holdout_challenger": decision.challenger,
                   "real_holdout_champion": decision.real_champion, "real_holdout_challenger": decision.real_challenger,
                   "metric": decision.metric, "gain": decision.gain, "real_gain": decision.real_gain,
                   "margin": decision.margin, "real_tolerance": decision.real_tolerance, "reason": decision.reason}
        with tempfile.TemporaryDirectory(dir=self.work_dir) as tmp:
            path = save_checkpoint(Path(tmp) / "challenger.pt", challenger.cpu(), metrics=metrics,
                                   train_config={"trainer": self.settings.model_dump()},
                                   data={"labels": len(labels), "replay": len(replay) if replay else 0})
            info = self.registry.register(path, parent=champion_version, lineage=lineage, metrics=metrics,
                                          note="promoted" if decision.promote else "rejected")
        if decision.promote:
            self.registry.promote(info.version, reason=f"{decision.reason} (over {champion_version})")
            announce(self.redis, self.keys, info.version)
        record = {"at_ms": int(time.time() * 1e3), "champion": champion_version, "challenger": info.version,
                  "promoted": decision.promote, **metrics, "lineage": lineage}
        with open(self.work_dir / "decisions.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        self.state = {"trained_through": through, "last_decision_ms": record["at_ms"]}
        _write_json_atomic(self.state_path, self.state)
        self.pending = 0
        self.metrics.pending.set(0)
        self.metrics.decided(decision.promote)
        return record

    def run(self, max_rounds: int | None = None, timeout_s: float | None = None) -> list[dict]:
        """Consume and retrain until stopped, `max_rounds` decisions, or `timeout_s`."""
        start, decisions = time.monotonic(), []
        try:
            while not self._stopping:
                if max_rounds is not None and len(decisions) >= max_rounds:
                    break
                if timeout_s is not None and time.monotonic() - start > timeout_s:
                    break
                try:
                    messages = [m for m in self.consumer.consume(MAX_LABELS_PER_POLL, POLL_TIMEOUT_S) if not m.error()]
                except KafkaException as err:
                    log.warning("labels consumer error=%s", err)
                    continue
                if messages:
                    self.ingest(messages)
                if self.due():
                    decisions.append(self.retrain())
        finally:
            self.consumer.close()
            self.producer.flush(30)
        return decisions


def cmd_trainer(args) -> int:
    import signal

    from stream.config import load_config

    service = TrainerService(load_config(args.config))
    signal.signal(signal.SIGTERM, service.stop)
    signal.signal(signal.SIGINT, service.stop)
    for decision in service.run(max_rounds=args.max_rounds, timeout_s=args.timeout_s):
        print(json.dumps(decision), flush=True)
    return 0
