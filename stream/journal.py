"""The follow-up journal in Redis: one follow-up request per (rule, object).

Each claim is ``SET {p}:followup:{rule}:{objectId} <alertId> NX EX ttl_s``
followed by a ``GET`` of the same key; a trigger is this alert's when the stored
value is its alertId. That covers two cases:

- first time: SET NX stores the alertId, the GET returns it → claimed;
- a replay of the same alert (the scorer crashed after Redis but before the
  Kafka commit, and the batch is read again): SET NX does nothing, the stored
  value is still this alertId → claimed again, so the request is re-emitted
  instead of lost. The Kafka transaction that carries the follow-up record with
  the consumer offsets makes the output exactly once: the aborted attempt's
  record is never visible to read_committed consumers.

Another alert of an already-triggered object finds a different alertId and is
dropped. After ``ttl_s`` the entry expires and the object may trigger the rule
again. The whole batch is one pipelined MULTI/EXEC: one round trip. Plain
``SET NX`` + ``GET`` (rather than ``SET NX GET``) keeps Redis < 7 supported.
"""
from collections.abc import Sequence

import redis

from stream.keys import Keys
from stream.rules import Trigger
from stream.scored import ScoredBatch


class FollowupJournal:
    """Claims (rule, object) pairs in Redis so that each fires once.

    Parameters
    ----------
    redis_client : redis.Redis
        Connection to the state store (``decode_responses`` either way).
    keys : Keys
        Key names with the configured prefix.
    ttl_s : int
        Lifetime of a journal entry (seconds); afterwards the object can trigger
        the same rule again.
    """

    def __init__(self, redis_client: redis.Redis, keys: Keys, ttl_s: int):
        self.redis, self.keys, self.ttl_s = redis_client, keys, ttl_s

    def claim(self, triggers: Sequence[Trigger], batch: ScoredBatch) -> list[Trigger]:
        """The triggers that are this batch's to emit: (rule, object) not claimed by another alert.

        Parameters
        ----------
        triggers : sequence of Trigger
            From `stream.rules.evaluate` over `batch`, in input order; when one
            object triggers a rule twice in the batch, the earlier alert wins.
        batch : ScoredBatch

        Returns
        -------
        list of Trigger
            The claimed subset, in the order given; each (rule, object) at most once.

        Raises
        ------
        redis.RedisError
            If Redis cannot be reached; nothing is claimed then.
        """
        firsts: dict[str, Trigger] = {}
        for t in triggers:
            firsts.setdefault(self.keys.followup(t.rule, batch.object_id[t.index]), t)
        if not firsts:
            return []
        pipe = self.redis.pipeline(transaction=True)
        for key, t in firsts.items():
            pipe.set(key, int(batch.alert_id[t.index]), nx=True, ex=self.ttl_s)
            pipe.get(key)
        stored = pipe.execute()[1::2]  # (set result, stored value) per key
        return [t for t, value in zip(firsts.values(), stored)
                if value is not None and int(value) == int(batch.alert_id[t.index])]
