"""Faults of the scorers themselves, under load: kill -9 at random points, a rebalance between two scorers
(SIGTERM of one, kill -9 of the other), model promotions that the scorers hot-swap to, and oversized messages.
Each checks with a read_committed reader that every input gave exactly one record."""
import os
import random
import signal
import time

import numpy as np
import pytest
import redis
import torch
from chaos_kit import FULL, RATE_PER_S, Stream, Supervisor, Tail, config_env, report, rubin_alerts, scaled, wait_for
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from models.checkpoint import save_checkpoint
from models.model import AlertTransformer, ModelConfig
from models.registry import ModelRegistry
from stream import avro_io
from stream.hotswap import announce
from stream.kafka_io import make_producer
from stream.keys import Keys

pytestmark = [pytest.mark.slow, pytest.mark.integration]
LIVENESS_S = 300  # a scorer that has not finished (or recovered) by then hung (not a speed figure)
PARTITIONS = 4  # of the chaos topics (conftest)
IDLE_TIMEOUT_S = 10.0  # a scorer exits 0 after this long without input: the end of each test's stream


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _exactly_once(tail: Tail, sent) -> list[dict]:
    records = [avro_io.decode(v)[1] for v in tail.stop()]
    ids = [r["alertId"] for r in records]
    expected = sorted(a.alert_id for a in sent)
    missing, duplicated = len(set(expected) - set(ids)), len(ids) - len(set(ids))
    assert (missing, duplicated) == (0, 0) and sorted(ids) == expected, f"missing {missing}, duplicated {duplicated}"
    return records


def test_scorer_kill_9_at_random_points_loses_and_duplicates_nothing(private_stack, chaos_config):
    kills, rng = scaled(2, 20), random.Random(61)
    tail = Tail(private_stack.bootstrap, chaos_config.topics.scored)
    stream = Stream(chaos_config, rubin_alerts(n_objects=scaled(40, 300), alerts_per_object=scaled(60, 50), seed=61))
    supervisor = Supervisor(os.environ | config_env(chaos_config), IDLE_TIMEOUT_S).start()
    recoveries_s, killed_ms = [], 0
    for _ in range(kills):
        # scoring again since the last kill, then a random point in the stream (in or between transactions)
        assert wait_for(lambda: tail.first_scored_after(killed_ms) is not None, LIVENESS_S), supervisor.exits
        time.sleep(rng.uniform(0.0, 3.0))
        killed_ms, killed = _wall_ms(), supervisor.signal(signal.SIGKILL)
        assert wait_for(lambda: tail.first_scored_after(killed_ms) is not None, LIVENESS_S), supervisor.exits
        recoveries_s.append(round(tail.first_scored_after(killed_ms) - killed, 1))
    sent = stream.stop(60)
    assert supervisor.join(LIVENESS_S), f"the scorer hung: exits so far {supervisor.exits}"
    _exactly_once(tail, sent)
    codes = supervisor.codes()
    assert codes.count(-signal.SIGKILL) == kills and set(codes) <= {0, 2, 3, -signal.SIGKILL} and codes[-1] == 0
    report("scorer kill -9", {"kills": kills, "alerts": len(sent), "missing": 0, "duplicated": 0,
                              "scorer_exits": codes, "first_scored_after_kill_s": recoveries_s})


def test_rebalance_between_two_scorers_sigterm_then_kill_9(private_stack, chaos_config):
    """Scorers a and b share the group. a stops (SIGTERM): b takes all partitions. a comes back, then b is
    killed (kill -9, not restarted): a takes over after the session timeout."""
    env = os.environ | config_env(chaos_config)
    instance = lambda name: env | {"ALERTFORMER_SCORING__INSTANCE_ID": name}  # noqa: E731
    client, keys = redis.Redis.from_url(private_stack.redis_url), Keys(chaos_config.redis.prefix)
    tail = Tail(private_stack.bootstrap, chaos_config.topics.scored)
    # at half the usual rate the reduced stream lasts 160 s, past both hand-overs and a's restart on a loaded
    # 2-core machine (at 80 s it once ran out before a came back, leaving a nothing to score); stopped after them
    stream = Stream(chaos_config, rubin_alerts(n_objects=scaled(40, 100), alerts_per_object=scaled(40, 60), seed=71),
                    rate_per_s=RATE_PER_S / 2)
    a, b = Supervisor(instance("a"), IDLE_TIMEOUT_S).start(), Supervisor(instance("b"), IDLE_TIMEOUT_S, False).start()

    def all_partitions_after(wall_ms: int) -> float | None:
        """When every input partition had a record scored after `wall_ms`: the survivor took them all."""
        firsts = [tail.first_scored_after(wall_ms, lambda r, p=p: r["partition"] == p) for p in range(PARTITIONS)]
        return None if None in firsts else max(firsts)

    def scoring(name: str, since_ms: int):  # the scorer's heartbeat shows alerts it committed since `since_ms`
        return lambda: (int(client.hget(keys.consumer(name), "alerts") or 0) > 0
                        and int(client.hget(keys.consumer(name), "heartbeatMs") or 0) > since_ms)

    takeover_s = {}
    started_ms = _wall_ms()
    assert wait_for(lambda: scoring("a", started_ms)() and scoring("b", started_ms)(), LIVENESS_S)
    stopped_ms, stopped = _wall_ms(), a.signal(signal.SIGTERM)
    assert a.join(60) and a.codes() == [0]  # a SIGTERM is a clean stop: committed, group left
    assert wait_for(lambda: all_partitions_after(stopped_ms) is not None, LIVENESS_S)
    takeover_s["sigterm"] = round(all_partitions_after(stopped_ms) - stopped, 1)

    back_ms, a = _wall_ms(), Supervisor(instance("a"), IDLE_TIMEOUT_S).start()
    assert wait_for(scoring("a", back_ms), LIVENESS_S)
    killed_ms, killed = _wall_ms(), b.signal(signal.SIGKILL)
    assert b.join(60) and b.codes() == [-signal.SIGKILL]
    assert wait_for(lambda: all_partitions_after(killed_ms) is not None, LIVENESS_S)
    takeover_s["kill_9"] = round(all_partitions_after(killed_ms) - killed, 1)

    sent = stream.stop(60)
    assert a.join(LIVENESS_S), f"the survivor hung: {a.exits}"
    assert a.codes() == [0]
    records = _exactly_once(tail, sent)
    # Each object's records stay in order across both hand-overs: one partition per object, offsets
    # increasing with alert time.
    by_object = {}
    for r in records:
        by_object.setdefault(r["objectId"], []).append((r["offset"], r["latestMjdTai"]))
    for rows in by_object.values():
        assert [mjd for _, mjd in sorted(rows)] == sorted(mjd for _, mjd in rows)
    report("two-scorer rebalance", {"alerts": len(sent), "missing": 0, "duplicated": 0,
                                    "all_partitions_scored_again_after_s": takeover_s})


def _tiny_checkpoint(path, seed: int):
    torch.manual_seed(seed)
    return save_checkpoint(path, AlertTransformer(ModelConfig(d_model=32, n_heads=2, n_layers=1)))


@pytest.mark.skipif(not FULL, reason="full scale only (make chaos): in the default run, tests/integration/"
                                      "test_hotswap.py promotes and rolls back under continuous load")
def test_model_promotions_under_load_are_hot_swapped_without_loss(private_stack, chaos_config, tmp_path):
    promotions = scaled(1, 3)
    registry = ModelRegistry(tmp_path / "registry")
    versions = [registry.register(_tiny_checkpoint(tmp_path / f"m{i}.pt", i), note=f"seed {i}").version
                for i in range(promotions + 1)]
    registry.promote(versions[0], "initial")
    env = os.environ | config_env(chaos_config) | {"ALERTFORMER_REGISTRY__PATH": str(registry.root),
                                                   "ALERTFORMER_REGISTRY__POLL_INTERVAL_S": "60"}
    client, keys = redis.Redis.from_url(private_stack.redis_url), Keys(chaos_config.redis.prefix)
    tail = Tail(private_stack.bootstrap, chaos_config.topics.scored)
    stream = Stream(chaos_config, rubin_alerts(n_objects=scaled(40, 100), alerts_per_object=scaled(30, 60), seed=81),
                    rate_per_s=scaled(40, 40))
    supervisor = Supervisor(env, IDLE_TIMEOUT_S).start()
    assert wait_for(lambda: tail.first_scored_after(0, lambda r: r["modelVersion"] == versions[0]), LIVENESS_S)
    swap_s = {}
    for version in versions[1:]:
        time.sleep(3.0)  # under load: alerts keep coming while the new model loads and swaps in
        registry.promote(version, "chaos promotion")
        promoted = time.monotonic()
        announce(client, keys, version)
        new = lambda r, v=version: r["modelVersion"] == v  # noqa: E731
        assert wait_for(lambda: tail.first_scored_after(0, new) is not None, LIVENESS_S), supervisor.exits
        swap_s[version] = round(tail.first_scored_after(0, new) - promoted, 1)
    time.sleep(3.0)
    sent = stream.stop(60)
    assert supervisor.join(LIVENESS_S), f"the scorer hung: {supervisor.exits}"
    assert supervisor.codes() == [0]
    records = _exactly_once(tail, sent)
    assert {r["modelVersion"] for r in records} == set(versions)  # every record names a model, each one served
    for p in range(PARTITIONS):  # per partition, in offset order, the versions follow the promotions: no flicker
        order = [versions.index(r["modelVersion"]) for r in sorted(records, key=lambda r: r["offset"])
                 if r["partition"] == p]
        assert order == sorted(order), p
    report("model swap under load", {"promotions": promotions, "alerts": len(sent), "missing": 0, "duplicated": 0,
                                      "records_per_version": {v: sum(r["modelVersion"] == v for r in records)
                                                              for v in versions},
                                      "first_scored_by_new_model_after_promotion_s": swap_s})


def test_oversized_messages_are_dead_lettered_as_oversized_under_load(private_stack, chaos_config):
    """Messages over kafka.max_input_message_bytes (here 1.5 MB; the input topic takes 6 MB) are dead letters
    with the reason `oversized`, cut to size; the alerts around them are scored."""
    topic = next(iter(chaos_config.topics.inputs))
    admin = AdminClient(chaos_config.kafka.client_config())
    entry = ConfigEntry("max.message.bytes", "6000000", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[entry])
    admin.incremental_alter_configs([resource])[resource].result(30)
    env = os.environ | config_env(chaos_config) | {"ALERTFORMER_KAFKA__MAX_INPUT_MESSAGE_BYTES": "1500000"}
    rng = np.random.default_rng(91)
    n_big = scaled(3, 20)
    bigs = [rng.bytes(int(rng.integers(1_600_000, 5_000_000))) for _ in range(n_big)]
    scored_tail = Tail(private_stack.bootstrap, chaos_config.topics.scored)
    dead_tail = Tail(private_stack.bootstrap, chaos_config.topics.deadletter)
    stream = Stream(chaos_config, rubin_alerts(n_objects=20, alerts_per_object=scaled(10, 30), seed=92))
    supervisor = Supervisor(env, IDLE_TIMEOUT_S).start()
    producer = make_producer(chaos_config.kafka, **{"message.max.bytes": 5_900_000})
    assert wait_for(lambda: scored_tail.arrivals, LIVENESS_S)
    for big in bigs:  # in the middle of the stream
        producer.produce(topic, big, b"huge")
        producer.poll(0)
        time.sleep(1.0)
    assert producer.flush(60) == 0
    sent = stream.join(LIVENESS_S)
    assert supervisor.join(LIVENESS_S), f"the scorer hung: {supervisor.exits}"
    assert supervisor.codes() == [0]
    _exactly_once(scored_tail, sent)
    dead = [avro_io.decode(v)[1] for v in dead_tail.stop()]
    assert sorted(d["payloadBytes"] for d in dead) == sorted(len(b) for b in bigs)
    assert all(d["reason"].startswith("oversized") and d["payloadTruncated"] for d in dead)
    report("oversized messages", {"alerts": len(sent), "oversized": n_big, "dead_letters": len(dead),
                                  "missing": 0, "duplicated": 0,
                                  "largest_bytes": max(len(b) for b in bigs)})
