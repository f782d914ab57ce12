"""kill -9 of the broker under load, then a restart with deploy/stack.sh: the scorer never hangs (it
recovers, or exits 2/3 and its supervisor restarts it), and every input is scored exactly once."""
import os
import time

import pytest
from chaos_kit import Stream, Supervisor, Tail, config_env, report, rubin_alerts, scaled, wait_for

from stream import avro_io

pytestmark = [pytest.mark.slow, pytest.mark.integration]
KILL_AFTER_S = 4.0  # scoring, then the broker dies
DOWN_S = 3.0  # the broker stays dead this long before the restart
LIVENESS_S = 300  # a scorer that has not finished by then hung (this is not a speed figure)


def test_broker_kill_9_and_restart_loses_and_duplicates_nothing(private_stack, chaos_config):
    kills = scaled(1, 3)
    alerts = rubin_alerts(n_objects=scaled(20, 100), alerts_per_object=scaled(15, 30), seed=31)
    tail = Tail(private_stack.bootstrap, chaos_config.topics.scored)
    producing = Stream(chaos_config, alerts)
    supervisor = Supervisor(os.environ | config_env(chaos_config)).start()
    assert wait_for(lambda: tail.arrivals, 180), "the scorer never produced a first record"

    recoveries_s = []
    for _ in range(kills):
        time.sleep(KILL_AFTER_S)
        private_stack.kill_broker()
        time.sleep(DOWN_S)
        ready = private_stack.up()
        assert wait_for(lambda: tail.first_after(ready) is not None or len(tail.arrivals) >= len(alerts), LIVENESS_S)
        first = tail.first_after(ready)
        recoveries_s.append(round(first - ready, 1) if first else None)

    producing.join(LIVENESS_S)
    assert supervisor.join(LIVENESS_S), f"the scorer hung: exits so far {supervisor.exits}"
    records = [avro_io.decode(v)[1] for v in tail.stop()]
    assert sorted(r["alertId"] for r in records) == sorted(a.alert_id for a in alerts)  # each exactly once
    codes = [code for _, code, _ in supervisor.exits]
    assert set(codes) <= {0, 2, 3} and codes[-1] == 0, supervisor.exits
    report("broker kill -9 + restart", {"kills": kills, "alerts": len(alerts), "scorer_exits": codes,
                                        "last_lines": [line for _, code, line in supervisor.exits if code],
                                        "first_scored_after_broker_ready_s": recoveries_s})
