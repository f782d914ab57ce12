"""Where the scoring service's time goes: cumulative seconds per stage, filled as it runs.

The transactional loop times its own stages (consume, prepare, finish, produce, commit,
the whole batch); the scoring service times the stages inside ``prepare``, ``finish``
and the batch result's ``after_commit``. `alertformer bench` reads the record after each batch, and the
service writes it to Redis with its other metrics (``stageSeconds`` of the consumer's hash).

Each stage is written by one thread only (``forward`` by the forward thread, every
other by the service's thread), so no lock is needed; a reader on another thread
may see a batch half counted.

Beside the wall-clock seconds, each stage also gathers the CPU seconds of the thread
that ran it (``cpu``): on a loaded machine a stage can take far longer than it
computes, waiting for a core, and only the two side by side tell which.
"""
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields


@dataclass
class StageTimes:
    """Seconds spent in each stage since the process started.

    ``consume`` is a consume() call that returned messages (with any wait to fill the
    batch), ``idle`` one that returned none; ``prepare`` and ``finish`` are the loop's
    calls of the batch's two halves, which hold ``decode`` … ``encode`` and
    ``forward_wait`` … ``rules``; ``forward`` runs on the forward thread, overlapping
    the others; ``batch`` is a batch from its ``finish`` to the return of
    ``commit_transaction`` (``finish``, ``produce``, ``commit`` and the transaction's
    other calls); ``redis_write`` is the state written after the commit. ``cpu``: stage →
    CPU seconds of the thread that ran it (`time.thread_time`).
    """

    consume: float = 0.0
    idle: float = 0.0
    prepare: float = 0.0
    decode: float = 0.0
    redis_read: float = 0.0
    windows: float = 0.0
    encode: float = 0.0
    forward: float = 0.0
    finish: float = 0.0
    forward_wait: float = 0.0
    scored_batch: float = 0.0
    avro_encode: float = 0.0
    rules: float = 0.0
    batch: float = 0.0
    produce: float = 0.0
    commit: float = 0.0
    redis_write: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        """Add the time the ``with`` block takes to `stage`, and its thread's CPU time to ``cpu``."""
        t0, cpu0 = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - t0, time.thread_time() - cpu0)

    def add(self, stage: str, seconds: float, cpu_seconds: float = 0.0) -> None:
        setattr(self, stage, getattr(self, stage) + seconds)
        self.cpu[stage] = self.cpu.get(stage, 0.0) + cpu_seconds

    def as_dict(self) -> dict[str, float]:
        """A copy: stage name → seconds (wall clock)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "cpu"}

    def cpu_as_dict(self) -> dict[str, float]:
        """A copy: stage name → CPU seconds of the thread that ran it (0 for a stage not run yet)."""
        return {name: self.cpu.get(name, 0.0) for name in self.as_dict()}
