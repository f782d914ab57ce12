"""Live state in Redis after each committed batch: object scores, top candidates, consumer metrics.

Everything goes in one pipelined round trip. A Redis outage never stops scoring: the
write is skipped, counted (``redisOutages``) and logged, and the next batch writes again.
"""
import json
import math
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


# The fields of an object's scores hash (``{p}:obj:{objectId}``, `stream.keys`), in the order `score_records`
# gives their values; ``ageDays`` is left out of the hash when unknown.
SCORE_FIELDS = ("alertId", "snLikelihood", "flareLikelihood", "topClassId", "nVisits", "latestMjdTai", "raDeg",
                "decDeg", "modelVersion", "updatedMs", "solarSystem", "context", "survey", "ageDays")
# One server-side call writes up to `SCRIPT_OBJECTS_PER_CALL` objects of a batch: per object its scores hash,
# candidate row and score history, each with the TTL. As seven pipelined commands per object, redis-py packed
# each command and parsed each reply on the service thread; here the client packs each value once and reads one
# reply. KEYS: per object its hash, row and history keys. ARGV: TTL (s), history length, the number of field
# names, the names, then per object its field values (an empty value: field left out), its row and its history
# entry.
SCRIPT_OBJECTS_PER_CALL = 1_000  # a script holds Redis while it runs (<= ~15 ms a call here): readers wait little
KEYS_PER_OBJECT, VALUES_PER_OBJECT = 3, len(SCORE_FIELDS) + 2
WRITE_SCORES_LUA = """
local ttl, keep, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local names, a = {unpack(ARGV, 4, 3 + n)}, 4 + n
for i = 1, #KEYS, 3 do
  local fields = {}
  for j = 1, n do
    local value = ARGV[a + j - 1]
    if value ~= '' then
      fields[#fields + 1] = names[j]
      fields[#fields + 1] = value
    end
  end
  a = a + n
  redis.call('HSET', KEYS[i], unpack(fields))
  redis.call('EXPIRE', KEYS[i], ttl)
  redis.call('SET', KEYS[i + 1], ARGV[a], 'EX', ttl)
  redis.call('RPUSH', KEYS[i + 2], ARGV[a + 1])
  redis.call('LTRIM', KEYS[i + 2], -keep, -1)
  redis.call('EXPIRE', KEYS[i + 2], ttl)
  a = a + 2
end
return #KEYS / 3
"""


def score_records(batch: ScoredBatch, keys: Keys, top_class_id: np.ndarray, solar_system: np.ndarray
                  ) -> tuple[list[str], list]:
    """`WRITE_SCORES_LUA`'s KEYS and, after its header, ARGV for a scored batch: per alert its object's hash, row
    and history keys; its `SCORE_FIELDS` values, candidate row (`ROW_DTYPE`) and history entry (JSON)."""
    probs = np.round(batch.probs.astype(np.float64), 5).tolist()  # (B, C), one conversion per batch
    rows = candidate_rows(batch, top_class_id, solar_system)
    row_bytes, row_size = rows.tobytes(), ROW_DTYPE.itemsize
    per_alert = zip(batch.object_id, batch.alert_id.tolist(), batch.sn_likelihood.tolist(),
                    batch.flare_likelihood.tolist(), top_class_id.tolist(), batch.n_visits.tolist(),
                    batch.latest_mjd_tai.tolist(), batch.ra_deg.tolist(), batch.dec_deg.tolist(),
                    solar_system.astype(np.int64).tolist(), batch.survey.tolist(), batch.age_days.tolist())
    object_keys, values = [], []
    for i, (object_id, alert_id, sn, flare, top, n_visits, mjd_tai, ra_deg, dec_deg, on_asteroid, survey,
            age_days) in enumerate(per_alert):
        object_keys += [keys.object_scores(object_id), keys.candidate_row(object_id), keys.score_history(object_id)]
        values += [alert_id, sn, flare, top, n_visits, mjd_tai, ra_deg, dec_deg, batch.model_version, batch.scored_ms,
                   on_asteroid, pack_context(batch.context[i]), survey,
                   round(age_days, 4) if math.isfinite(age_days) else "",
                   row_bytes[i * row_size:(i + 1) * row_size],
                   json.dumps({"alertId": alert_id, "mjdTai": mjd_tai, "scoredMs": batch.scored_ms, "probs": probs[i],
                               "sn": round(sn, 5), "flare": round(flare, 5), "model": batch.model_version})]
    return object_keys, values


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
        object_keys, values = score_records(batch, self.keys, top_class, solar_system)
        for start in range(0, len(batch), SCRIPT_OBJECTS_PER_CALL):
            stop = start + SCRIPT_OBJECTS_PER_CALL
            keys = object_keys[KEYS_PER_OBJECT * start:KEYS_PER_OBJECT * stop]
            pipe.eval(WRITE_SCORES_LUA, len(keys), *keys, self.ttl_s, SCORE_HISTORY_MAX, len(SCORE_FIELDS),
                      *SCORE_FIELDS, *values[VALUES_PER_OBJECT * start:VALUES_PER_OBJECT * stop])
        candidates = np.flatnonzero(~solar_system)  # a known asteroid is no transient candidate
        if not len(candidates):
            return
        bucket = top_bucket(batch.scored_ms)
        for name, scores in (("sn", batch.sn_likelihood), ("flare", batch.flare_likelihood)):
            key = self.keys.top(name, bucket)
            pipe.zadd(key, {batch.object_id[i]: float(scores[i]) for i in candidates})
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
