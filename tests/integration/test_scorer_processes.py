"""``alertformer run --processes N`` on the real stack: N scorers in one group, a killed one restarted, SIGTERM stops all."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import redis
from conftest import config_env, produce, rubin_alerts, wait_for

from stream import avro_io
from stream.keys import Keys

pytestmark = pytest.mark.integration


def test_two_processes_share_the_group_survive_a_kill_and_stop_on_sigterm(stream_config, read_committed):
    config = stream_config
    client, keys = redis.Redis.from_url(config.redis.url), Keys(config.redis.prefix)
    base = config.scoring.instance_id
    ids = [f"{base}-0", f"{base}-1"]

    def pid(instance_id: str) -> int | None:
        value = client.hget(keys.consumer(instance_id), "pid")
        return int(value) if value else None

    def alerts_done(instance_id: str) -> int:
        value = client.hget(keys.consumer(instance_id), "alerts")
        return int(value) if value else 0

    supervisor = subprocess.Popen([sys.executable, "-m", "alertformer.cli", "run", "--processes", "2"],
                                  env=os.environ | config_env(config), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: all(pid(i) for i in ids)), "the two scorers did not start"
        time.sleep(3)  # let the group settle: both members assigned
        first = rubin_alerts(n_objects=40, alerts_per_object=5, seed=11)
        produce(config, first)
        assert wait_for(lambda: min(alerts_done(i) for i in ids) > 0), "both scorers should get partitions"

        killed = pid(ids[0])
        os.kill(killed, signal.SIGKILL)
        assert wait_for(lambda: pid(ids[0]) not in (None, killed)), "the killed scorer was not restarted"
        second = rubin_alerts(n_objects=40, alerts_per_object=5, seed=12)
        produce(config, second)
        alerts = first + second
        assert wait_for(lambda: len(read_committed(config.topics.scored, len(alerts), timeout_s=1)) == len(alerts),
                        polls=90)  # each poll reads for at least 2 s
    finally:
        supervisor.send_signal(signal.SIGTERM)
        out, err = supervisor.communicate(timeout=120)
    assert supervisor.returncode == 0, err[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["processes"] == 2 and summary["restarts"] == 1

    scored = [avro_io.decode(m.value())[1] for m in read_committed(config.topics.scored, len(alerts))]
    scored_ids = [r["alertId"] for r in scored]
    assert len(scored_ids) == len(set(scored_ids)), "duplicates"
    assert sorted(scored_ids) == sorted(a.alert_id for a in alerts), "lost or foreign alerts"
    # A clean stop leaves the group's live list and stamps the hash.
    assert all(client.hget(keys.consumer(i), "stoppedMs") for i in ids)
