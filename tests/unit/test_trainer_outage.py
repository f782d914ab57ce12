"""The trainer waits out a Redis outage instead of rejecting labels as unknown objects."""
from types import SimpleNamespace

import redis

import training.refit_service as refit_service
from training.refit_service import TrainerService


class FlakyHistory:
    """Unreachable for the first `down` reads (counted as outages, answering {}), then answers; it is also the
    trainer's `RedisHealth` (outage count, new batch)."""

    def __init__(self, down: int):
        self.down, self.outages, self.reads = down, 0, 0

    def get(self, object_ids):
        self.reads += 1
        if self.reads <= self.down:
            self.outages += 1
            return {}
        return {o: f"curve-{o}" for o in object_ids}

    def new_batch(self):
        """RedisHealth's: after a timeout, skip Redis until the next batch (nothing to reset here)."""


def test_waits_for_redis(monkeypatch):
    monkeypatch.setattr(refit_service, "REDIS_RETRY_S", 0.0)
    monkeypatch.setattr(refit_service, "read_contexts",
                        lambda client, keys, ids, shown: {o: f"context-{o}" for o in ids})
    history = FlakyHistory(down=3)
    trainer = SimpleNamespace(history=history, redis_health=history, _stopping=False, redis=None, keys=None,
                              _champion_context_fields=dict)
    assert TrainerService._histories(trainer, ["a"]) == ({"a": "curve-a"}, {"a": "context-a"})
    assert trainer.history.reads == 4


def test_stopping_during_an_outage_commits_nothing(monkeypatch):
    monkeypatch.setattr(refit_service, "REDIS_RETRY_S", 0.0)
    history = FlakyHistory(down=10**9)
    trainer = SimpleNamespace(history=history, redis_health=history, _stopping=True)
    assert TrainerService._histories(trainer, ["a"]) is None


def test_a_context_read_that_fails_is_an_outage_and_is_retried(monkeypatch):
    monkeypatch.setattr(refit_service, "REDIS_RETRY_S", 0.0)
    calls = []

    def flaky_contexts(client, keys, ids, shown):
        calls.append(ids)
        if len(calls) == 1:
            raise redis.ConnectionError("gone")
        return {o: f"context-{o}" for o in ids}

    history = FlakyHistory(down=0)
    history.outage = lambda what, err: setattr(history, "outages", history.outages + 1)
    monkeypatch.setattr(refit_service, "read_contexts", flaky_contexts)
    trainer = SimpleNamespace(history=history, redis_health=history, _stopping=False, redis=None, keys=None,
                              _champion_context_fields=dict)
    assert TrainerService._histories(trainer, ["a"]) == ({"a": "curve-a"}, {"a": "context-a"})
    assert len(calls) == 2 and history.outages == 1
