"""Live state in Redis after each committed batch: object scores, top candidates, consumer metrics.

Everything goes in one pipelined round trip. A Redis outage never stops scoring: the
write is skipped, counted (``redisOutages``) and logged, and the next batch writes again.
"""
import json
import os
import socket
import time
from collections import Counter, deque
from collections.abc import Mapping

import numpy as np
import redis

from models.context import N_CONTEXT, missing_context, model_context, pad_context
from models.lightcurve import LightCurve
from models.taxonomy import CLASS_IDS
from stream import latency
from stream.history import HistoryStore
from stream.redis_io import RedisHealth
from stream.keys import SCORE_HISTORY_MAX, TOP_BUCKET_MS, TOP_KEEP_S, Keys, top_bucket
from stream.rules import known_solar_system
from stream.scored import ScoredBatch
from stream.stages import StageTimes

RECENT_S = 60.0  # the recent window of throughput and latency percentiles
HEARTBEAT_INTERVAL_S = 1.0  # when idle
_RECENT_LATENCY = ("latencyP50Ms", "latencyP95Ms", "latencyP99Ms")
_TOTAL_LATENCY = ("latencyP50MsTotal", "latencyP95MsTotal", "latencyP99MsTotal")


# One object's latest scores as a packed little-endian record (``{p}:row:{objectId}``): what a list of
# candidates shows and filters on, read for a thousand objects in one MGET and parsed in one numpy call.
ROW_DTYPE = np.dtype([
    ("sn_likelihood", "<f4"), ("flare_likelihood", "<f4"), ("top_class_id", "<i4"), ("n_visits", "<i4"),
    ("age_days", "<f4"),  # NaN when unknown
    ("ra_deg", "<f8"), ("dec_deg", "<f8"), ("latest_mjd_tai", "<f8"), ("updated_ms", "<i8"), ("solar_system", "i1"),
])


def candidate_rows(batch: ScoredBatch, top_class_id: np.ndarray, solar_system: np.ndarray) -> np.ndarray:
    """(B,) `ROW_DTYPE` records of a scored batch."""
    rows = np.zeros(len(batch), dtype=ROW_DTYPE)
    rows["sn_likelihood"], rows["flare_likelihood"] = batch.sn_likelihood, batch.flare_likelihood
    rows["top_class_id"], rows["n_visits"], rows["age_days"] = top_class_id, batch.n_visits, batch.age_days
    rows["ra_deg"], rows["dec_deg"], rows["latest_mjd_tai"] = batch.ra_deg, batch.dec_deg, batch.latest_mjd_tai
    rows["updated_ms"], rows["solar_system"] = batch.scored_ms, solar_system
    return rows


def pack_context(context: np.ndarray) -> str:
    """An alert's context (`models.context`, (N_CONTEXT,) float64) as the ``context`` field of its object's
    hash: the hex of its little-endian float64 bytes, NaN where the packet did not say (inf is a real
    value: none nearby). Text, so that readers with ``decode_responses`` read the hash too."""
    return np.asarray(context, dtype="<f8").tobytes().hex()


def unpack_context(text: str | bytes | None) -> np.ndarray:
    """Inverse of `pack_context`; all NaN for a missing or malformed field (an object scored before contexts).

    A context packed under an earlier, shorter `models.context.CONTEXT_FIELDS` gets NaN for the later fields.
    """
    if isinstance(text, bytes):
        text = text.decode("ascii", errors="replace")
    try:
        blob = bytes.fromhex(text or "")
    except ValueError:
        return missing_context()
    if not blob or len(blob) % 8 or len(blob) > 8 * N_CONTEXT:
        return missing_context()
    return pad_context(np.frombuffer(blob, dtype="<f8")[None, :])[0]  # an earlier, shorter field list: NaN after


def read_contexts(client: redis.Redis, keys: Keys, object_ids: list[str],
                  context_fields_by_survey: Mapping[str, tuple[str, ...]]) -> dict[str, np.ndarray]:
    """The context of each object's latest scored alert as a model of table `context_fields_by_survey` is shown
    it (`models.context.model_context`, by the survey stored beside it); all NaN for an object without one.

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
    return dict(zip(object_ids, model_context(contexts, surveys, context_fields_by_survey)))


class ConsumerMetrics:
    """Counters, throughput and latency percentiles of one scorer process: over the last `RECENT_S` and
    since it started (latencies as histograms, `stream.latency`)."""

    def __init__(self):
        self.counters = {"alerts": 0, "deadLetters": 0, "batches": 0, "aborts": 0, "droppedPoints": 0}
        self.dead_reasons: Counter = Counter()  # dead letters by error type, since the start
        self.started = time.monotonic()
        self.started_ms = time.time_ns() // 1_000_000
        self._total = np.zeros(latency.N_BINS, np.int64)
        self._recent = np.zeros(latency.N_BINS, np.int64)
        self._recent_n = 0
        self._batches: deque[tuple[float, int, np.ndarray]] = deque()  # (when, messages, latency histogram)

    def record_batch(self, n_alerts: int, n_dead: int, latencies_ms: np.ndarray, dropped_points: int = 0,
                     dead_reasons: Mapping[str, int] | None = None) -> None:
        """Count a committed batch; `dropped_points`: implausible history points its decoders left out;
        `dead_reasons`: its dead letters by error type."""
        self.dead_reasons.update(dead_reasons or {})
        self.counters["alerts"] += n_alerts
        self.counters["deadLetters"] += n_dead
        self.counters["droppedPoints"] += dropped_points
        self.counters["batches"] += 1
        counts = latency.histogram(latencies_ms)
        self._total += counts
        self._recent += counts
        self._recent_n += n_alerts + n_dead
        self._batches.append((time.monotonic(), n_alerts + n_dead, counts))

    def _forget_old(self, now: float) -> None:
        while self._batches and now - self._batches[0][0] > RECENT_S:
            _, n, counts = self._batches.popleft()
            self._recent -= counts
            self._recent_n -= n

    def fields(self) -> dict:
        """Messages (alerts and dead letters) per second and latency p50/p95/p99 (ms) over the last `RECENT_S`
        (``alertsPerS``, ``latencyP50Ms``...; no percentiles when nothing arrived in it) and since the start
        (``alertsPerSTotal``, ``latencyP50MsTotal``...), ``startedMs``, and ``deadLetterReasons`` (JSON: error
        type → dead letters since the start)."""
        now = time.monotonic()
        self._forget_old(now)
        elapsed_s = max(now - self.started, 1e-3)
        handled = self.counters["alerts"] + self.counters["deadLetters"]
        fields = {"alertsPerS": round(self._recent_n / min(RECENT_S, elapsed_s), 1),
                  "alertsPerSTotal": round(handled / elapsed_s, 1), "startedMs": self.started_ms,
                  "deadLetterReasons": json.dumps(dict(self.dead_reasons))}
        for names, counts in ((_RECENT_LATENCY, self._recent), (_TOTAL_LATENCY, self._total)):
            values = latency.percentiles(counts)
            if values is not None:
                fields |= {name: round(v, 1) for name, v in zip(names, values)}
        return fields


class StateWriter:
    """Writes the state after each batch; `times`, if given, goes into the consumer's hash as
    ``stageSeconds`` (JSON: stage → seconds since the start)."""

    def __init__(self, client: redis.Redis, keys: Keys, history: HistoryStore, consumer_id: str,
                 ttl_s: int, top_n: int, times: StageTimes | None = None, health: RedisHealth | None = None):
        self.client, self.keys, self.history = client, keys, history
        self.health = health if health is not None else RedisHealth()  # the process's, shared with its other users
        self.consumer_id, self.ttl_s, self.top_n = consumer_id, ttl_s, top_n
        self.times = times
        self.metrics = ConsumerMetrics()
        self._last_heartbeat = 0.0

    def consumer_fields(self, model_version: str, lag: int | None) -> dict:
        fields = dict(self.metrics.counters) | self.metrics.fields() | {
            "redisOutages": self.health.outages, "redisSkippedCalls": self.health.skipped_calls,
            "droppedStoredPoints": self.history.dropped_points, "modelVersion": model_version,
            "heartbeatMs": time.time_ns() // 1_000_000, "host": socket.gethostname(), "pid": os.getpid(),
        }
        if lag is not None:
            fields["lag"] = lag
        if self.times is not None:
            fields["stageSeconds"] = json.dumps({k: round(v, 3) for k, v in self.times.as_dict().items()})
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

    def leave(self) -> None:
        """A clean stop: out of the live consumers (``{p}:consumers``), so the monitor stops showing it at
        once; its hash stays, with ``stoppedMs``, until the state TTL."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zrem(self.keys.consumers, self.consumer_id)
        key = self.keys.consumer(self.consumer_id)
        pipe.hset(key, "stoppedMs", time.time_ns() // 1_000_000)
        pipe.expire(key, self.ttl_s)
        self._execute(pipe)

    def _scores(self, pipe, batch: ScoredBatch) -> None:
        top_class = np.asarray(CLASS_IDS)[batch.probs.argmax(axis=1)]
        solar_system = known_solar_system(batch)
        age_days = batch.age_days
        probs = np.round(batch.probs.astype(np.float64), 5).tolist()  # (B, C), one conversion per batch
        rows = candidate_rows(batch, top_class, solar_system)
        for i, object_id in enumerate(batch.object_id):
            key = self.keys.object_scores(object_id)
            fields = {
                "alertId": int(batch.alert_id[i]), "snLikelihood": float(batch.sn_likelihood[i]),
                "flareLikelihood": float(batch.flare_likelihood[i]), "topClassId": int(top_class[i]),
                "nVisits": int(batch.n_visits[i]), "latestMjdTai": float(batch.latest_mjd_tai[i]),
                "raDeg": float(batch.ra_deg[i]), "decDeg": float(batch.dec_deg[i]),
                "modelVersion": batch.model_version, "updatedMs": batch.scored_ms,
                "solarSystem": int(solar_system[i]),
                "context": pack_context(batch.context[i]), "survey": batch.survey[i],
            }
            if np.isfinite(age_days[i]):
                fields["ageDays"] = round(float(age_days[i]), 4)
            pipe.hset(key, mapping=fields)
            pipe.expire(key, self.ttl_s)
            pipe.set(self.keys.candidate_row(object_id), rows[i].tobytes(), ex=self.ttl_s)
            history = self.keys.score_history(object_id)
            pipe.rpush(history, json.dumps({
                "alertId": fields["alertId"], "mjdTai": fields["latestMjdTai"], "scoredMs": batch.scored_ms,
                "probs": probs[i], "sn": round(fields["snLikelihood"], 5), "flare": round(fields["flareLikelihood"], 5),
                "model": batch.model_version}))
            pipe.ltrim(history, -SCORE_HISTORY_MAX, -1)
            pipe.expire(history, self.ttl_s)
        candidates = np.flatnonzero(~solar_system)  # a known asteroid is no transient candidate
        if not len(candidates):
            return
        bucket = top_bucket(batch.scored_ms)
        for name, values in (("sn", batch.sn_likelihood), ("flare", batch.flare_likelihood)):
            key = self.keys.top(name, bucket)
            pipe.zadd(key, {batch.object_id[i]: float(values[i]) for i in candidates})
            pipe.zremrangebyrank(key, 0, -self.top_n - 1)
            pipe.expire(key, TOP_BUCKET_MS // 1000 + TOP_KEEP_S)

    def _heartbeat(self, pipe, model_version: str, lag: int | None) -> None:
        fields = self.consumer_fields(model_version, lag)
        key = self.keys.consumer(self.consumer_id)
        pipe.hset(key, mapping=fields)
        if not fields.keys() & set(_RECENT_LATENCY):  # nothing in the last minute: no recent percentiles
            pipe.hdel(key, *_RECENT_LATENCY)
        pipe.zadd(self.keys.consumers, {self.consumer_id: fields["heartbeatMs"]})
        self._last_heartbeat = time.monotonic()

    def _execute(self, pipe) -> None:
        if not self.health.usable():
            return
        try:
            pipe.execute()
        except redis.RedisError as err:
            self.health.outage("state", err)
