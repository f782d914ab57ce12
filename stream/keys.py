"""Every Redis key alertformer uses, in one place. All start with the configured prefix.

==============================================  ======  =====================================================
key                                             type    content
==============================================  ======  =====================================================
``{p}:lc:{objectId}``                           string  the object's stored light curve (`models.lightcurve`
                                                        packed by `stream.history`), TTL ``history_ttl_s``
``{p}:obj:{objectId}``                          hash    latest scores: ``alertId``, ``snLikelihood``,
                                                        ``flareLikelihood``, ``topClassId``, ``nVisits``,
                                                        ``latestMjdTai``, ``raDeg``, ``decDeg``,
                                                        ``modelVersion``, ``updatedMs``, ``ageDays`` (first
                                                        detection → latest alert; absent if unknown),
                                                        ``solarSystem`` (1: a known solar-system object),
                                                        ``survey``, ``context`` (the alert context,
                                                        `stream.state.pack_context`); TTL ``history_ttl_s``
``{p}:row:{objectId}``                          string  the latest scores again as one packed record
                                                        (`stream.state.ROW_DTYPE`), so the web view reads a
                                                        thousand candidates in one MGET; TTL ``history_ttl_s``
``{p}:scores:{objectId}``                       list    the object's scored alerts, oldest first, the last
                                                        `SCORE_HISTORY_MAX`: JSON ``{"alertId", "mjdTai",
                                                        "scoredMs", "probs" (in `models.taxonomy.CLASS_IDS`
                                                        order), "sn", "flare", "model"}``; a re-scored alert
                                                        (after a crash) may appear twice (readers keep its
                                                        last); TTL ``history_ttl_s``
``{p}:top:sn:{bucket}`` / ``{p}:top:flare:…``   zset    objectId → snLikelihood / flareLikelihood of the
                                                        objects scored in that time bucket (`top_bucket`:
                                                        updatedMs // 300,000), trimmed to the best
                                                        ``top_n``, no solar-system objects; TTL a day
``{p}:consumers``                               zset    consumer id → last heartbeat (ms since epoch); a
                                                        clean stop removes the consumer
``{p}:consumer:{id}``                           hash    counters (``alerts``, ``deadLetters``, ``batches``,
                                                        ``aborts``, ``redisOutages``, ``redisSkippedCalls``,
                                                        ``droppedPoints``, ``droppedStoredPoints``); over the
                                                        last minute ``alertsPerS`` (alerts and dead letters)
                                                        and ``latencyP50Ms``/``P95``/``P99`` (Kafka timestamp
                                                        → publish; absent if none), since the start
                                                        ``alertsPerSTotal``, ``latencyP50MsTotal``/…;
                                                        ``startedMs``, ``deadLetterReasons`` (JSON: error type →
                                                        count), ``lag``, ``modelVersion``,
                                                        ``heartbeatMs``, ``host``, ``pid``; ``stoppedMs`` after
                                                        a clean stop (then a TTL)
``{p}:model:champion``                          string  version of the promoted model
``{p}:model:events``                            pubsub  a promotion or rollback: the new champion version
``{p}:followup:{rule}:{objectId}``              string  alertId that triggered `rule` for the object (SET NX:
                                                        one trigger per object and rule)
==============================================  ======  =====================================================
"""
from dataclasses import dataclass

# Top candidates are kept per time bucket: a list ranked by the latest score among objects updated recently,
# without old objects holding the top for good. A bucket lives for TOP_KEEP_S after its last write.
TOP_BUCKET_MS = 300_000
TOP_KEEP_S = 24 * 3600
SCORE_HISTORY_MAX = 500  # scored alerts kept per object: years of a Rubin field's visits


def top_bucket(wall_ms: int) -> int:
    """The top-candidate bucket of a time (ms since the epoch)."""
    return wall_ms // TOP_BUCKET_MS


@dataclass(frozen=True)
class Keys:
    prefix: str = "alertformer"

    def light_curve(self, object_id: str) -> str:
        return f"{self.prefix}:lc:{object_id}"

    def object_scores(self, object_id: str) -> str:
        return f"{self.prefix}:obj:{object_id}"

    def candidate_row(self, object_id: str) -> str:
        return f"{self.prefix}:row:{object_id}"

    def score_history(self, object_id: str) -> str:
        return f"{self.prefix}:scores:{object_id}"

    def top(self, score: str, bucket: int) -> str:
        """``score`` is ``"sn"`` or ``"flare"``; `bucket` a time bucket (`top_bucket`)."""
        return f"{self.prefix}:top:{score}:{bucket}"

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
