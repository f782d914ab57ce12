"""`StageTimes`: the scoring service's seconds per stage, and their export in the consumer's Redis hash."""
import json
import time

import pytest

from stream.keys import Keys
from stream.stages import StageTimes
from stream.state import StateWriter


def test_timing_adds_up_per_stage():
    times = StageTimes()
    with times.timing("decode"):
        time.sleep(0.01)
    with pytest.raises(RuntimeError), times.timing("decode"):
        raise RuntimeError("a failed stage still took its time")
    times.add("forward", 0.5)
    record = times.as_dict()
    assert record["decode"] >= 0.01 and record["forward"] == 0.5 and record["commit"] == 0.0
    with pytest.raises(AttributeError):
        times.add("no_such_stage", 1.0)


def test_each_stage_also_gathers_its_thread_s_cpu_time():
    times = StageTimes()
    with times.timing("redis_write"):
        time.sleep(0.05)  # waiting, not computing
    with times.timing("decode"):
        deadline = time.thread_time() + 0.02
        while time.thread_time() < deadline:  # computing
            pass
    times.add("consume", 0.3, 0.1)
    cpu = times.cpu_as_dict()
    assert set(cpu) == set(times.as_dict()) and "cpu" not in times.as_dict()
    assert cpu["redis_write"] < 0.01 <= 0.05 <= times.redis_write
    assert 0.02 <= cpu["decode"] <= times.decode + 0.005 and (cpu["consume"], cpu["commit"]) == (0.1, 0.0)


class _History:
    dropped_points = 0


def test_the_consumer_hash_carries_the_stage_seconds():
    times = StageTimes(decode=1.23456, forward=2.0)
    fields = StateWriter(None, Keys("t"), _History(), "c1", ttl_s=60, top_n=10, times=times).consumer_fields("m", 3)
    assert json.loads(fields["stageSeconds"]) == times.as_dict() | {"decode": 1.235}
    assert "stageSeconds" not in StateWriter(None, Keys("t"), _History(), "c1", 60, 10).consumer_fields("m", 3)
