"""The follow-up journal against a real Redis: one trigger per (rule, object), replays re-emit."""
import uuid

import numpy as np
import pytest
import redis

from stream.journal import FollowupJournal
from stream.keys import Keys
from models.context import N_CONTEXT
from models.taxonomy import N_CLASSES
from stream.rules import Trigger
from stream.scored import ScoredBatch

pytestmark = pytest.mark.integration
TTL_S = 3600


@pytest.fixture
def journal(stack):
    client = redis.Redis.from_url(stack["redis_url"])
    keys = Keys(prefix=f"test-{uuid.uuid4().hex[:10]}")
    yield FollowupJournal(client, keys, TTL_S)
    client.delete(*client.keys(f"{keys.prefix}:*") or ["none"])
    client.close()


def batch_of(object_ids, alert_ids) -> ScoredBatch:
    """A batch of the given objects and alert ids; the journal reads nothing else."""
    n = len(object_ids)
    zeros = np.zeros(n)
    return ScoredBatch(object_id=list(object_ids), alert_id=np.array(alert_ids, dtype=np.int64),
                       source_id=np.array(alert_ids, dtype=np.int64), survey=np.array(["rubin"] * n, dtype=object),
                       ra_deg=zeros, dec_deg=zeros, latest_mjd_tai=zeros, latest_flux_njy=zeros.astype(np.float32),
                       latest_band=np.zeros(n, dtype=np.int8), n_visits=np.ones(n, dtype=np.int32),
                       n_detections=np.ones(n, dtype=np.int32), probs=np.zeros((n, N_CLASSES), dtype=np.float32),
                       sn_likelihood=zeros.astype(np.float32), flare_likelihood=zeros.astype(np.float32),
                       model_version="v1", scored_ms=0, context=np.full((n, N_CONTEXT), np.nan),
                       window_first_detection_mjd_tai=zeros)


def test_same_object_twice_gives_one_trigger(journal):
    first = batch_of(["objA"], [1])
    assert journal.claim([Trigger(0, "young_sn")], first) == [Trigger(0, "young_sn")]
    later = batch_of(["objB", "objA"], [2, 3])
    assert journal.claim([Trigger(0, "young_sn"), Trigger(1, "young_sn")], later) == [Trigger(0, "young_sn")]
    stored = journal.redis.get(journal.keys.followup("young_sn", "objA"))
    assert stored == b"1"
    assert 0 < journal.redis.ttl(journal.keys.followup("young_sn", "objA")) <= TTL_S


def test_same_object_twice_in_one_batch_keeps_the_first(journal):
    batch = batch_of(["objA", "objA"], [10, 11])
    assert journal.claim([Trigger(0, "flare"), Trigger(1, "flare")], batch) == [Trigger(0, "flare")]


def test_replayed_alert_is_claimed_again(journal):
    batch = batch_of(["objA", "objB"], [7, 8])
    triggers = [Trigger(0, "young_sn"), Trigger(1, "young_sn")]
    assert journal.claim(triggers, batch) == triggers
    # The scorer crashed before the Kafka commit: the same alerts come again.
    assert journal.claim(triggers, batch) == triggers
    # A later alert of the same objects is not.
    assert journal.claim(triggers, batch_of(["objA", "objB"], [9, 10])) == []


def test_rules_are_independent(journal):
    batch = batch_of(["objA"], [5])
    assert journal.claim([Trigger(0, "young_sn")], batch) == [Trigger(0, "young_sn")]
    again = batch_of(["objA"], [6])
    assert journal.claim([Trigger(0, "young_sn"), Trigger(0, "flare")], again) == [Trigger(0, "flare")]


def test_no_triggers_no_round_trip(journal):
    assert journal.claim([], batch_of(["objA"], [1])) == []
