"""Prometheus metrics of the scorer and the trainer (``prometheus-client``), served on ``[metrics]`` ports.

Each process keeps its metrics in its own `CollectorRegistry` (never the library's global one),
so two services in one test process do not collide. The scorer calls `ScorerMetrics.committed`
once per committed batch, with what the batch did and the running totals it already keeps
(`stream.loop.LoopStats`, `stream.redis_io.RedisHealth.outages`, `stream.stages.StageTimes`):
counters follow those totals by their increase, histograms observe the batch.

=================================================  =========  ============================================
metric                                             type       labels, unit
=================================================  =========  ============================================
``alertformer_alerts_consumed_total``              counter    input messages committed
``alertformer_alerts_scored_total``                counter    alerts scored and published
``alertformer_dead_letters_total``                 counter    ``reason``: the error type
``alertformer_batch_messages``                     histogram  messages per committed batch
``alertformer_stage_duration_seconds``             histogram  ``stage`` (`STAGES`): seconds per batch
``alertformer_end_to_end_latency_seconds``         histogram  Kafka timestamp → commit, per message
``alertformer_consumer_lag_messages``              gauge      ``topic``, ``partition``: behind high watermark
``alertformer_transactions_committed_total``       counter
``alertformer_transactions_aborted_total``         counter
``alertformer_redis_outages_total``                counter    failed Redis calls (scoring went on)
``alertformer_model_info``                         info       ``version`` of the model serving
``alertformer_followup_requests_total``            counter    ``rule``
``alertformer_trainer_labels_pending``             gauge      labels not trained on yet
``alertformer_trainer_finetunes_total``            counter    fine-tuning rounds finished
``alertformer_trainer_promotions_total``           counter    challengers promoted
``alertformer_trainer_rejections_total``           counter    challengers rejected
=================================================  =========  ============================================
"""
import logging
from collections.abc import Mapping

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from stream.errors import ConfigError

log = logging.getLogger(__name__)

# StageTimes fields exported as stage histograms: the consume, decode, window, forward, produce and
# commit, and Redis (read before windowing, written after the commit).
STAGES = ("consume", "decode", "redis_read", "windows", "encode", "forward", "produce", "commit", "redis_write")
# Seconds: a stage of one batch takes from well under a millisecond (rules) to seconds (a 1000-alert forward on CPU).
STAGE_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Seconds: end to end is batch_timeout_ms (200 ms) plus a batch's work when live, minutes or hours in a replay.
LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)
BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000)


def serve(registry: CollectorRegistry, host: str, port: int) -> None:
    """Serve `registry` at ``http://host:port/metrics`` on a daemon thread; a port in use is a ConfigError."""
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as err:
        raise ConfigError(f"metrics: cannot listen on {host}:{port}: {err.strerror}") from None
    log.info("metrics listening url=http://%s:%d/metrics", host, port)


class _Totals:
    """Counters that follow running totals kept elsewhere: each update adds the increase since the last."""

    def __init__(self):
        self._seen: dict[object, float] = {}

    def follow(self, counter, key, total: float) -> None:
        increase = total - self._seen.get(key, 0)
        if increase > 0:
            counter.inc(increase)
        self._seen[key] = max(total, self._seen.get(key, 0))


class BatchHistogram:
    """A histogram observed a whole array at a time (one numpy call per batch, not one Python call per
    message), exported as a Prometheus histogram at each scrape."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...], registry: CollectorRegistry):
        self.name, self.documentation = name, documentation
        self.upper = np.asarray(buckets, dtype=np.float64)
        self.counts = np.zeros(len(buckets) + 1, np.int64)  # the last: above every bucket (+Inf only)
        self.sum = 0.0
        registry.register(self)

    def observe(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64).ravel()
        # Prometheus buckets are "less than or equal": a value on an edge belongs to that edge's bucket.
        self.counts += np.bincount(np.searchsorted(self.upper, values, side="left"), minlength=len(self.counts))
        self.sum += float(values.sum())

    def collect(self):
        cumulative = np.cumsum(self.counts)
        edges = [floatToGoString(u) for u in self.upper] + ["+Inf"]
        yield HistogramMetricFamily(self.name, self.documentation,
                                    buckets=[(e, int(c)) for e, c in zip(edges, cumulative)], sum_value=self.sum)


class ScorerMetrics:
    """The scoring service's metrics (module table), in `registry`."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter("alertformer_alerts_consumed", "Input messages committed", registry=r)
        self.scored = Counter("alertformer_alerts_scored", "Alerts scored and published", registry=r)
        self.dead = Counter("alertformer_dead_letters", "Inputs dead-lettered, by error type", ["reason"], registry=r)
        self.batch = Histogram("alertformer_batch_messages", "Messages per committed batch", buckets=BATCH_BUCKETS,
                               registry=r)
        self.stage = Histogram("alertformer_stage_duration_seconds", "Seconds a batch spent in a stage", ["stage"],
                               buckets=STAGE_BUCKETS_S, registry=r)
        self.latency = BatchHistogram("alertformer_end_to_end_latency_seconds",
                                      "Kafka timestamp of an input to the commit of its outputs", LATENCY_BUCKETS_S, r)
        self.lag = Gauge("alertformer_consumer_lag_messages", "Messages behind the partition's high watermark",
                         ["topic", "partition"], registry=r)
        self.commits = Counter("alertformer_transactions_committed", "Kafka transactions committed", registry=r)
        self.aborts = Counter("alertformer_transactions_aborted", "Kafka transactions aborted", registry=r)
        self.redis_outages = Counter("alertformer_redis_outages", "Failed Redis calls (scoring went on)", registry=r)
        self.model = Info("alertformer_model", "The model version serving", registry=r)
        self.followups = Counter("alertformer_followup_requests", "Follow-up requests published, by rule", ["rule"],
                                 registry=r)
        self._totals = _Totals()
        self._stage_seen: dict[str, float] = {}

    def committed(self, n_messages: int, n_scored: int, dead_reasons: Mapping[str, int], latencies_ms: np.ndarray,
                  rules: list[str], stage_seconds: Mapping[str, float]) -> None:
        """One committed batch: its messages, scored alerts, dead letters by reason, (N,) latencies (ms, Kafka
        timestamp → commit), the rules of its follow-up requests, and the stage totals (`StageTimes.as_dict`)."""
        self.consumed.inc(n_messages)
        self.scored.inc(n_scored)
        for reason, n in dead_reasons.items():
            self.dead.labels(reason).inc(n)
        self.batch.observe(n_messages)
        self.latency.observe(np.asarray(latencies_ms, dtype=np.float64) / 1e3)
        for rule in rules:
            self.followups.labels(rule).inc()
        for stage in STAGES:
            total = stage_seconds.get(stage, 0.0)
            self.stage.labels(stage).observe(max(total - self._stage_seen.get(stage, 0.0), 0.0))
            self._stage_seen[stage] = total

    def state(self, commits: int, aborts: int, redis_outages: int, model_version: str,
              lag: Mapping[tuple[str, int], int] | None = None) -> None:
        """Running totals (transactions committed and aborted, Redis outages), the model and lag per partition."""
        self._totals.follow(self.commits, "commits", commits)
        self._totals.follow(self.aborts, "aborts", aborts)
        self._totals.follow(self.redis_outages, "redis_outages", redis_outages)
        self.model.info({"version": model_version})
        for (topic, partition), behind in (lag or {}).items():
            self.lag.labels(topic, str(partition)).set(behind)


class TrainerMetrics:
    """The trainer's metrics (module table), in `registry`."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.pending = Gauge("alertformer_trainer_labels_pending", "Labels not trained on yet", registry=r)
        self.finetunes = Counter("alertformer_trainer_finetunes", "Fine-tuning rounds finished", registry=r)
        self.promotions = Counter("alertformer_trainer_promotions", "Challengers promoted", registry=r)
        self.rejections = Counter("alertformer_trainer_rejections", "Challengers rejected", registry=r)

    def decided(self, promoted: bool) -> None:
        """A fine-tuning round ended in a promotion or a rejection."""
        self.finetunes.inc()
        (self.promotions if promoted else self.rejections).inc()
