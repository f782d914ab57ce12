"""The scores a batch leaves in a real Redis (`stream.state.WRITE_SCORES_LUA`): each object's hash, candidate row and
score history, with their TTLs, as `stream.keys` describes them."""
import json
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import redis

from models.context import context_vector
from stream import state
from stream.history import HistoryStore
from stream.keys import SCORE_HISTORY_MAX, Keys
from stream.state import StateWriter, unpack_context

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_rules import make_batch  # noqa: E402 (the unit tests' batch maker)

TTL_S = 100


@pytest.fixture
def written(stack):
    """A `StateWriter` on the test stack's Redis under a fresh prefix, with its client and keys."""
    client, keys = redis.Redis.from_url(stack["redis_url"]), Keys(f"state-{uuid.uuid4().hex[:8]}")
    writer = StateWriter(client, keys, HistoryStore(client, keys, TTL_S, 64), "c", ttl_s=TTL_S, top_n=10)
    yield writer, client, keys
    for key in client.scan_iter(match=f"{keys.prefix}:*"):
        client.delete(key)


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


def test_the_score_history_keeps_the_last_alerts(written):
    writer, client, keys = written
    for n in range(SCORE_HISTORY_MAX + 3):
        writer.write_batch(make_batch(1, alert_id=[1000 + n]), {}, lag=0, model_version="v1")
    kept = [json.loads(v)["alertId"] for v in client.lrange(keys.score_history("obj0"), 0, -1)]
    assert kept == list(range(1003, 1003 + SCORE_HISTORY_MAX))
    assert client.hget(keys.object_scores("obj0"), "alertId") == str(1002 + SCORE_HISTORY_MAX).encode()


def test_a_batch_split_over_several_script_calls_writes_every_object(written, monkeypatch):
    writer, client, keys = written
    monkeypatch.setattr(state, "SCRIPT_OBJECTS_PER_CALL", 2)
    writer.write_batch(make_batch(5, sn_likelihood=[0.1, 0.2, 0.3, 0.4, 0.5]), {}, lag=0, model_version="v1")
    stored = [float(client.hget(keys.object_scores(f"obj{i}"), "snLikelihood")) for i in range(5)]
    assert stored == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    assert [client.llen(keys.score_history(f"obj{i}")) for i in range(5)] == [1] * 5
