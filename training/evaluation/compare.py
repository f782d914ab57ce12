"""Two evaluation reports side by side: how far a candidate model's metrics moved from the served one's.

    alertformer evaluate-diff BEFORE/report.json AFTER/report.json [--tolerance-points 0.5]

A cheaper model (int8, a smaller distilled model) may replace the served one only if the
evaluation holds. This lines up, for the transformer of each report, every metric both
reports define:

- per test set and prefix condition: macro-F1, SN-vs-rest PR-AUC, flare-vs-rest PR-AUC and the typing
  metrics (`training.metrics.typing_report`): SN Ia-vs-rest ROC-AUC, and macro-F1 where the set holds only
  some classes (real BTS: the SN types; the simulated sets: all but the asteroids);
- on the real ZTF packets (the service's own path), per N_det bin: SN-vs-non-SN ROC-AUC and PR-AUC;

in points (x 100), and says which fell by more than the tolerance and whether each metric with an
interval (macro-F1, typing Ia-vs-rest ROC-AUC) stayed inside the before report's 95 % bootstrap
interval. The test sets both reports hold are compared, and must be the same (same seed and sizes):
that is checked on their ``test_sets`` entries. A set only one report holds (an evaluation that added
one since) is left out and named.
"""
import json
from dataclasses import dataclass
from pathlib import Path

from models.errors import ConfigError

MODEL = "transformer"


@dataclass(frozen=True)
class MetricChange:
    """One metric in both reports, in points."""

    where: str  # "sim-lsst-balanced n_det=3", "real packets 5-9"
    metric: str
    before: float
    after: float
    before_ci95: tuple[float, float] | None = None

    @property
    def change(self) -> float:
        return self.after - self.before

    def as_dict(self) -> dict:
        out = {"where": self.where, "metric": self.metric, "before": round(self.before, 2),
               "after": round(self.after, 2), "change": round(self.change, 2)}
        if self.before_ci95 is not None:
            out["before_ci95"] = [round(v, 2) for v in self.before_ci95]
        return out


def _points(value) -> float | None:
    return None if value is None else 100.0 * float(value)


def _set_metrics(entry: dict) -> dict[str, tuple[float | None, tuple | None]]:
    ci = entry.get("macro_f1_ci95")
    out = {"macro-F1": (_points(entry.get("macro_f1")), tuple(100.0 * v for v in ci) if ci else None),
           "SN-vs-rest PR-AUC": (_points((entry.get("sn_vs_rest") or {}).get("pr_auc")), None),
           "flare-vs-rest PR-AUC": (_points((entry.get("flare_vs_rest") or {}).get("pr_auc")), None)}
    typing = entry.get("typing")
    if typing:
        ia = typing.get("ia_vs_rest") or {}
        ia_ci = ia.get("roc_auc_ci95")
        out["Ia-vs-rest ROC-AUC (typing)"] = (_points(ia.get("roc_auc")),
                                              tuple(100.0 * v for v in ia_ci) if ia_ci else None)
        if len(typing["classes"]) < len(entry.get("per_class", ())):
            out["typing macro-F1"] = (_points(typing.get("macro_f1")), None)
    return out


def _metrics(report: dict, left_out: set[str]) -> dict[tuple[str, str], tuple[float | None, tuple | None]]:
    """``{(where, metric): (points or None, before-CI or None)}`` of the report's transformer, but for the test
    sets `left_out`."""
    out = {}
    for test_set, conditions in report.get("results", {}).items():
        if test_set in left_out:
            continue
        for condition, entry in conditions.items():
            model = entry.get("models", {}).get(MODEL)
            if model and model.get("n"):
                for metric, value in _set_metrics(model).items():
                    out[f"{test_set} {condition}", metric] = value
    for bin_name, entry in (report.get("real_packets") or {}).get("sn_vs_non_sn", {}).items():
        for metric in ("roc_auc", "pr_auc"):
            out[f"real packets {bin_name}", f"SN-vs-non-SN {metric.replace('_', '-').upper()}"] = (
                _points(entry.get(metric)), None)
    return out


def _checkpoint(report: dict) -> dict:
    checkpoint = report.get("checkpoint") or {}
    return {"path": checkpoint.get("path"), "n_parameters": checkpoint.get("n_parameters"),
            "created_utc": checkpoint.get("created_utc")}


def load_report(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: not a readable evaluation report ({err})") from None


def compare_reports(before: dict, after: dict, tolerance_points: float = 0.5) -> dict:
    """The comparison of two `alertformer evaluate` reports (module docstring), as a JSON-ready dict."""
    sets_before, sets_after = before.get("test_sets") or {}, after.get("test_sets") or {}
    differ = sorted(name for name in sets_before.keys() & sets_after.keys() if sets_before[name] != sets_after[name])
    if differ:
        raise ConfigError(f"the two reports were not made on the same test sets ({', '.join(differ)} differ): "
                          "run both with the same --seed and --n-test")
    left_out = sets_before.keys() ^ sets_after.keys()
    a, b = _metrics(before, left_out), _metrics(after, left_out)
    changes, undefined = [], []
    for key in sorted(set(a) & set(b)):
        (value_before, ci), (value_after, _) = a[key], b[key]
        if value_before is None or value_after is None:
            undefined.append(" ".join(key))
            continue
        changes.append(MetricChange(key[0], key[1], value_before, value_after, ci))
    drops = sorted((c for c in changes if c.change < -tolerance_points), key=lambda c: c.change)
    with_ci = [c for c in changes if c.before_ci95 is not None]
    outside = [c for c in with_ci if not c.before_ci95[0] <= c.after <= c.before_ci95[1]]
    return {
        "model": MODEL, "tolerance_points": tolerance_points,
        "before": _checkpoint(before), "after": _checkpoint(after),
        "test_sets_left_out": sorted(left_out), "comparisons": len(changes), "undefined": len(undefined),
        "mean_change_points": round(sum(c.change for c in changes) / len(changes), 3) if changes else None,
        "mean_abs_change_points": round(sum(abs(c.change) for c in changes) / len(changes), 3) if changes else None,
        "better_beyond_tolerance": sum(c.change > tolerance_points for c in changes),
        "worse_beyond_tolerance": [c.as_dict() for c in drops],
        "inside_before_ci95": {"of": len(with_ci), "outside": [c.as_dict() for c in outside]},
        "holds_within_tolerance": not drops,
        "holds_within_ci95": not [c for c in outside if c.change < 0],
    }


def cmd_evaluate_diff(args) -> int:
    """Run ``alertformer evaluate-diff``: the comparison as JSON on stdout; exit 0 if the after model holds
    (no metric worse by more than the tolerance), 1 if not."""
    report = compare_reports(load_report(args.before), load_report(args.after), args.tolerance_points)
    print(json.dumps(report, indent=1))
    return 0 if report["holds_within_tolerance"] else 1
