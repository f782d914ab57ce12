"""deploy/grafana/alertformer-dashboard.json queries the metrics stream.metrics exports, and shows each of them."""
import json
import re
from pathlib import Path

import numpy as np
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from stream.metrics import ScorerMetrics, TrainerMetrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "alertformer-dashboard.json"


def exported_samples() -> set[str]:
    """Every sample name a scrape of a scorer and a trainer shows (after one batch, so labelled series exist)."""
    scorer, trainer = ScorerMetrics(), TrainerMetrics()
    scorer.committed(2, 1, {"BadPacket": 1}, np.array([5.0, 7.0]), ["young_sn"], {"decode": 0.1})
    scorer.state(1, 0, 0, "v1", {("alerts", 0): 0})
    names = set()
    for registry in (scorer.registry, trainer.registry):
        for family in text_string_to_metric_families(generate_latest(registry).decode()):
            names |= {s.name for s in family.samples}
    return names


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p["targets"]]


def test_every_query_names_an_exported_metric():
    exported = exported_samples()
    used = {name for expr in dashboard_exprs() for name in re.findall(r"\balertformer_[a-z0-9_]+", expr)}
    assert used and used <= exported, used - exported


def test_every_exported_metric_has_a_panel():
    used = " ".join(dashboard_exprs())
    families = {re.sub(r"_(bucket|sum|count|created)$", "", name) for name in exported_samples()}
    missing = {f for f in families if not f.endswith("_created") and f not in used}
    assert not missing, missing
