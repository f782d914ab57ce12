"""Every Redis key alertformer uses, in one place. All start with the configured prefix.

==============================================  ======  =====================================================
key                                             type    content
==============================================  ======  =====================================================
``{p}:lc:{objectId}``                           string  the object's stored light curve (`models.lightcurve`
                                                        packed by `stream.history`), TTL ``history_ttl_s``
``{p}:obj:{objectId}``                          hash    latest scores: ``alertId``, ``snLikelihood``,
                                                        ``flareLikelihood``, ``topClassId``, ``nVisits``,
                                                        ``latestMjdTai``, ``raDeg``, ``decDeg``,
                                                        ``modelVersion``, ``updatedMs``; TTL ``history_ttl_s``
``{p}:top:sn`` / ``{p}:top:flare``              zset    objectId → latest snLikelihood / flareLikelihood,
                                                        trimmed to the best ``top_n``
``{p}:consumers``                               zset    consumer id → last heartbeat (ms since epoch)
``{p}:consumer:{id}``                           hash    counters (``alerts``, ``deadLetters``, ``batches``,
                                                        ``aborts``, ``redisOutages``, ``redisSkippedCalls``,
                                                        ``droppedPoints``, ``droppedStoredPoints``), ``alertsPerS``,
                                                        ``latencyP50Ms``/``P95``/``P99`` (Kafka timestamp →
                                                        publish), ``lag``, ``modelVersion``, ``heartbeatMs``,
                                                        ``host``, ``pid``
``{p}:model:champion``                          string  version of the promoted model
``{p}:model:events``                            pubsub  a promotion or rollback: the new champion version
``{p}:followup:{rule}:{objectId}``              string  alertId that triggered `rule` for the object (SET NX:
                                                        one trigger per object and rule)
==============================================  ======  =====================================================
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "alertformer"

    def light_curve(self, object_id: str) -> str:
        return f"{self.prefix}:lc:{object_id}"

    def object_scores(self, object_id: str) -> str:
        return f"{self.prefix}:obj:{object_id}"

    def top(self, score: str) -> str:
        """``score`` is ``"sn"`` or ``"flare"``."""
        return f"{self.prefix}:top:{score}"

    @property
    def consumers(self) -> str:
        return f"{self.prefix}:consumers"

    def consumer(self, consumer_id: str) -> str:
        return f"{self.prefix}:consumer:{consumer_id}"

    @property
    def champion(self) -> str:
        return f"{self.prefix}:model:champion"

    @property
    def model_events(self) -> str:
        return f"{self.prefix}:model:events"

    def followup(self, rule: str, object_id: str) -> str:
        return f"{self.prefix}:followup:{rule}:{object_id}"
