"""A frozen Redis costs one timeout per batch: after the first timeout, the batch's other Redis calls are
skipped and counted, and the next batch tries again."""
import redis

from models.lightcurve import LightCurve
from stream.history import HistoryStore
from stream.keys import Keys
from stream.state import StateWriter


class FrozenRedis:
    """Every call times out, as a SIGSTOPped Redis does; counts the calls that reached it."""

    def __init__(self):
        self.calls = 0

    def mget(self, keys):
        self.calls += 1
        raise redis.TimeoutError("Timeout reading from socket")

    def pipeline(self, transaction=False):
        return self

    def set(self, *args, **kwargs): pass
    def hset(self, *args, **kwargs): pass
    def zadd(self, *args, **kwargs): pass
    def expire(self, *args, **kwargs): pass
    def zremrangebyrank(self, *args, **kwargs): pass
    def hdel(self, *args, **kwargs): pass

    def execute(self):
        self.calls += 1
        raise redis.TimeoutError("Timeout reading from socket")


def _curve() -> LightCurve:
    return LightCurve.from_arrays([1], [60000.5], [2], [100.0], [10.0], [True])


def test_after_a_timeout_the_rest_of_the_batch_skips_redis():
    client = FrozenRedis()
    history = HistoryStore(client, Keys("t"), ttl_s=60, max_points=10)
    state = StateWriter(client, Keys("t"), history, "c1", ttl_s=60, top_n=10, health=history.health)
    for batch in range(3):
        history.health.new_batch()
        assert history.get(["a", "b"]) == {}  # times out: no history
        state.write_batch(None, {"a": _curve()}, lag=None, model_version="m")  # skipped
        history.put({"a": _curve()})  # skipped
        assert client.calls == batch + 1  # one call reached the frozen Redis per batch
    assert history.health.outages == 3 and history.health.skipped_calls == 6
    assert state.consumer_fields("m", None)["redisSkippedCalls"] == 6


def test_a_refused_connection_does_not_skip_the_rest_of_the_batch():
    class Refusing(FrozenRedis):
        def mget(self, keys):
            self.calls += 1
            raise redis.ConnectionError("Connection refused")

        def execute(self):
            self.calls += 1
            raise redis.ConnectionError("Connection refused")

    client = Refusing()
    history = HistoryStore(client, Keys("t"), ttl_s=60, max_points=10)
    history.health.new_batch()
    history.get(["a"])
    history.put({"a": _curve()})
    assert client.calls == 2 and history.health.skipped_calls == 0 and history.health.outages == 2
