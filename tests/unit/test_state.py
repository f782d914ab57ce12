"""Redis state: the last minute beside the totals in the consumer metrics, the top-candidate sets (per time
bucket, no known solar-system objects) with each object's age, and the scores script's writes, read from its
arguments and, at the end, from a real Redis."""
import json
import uuid

import numpy as np
import pytest
import redis
from test_rules import make_batch

from models.context import context_vector
from models.taxonomy import CLASS_IDS
from stream import state
from stream.history import HistoryStore
from stream.keys import SCORE_HISTORY_MAX, Keys, top_bucket
from stream.state import ConsumerMetrics, StateWriter, unpack_context


class RecordingPipe:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))


def scripted_writes(pipe: RecordingPipe) -> tuple[int, int, dict]:
    """TTL, history length and ``{key: what it gets}`` of the `state.WRITE_SCORES_LUA` calls recorded on `pipe`,
    read as its comment says (a hash's fields as a dict, without those given empty); the script itself runs on a
    real Redis in the tests at the end of this file."""
    calls = [args for name, args, _ in pipe.calls if name == "eval"]
    assert calls and all(script == state.WRITE_SCORES_LUA for script, *_ in calls)
    writes, headers = {}, set()
    for _, n_keys, *rest in calls:
        keys, (ttl_s, keep, n_fields, *argv) = rest[:n_keys], rest[n_keys:]
        names, values = argv[:n_fields], argv[n_fields:]
        per_object = n_fields + 2
        assert len(values) == per_object * (n_keys // 3)
        headers.add((ttl_s, keep, tuple(names)))
        for i in range(n_keys // 3):
            mine = values[i * per_object:(i + 1) * per_object]
            writes[keys[3 * i]] = {name: v for name, v in zip(names, mine) if v != ""}
            writes[keys[3 * i + 1]], writes[keys[3 * i + 2]] = mine[n_fields], mine[n_fields + 1]
    ((ttl_s, keep, _),) = headers
    return ttl_s, keep, writes


def test_a_large_batch_is_written_in_calls_of_bounded_size(monkeypatch):
    monkeypatch.setattr(state, "SCRIPT_OBJECTS_PER_CALL", 2)
    keys, pipe = Keys("p"), RecordingPipe()
    StateWriter(None, keys, None, "c", ttl_s=100, top_n=10)._scores(pipe, make_batch(5))
    assert [args[1] for name, args, _ in pipe.calls if name == "eval"] == [6, 6, 3]  # keys per call
    _, _, writes = scripted_writes(pipe)
    assert {key for key in writes if key.startswith("p:obj:")} == {keys.object_scores(f"obj{i}") for i in range(5)}


def test_the_last_minute_beside_the_totals(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(state.time, "monotonic", lambda: clock[0])
    metrics = ConsumerMetrics()
    clock[0] += 30
    metrics.record_batch(600, 0, np.full(600, 100.0))  # 10 alerts/s over the first minute, 100 ms each
    clock[0] += 30
    metrics.record_batch(600, 0, np.full(600, 100.0))
    first = metrics.fields()
    assert first["alertsPerS"] == pytest.approx(20.0) and first["alertsPerSTotal"] == pytest.approx(20.0)
    assert first["latencyP50Ms"] == pytest.approx(100, rel=0.03)
    clock[0] += 61  # the first minute is over: a slow batch now
    metrics.record_batch(60, 0, np.full(60, 5000.0))
    fields = metrics.fields()
    assert fields["alertsPerS"] == pytest.approx(1.0)
    assert fields["alertsPerSTotal"] == pytest.approx(1260 / 121, abs=0.05)
    assert fields["latencyP50Ms"] == pytest.approx(5000, rel=0.03)  # the last minute: only the slow batch
    assert fields["latencyP50MsTotal"] == pytest.approx(100, rel=0.03)  # since the start: mostly fast
    assert fields["latencyP99MsTotal"] == pytest.approx(5000, rel=0.03)
    clock[0] += 61  # idle for a minute: no recent percentiles, 0 alerts/s; the totals stay
    idle = metrics.fields()
    assert idle["alertsPerS"] == 0 and "latencyP50Ms" not in idle and "latencyP50MsTotal" in idle


def test_known_asteroids_stay_out_of_the_top_sets_and_objects_carry_their_age():
    batch = make_batch(3, sn_likelihood=[0.9, 0.95, 0.2], flare_likelihood=[0.1, 0.99, 0.3],
                       context=np.stack([context_vector(ss_distance_arcsec=np.inf),
                                         context_vector(ss_distance_arcsec=0.0),
                                         context_vector(first_detection_mjd_tai=59990.5)]))
    keys, pipe = Keys("p"), RecordingPipe()
    StateWriter(None, keys, None, "c", ttl_s=100, top_n=10)._scores(pipe, batch)
    _, _, hashes = scripted_writes(pipe)
    assert [hashes[keys.object_scores(f"obj{i}")]["solarSystem"] for i in range(3)] == [0, 1, 0]
    # days from the first detection (the window's 60000.0, or the packet's earlier 59990.5) to the alert
    assert [hashes[keys.object_scores(f"obj{i}")]["ageDays"] for i in range(3)] == [0.5, 0.5, 10.0]
    added = {args[0]: args[1] for name, args, _ in pipe.calls if name == "zadd"}
    bucket = top_bucket(batch.scored_ms)
    assert added == {keys.top("sn", bucket): {"obj0": pytest.approx(0.9), "obj2": pytest.approx(0.2)},
                     keys.top("flare", bucket): {"obj0": pytest.approx(0.1), "obj2": pytest.approx(0.3)}}
    assert ("zremrangebyrank", (keys.top("sn", bucket), 0, -11), {}) in pipe.calls


def test_a_context_stored_under_an_earlier_field_list_reads_with_the_later_fields_missing():
    import numpy as np

    from models.context import N_CONTEXT
    from stream.state import pack_context, unpack_context

    earlier = np.arange(N_CONTEXT - 3, dtype=np.float64)  # stored before the host-galaxy fields existed
    context = unpack_context(pack_context(earlier))
    assert context[:N_CONTEXT - 3].tolist() == earlier.tolist() and np.isnan(context[N_CONTEXT - 3:]).all()
    assert np.isnan(unpack_context(pack_context(np.zeros(N_CONTEXT + 1)))).all()  # longer: not ours
    assert np.isnan(unpack_context("abc")).all()


def test_each_scored_alert_is_appended_to_its_objects_score_history():
    batch = make_batch(2, sn_likelihood=[0.9, 0.2], flare_likelihood=[0.05, 0.7])
    keys, pipe = Keys("p"), RecordingPipe()
    StateWriter(None, keys, None, "c", ttl_s=100, top_n=10)._scores(pipe, batch)
    ttl_s, keep, writes = scripted_writes(pipe)
    pushed = {key: json.loads(v) for key, v in writes.items() if key.startswith("p:scores:")}
    assert set(pushed) == {keys.score_history("obj0"), keys.score_history("obj1")}
    entry = pushed[keys.score_history("obj1")]
    assert entry["alertId"] == int(batch.alert_id[1]) and entry["model"] == batch.model_version
    assert entry["sn"] == pytest.approx(0.2) and entry["flare"] == pytest.approx(0.7)
    np.testing.assert_allclose(entry["probs"], batch.probs[1], atol=1e-5)
    assert entry["mjdTai"] == pytest.approx(float(batch.latest_mjd_tai[1]))
    assert (ttl_s, keep) == (100, SCORE_HISTORY_MAX)


def test_each_object_gets_its_packed_candidate_row():
    batch = make_batch(3, sn_likelihood=[0.9, 0.95, 0.2], flare_likelihood=[0.1, 0.99, 0.3],
                       n_visits=[5, 7, 9], ra_deg=[10.0, 200.5, 359.0],
                       context=np.stack([context_vector(ss_distance_arcsec=np.inf),
                                         context_vector(ss_distance_arcsec=0.0),
                                         context_vector(first_detection_mjd_tai=59990.5)]))
    keys, pipe = Keys("p"), RecordingPipe()
    StateWriter(None, keys, None, "c", ttl_s=100, top_n=10)._scores(pipe, batch)
    _, _, writes = scripted_writes(pipe)
    rows = np.frombuffer(b"".join(writes[keys.candidate_row(f"obj{i}")] for i in range(3)), dtype=state.ROW_DTYPE)
    np.testing.assert_allclose(rows["sn_likelihood"], [0.9, 0.95, 0.2], rtol=1e-6)
    np.testing.assert_allclose(rows["flare_likelihood"], [0.1, 0.99, 0.3], rtol=1e-6)
    assert rows["n_visits"].tolist() == [5, 7, 9] and rows["ra_deg"].tolist() == [10.0, 200.5, 359.0]
    assert rows["solar_system"].tolist() == [0, 1, 0] and rows["age_days"].tolist() == [0.5, 0.5, 10.0]
    assert (rows["updated_ms"] == batch.scored_ms).all()
    assert rows["top_class_id"].tolist() == [CLASS_IDS[int(k)] for k in batch.probs.argmax(axis=1)]


# The script itself, on the test stack's Redis: what a batch leaves there, as `stream.keys` describes it.
TTL_S = 100


@pytest.fixture
def written(stack):
    """A `StateWriter` on the test stack's Redis under a fresh prefix, with its client and keys."""
    client, keys = redis.Redis.from_url(stack["redis_url"]), Keys(f"state-{uuid.uuid4().hex[:8]}")
    writer = StateWriter(client, keys, HistoryStore(client, keys, TTL_S, 64), "c", ttl_s=TTL_S, top_n=10)
    yield writer, client, keys
    for key in client.scan_iter(match=f"{keys.prefix}:*"):
        client.delete(key)


@pytest.mark.integration
def test_a_batch_leaves_each_object_s_hash_row_and_history(written):
    writer, client, keys = written
    contexts = np.stack([context_vector(ss_distance_arcsec=np.inf, real_bogus=0.9),
                         context_vector(ss_distance_arcsec=0.0)])
    batch = make_batch(2, sn_likelihood=[0.9, 0.25], flare_likelihood=[0.05, 0.5], n_visits=[5, 7],
                       window_first_detection_mjd_tai=[60000.0, np.nan], context=contexts)
    writer.write_batch(batch, {}, lag=0, model_version="v1")

    first = {k.decode(): v.decode() for k, v in client.hgetall(keys.object_scores("obj0")).items()}
    assert set(first) == set(state.SCORE_FIELDS)
    assert first["alertId"] == "100" and float(first["snLikelihood"]) == pytest.approx(0.9)
    assert first["nVisits"] == "5" and first["solarSystem"] == "0" and first["survey"] == "rubin"
    assert first["ageDays"] == "0.5" and first["modelVersion"] == "v1"
    second = {k.decode() for k in client.hgetall(keys.object_scores("obj1"))}
    assert second == set(state.SCORE_FIELDS) - {"ageDays"}  # no first detection known: no age
    stored = unpack_context(client.hget(keys.object_scores("obj0"), "context"))
    np.testing.assert_array_equal(stored, contexts[0])

    rows = np.frombuffer(client.get(keys.candidate_row("obj1")), dtype=state.ROW_DTYPE)
    assert rows["n_visits"].tolist() == [7] and rows["solar_system"].tolist() == [1]
    (entry,) = [json.loads(v) for v in client.lrange(keys.score_history("obj1"), 0, -1)]
    assert entry["alertId"] == 101 and entry["flare"] == pytest.approx(0.5) and entry["model"] == "v1"
    for key in (keys.object_scores("obj1"), keys.candidate_row("obj1"), keys.score_history("obj1")):
        assert 0 < client.ttl(key) <= TTL_S


@pytest.mark.integration
def test_the_score_history_keeps_the_last_alerts(written):
    writer, client, keys = written
    for n in range(SCORE_HISTORY_MAX + 3):
        writer.write_batch(make_batch(1, alert_id=[1000 + n]), {}, lag=0, model_version="v1")
    kept = [json.loads(v)["alertId"] for v in client.lrange(keys.score_history("obj0"), 0, -1)]
    assert kept == list(range(1003, 1003 + SCORE_HISTORY_MAX))
    assert client.hget(keys.object_scores("obj0"), "alertId") == str(1002 + SCORE_HISTORY_MAX).encode()


@pytest.mark.integration
def test_a_batch_split_over_several_script_calls_writes_every_object(written, monkeypatch):
    writer, client, keys = written
    monkeypatch.setattr(state, "SCRIPT_OBJECTS_PER_CALL", 2)
    writer.write_batch(make_batch(5, sn_likelihood=[0.1, 0.2, 0.3, 0.4, 0.5]), {}, lag=0, model_version="v1")
    stored = [float(client.hget(keys.object_scores(f"obj{i}"), "snLikelihood")) for i in range(5)]
    assert stored == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    assert [client.llen(keys.score_history(f"obj{i}")) for i in range(5)] == [1] * 5
