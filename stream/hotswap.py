"""Hot-swap: follow the registry's champion and hand a loaded model to the loop between batches.

Promotion is announced on Redis pub/sub (``{prefix}:model:events``), which reaches every
scorer at once without consumer-group semantics (a Kafka control topic read by the scorers'
group would reach only one of them). Pub/sub drops messages to a disconnected subscriber,
so the watcher also re-reads the registry's champion every ``poll_interval_s``: a missed
notification costs at most that long, and Redis being down costs nothing but latency.

The checkpoint is loaded on the watcher's thread, off the hot path; the loop only swaps a
reference between two batches, so every batch is scored, and stamped, by one version.
"""
import logging
import threading
import time

import redis

from models.checkpoint import CheckpointMismatch
from models.registry import ModelRegistry, RegistryError
from stream.config import ScoringSettings
from stream.keys import Keys
from stream.score import Scorer

log = logging.getLogger(__name__)
REDIS_RETRY_S = 2.0  # wait before re-subscribing after a Redis error


def announce(client: redis.Redis, keys: Keys, version: str) -> None:
    """Tell every scorer that `version` is champion: the mirror key and a pub/sub event.

    Best effort: if Redis is down the scorers still find the version by polling the registry.
    """
    try:
        client.set(keys.champion, version)
        client.publish(keys.model_events, version)
    except redis.RedisError as err:
        log.warning("could not announce champion version=%s error=%s (scorers will poll)", version, err)


class ChampionWatcher:
    def __init__(self, registry: ModelRegistry, client: redis.Redis, keys: Keys, scoring: ScoringSettings,
                 serving_version: str, poll_interval_s: float):
        self.registry, self.client, self.keys = registry, client, keys
        self.scoring, self.poll_interval_s = scoring, poll_interval_s
        self._target = serving_version
        self._ready: Scorer | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="champion-watcher", daemon=True)

    def start(self) -> "ChampionWatcher":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.poll_interval_s + REDIS_RETRY_S)

    def take(self) -> Scorer | None:
        """The newly loaded scorer, once; None if there is none (called between batches)."""
        with self._lock:
            ready, self._ready = self._ready, None
        return ready

    def _run(self) -> None:
        pubsub = None
        while not self._stop.is_set():
            try:
                if pubsub is None:
                    pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(self.keys.model_events)
                pubsub.get_message(timeout=self.poll_interval_s)
            except redis.RedisError as err:
                log.warning("model events unavailable, polling the registry error=%s", err)
                pubsub = None
                self._stop.wait(REDIS_RETRY_S)
            self.check()
        if pubsub is not None:
            pubsub.close()

    def check(self) -> None:
        """Load the registry's champion if it is not the version served (or already loaded)."""
        champion = self.registry.champion()
        if champion is None or champion == self._target:
            return
        t0 = time.perf_counter()
        try:
            info = self.registry.get(champion)
            scorer = Scorer.from_file(info.checkpoint, champion, self.scoring)
        except (RegistryError, CheckpointMismatch, OSError) as err:
            log.error("cannot load champion version=%s error=%s; keeping the current model", champion, err)
            return
        with self._lock:
            self._ready, self._target = scorer, champion
        log.info("champion loaded version=%s load_ms=%.0f", champion, (time.perf_counter() - t0) * 1e3)
