"""stream.metrics: what a Prometheus scrape of the scorer's and trainer's metrics reads."""
import socket
import urllib.request

import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stream.errors import ConfigError
from stream.metrics import LATENCY_BUCKETS_S, STAGES, ScorerMetrics, TrainerMetrics, serve


def samples(registry) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) → value, through the Prometheus text format and its parser."""
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_batches_add_up_and_latencies_fall_in_their_buckets():
    m = ScorerMetrics()
    rng = np.random.default_rng(3)
    lat_a, lat_b = rng.uniform(10, 5000, 40), np.array([100.0, 250.0, 9e6])  # ms; 100 ms sits on an edge
    m.committed(42, 40, {"BadPacket": 2}, lat_a, ["young_sn", "young_sn"], {"decode": 0.5, "forward": 2.0})
    m.committed(3, 1, {"BadPacket": 1, "NonFiniteScores": 1}, lat_b, [], {"decode": 0.75, "forward": 2.0})
    s = samples(m.registry)
    assert s[("alertformer_alerts_consumed_total", ())] == 45
    assert s[("alertformer_alerts_scored_total", ())] == 41
    assert s[("alertformer_dead_letters_total", (("reason", "BadPacket"),))] == 3
    assert s[("alertformer_dead_letters_total", (("reason", "NonFiniteScores"),))] == 1
    assert s[("alertformer_followup_requests_total", (("rule", "young_sn"),))] == 2
    assert s[("alertformer_batch_messages_count", ())] == 2
    assert s[("alertformer_batch_messages_sum", ())] == 45
    every_s = np.concatenate([lat_a, lat_b]) / 1e3
    assert s[("alertformer_end_to_end_latency_seconds_count", ())] == 43
    assert s[("alertformer_end_to_end_latency_seconds_sum", ())] == pytest.approx(every_s.sum())
    buckets = {float(dict(labels)["le"]): v for (name, labels), v in s.items()
               if name == "alertformer_end_to_end_latency_seconds_bucket"}
    assert sorted(buckets) == [*LATENCY_BUCKETS_S, float("inf")]
    for edge, count in buckets.items():
        assert count == np.count_nonzero(every_s <= edge), edge
    # Stage histograms observe each batch's share of the running totals: decode 0.5 then 0.25 s.
    assert s[("alertformer_stage_duration_seconds_sum", (("stage", "decode"),))] == pytest.approx(0.75)
    assert s[("alertformer_stage_duration_seconds_sum", (("stage", "forward"),))] == pytest.approx(2.0)
    assert {dict(labels)["stage"] for name, labels in s if name == "alertformer_stage_duration_seconds_count"} \
        == set(STAGES)


def test_counters_follow_running_totals_and_state_gauges():
    m = ScorerMetrics()
    m.state(commits=3, aborts=1, redis_outages=0, model_version="v1", lag={("alerts", 0): 7, ("alerts", 1): 0})
    m.state(commits=5, aborts=1, redis_outages=2, model_version="v2", lag={("alerts", 0): 2})
    s = samples(m.registry)
    assert s[("alertformer_transactions_committed_total", ())] == 5
    assert s[("alertformer_transactions_aborted_total", ())] == 1
    assert s[("alertformer_redis_outages_total", ())] == 2
    assert s[("alertformer_model_info", (("version", "v2"),))] == 1
    assert ("alertformer_model_info", (("version", "v1"),)) not in s
    assert s[("alertformer_consumer_lag_messages", (("partition", "0"), ("topic", "alerts")))] == 2


def test_trainer_decisions():
    m = TrainerMetrics()
    m.pending.set(17)
    m.decided(promoted=True)
    m.decided(promoted=False)
    m.decided(promoted=False)
    s = samples(m.registry)
    assert s[("alertformer_trainer_labels_pending", ())] == 17
    assert s[("alertformer_trainer_finetunes_total", ())] == 3
    assert s[("alertformer_trainer_promotions_total", ())] == 1
    assert s[("alertformer_trainer_rejections_total", ())] == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_served_over_http_and_a_busy_port_is_a_config_error():
    m = TrainerMetrics()
    m.decided(promoted=True)
    port = _free_port()
    serve(m.registry, "127.0.0.1", port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    names = {f.name for f in text_string_to_metric_families(text)}
    assert "alertformer_trainer_promotions" in names
    with pytest.raises(ConfigError, match=f"metrics: cannot listen on 127.0.0.1:{port}"):
        serve(TrainerMetrics().registry, "127.0.0.1", port)
