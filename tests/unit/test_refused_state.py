"""A scored alert whose output the producer refused is dead-lettered in the committed transaction, so its
scores must reach neither Redis, nor the webhook, nor the run summary (`stream.service.Finished.without`)."""
import numpy as np
from fakes import FakeMessage
from test_rules import make_batch

from stream.service import Finished


def finished(n: int) -> tuple[Finished, list]:
    messages = [FakeMessage(str(i).encode()) for i in range(n)]
    batch = make_batch(n, sn_likelihood=np.linspace(0.1, 0.9, n), n_visits=np.arange(3, 3 + n))
    requests = [{"objectId": "obj1", "rule": "young_sn"}, {"objectId": "obj3", "rule": "flare"}]
    return Finished(batch, {}, n, 2, 0, requests, scored_messages=messages, request_rows=[1, 3]), messages


def test_the_refused_inputs_alerts_and_requests_are_left_out():
    done, messages = finished(4)
    kept = done.without([messages[1]])
    assert kept.batch.object_id == ["obj0", "obj2", "obj3"]
    assert kept.batch.n_visits.tolist() == [3, 5, 6] and kept.batch.probs.shape[0] == 3
    np.testing.assert_allclose(kept.batch.sn_likelihood, done.batch.sn_likelihood[[0, 2, 3]])
    assert (kept.n_scored, kept.n_dead) == (3, 3) and kept.dead_reasons["refused_output"] == 1
    assert kept.requests == [{"objectId": "obj3", "rule": "flare"}] and kept.request_rows == [2]
    assert kept.scored_messages == [messages[0], messages[2], messages[3]]


def test_nothing_refused_leaves_the_batch_as_it_is():
    done, messages = finished(4)
    assert done.without([]) is done
    assert done.without([FakeMessage(b"other")]) is done  # a dead letter of another stage: not a scored row


def test_every_input_refused_leaves_no_batch():
    done, messages = finished(4)
    kept = done.without(messages)
    assert kept.batch is None and kept.n_scored == 0 and kept.requests == []
