"""The trainer waits out a Redis outage instead of rejecting labels as unknown objects."""
from types import SimpleNamespace

import training.refit_service as refit_service
from training.refit_service import TrainerService


class FlakyHistory:
    """Unreachable for the first `down` reads (counted as outages, answering {}), then answers."""

    def __init__(self, down: int):
        self.down, self.outages, self.reads = down, 0, 0

    def get(self, object_ids):
        self.reads += 1
        if self.reads <= self.down:
            self.outages += 1
            return {}
        return {o: f"curve-{o}" for o in object_ids}

    def new_batch(self):
        """HistoryStore's: after a timeout, skip Redis until the next batch (nothing to reset here)."""


def test_waits_for_redis(monkeypatch):
    monkeypatch.setattr(refit_service, "REDIS_RETRY_S", 0.0)
    trainer = SimpleNamespace(history=FlakyHistory(down=3), _stopping=False)
    assert TrainerService._histories(trainer, ["a"]) == {"a": "curve-a"}
    assert trainer.history.reads == 4


def test_stopping_during_an_outage_commits_nothing(monkeypatch):
    monkeypatch.setattr(refit_service, "REDIS_RETRY_S", 0.0)
    trainer = SimpleNamespace(history=FlakyHistory(down=10**9), _stopping=True)
    assert TrainerService._histories(trainer, ["a"]) is None
