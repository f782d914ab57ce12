"""The scoring stream against the real broker and Redis: exactly one output per input, state, a Redis outage.

A scorer killed mid-stream is tested by tests/chaos (kill -9 at random points; SIGTERM and kill -9 in a
two-scorer group) and tests/integration/test_two_clusters.py (kill -9 with a read-only source)."""
import subprocess
import time

import numpy as np
import pytest
import redis
from conftest import produce, rubin_alerts, top_candidates

from models.context import CONTEXT_INDEX, LEGACY_CONTEXT_FIELDS_BY_SURVEY
from models.taxonomy import CLASS_IDS
from stream import avro_io
from stream.keys import Keys
from stream.service import ScoringService
from stream.state import read_contexts

pytestmark = pytest.mark.integration
MALFORMED = [b"\x00\x00\x00\x03\xe8\x02cut", b"not an alert at all"]


def test_each_input_scored_once_with_state(stream_config, read_committed):
    alerts = rubin_alerts(n_objects=20, alerts_per_object=3)
    produce(stream_config, alerts, MALFORMED)
    n_in = len(alerts) + len(MALFORMED)

    service = ScoringService(stream_config)
    stats = service.run(max_messages=n_in, timeout_s=90)
    assert stats.messages_in == n_in

    scored = [avro_io.decode(m.value()) for m in read_committed(stream_config.topics.scored, len(alerts))]
    assert {name for name, _ in scored} == {"alertformer.scored_alert"}
    records = [r for _, r in scored]
    assert sorted(r["alertId"] for r in records) == sorted(a.alert_id for a in alerts)
    for r in records:
        assert r["modelVersion"] == service.scorer.version
        assert [c["classId"] for c in r["classProbabilities"]] == list(CLASS_IDS)
        assert abs(sum(c["probability"] for c in r["classProbabilities"]) - 1) < 1e-4
        assert 0 <= r["snLikelihood"] <= 1 and 0 <= r["flareLikelihood"] <= 1
        assert r["surveyPublishMs"] <= r["ingestMs"] <= r["scoredMs"] <= r["publishedMs"]
        assert r["latestBand"].startswith("lsst-")
    # Windows merge the stored history: an object's k-th alert sees k points (its own carry k too,
    # so check the history through the Redis light curve instead, below).
    by_object = {}
    for r in records:
        by_object.setdefault(r["objectId"], []).append(r["nVisits"])
    assert all(sorted(v) == [1, 2, 3] for v in by_object.values())

    classifications = read_committed(stream_config.topics.classifications, len(alerts))
    assert len(classifications) == len(alerts)
    record = avro_io.decode_schemaless("elasticc.v0_9_1.brokerClassification", classifications[0].value())
    assert record["brokerName"] == "alertformer" and len(record["classifications"]) == len(CLASS_IDS)

    dead = [avro_io.decode(m.value())[1] for m in read_committed(stream_config.topics.deadletter, len(MALFORMED))]
    assert sorted(d["payload"] for d in dead) == sorted(MALFORMED)
    assert all(d["reason"] for d in dead)

    client = redis.Redis.from_url(stream_config.redis.url)
    keys = Keys(stream_config.redis.prefix)
    assert len(top_candidates(client, keys, "sn")) == 20 and len(top_candidates(client, keys, "flare")) == 20
    obj = client.hgetall(keys.object_scores(alerts[0].object_id))
    assert int(obj[b"nVisits"]) == 3
    # the latest alert's context rides along for the trainer: a Rubin diaObject is no known asteroid
    context = read_contexts(client, keys, [alerts[0].object_id, "never-scored"], LEGACY_CONTEXT_FIELDS_BY_SURVEY)
    assert context[alerts[0].object_id][CONTEXT_INDEX["ss_distance_arcsec"]] == np.inf
    assert np.isnan(context["never-scored"]).all()
    consumer = client.hgetall(keys.consumer(service.instance_id))
    assert int(consumer[b"alerts"]) == len(alerts) and int(consumer[b"deadLetters"]) == len(MALFORMED)
    assert float(consumer[b"latencyP99Ms"]) >= float(consumer[b"latencyP50Ms"]) > 0
    # a clean stop leaves the live consumers and says when; the counters stay readable
    assert client.zscore(keys.consumers, service.instance_id) is None
    assert int(consumer[b"stoppedMs"]) >= int(consumer[b"heartbeatMs"])


@pytest.mark.parametrize("batch_size", [None, 1])
def test_history_from_redis_when_alerts_carry_none(stream_config, read_committed, batch_size):
    """Alerts without prvDiaSources still get their object's earlier points from Redis.

    In batches of one, each alert is windowed before the one ahead of it has written its
    curve to Redis (the loop prepares a batch while the previous one finishes): the
    service's in-flight curves must fill that gap.
    """
    if batch_size:
        stream_config = stream_config.model_copy(
            update={"scoring": stream_config.scoring.updated(batch_size=batch_size)})
    alerts = rubin_alerts(n_objects=3, alerts_per_object=4, seed=1, with_history=False)
    produce(stream_config, alerts)
    ScoringService(stream_config).run(max_messages=len(alerts), timeout_s=60)
    records = [avro_io.decode(m.value())[1] for m in read_committed(stream_config.topics.scored, len(alerts))]
    assert sorted(r["nVisits"] for r in records) == sorted([1, 2, 3, 4] * 3)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_redis_outage_does_not_stop_scoring_and_state_resumes(stream_config, read_committed):
    port = _free_port()
    config = stream_config.model_copy(update={"redis": stream_config.redis.model_copy(
        update={"url": f"redis://127.0.0.1:{port}/0"})})
    first, second = rubin_alerts(n_objects=5, alerts_per_object=2, seed=3), rubin_alerts(n_objects=5, alerts_per_object=1, seed=4)
    produce(config, first)
    service = ScoringService(config)
    service.run(max_messages=len(first), timeout_s=60)
    assert service.redis_health.outages > 0
    assert len(read_committed(config.topics.scored, len(first))) == len(first)

    redis_proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis.from_url(config.redis.url)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        produce(config, second)
        service = ScoringService(config)
        service.run(max_messages=len(second), timeout_s=60)
        assert service.redis_health.outages == 0
        assert len(top_candidates(client, Keys(config.redis.prefix), "sn")) == 5
        assert len(read_committed(config.topics.scored, len(first) + len(second))) == len(first) + len(second)
    finally:
        redis_proc.terminate()
        redis_proc.wait()


def test_followup_requests_once_per_object_and_rule_with_webhook(stream_config, read_committed):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    followup = {"rules": [{"name": "everything", "min_sn_likelihood": 0.0},
                          {"name": "three_visits", "min_visits": 3},
                          {"name": "nowhere", "region": {"ra_deg": 180.0, "dec_deg": 80.0, "radius_deg": 0.01}}],
                "webhook_url": f"http://127.0.0.1:{server.server_port}/hook"}
    config = stream_config.model_copy(update={"followup": type(stream_config.followup)(**followup)})
    alerts = rubin_alerts(n_objects=6, alerts_per_object=4, seed=8)
    produce(config, alerts)
    ScoringService(config).run(max_messages=len(alerts), timeout_s=60)
    server.shutdown()

    requests = [avro_io.decode(m.value())[1] for m in read_committed(config.topics.followup, 12)]
    assert sorted((r["rule"], r["objectId"]) for r in requests) == sorted(
        [("everything", a.object_id) for a in alerts[:6]] + [("three_visits", a.object_id) for a in alerts[:6]])
    assert all(r["nVisits"] >= 3 for r in requests if r["rule"] == "three_visits")
    assert sorted((r["rule"], r["objectId"]) for r in received) == sorted((r["rule"], r["objectId"]) for r in requests)
