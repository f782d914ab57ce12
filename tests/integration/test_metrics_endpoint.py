"""The scorer's /metrics after a real run: counters and the latency histogram match what was committed."""
import socket
import urllib.request

import pytest
from conftest import produce, rubin_alerts
from prometheus_client.parser import text_string_to_metric_families

from stream.service import ScoringService

pytestmark = pytest.mark.integration
MALFORMED = [b"\x00\x00\x00\x03\xe8\x02cut", b"not an alert at all"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_metrics_count_every_input_once(stream_config):
    port = _free_port()
    config = stream_config.model_copy(update={"metrics": stream_config.metrics.updated(port=port)})
    alerts = rubin_alerts(n_objects=12, alerts_per_object=2, seed=5)
    produce(config, alerts, MALFORMED)
    n_in = len(alerts) + len(MALFORMED)

    service = ScoringService(config)
    stats = service.run(max_messages=n_in, timeout_s=90)
    assert stats.messages_in == n_in
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    s = {(x.name, tuple(sorted(x.labels.items()))): x.value
         for family in text_string_to_metric_families(text) for x in family.samples}
    dead = {dict(labels)["reason"]: v for (name, labels), v in s.items() if name == "alertformer_dead_letters_total"}
    assert s[("alertformer_alerts_consumed_total", ())] == n_in
    assert s[("alertformer_alerts_scored_total", ())] == service.summary.alerts_scored == len(alerts)
    assert sum(dead.values()) == service.summary.dead_letters == len(MALFORMED)
    assert s[("alertformer_alerts_scored_total", ())] + sum(dead.values()) == n_in
    assert s[("alertformer_end_to_end_latency_seconds_count", ())] == n_in
    assert s[("alertformer_batch_messages_sum", ())] == n_in
    assert s[("alertformer_transactions_committed_total", ())] == stats.batches
    assert s[("alertformer_transactions_aborted_total", ())] == stats.aborts
    assert s[("alertformer_model_info", (("version", service.scorer.version),))] == 1
    lags = {labels: v for (name, labels), v in s.items() if name == "alertformer_consumer_lag_messages"}
    assert lags and all(v == 0 for v in lags.values())  # everything produced was consumed
    assert s[("alertformer_stage_duration_seconds_count", (("stage", "forward"),))] == stats.batches
