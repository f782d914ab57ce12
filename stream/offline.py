"""Score a recorded stream the way `alertformer run` does, without Kafka or Redis.

`OfflineScoring` feeds messages, in order and in batches, through the service's own
steps: `stream.ingest.Ingest` (the decoders, with dead letters), `stream.window.build_windows`
over the object's stored curve, `stream.score.Scorer` (encode and forward in chunks),
`stream.publish.scored_batch` and the follow-up `stream.rules`. The stored curves live in a
dict instead of Redis, cut to the same length (`stream.history.last_points`). The
evaluation on real alert packets uses it, and a test checks that it gives the service's
probabilities for the same packets.
"""
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from models.lightcurve import LightCurve
from stream.config import FollowupRule
from stream.history import last_points
from stream.ingest import Ingest
from stream.publish import scored_batch
from stream.rules import Trigger, evaluate as evaluate_rules
from stream.scored import ScoredBatch
from stream.score import Scorer
from stream.window import build_windows

DEADLETTER_TOPIC = "deadletter"


@dataclass(frozen=True)
class RecordedMessage:
    """An alert as a Kafka message: the subset of `confluent_kafka.Message` that `Ingest` reads."""

    topic_name: str
    payload: bytes
    key_bytes: bytes | None = None
    partition_index: int = 0
    offset_index: int = 0
    timestamp_ms: int = 0

    def topic(self) -> str:
        return self.topic_name

    def value(self) -> bytes:
        return self.payload

    def key(self) -> bytes | None:
        return self.key_bytes

    def partition(self) -> int:
        return self.partition_index

    def offset(self) -> int:
        return self.offset_index

    def timestamp(self) -> tuple[int, int]:
        return 1, self.timestamp_ms  # TIMESTAMP_CREATE_TIME

    def headers(self) -> None:
        return None


@dataclass(frozen=True)
class OfflineBatch:
    """One batch's results: the scored alerts, the rules that fired, the messages dead-lettered."""

    scored: ScoredBatch
    triggers: list[Trigger]
    dead_letters: int


class OfflineScoring:
    """The service's decode → window → score → rules path over recorded messages.

    Parameters
    ----------
    scorer : Scorer
    formats : mapping of topic to alert format (``scoring``'s ``topics.inputs``)
    rules : sequence of FollowupRule
    max_points : int
        Points kept per stored curve (the service keeps ``HISTORY_POINTS_FACTOR * max_visits``).
    context_fields_by_survey : mapping of survey to context fields, optional
        What the windows' ``model_contexts`` show (`stream.window.build_windows`); default: the scorer's model's.
    """

    def __init__(self, scorer: Scorer | None, formats: dict[str, str], rules: Sequence[FollowupRule], max_points: int,
                 context_fields_by_survey: Mapping[str, tuple[str, ...]] | None = None):
        self.scorer, self.rules, self.max_points = scorer, list(rules), max_points
        self.context_fields_by_survey = (scorer.context_fields_by_survey if context_fields_by_survey is None
                                         else context_fields_by_survey)
        self.ingest = Ingest(formats, DEADLETTER_TOPIC)
        self.history: dict[str, LightCurve] = {}

    def run(self, messages: Iterable[RecordedMessage], batch_size: int) -> Iterable[OfflineBatch]:
        """Score `messages` in order, `batch_size` at a time; yields one `OfflineBatch` per batch with alerts."""
        for good, n_dead, windows in self.windows(messages, batch_size):
            scored = scored_batch(good, self.scorer.score(windows.curves, windows.model_contexts), windows)
            yield OfflineBatch(scored, evaluate_rules(self.rules, scored), n_dead)

    def windows(self, messages: Iterable[RecordedMessage], batch_size: int) -> Iterable[tuple]:
        """``(decoded alerts, dead letters, Windows)`` per batch with alerts: what the model is given."""
        messages = list(messages)
        for start in range(0, len(messages), batch_size):
            good, dead = self.ingest.batch(messages[start:start + batch_size])
            if not len(good):
                continue
            objects = good.alerts.object_id.tolist()
            history = {o: self.history[o] for o in objects if o in self.history}
            windows = build_windows(good.alerts, history, self.context_fields_by_survey)
            self.history.update((o, last_points(c, self.max_points)) for o, c in windows.merged.items())
            yield good, len(dead), windows
