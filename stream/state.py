"""Live state in Redis after each committed batch: object scores, top candidates, consumer metrics.

Everything goes in one pipelined round trip. A Redis outage never stops scoring: the
write is skipped, counted (``redisOutages``) and logged, and the next batch writes again.
"""
import os
import socket
import time
from collections import deque

import numpy as np
import redis

from models.context import N_CONTEXT, missing_context, model_context
from models.lightcurve import LightCurve
from models.taxonomy import CLASS_IDS
from stream.history import HistoryStore
from stream.keys import Keys
from stream.scored import ScoredBatch

LATENCY_WINDOW = 10_000  # latencies kept for the percentiles (most recent alerts)
RATE_WINDOW_S = 10.0  # alerts/s over about this many seconds
HEARTBEAT_INTERVAL_S = 1.0  # when idle


def pack_context(context: np.ndarray) -> str:
    """An alert's context (`models.context`, (N_CONTEXT,) float64) as the ``context`` field of its object's
    hash: the hex of its little-endian float64 bytes, NaN where the packet did not say (inf is a real
    value: none nearby). Text, so that readers with ``decode_responses`` read the hash too."""
    return np.asarray(context, dtype="<f8").tobytes().hex()


def unpack_context(text: str | bytes | None) -> np.ndarray:
    """Inverse of `pack_context`; all NaN for a missing or malformed field (an object scored before contexts)."""
    if isinstance(text, bytes):
        text = text.decode("ascii", errors="replace")
    try:
        blob = bytes.fromhex(text or "")
    except ValueError:
        return missing_context()
    if len(blob) != 8 * N_CONTEXT:
        return missing_context()
    return np.frombuffer(blob, dtype="<f8").astype(np.float64)


def read_contexts(client: redis.Redis, keys: Keys, object_ids: list[str]) -> dict[str, np.ndarray]:
    """The context of each object's latest scored alert as the model is shown it (`models.context.model_context`,
    by the survey stored beside it); all NaN for an object without one.

    Raises
    ------
    redis.RedisError
        When Redis does not answer.
    """
    pipe = client.pipeline(transaction=False)
    for object_id in object_ids:
        pipe.hmget(keys.object_scores(object_id), "context", "survey")
    stored = pipe.execute()
    contexts = np.array([unpack_context(blob) for blob, _ in stored]).reshape(-1, N_CONTEXT)
    surveys = [survey.decode() if isinstance(survey, bytes) else (survey or "") for _, survey in stored]
    return dict(zip(object_ids, model_context(contexts, surveys)))


class ConsumerMetrics:
    """Counters, throughput and latency percentiles of one scorer process."""

    def __init__(self):
        self.counters = {"alerts": 0, "deadLetters": 0, "batches": 0, "aborts": 0, "droppedPoints": 0}
        self.latencies_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._recent: deque[tuple[float, int]] = deque()

    def record_batch(self, n_alerts: int, n_dead: int, latencies_ms: np.ndarray, dropped_points: int = 0) -> None:
        """Count a committed batch; `dropped_points`: implausible history points its decoders left out."""
        self.counters["alerts"] += n_alerts
        self.counters["deadLetters"] += n_dead
        self.counters["droppedPoints"] += dropped_points
        self.counters["batches"] += 1
        self.latencies_ms.extend(latencies_ms.tolist())
        now = time.monotonic()
        self._recent.append((now, n_alerts + n_dead))
        while self._recent and now - self._recent[0][0] > RATE_WINDOW_S:
            self._recent.popleft()

    def alerts_per_s(self) -> float:
        if len(self._recent) < 2:
            return 0.0
        span_s = self._recent[-1][0] - self._recent[0][0]
        return sum(n for _, n in list(self._recent)[1:]) / span_s if span_s > 0 else 0.0

    def percentiles_ms(self) -> dict[str, float]:
        if not self.latencies_ms:
            return {}
        p50, p95, p99 = np.percentile(np.fromiter(self.latencies_ms, float), [50, 95, 99])
        return {"latencyP50Ms": round(float(p50), 1), "latencyP95Ms": round(float(p95), 1),
                "latencyP99Ms": round(float(p99), 1)}


class StateWriter:
    def __init__(self, client: redis.Redis, keys: Keys, history: HistoryStore, consumer_id: str,
                 ttl_s: int, top_n: int):
        self.client, self.keys, self.history = client, keys, history
        self.consumer_id, self.ttl_s, self.top_n = consumer_id, ttl_s, top_n
        self.metrics = ConsumerMetrics()
        self._last_heartbeat = 0.0

    def consumer_fields(self, model_version: str, lag: int | None) -> dict:
        fields = dict(self.metrics.counters) | self.metrics.percentiles_ms() | {
            "redisOutages": self.history.outages, "redisSkippedCalls": self.history.skipped_calls,
            "droppedStoredPoints": self.history.dropped_points,
            "alertsPerS": round(self.metrics.alerts_per_s(), 1), "modelVersion": model_version,
            "heartbeatMs": time.time_ns() // 1_000_000, "host": socket.gethostname(), "pid": os.getpid(),
        }
        if lag is not None:
            fields["lag"] = lag
        return fields

    def write_batch(self, batch: ScoredBatch | None, merged: dict[str, LightCurve], lag: int | None,
                    model_version: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        self.history.put(merged, pipe)
        if batch is not None and len(batch):
            self._scores(pipe, batch)
        self._heartbeat(pipe, model_version, lag)
        self._execute(pipe)

    def heartbeat(self, model_version: str, lag: int | None) -> None:
        """Idle heartbeat, at most every `HEARTBEAT_INTERVAL_S`."""
        if time.monotonic() - self._last_heartbeat < HEARTBEAT_INTERVAL_S:
            return
        pipe = self.client.pipeline(transaction=False)
        self._heartbeat(pipe, model_version, lag)
        self._execute(pipe)

    def _scores(self, pipe, batch: ScoredBatch) -> None:
        top_class = np.asarray(CLASS_IDS)[batch.probs.argmax(axis=1)]
        for i, object_id in enumerate(batch.object_id):
            key = self.keys.object_scores(object_id)
            pipe.hset(key, mapping={
                "alertId": int(batch.alert_id[i]), "snLikelihood": float(batch.sn_likelihood[i]),
                "flareLikelihood": float(batch.flare_likelihood[i]), "topClassId": int(top_class[i]),
                "nVisits": int(batch.n_visits[i]), "latestMjdTai": float(batch.latest_mjd_tai[i]),
                "raDeg": float(batch.ra_deg[i]), "decDeg": float(batch.dec_deg[i]),
                "modelVersion": batch.model_version, "updatedMs": batch.scored_ms,
                "context": pack_context(batch.context[i]), "survey": batch.survey[i],
            })
            pipe.expire(key, self.ttl_s)
        for name, values in (("sn", batch.sn_likelihood), ("flare", batch.flare_likelihood)):
            pipe.zadd(self.keys.top(name), dict(zip(batch.object_id, values.astype(float).tolist())))
            pipe.zremrangebyrank(self.keys.top(name), 0, -self.top_n - 1)

    def _heartbeat(self, pipe, model_version: str, lag: int | None) -> None:
        fields = self.consumer_fields(model_version, lag)
        pipe.hset(self.keys.consumer(self.consumer_id), mapping=fields)
        pipe.zadd(self.keys.consumers, {self.consumer_id: fields["heartbeatMs"]})
        self._last_heartbeat = time.monotonic()

    def _execute(self, pipe) -> None:
        if not self.history.usable():
            return
        try:
            pipe.execute()
        except redis.RedisError as err:
            self.history.outage("state", err)
