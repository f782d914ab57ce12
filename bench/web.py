"""``alertformer bench-web``: how fast the web view's candidates endpoint answers with many objects in Redis.

Fills a fresh key prefix with `n_objects` scored objects through the scorer's own writer
(`stream.state.StateWriter.write_batch`, batches of `WRITE_BATCH` random Dirichlet scores, positions
over the sky, 1-200 visits), as a night of scoring leaves them, then asks ``/api/candidates`` of the
app served by uvicorn on a local port, over HTTP, with a few filter sets, and reports per query the
median and p95 answer time (ms) and the objects read; the target (`TARGET_MS`) is judged on the
queries the page makes (50 rows). Beside it, the same queries through
`stream.web.read.read_candidates` alone (the Redis reads and filtering, without HTTP and JSON). The
prefix is deleted afterwards.
"""
import json
import socket
import threading
import time
import urllib.request
import uuid

import numpy as np
import redis

from models.context import N_CONTEXT
from models.taxonomy import FLARE_INDEX, N_CLASSES, SN_LIKE_INDICES
from stream.config import load_config
from stream.history import HistoryStore
from stream.keys import Keys
from stream.redis_io import make_redis
from stream.scored import ScoredBatch
from stream.state import StateWriter
from stream.web.app import create_app
from stream.web.query import candidate_query
from stream.web.read import read_candidates

WRITE_BATCH = 1000  # objects per write_batch: the scorer's default batch size
TARGET_MS = 50.0  # the bound for the candidates endpoint
QUERIES = {  # name -> query string of /api/candidates
    "default (top 50 by sn)": "",
    "flare, score >= 0.5": "score=flare&min_score=0.5",
    "class SNIa, age <= 30 d, >= 5 visits": "class=SNIa&max_age_days=30&min_visits=5",
    "cone 20 deg around (150, 2)": "ra=150&dec=2&radius=20",
    "top 500 (beyond the page's 50)": "limit=500",
}
SERVER_START_S = 15.0


def fill(client: redis.Redis, keys: Keys, n_objects: int, top_n: int, rng: np.random.Generator) -> float:
    """Write `n_objects` scored objects under `keys` with the scorer's writer; returns the seconds it took."""
    writer = StateWriter(client, keys, HistoryStore(client, keys, 3600, 1), "bench-web", 3600, top_n)
    t0 = time.perf_counter()
    for start in range(0, n_objects, WRITE_BATCH):
        n = min(WRITE_BATCH, n_objects - start)
        probs = rng.dirichlet(np.full(N_CLASSES, 0.3), n).astype(np.float32)  # (n, C)
        latest = 61000.0 + rng.uniform(0, 1, n)
        batch = ScoredBatch(
            object_id=[str(170_000_000_000_000 + start + i) for i in range(n)],
            alert_id=np.arange(start, start + n, dtype=np.int64), source_id=np.arange(start, start + n, dtype=np.int64),
            survey=np.array(["rubin"] * n, dtype=object), ra_deg=rng.uniform(0, 360, n),
            dec_deg=np.degrees(np.arcsin(rng.uniform(-1, 0.5, n))), latest_mjd_tai=latest,
            latest_flux_njy=rng.uniform(500, 5e4, n).astype(np.float32),
            latest_band=rng.integers(0, 6, n).astype(np.int8),
            n_visits=rng.integers(1, 201, n).astype(np.int32), n_detections=rng.integers(1, 50, n).astype(np.int32),
            probs=probs, sn_likelihood=probs[:, list(SN_LIKE_INDICES)].sum(axis=1),
            flare_likelihood=probs[:, FLARE_INDEX], model_version="bench", scored_ms=time.time_ns() // 1_000_000,
            context=np.full((n, N_CONTEXT), np.nan), window_first_detection_mjd_tai=latest - rng.uniform(0, 100, n))
        writer.write_batch(batch, {}, None, "bench")
    return time.perf_counter() - t0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _timings_ms(call, repeats: int) -> tuple[list[float], object]:
    result, times = None, []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - t0) * 1e3)
    return times, result


def _summary(times_ms: list[float]) -> dict:
    return {"median_ms": round(float(np.median(times_ms)), 2), "p95_ms": round(float(np.percentile(times_ms, 95)), 2)}


def bench_web(client: redis.Redis, n_objects: int, repeats: int, top_n: int, seed: int = 0) -> dict:
    """The report of the module docstring, on a fresh prefix of `client`'s Redis (deleted afterwards)."""
    import uvicorn

    keys = Keys(f"bench-web-{uuid.uuid4().hex[:8]}")
    try:
        fill_s = fill(client, keys, n_objects, top_n, np.random.default_rng(seed))
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(client, keys, []), host="127.0.0.1", port=port,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + SERVER_START_S
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        queries = {}
        for name, text in QUERIES.items():
            url = f"http://127.0.0.1:{port}/api/candidates?{text}"
            fetch = lambda: json.loads(urllib.request.urlopen(url, timeout=30).read())  # noqa: E731
            fetch()  # warm: connection set-up, first-call imports
            http_ms, body = _timings_ms(fetch, repeats)
            query = candidate_query(dict(p.split("=") for p in text.split("&")) if text else {})
            read_ms, _ = _timings_ms(lambda: read_candidates(client, keys, query), repeats)
            queries[name] = {"query": text, "http": _summary(http_ms), "read_only": _summary(read_ms),
                             "objects_read": body["considered"], "rows": len(body["rows"])}
        server.should_exit = True
        thread.join(10)
    finally:
        for batch in _batched(client.scan_iter(f"{keys.prefix}:*", count=10_000), 10_000):
            client.unlink(*batch)
    worst = max(q["http"]["median_ms"] for q in queries.values() if "limit=" not in q["query"])
    return {"benchmark": "web candidates endpoint", "objects_in_redis": n_objects, "top_n_per_bucket": top_n,
            "repeats": repeats, "fill_s": round(fill_s, 1), "queries": queries,
            "target_ms": TARGET_MS, "worst_page_median_ms": worst, "within_target": worst < TARGET_MS}


def _batched(items, size: int):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def cmd_bench_web(args) -> int:
    config = load_config(args.config)
    client = make_redis(config.redis, socket_timeout=30.0)
    print(json.dumps(bench_web(client, args.objects, args.repeats, config.scoring.top_n, args.seed), indent=1))
    return 0
