"""Nothing non-finite reaches the model, Redis or an output: implausible history points are dropped and
counted, and an alert the model scores NaN becomes a dead letter."""
import io
import math

import fastavro
import numpy as np
import pytest
import redis
from conftest import RUBIN_VERSION, rubin_alerts, top_candidates

from stream import avro_io
from stream.decode import decode_rubin, encode_rubin
from stream.decode.rubin import _parsed_schema, schema_id
from stream.history import unpack
from stream.kafka_io import make_producer
from stream.keys import Keys
from stream.score import Scorer
from stream.service import ScoringService

pytestmark = pytest.mark.integration


def _produce(config, pairs):
    producer = make_producer(config.kafka)
    topic = next(iter(config.topics.inputs))
    for key, value in pairs:
        producer.produce(topic, value, key)
    assert producer.flush(30) == 0


def _with_bad_history_point(alert) -> bytes:
    """The alert with its first previous detection moved to MJD -1e300 (finite, impossible)."""
    record = fastavro.schemaless_reader(io.BytesIO(alert.value[5:]), _parsed_schema(schema_id(RUBIN_VERSION)))
    record["prvDiaSources"][0]["midpointMjdTai"] = -1e300
    return encode_rubin(record, RUBIN_VERSION)


def test_bad_history_point_is_dropped_counted_and_never_stored(stream_config, read_committed):
    alerts = rubin_alerts(n_objects=4, alerts_per_object=3, seed=21)
    poisoned = {a.alert_id for a in alerts[4:8]}  # each object's second alert carries the bad point
    pairs = [(a.key, _with_bad_history_point(a) if a.alert_id in poisoned else a.value) for a in alerts]
    assert all(decode_rubin(v).dropped_points == (1 if a.alert_id in poisoned else 0)
               for a, (_, v) in zip(alerts, pairs))
    _produce(stream_config, pairs)
    service = ScoringService(stream_config)
    service.run(max_messages=len(alerts), timeout_s=90)

    records = [avro_io.decode(m.value())[1] for m in read_committed(stream_config.topics.scored, len(alerts))]
    assert sorted(r["alertId"] for r in records) == sorted(a.alert_id for a in alerts)
    for r in records:
        assert all(math.isfinite(c["probability"]) for c in r["classProbabilities"])
        assert math.isfinite(r["snLikelihood"]) and math.isfinite(r["flareLikelihood"])
    client, keys = redis.Redis.from_url(stream_config.redis.url), Keys(stream_config.redis.prefix)
    for a in alerts[:4]:
        stored = unpack(client.get(keys.light_curve(a.object_id)))
        assert len(stored) == 3 and stored.mjd_tai.min() > 60000  # the point itself came back in later alerts
    consumer = client.hgetall(keys.consumer(service.instance_id))
    assert int(consumer[b"droppedPoints"]) == 4 and int(consumer[b"redisOutages"]) == 0


def test_non_finite_scores_become_dead_letters(stream_config, read_committed):
    alerts = rubin_alerts(n_objects=10, alerts_per_object=2, seed=22)
    _produce(stream_config, [(a.key, a.value) for a in alerts])
    scorer = Scorer.from_checkpoint(stream_config.scoring.checkpoint, stream_config.scoring)
    forward = scorer.probabilities

    def first_alert_nan(encoded):
        probs = forward(encoded)
        probs[0, :] = np.nan  # a broken model: the first alert of every batch
        return probs

    scorer.probabilities = first_alert_nan
    service = ScoringService(stream_config, scorer=scorer)
    stats = service.run(max_messages=len(alerts), timeout_s=90)

    dead = [avro_io.decode(m.value())[1] for m in read_committed(stream_config.topics.deadletter, stats.batches)]
    scored = [avro_io.decode(m.value())[1] for m in read_committed(stream_config.topics.scored,
                                                                   len(alerts) - len(dead))]
    assert dead and len(dead) + len(scored) == len(alerts)
    assert {d["reason"] for d in dead} == {"model produced non-finite scores"}
    assert {d["errorType"] for d in dead} == {"NonFiniteScores"}
    assert all(math.isfinite(r["snLikelihood"]) for r in scored)
    client, keys = redis.Redis.from_url(stream_config.redis.url), Keys(stream_config.redis.prefix)
    top = top_candidates(client, keys, "sn")
    assert len(top) == len({r["objectId"] for r in scored}) and all(math.isfinite(s) for s in top.values())
    consumer = client.hgetall(keys.consumer(service.instance_id))
    assert int(consumer[b"redisOutages"]) == 0 and int(consumer[b"deadLetters"]) == len(dead)
