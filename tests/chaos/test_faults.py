"""A frozen Redis and a stream of fuzzed packets, under load: scoring goes on, every input yields exactly
one scored record or one dead letter, and nothing non-finite is published."""
import io
import math
import os
import signal
import time
from dataclasses import dataclass

import fastavro
import numpy as np
import pytest
import redis
from chaos_kit import Stream, Supervisor, Tail, config_env, report, rubin_alerts, scaled, wait_for

from stream import avro_io
from stream.decode import encode_rubin
from stream.decode.rubin import _parsed_schema, schema_id
from stream.keys import Keys

pytestmark = [pytest.mark.slow, pytest.mark.integration]
LIVENESS_S = 300  # a scorer that has not finished by then hung (not a speed figure)
RUBIN_VERSION = "10.0"


def test_frozen_redis_slows_scoring_for_one_timeout_per_batch(private_stack, chaos_config):
    alerts = rubin_alerts(n_objects=scaled(20, 100), alerts_per_object=scaled(12, 30), seed=41)
    tail = Tail(private_stack.bootstrap, chaos_config.topics.scored)
    producing = Stream(chaos_config, alerts)
    supervisor = Supervisor(os.environ | config_env(chaos_config)).start()
    assert wait_for(lambda: tail.arrivals, 180)
    frozen_s = scaled(6, 20)
    private_stack.signal_redis(signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        time.sleep(frozen_s)
    finally:
        private_stack.signal_redis(signal.SIGCONT)
    resumed = time.monotonic()
    scored_while_frozen = sum(1 for t, _ in tail.arrivals if stopped < t < resumed)

    producing.join(LIVENESS_S)
    assert supervisor.join(LIVENESS_S), f"the scorer hung: {supervisor.exits}"
    records = [avro_io.decode(v)[1] for v in tail.stop()]
    assert sorted(r["alertId"] for r in records) == sorted(a.alert_id for a in alerts)
    assert [code for _, code, _ in supervisor.exits] == [0]  # a Redis outage never stops the scorer
    consumer = redis.Redis.from_url(private_stack.redis_url).hgetall(
        Keys(chaos_config.redis.prefix).consumer(chaos_config.scoring.instance_id))
    assert int(consumer[b"redisOutages"]) > 0 and int(consumer[b"redisSkippedCalls"]) > 0
    report("redis SIGSTOP", {"frozen_s": frozen_s, "alerts": len(alerts), "scored_while_frozen": scored_while_frozen,
                             "redis_outages": int(consumer[b"redisOutages"]),
                             "redis_skipped_calls": int(consumer[b"redisSkippedCalls"])})


def test_redis_kill_9_and_restart_does_not_stop_scoring(private_stack, chaos_config):
    alerts = rubin_alerts(n_objects=scaled(20, 100), alerts_per_object=scaled(10, 30), seed=43)
    tail = Tail(private_stack.bootstrap, chaos_config.topics.scored)
    producing = Stream(chaos_config, alerts)
    supervisor = Supervisor(os.environ | config_env(chaos_config)).start()
    assert wait_for(lambda: tail.arrivals, 180)
    private_stack.signal_redis(signal.SIGKILL)
    time.sleep(scaled(3, 10))
    restarted = private_stack.up()  # starts Redis again (empty: it keeps nothing on disk here)
    client = redis.Redis.from_url(private_stack.redis_url)
    key = Keys(chaos_config.redis.prefix).consumer(chaos_config.scoring.instance_id)
    state_back = wait_for(lambda: client.exists(key), 120)
    state_back_s = round(time.monotonic() - restarted, 1) if state_back else None

    producing.join(LIVENESS_S)
    assert supervisor.join(LIVENESS_S), f"the scorer hung: {supervisor.exits}"
    records = [avro_io.decode(v)[1] for v in tail.stop()]
    assert sorted(r["alertId"] for r in records) == sorted(a.alert_id for a in alerts)
    assert [code for _, code, _ in supervisor.exits] == [0]
    assert int(client.hget(key, "redisOutages")) > 0
    report("redis kill -9 + restart", {"alerts": len(alerts), "state_written_after_restart_s": state_back_s,
                                       "redis_outages": int(client.hget(key, "redisOutages"))})


@dataclass(frozen=True)
class Packet:
    key: bytes
    value: bytes


def _implausible(value: bytes, rng: np.random.Generator) -> bytes:
    """The alert re-encoded with one finite but impossible value, in its own source or in its history."""
    record = fastavro.schemaless_reader(io.BytesIO(value[5:]), _parsed_schema(schema_id(RUBIN_VERSION)))
    target = record["diaSource"] if not record["prvDiaSources"] or rng.random() < 0.5 else record["prvDiaSources"][0]
    field, bad = [("midpointMjdTai", -1e300), ("ra", 720.0), ("dec", 200.0), ("psfFlux", 1e30),
                  ("midpointMjdTai", 1e9)][rng.integers(5)]
    target[field] = bad
    return encode_rubin(record, RUBIN_VERSION)


def fuzzed(good, n: int, seed: int) -> list[Packet]:
    """`n` packets: bit flips, cuts, garbage, impossible values, and untouched alerts, mixed."""
    rng = np.random.default_rng(seed)
    packets = []
    for i in range(n):
        source = good[int(rng.integers(len(good)))]
        value = bytearray(source.value)
        kind = int(rng.integers(5))
        if kind == 0:
            for _ in range(int(rng.integers(1, 6))):
                value[int(rng.integers(len(value)))] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            value = value[:int(rng.integers(len(value)))]
        elif kind == 2:
            value = bytearray(rng.bytes(int(rng.integers(0, 2000))))
        elif kind == 3:
            value = bytearray(_implausible(bytes(value), rng))
        packets.append(Packet(source.key, bytes(value)))
    return packets


def test_fuzzed_packets_each_give_one_output_and_nothing_non_finite(private_stack, chaos_config):
    good = rubin_alerts(n_objects=20, alerts_per_object=5, seed=51)
    packets = fuzzed(good, scaled(300, 12_000), seed=52)
    scored_tail = Tail(private_stack.bootstrap, chaos_config.topics.scored)
    dead_tail = Tail(private_stack.bootstrap, chaos_config.topics.deadletter)
    producing = Stream(chaos_config, packets, rate_per_s=scaled(100, 500))
    supervisor = Supervisor(os.environ | config_env(chaos_config)).start()
    producing.join(LIVENESS_S)
    assert supervisor.join(LIVENESS_S), f"the scorer hung: {supervisor.exits}"
    scored = [avro_io.decode(v)[1] for v in scored_tail.stop()]
    dead = [avro_io.decode(v)[1] for v in dead_tail.stop()]

    outputs = [(r["partition"], r["offset"]) for r in scored] + [(d["partition"], d["offset"]) for d in dead]
    assert len(outputs) == len(set(outputs)) == len(packets)  # one output per input
    assert [code for _, code, _ in supervisor.exits] == [0]
    for r in scored:
        assert all(math.isfinite(c["probability"]) for c in r["classProbabilities"])
        assert math.isfinite(r["snLikelihood"]) and 0 <= r["raDeg"] < 360 and -90 <= r["decDeg"] <= 90
        assert 57_000 < r["latestMjdTai"] < 67_000
    assert all(d["reason"] for d in dead)
    report("fuzzed packets", {"packets": len(packets), "scored": len(scored), "dead_letters": len(dead),
                              "reasons": sorted({d["reason"].split(":")[0][:40] for d in dead})[:10]})
