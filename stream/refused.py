"""Outputs refused for themselves (too large, invalid), and the batch rebuilt with their inputs dead-lettered.

A refusal comes either from ``produce()`` (librdkafka's own size check) or, after ``produce()``
returned, in a delivery report (the broker's: ``MSG_SIZE_TOO_LARGE``, ``INVALID_RECORD``, ...).
Either way the transaction cannot keep the batch as it was: the loop aborts it and produces the
batch again, each refused output's input now one dead letter in place of all of that input's
outputs (so an input never has both a dead letter and a classification).

A broker refuses a whole produce request, which carries every record batched for one partition:
the reports name the guilty record and the innocent ones sent with it alike. So each round
dead-letters only the largest refused record of each partition and retries the others.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from confluent_kafka import KafkaError, Message

from stream.errors import Fatal, ProduceRefused
from stream.kafka_io import is_record_error

if TYPE_CHECKING:
    from stream.loop import Output


class Refused:
    """The refusals of one batch's outputs, over the rounds of its transaction."""

    def __init__(self, dead_letter: Callable[[Message, Exception], Output] | None):
        self.dead_letter = dead_letter
        self._dead: dict[int, Output] = {}  # id(input message) -> its dead letter
        self._new: list[tuple[Output, KafkaError, int | None]] = []  # (output, error, partition; None: local)
        self._round = 0

    def __bool__(self) -> bool:
        """Whether any input of the batch was dead-lettered for a refusal."""
        return bool(self._dead)

    def inputs(self, messages: list[Message]) -> list[Message]:
        """Those of `messages` dead-lettered for a refused output, in order."""
        return [m for m in messages if id(m) in self._dead] if self._dead else []

    def outputs(self, outputs: list[Output]) -> list[Output]:
        """`outputs`, each refused input's outputs replaced by its one dead letter (where its first output was)."""
        sent, done = [], set()
        for out in outputs:
            key = id(out.source)
            if key not in self._dead:
                sent.append(out)
            elif key not in done:
                done.add(key)
                sent.append(self._dead[key])
        return sent

    def refused_now(self, out: Output, err: KafkaError) -> None:
        """``produce(out)`` raised the record error `err`."""
        self._new.append((out, err, None))

    def on_delivery(self, out: Output) -> Callable[[KafkaError | None, Message], None]:
        """A delivery callback for `out` that notes a broker's refusal of it in this round."""
        round_ = self._round

        def report(err: KafkaError | None, msg: Message) -> None:
            if round_ == self._round and is_record_error(err):
                self._new.append((out, err, msg.partition()))
        return report

    @property
    def pending(self) -> bool:
        """Refusals noted in this round and not yet turned into dead letters."""
        return bool(self._new)

    def settle(self) -> int:
        """End the round: dead-letter the inputs of this round's refused outputs (locally refused ones, and the
        largest of each partition's broker refusals). Returns how many inputs were dead-lettered.

        Raises
        ------
        Fatal
            A dead letter was refused too, or an output without an input (or a loop without
            dead letters) was refused: the transaction cannot go on without it.
        """
        largest: dict[tuple[str, int | None], tuple[Output, KafkaError]] = {}
        for i, (out, err, partition) in enumerate(self._new):
            group = (out.topic, partition if partition is not None else -1 - i)  # local refusals: each its own
            if group not in largest or len(out.value) > len(largest[group][0].value):
                largest[group] = (out, err)
        self._new, self._round = [], self._round + 1
        earlier = set(self._dead)
        for out, err in largest.values():
            key = id(out.source)
            if key in self._dead and key not in earlier:
                continue  # two outputs of one input refused in this round
            if out.source is None or self.dead_letter is None or key in earlier:
                raise Fatal(f"produce to {out.topic} failed, and the record cannot be dead-lettered: {err.str()}")
            reason = ProduceRefused(f"produce to {out.topic} failed: {err.str()}")
            self._dead[key] = self.dead_letter(out.source, reason)
        return len(self._dead) - len(earlier)
