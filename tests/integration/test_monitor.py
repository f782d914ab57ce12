"""The monitor reads the state the scorers write (key names from stream.keys) from a real Redis and shows it."""
import time
import uuid

import pytest
import redis

from stream.keys import Keys
from stream.monitor import STALE_AFTER_S, read_state, render

pytestmark = pytest.mark.integration


@pytest.fixture
def client_and_keys(stack):
    client = redis.Redis.from_url(stack["redis_url"], decode_responses=True)
    keys = Keys(prefix=f"test-{uuid.uuid4().hex[:10]}")
    yield client, keys
    client.delete(*client.keys(f"{keys.prefix}:*") or ["none"])
    client.close()


def write_state(client: redis.Redis, keys: Keys) -> int:
    now_ms = int(time.time() * 1000)
    stale_ms = now_ms - int((STALE_AFTER_S + 60) * 1000)
    client.set(keys.champion, "v7")
    client.zadd(keys.consumers, {"host-a-101": now_ms, "host-b-202": stale_ms})
    client.hset(keys.consumer("host-a-101"), mapping={
        "alerts": 12345, "deadLetters": 3, "batches": 40, "aborts": 2, "redisOutages": 1, "alertsPerS": 850.25,
        "latencyP50Ms": 121.4, "latencyP95Ms": 345.6, "latencyP99Ms": 812.0, "lag": 77, "modelVersion": "v7",
        "heartbeatMs": now_ms, "host": "host-a", "pid": 101})
    client.hset(keys.consumer("host-b-202"), mapping={"alerts": 5, "alertsPerS": 0, "modelVersion": "v6",
                                                      "heartbeatMs": stale_ms})
    client.zadd(keys.top("sn"), {"obj-sn-1": 0.97, "obj-sn-2": 0.91, "obj-sn-3": 0.5})
    client.zadd(keys.top("flare"), {"obj-flare-1": 0.99})
    client.hset(keys.object_scores("obj-sn-1"), mapping={
        "alertId": 555001, "snLikelihood": 0.97, "flareLikelihood": 0.01, "topClassId": 2222, "nVisits": 6,
        "latestMjdTai": 60123.45678, "raDeg": 150.12345, "decDeg": -2.5, "modelVersion": "v7", "updatedMs": now_ms})
    client.hset(keys.object_scores("obj-flare-1"), mapping={
        "alertId": 555002, "snLikelihood": 0.0, "flareLikelihood": 0.99, "topClassId": 2233, "nVisits": 2,
        "modelVersion": "v7", "updatedMs": now_ms})
    # obj-sn-2 and obj-sn-3 have no hash (expired): still listed, with "-".
    return now_ms


def test_read_state_returns_what_was_written(client_and_keys):
    client, keys = client_and_keys
    write_state(client, keys)
    state = read_state(client, keys, top_n=2)
    assert state["champion"] == "v7" and state["prefix"] == keys.prefix
    by_id = {c["id"]: c for c in state["consumers"]}
    assert by_id.keys() == {"host-a-101", "host-b-202"}
    assert by_id["host-a-101"]["alerts"] == "12345" and by_id["host-a-101"]["lag"] == "77"
    assert [o["objectId"] for o in state["top"]["sn"]] == ["obj-sn-1", "obj-sn-2"]  # top 2, best first
    assert state["top"]["sn"][0]["score"] == pytest.approx(0.97)
    assert state["top"]["sn"][1].keys() == {"objectId", "score"}  # its hash expired
    assert state["top"]["flare"][0]["topClassId"] == "2233"


def test_render_shows_consumers_champion_and_candidates(client_and_keys):
    client, keys = client_and_keys
    write_state(client, keys)
    frame = render(read_state(client, keys, top_n=10))
    print(frame)
    assert "champion=v7" in frame
    live_line = next(line for line in frame.splitlines() if line.startswith("host-a-101"))
    for shown in ("12345", "850.2", "121", "346", "812", "77", "3", "2", "1", "v7"):
        assert shown in live_line.split()
    assert "STALE" not in live_line
    stale_line = next(line for line in frame.splitlines() if line.startswith("host-b-202"))
    assert stale_line.endswith("STALE") and "v6" in stale_line
    assert "consumers: 2 (1 live), 850.2 alerts/s live" in frame
    sn_row = next(line for line in frame.splitlines() if "obj-sn-1" in line).split()
    assert {"0.970", "0.010", "Ia", "6", "60123.45678", "150.12345", "-2.50000", "555001"} <= set(sn_row)
    assert "obj-sn-3" in frame
    flare_row = next(line for line in frame.splitlines() if "obj-flare-1" in line)
    assert "0.990" in flare_row and "M-dwarf Flare" in flare_row


def test_render_with_bytes_client_and_empty_prefix(stack):
    client = redis.Redis.from_url(stack["redis_url"])  # bytes replies
    keys = Keys(prefix=f"test-{uuid.uuid4().hex[:10]}")
    write_state(client, keys)
    try:
        state = read_state(client, keys, top_n=1)
        assert state["champion"] == "v7" and state["top"]["sn"][0]["objectId"] == "obj-sn-1"
        assert "consumers: none" in render(read_state(client, Keys(prefix=f"empty-{uuid.uuid4().hex}"), top_n=5))
    finally:
        client.delete(*client.keys(f"{keys.prefix}:*"))
        client.close()
