"""The evaluation's report: metrics per test set, condition and model, the headline, throughput and JSON."""
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from models.priors import apply_prior, prior_weights
from models.taxonomy import CLASS_IDS, CLASS_NAMES, class_indices
from training.context_check import context_comparison, plot_context_comparison
from training.evaluation.sets import BTS_SERVICE_FORM, WHOLE_CURVE, EvaluationSet
from training.metrics import (ECE_BINS, bootstrap_macro_f1_difference, classification_report, expected_calibration_error,
                              macro_f1, typing_report)
from training.sim_check import simulated_vs_bts

# the stream prior (`models.priors`) a set's class mix follows: its probabilities are also scored as
# published under that prior (`scoring.class_prior`). BTS is a magnitude-limited supernova sample, whose
# type mix is the one inside "ztf-alerts" (Ia 60 %, II 30 %, Ib/c 10 %, few SLSNe and TDEs).
STREAM_PRIORS = {"sim-lsst-realistic": "lsst-plasticc"} | dict.fromkeys(BTS_SERVICE_FORM, "ztf-alerts")
HEADLINE_CUTS = ("n_det=1", "n_det=2", "n_det=3", "n_det=all", WHOLE_CURVE)
N_CONTEXT_SIM, N_CONTEXT_SIM_QUICK = 2400, 240  # simulated curves of the context check
N_SIM_CHECK_PER_CLASS, N_SIM_CHECK_PER_CLASS_QUICK = 2000, 200  # simulated ZTF supernovae per class, sim check
CONVENTIONS = {
    "macro_f1": "mean F1 over the classes present in the test set's truth",
    "sn_vs_rest": "truth: SN Ia, Ib/c, II, SLSN; score: sn_likelihood (sum of their probabilities)",
    "flare_vs_rest": "truth: M-dwarf flare; score: flare_likelihood",
    "typing": "the answer among the classes present in the set's truth (on real BTS: the SN types), their "
              "probabilities renormalised; ia_vs_rest scores SN Ia with that renormalised probability",
    "pr_auc": "average precision (step function, as scikit-learn's average_precision_score)",
    "ece": f"top-label expected calibration error, {ECE_BINS} equal-width bins",
    "curves_per_s": "light curves per second of inference, preprocessing included, with config.threads "
                    "CPU threads per model (or the GPU for the transformer if config.device is cuda)",
    "null": "undefined (e.g. no positives of that class in the set)",
}


@dataclass
class ModelPredictions:
    """One model's part of an evaluation: its entry under the report's ``models``, and per test set and
    condition its (N, C) probabilities in `CLASS_IDS` order with the seconds they took."""

    name: str
    info: dict
    by_set: dict[str, dict[str, tuple[np.ndarray, float]]]


def under_prior(probs, targets, prior: str) -> dict:
    """Accuracy, macro-F1, top-label ECE and typing (`training.metrics.typing_report`) of the probabilities
    published under `prior` (`models.priors`)."""
    shifted = apply_prior(np.asarray(probs, dtype=np.float64), prior_weights(prior))
    predicted = shifted.argmax(axis=1)
    return {"prior": prior, "accuracy": float(np.mean(predicted == targets)),
            "macro_f1": macro_f1(targets, predicted), "ece": expected_calibration_error(shifted, targets, ECE_BINS),
            "typing": typing_report(shifted, targets)}


def model_results(sets: list[EvaluationSet], cuts: dict, models: list[ModelPredictions]) -> dict:
    """``{set: {condition: {"n_curves", "n_skipped", "models": {model: metrics}}}}``: `training.metrics`
    classification reports of every model's probabilities, with its seconds and light curves/s."""
    out = {}
    for ts in sets:
        targets = class_indices(ts.labeled.class_ids)
        out[ts.name] = {}
        for cond, (kept, _) in cuts[ts.name].items():
            entry = {"n_curves": int(len(kept)), "n_skipped": int(len(targets) - len(kept)), "models": {}}
            for model in models:
                if ts.name not in model.by_set:
                    continue
                probs, seconds = model.by_set[ts.name][cond]
                if len(kept) == 0:
                    entry["models"][model.name] = {"n": 0}
                    continue
                rep = classification_report(np.asarray(probs, dtype=np.float64), targets[kept], ECE_BINS)
                if ts.name in STREAM_PRIORS:
                    rep["under_stream_prior"] = under_prior(probs, targets[kept], STREAM_PRIORS[ts.name])
                rep["seconds"] = seconds
                rep["curves_per_s"] = len(kept) / seconds if seconds > 0 else None
                entry["models"][model.name] = rep
            paired_against_first(entry["models"], {m.name: m.by_set[ts.name][cond][0] for m in models
                                               if ts.name in m.by_set}, targets[kept])
            out[ts.name][cond] = entry
    return out


def paired_against_first(reports: dict, probs: dict, targets: np.ndarray) -> None:
    """Give each peer's report ``macro_f1_first_minus_this``: the first model's (the transformer's) macro-F1
    minus the peer's on the same curves, with its 95 % paired bootstrap interval
    (`training.metrics.bootstrap_macro_f1_difference`), so that "beats the peer" is read against chance."""
    names = [name for name in probs if "macro_f1" in reports.get(name, {})]
    if len(names) < 2:
        return
    first = np.asarray(probs[names[0]]).argmax(axis=1)
    for name in names[1:]:
        reports[name]["macro_f1_first_minus_this"] = {
            "difference": reports[names[0]]["macro_f1"] - reports[name]["macro_f1"],
            "ci95": bootstrap_macro_f1_difference(targets, first, np.asarray(probs[name]).argmax(axis=1))}


def test_sets_entry(sets: list[EvaluationSet], missing: dict[str, str]) -> dict:
    """The report's ``test_sets``: source, survey, size and class counts, or why a set is not available."""
    return {ts.name: {"source": ts.labeled.source, "survey": ts.survey, "n": len(ts.labeled),
                      "class_counts": {str(k): v for k, v in ts.labeled.class_counts().items()}}
            for ts in sets} | {name: {"status": "not available", "error": why} for name, why in missing.items()}


def checkpoint_entry(path, meta: dict, n_parameters: int) -> dict:
    """The report's ``checkpoint``: where it is and what its file says about itself."""
    return {"path": str(path), "created_utc": meta.get("created_utc"), "code_version": meta.get("code_version"),
            "temperature": meta.get("temperature"), "model_config": meta.get("model_config"),
            "n_parameters": n_parameters, "data": meta.get("data")}


def now_utc() -> str:
    """The report's ``created_utc``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def conventions() -> dict:
    """The report's ``conventions`` and ``classes``."""
    return {"conventions": dict(CONVENTIONS), "classes": {"ids": list(CLASS_IDS), "names": list(CLASS_NAMES)}}


def throughput(results: dict) -> dict:
    """Light curves/s per model: over every condition of every set, and on whole curves only."""
    totals: dict[str, list[float]] = {}
    for per_cond in results.values():
        for cond, entry in per_cond.items():
            for model, rep in entry["models"].items():
                if rep.get("n"):
                    t = totals.setdefault(model, [0, 0.0, 0, 0.0])
                    t[0] += rep["n"]
                    t[1] += rep["seconds"]
                    if cond == WHOLE_CURVE:
                        t[2] += rep["n"]
                        t[3] += rep["seconds"]
    return {model: {"curves": n, "seconds": s, "curves_per_s": n / s if s else None,
                    "whole_curves_per_s": nf / sf if sf else None}
            for model, (n, s, nf, sf) in totals.items()}


def headline(results: dict) -> dict:
    """Macro-F1, SN and flare PR-AUC, ECE and the typing Ia-vs-rest ROC-AUC (also under the set's stream prior,
    None without one) at N_det = 1, 2, 3 and all, per set and model; for a peer, also the transformer's
    macro-F1 minus its own with the 95 % paired interval (`paired_against_first`)."""
    out = {}
    for set_name, per_cond in results.items():
        out[set_name] = {}
        for cond in HEADLINE_CUTS:
            for model, rep in per_cond[cond]["models"].items():
                if rep.get("n"):
                    out[set_name].setdefault(model, {})[cond] = {
                        "n": rep["n"], "macro_f1": rep["macro_f1"], "sn_pr_auc": rep["sn_vs_rest"]["pr_auc"],
                        "flare_pr_auc": rep["flare_vs_rest"]["pr_auc"], "ece": rep["ece"],
                        "ia_roc_auc": _ia_roc_auc(rep),
                        "ia_roc_auc_stream_prior": _ia_roc_auc(rep.get("under_stream_prior", {})),
                        "macro_f1_first_minus_this": rep.get("macro_f1_first_minus_this")}
    return out


def _ia_roc_auc(rep: dict):
    return (rep.get("typing", {}).get("ia_vs_rest") or {}).get("roc_auc")


def json_safe(x):
    """`x` with numpy scalars as Python numbers and non-finite floats as None (JSON's null)."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return None if not math.isfinite(float(x)) else float(x)
    return x


def write_json(report: dict, path: Path) -> dict:
    """Write `report` as JSON (`json_safe`) to `path`; returns what was written."""
    report = json_safe(report)
    Path(path).write_text(json.dumps(report, indent=1, allow_nan=False))
    return report


def _gap(gap: dict | None) -> str:
    if not gap or gap.get("difference") is None:
        return ""
    low, high = gap["ci95"]
    return f"  {gap['difference']:+.3f} ({low:+.3f} to {high:+.3f})"


def format_headline(report: dict) -> str:
    """The headline as a plain-text table: one line per test set, model and N_det cut."""
    def num(x):
        return "   -  " if x is None else f"{x:6.3f}"

    lines = [f"{'test set':20s} {'model':12s} {'cut':10s} {'n':>5s} {'F1':>6s} {'SN-AP':>6s} {'fl-AP':>6s} "
             f"{'ECE':>6s} {'Ia-AUC':>6s} {'(prior)':>7s}  transformer F1 - this, 95 %"]
    for set_name, per_model in report["headline"].items():
        for model, per_cut in per_model.items():
            for cut, h in per_cut.items():
                lines.append(f"{set_name:20s} {model:12s} {cut:10s} {h['n']:5d} {num(h['macro_f1'])} "
                             f"{num(h['sn_pr_auc'])} {num(h['flare_pr_auc'])} {num(h['ece'])} "
                             f"{num(h.get('ia_roc_auc'))}  {num(h.get('ia_roc_auc_stream_prior'))}"
                             f"{_gap(h.get('macro_f1_first_minus_this'))}")
    for model, t in report["throughput"].items():
        lines.append(f"{model}: {t['curves_per_s'] or 0:,.0f} light curves/s over all prefixes, "
                     f"{t['whole_curves_per_s'] or 0:,.0f} on whole curves")
    for model, info in report["models"].items():
        if info["status"] != "ok":
            lines.append(f"{model}: {info['status']}: {info.get('error')}")
    return "\n".join(lines)


def write_sim_check(out_dir: Path, data_dir=None, quick: bool = False) -> dict:
    """`training.sim_check`: simulated ZTF supernovae against the BTS train split, ``sim_check.json`` in
    `out_dir`; returns the report."""
    report = simulated_vs_bts(n_per_class=N_SIM_CHECK_PER_CLASS_QUICK if quick else N_SIM_CHECK_PER_CLASS, data_dir=data_dir)
    write_json(report, out_dir / "sim_check.json")
    return report


def write_context_check(out_dir: Path, data_dir=None, figures: bool = True, quick: bool = False) -> dict:
    """`training.context_check` on the real packets' test part: ``context_check.json`` and, with `figures`,
    ``context_distributions.png`` in `out_dir`; returns the report."""
    report = context_comparison("test", n_sim=N_CONTEXT_SIM_QUICK if quick else N_CONTEXT_SIM, data_dir=data_dir)
    if figures:
        plot_context_comparison(report, out_dir / "context_distributions.png")
    report = {k: v for k, v in report.items() if k != "_values"}
    write_json(report, out_dir / "context_check.json")
    return report
