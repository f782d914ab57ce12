"""The Redis reads behind the pages: candidates, one object, the status of the scorers.

Key names come from `stream.keys`, the stored curve from `stream.show.read_object`, the consumers and
champion from `stream.monitor.read_state`: this module adds the filters and the score history.
Reads are pipelined: the object and status pages take two round trips each, the candidates two per
chunk read (`read_candidates`).
"""
import json
import re
import time
from dataclasses import dataclass

import numpy as np
import redis

from models.bands import BAND_NAMES
from models.registry import ModelRegistry, RegistryError
from models.taxonomy import CLASS_NAMES, ID_TO_NAME
from stream.errors import ConfigError
from stream.keys import Keys, top_bucket
from stream.monitor import read_state
from stream.show import read_object
from stream.state import ROW_DTYPE
from stream.web.query import CandidateQuery

# Per time bucket, at most this many of the best are considered (the scorer keeps scoring.top_n of each).
MAX_PER_BUCKET = 1000
CHUNK = 200  # entries read per bucket and round: a page of 50 rows with loose filters needs one round
ZTF_OBJECT_ID = re.compile(r"ZTF\d{2}[a-z]{7}")
PROMOTIONS_SHOWN = 10


def _text(value) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def angular_distance_deg(ra1_deg, dec1_deg, ra2_deg, dec2_deg) -> np.ndarray:
    """Great-circle distance (degrees) by the haversine formula, elementwise.

    >>> float(np.round(angular_distance_deg(10.0, 0.0, 11.0, 0.0), 6))
    1.0
    """
    ra1, dec1, ra2, dec2 = (np.radians(np.asarray(v, dtype=np.float64)) for v in (ra1_deg, dec1_deg, ra2_deg, dec2_deg))
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0, 1))))


def _rows(client: redis.Redis, keys: Keys, ids: list[str]) -> tuple[list[str], np.ndarray]:
    """The ids whose packed row (``{p}:row:{objectId}``, `stream.state.ROW_DTYPE`) is stored, and the rows."""
    blobs = client.mget([keys.candidate_row(oid) for oid in ids]) if ids else []
    found = [i for i, blob in enumerate(blobs) if blob is not None and len(blob) == ROW_DTYPE.itemsize]
    rows = np.frombuffer(b"".join(blobs[i] for i in found), dtype=ROW_DTYPE)
    return [ids[i] for i in found], rows


def _filter(rows: np.ndarray, query: CandidateQuery, since_ms: int) -> np.ndarray:
    """(N,) bool: the rows `query` keeps (updated since `since_ms`, no known solar-system object)."""
    score = rows["sn_likelihood"] if query.score == "sn" else rows["flare_likelihood"]
    keep = (rows["updated_ms"] >= since_ms) & (rows["solar_system"] == 0) & (score >= query.min_score)
    keep &= rows["n_visits"] >= query.min_visits
    if query.class_id is not None:
        keep &= rows["top_class_id"] == query.class_id
    if query.min_age_days is not None:
        keep &= rows["age_days"] >= query.min_age_days  # an unknown age (NaN) fails any bound
    if query.max_age_days is not None:
        keep &= rows["age_days"] <= query.max_age_days
    if query.cone:
        keep &= angular_distance_deg(query.ra_deg, query.dec_deg, rows["ra_deg"], rows["dec_deg"]) <= query.radius_deg
    return keep


def read_candidates(client: redis.Redis, keys: Keys, query: CandidateQuery, now_ms: int | None = None) -> dict:
    """The best objects by ``query.score`` updated within ``query.recent_min``, filtered, best first.

    Candidates come from the top-candidate buckets of the window (`stream.keys`), read best first in
    chunks of `CHUNK` per bucket (at most `MAX_PER_BUCKET`), with their packed rows (one MGET a chunk),
    until ``query.limit`` rows pass the filters with a latest score no lower than any unread entry's.
    An object's latest score is its entry in the bucket of its latest update, so no unread object can
    outrank them: the answer is the exact top of the pool, from a few hundred reads when the filters are
    loose. Known solar-system objects are left out.

    Returns
    -------
    dict
        ``now_ms``, ``considered`` (objects read), ``rows``: up to ``query.limit`` dicts with ``objectId``,
        ``score``, ``sn``, ``flare``, ``class``, ``nVisits``, ``ageDays`` (None if unknown), ``raDeg``,
        ``decDeg`` (degrees), ``latestMjdTai``, ``updatedMs``.
    """
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    since_ms = now_ms - int(query.recent_min * 60_000)
    bucket_keys = [keys.top(query.score, b) for b in range(top_bucket(since_ms), top_bucket(now_ms) + 1)]
    ids: list[str] = []
    parts: list[np.ndarray] = []
    seen: set[str] = set()
    for offset in range(0, MAX_PER_BUCKET, CHUNK):
        pipe = client.pipeline(transaction=False)
        for key in bucket_keys:
            pipe.zrevrange(key, offset, offset + CHUNK - 1, withscores=True)
        chunks = pipe.execute()
        new = [oid for chunk in chunks for oid in dict.fromkeys(_text(m) for m, _ in chunk) if oid not in seen]
        seen.update(new)
        found, rows = _rows(client, keys, new)
        ids += found
        parts.append(rows)
        unread = [chunk[-1][1] for chunk in chunks if len(chunk) == CHUNK]  # buckets that may hold more
        if not unread:
            break
        rows = np.concatenate(parts)
        score = rows["sn_likelihood"] if query.score == "sn" else rows["flare_likelihood"]
        if np.count_nonzero(_filter(rows, query, since_ms) & (score >= max(unread))) >= query.limit:
            break
    rows = np.concatenate(parts)
    chosen = np.flatnonzero(_filter(rows, query, since_ms))
    score = (rows["sn_likelihood"] if query.score == "sn" else rows["flare_likelihood"]).astype(np.float64)
    if len(chosen):  # best first, ties by id
        chosen = chosen[np.lexsort((np.array(ids, dtype=str)[chosen], -score[chosen]))][:query.limit]
    out = []
    for i in chosen:
        r = rows[i]
        age = float(r["age_days"])
        out.append({"objectId": ids[i], "score": round(float(score[i]), 5), "sn": round(float(r["sn_likelihood"]), 5),
                    "flare": round(float(r["flare_likelihood"]), 5), "class": ID_TO_NAME.get(int(r["top_class_id"])),
                    "nVisits": int(r["n_visits"]), "ageDays": None if np.isnan(age) else round(age, 3),
                    "raDeg": float(r["ra_deg"]), "decDeg": float(r["dec_deg"]),
                    "latestMjdTai": float(r["latest_mjd_tai"]), "updatedMs": int(r["updated_ms"])})
    return {"now_ms": now_ms, "considered": len(ids), "rows": out}


def portal_links(object_id: str) -> dict[str, str]:
    """Pages of the object on the brokers' portals: Fink and ALeRCE for ZTF object ids, none otherwise."""
    if not ZTF_OBJECT_ID.fullmatch(object_id):
        return {}
    return {"Fink": f"https://fink-portal.org/{object_id}", "ALeRCE": f"https://alerce.online/object/{object_id}"}


def read_object_page(client: redis.Redis, keys: Keys, object_id: str, rules: list[str]) -> dict:
    """Everything the object page shows; `object_id` validated (`stream.web.query.object_id`).

    Returns
    -------
    dict
        ``objectId``, ``scores`` (the latest, the object hash's fields), ``bands``: band name → ``mjdTai``,
        ``fluxNjy``, ``fluxErrNjy`` (lists) and ``detection`` (list of bool); ``history``: the scored alerts,
        oldest first, each ``alertId`` (a string: ids pass 2^53), ``mjdTai``, ``scoredMs``, ``sn``, ``flare``, ``model``, ``probs``
        (class name → probability); ``followups``: rule → alertId (a string) that triggered it, for the rules in
        `rules` that fired; ``links``: portal name → URL.

    Raises
    ------
    stream.show.NoSuchObject
        When no light curve of the object is stored.
    ConfigError
        When Redis cannot be read.
    """
    view = read_object(client, keys, object_id)
    try:
        pipe = client.pipeline(transaction=False).lrange(keys.score_history(object_id), 0, -1)
        if rules:
            pipe.mget([keys.followup(rule, object_id) for rule in rules])
        history_blobs, *fired = pipe.execute()
    except redis.RedisError as err:
        raise ConfigError(f"redis.url: cannot read the state ({err})") from None
    c = view.curve
    bands = {}
    for code in np.unique(c.band):
        sel = c.band == code
        bands[BAND_NAMES[code]] = {"mjdTai": c.mjd_tai[sel].tolist(), "fluxNjy": c.flux_njy[sel].tolist(),
                                   "fluxErrNjy": c.flux_err_njy[sel].tolist(),
                                   "detection": c.is_detection[sel].tolist()}
    history = {}
    for blob in history_blobs:
        entry = json.loads(blob)
        entry["probs"] = dict(zip(CLASS_NAMES, entry["probs"]))
        entry["alertId"] = str(entry["alertId"])  # 64-bit ids: a JavaScript number would round them
        history[entry["alertId"]] = entry  # a re-scored alert keeps its last entry
    followups = {rule: str(int(alert)) for rule, alert in zip(rules, fired[0] if fired else []) if alert is not None}
    scores = dict(view.scores)
    scores.pop("context", None)
    if "topClassId" in scores:
        scores["topClass"] = ID_TO_NAME.get(int(scores["topClassId"]), scores["topClassId"])
    return {"objectId": object_id, "scores": scores, "bands": bands,
            "history": sorted(history.values(), key=lambda e: (e["mjdTai"], e["scoredMs"])),
            "followups": followups, "links": portal_links(object_id)}


@dataclass(frozen=True)
class Promotions:
    champion: str | None
    recent: list[dict]  # the last promotions and rollbacks, newest first: ``version``, ``at`` (UTC), ``reason``


def read_promotions(registry_path: str | None) -> Promotions | None:
    """The registry's champion and its last promotions; None without a registry (or an unreadable one)."""
    if not registry_path:
        return None
    try:
        registry = ModelRegistry(registry_path)
        return Promotions(registry.champion(), list(reversed(registry.history()))[:PROMOTIONS_SHOWN])
    except (RegistryError, OSError, ValueError):
        return None


def read_status(client: redis.Redis, keys: Keys, registry_path: str | None = None) -> dict:
    """The consumers (`stream.monitor.read_state`: their counters, throughput and latency over the last minute,
    lag, dead letters by reason), the champion in Redis, and the registry's promotions when configured."""
    state = read_state(client, keys, top_n=1)
    consumers = []
    for c in state["consumers"]:
        row = {k: v for k, v in c.items() if k != "stageSeconds"}
        try:
            row["deadLetterReasons"] = json.loads(c.get("deadLetterReasons") or "{}")
        except ValueError:
            row["deadLetterReasons"] = {}
        row["live"] = (state["now_ms"] - c["heartbeat_ms"]) / 1000 <= state["stale_after_s"]
        consumers.append(row)
    promotions = read_promotions(registry_path)
    return {"now_ms": state["now_ms"], "prefix": state["prefix"], "champion": state["champion"],
            "consumers": consumers,
            "promotions": None if promotions is None else {"champion": promotions.champion,
                                                           "recent": promotions.recent}}
