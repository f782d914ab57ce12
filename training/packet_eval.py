"""Evaluation on real ZTF alert packets, through the scoring service's own path.

The labelled packets (`training.real_packets`) are replayed in time order through
`stream.offline.OfflineScoring`: the service's decoder, windows over each object's
stored curve, the `Scorer` and the follow-up rules. So a score here is the score
`alertformer run` publishes for that packet (a test checks it against the service).

Per alert we keep the window's number of detections. "At N_det = k" takes, for each
object, its first alert whose window has between k and the next cut - 1 detections
(`NDET_BINS`): real packets arrive when the survey sends them, so not every object has an
alert at exactly k detections. "all" is each object's last alert. Reported per bin:
SN-vs-non-SN ROC-AUC and PR-AUC of ``sn_likelihood`` and its calibration (binary ECE), both as
trained (balanced prior) and under the ZTF stream prior (`STREAM_PRIOR`: probabilities published
under it, alerts reweighted so that SNe have its share);
for each rule, the share of objects of each label for which it fired at any alert, and by
the 5th detection (at an alert whose window has at most 5), as purity and completeness.
"""
from dataclasses import dataclass, replace

import numpy as np

from models.priors import ZTF_ALERTS_PRIOR, apply_prior, prior_weights
from models.taxonomy import SN_LIKE_IDS, sn_likelihood
from stream.config import FollowupRule, ScoringSettings
from stream.offline import OfflineScoring
from stream.score import Scorer
from stream.service import HISTORY_POINTS_FACTOR
from training.metrics import (average_precision, binary_ece, bootstrap_roc_auc, bootstrap_roc_auc_difference,
                              prior_shift_weights, roc_auc, wilson_interval)
from training.real_packets import NON_SN_LABELS, SN_LABELS, TOPIC, packet_messages, packet_windows, ztf_packets

NDET_BINS = ((1, 1), (2, 2), (3, 4), (5, 9), (10, None))  # (first, last) detections in the window; None: no end
EARLY_DETECTIONS = 5  # "by the 5th detection"
PEER_SIM_CURVES = 5000  # simulated ZTF training curves of the peer (the evaluation's other peers use as many)
QUICK_PEER_SIM_CURVES = 220
STREAM_PRIOR = "ztf-alerts"  # `models.priors`: the ECE "under the stream prior"
STREAM_SN_SHARE = sum(ZTF_ALERTS_PRIOR[cid] for cid in SN_LIKE_IDS) / sum(ZTF_ALERTS_PRIOR.values())


@dataclass(frozen=True)
class PacketScores:
    """One row per scored alert, in time order."""

    object_id: np.ndarray  # (N,) str
    label: np.ndarray  # (N,) str
    n_detections: np.ndarray  # (N,) int
    sn_likelihood: np.ndarray  # (N,) float
    probs: np.ndarray  # (N, C) float
    fired: dict  # rule name -> (N,) bool


def score_packets(scorer: Scorer, rules, split: str = "test", batch_size: int = 256,
                  data_dir=None) -> PacketScores:
    """Score the labelled packets of `split` through `OfflineScoring`, in batches of `batch_size`."""
    packets = ztf_packets(split, data_dir)
    label_of = dict(zip(packets.object_id, packets.label))
    offline = OfflineScoring(scorer, {TOPIC: "ztf"}, rules, HISTORY_POINTS_FACTOR * scorer.max_visits)
    rows, fired = [], {rule.name: [] for rule in rules}
    for batch in offline.run(packet_messages(packets), batch_size):
        scored = batch.scored
        rows.append((scored.object_id, scored.n_detections, scored.sn_likelihood, scored.probs))
        for rule in rules:
            hits = np.zeros(len(scored), dtype=bool)
            hits[[t.index for t in batch.triggers if t.rule == rule.name]] = True
            fired[rule.name].append(hits)
    object_id = np.concatenate([np.asarray(r[0], dtype=object) for r in rows])
    return PacketScores(object_id, np.array([label_of[o] for o in object_id], dtype=object),
                        np.concatenate([r[1] for r in rows]), np.concatenate([r[2] for r in rows]),
                        np.concatenate([r[3] for r in rows]), {k: np.concatenate(v) for k, v in fired.items()})


def _first_in_bin(scores: PacketScores, first: int, last: int | None) -> np.ndarray:
    """Row index of each object's first alert with first..last detections in its window."""
    n = scores.n_detections
    inside = (n >= first) & (n <= (last if last is not None else np.iinfo(n.dtype).max))
    rows = np.flatnonzero(inside)
    _, first_rows = np.unique(scores.object_id[rows].astype(str), return_index=True)
    return rows[first_rows]


def _last_alert(scores: PacketScores) -> np.ndarray:
    reversed_ids = scores.object_id[::-1].astype(str)
    _, first_rows = np.unique(reversed_ids, return_index=True)
    return len(scores.object_id) - 1 - first_rows


def _judged(scores: PacketScores, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The `rows` labelled SN or non-SN, and whether each is an SN."""
    labels = scores.label[rows]
    judged = np.isin(labels, SN_LABELS) | np.isin(labels, NON_SN_LABELS)
    return rows[judged], np.isin(labels[judged], SN_LABELS)


def _sn_metrics(scores: PacketScores, rows: np.ndarray) -> dict:
    rows, truth = _judged(scores, rows)
    score = scores.sn_likelihood[rows].astype(np.float64)
    both = truth.any() and (~truth).any()
    under_prior = sn_likelihood(apply_prior(scores.probs[rows].astype(np.float64),
                                            prior_weights(STREAM_PRIOR)))
    return {"n_sn": int(truth.sum()), "n_non_sn": int((~truth).sum()),
            "roc_auc": roc_auc(truth, score) if both else None,
            "roc_auc_ci95": bootstrap_roc_auc(truth, score, stratified=True) if both else None,
            "pr_auc": average_precision(truth, score) if truth.any() else None,
            "ece": binary_ece(truth, score) if truth.size else None,
            "ece_stream_prior": (binary_ece(truth, under_prior, weight=prior_shift_weights(truth, STREAM_SN_SHARE))
                                 if both else None)}


def _firing(scores: PacketScores, members: np.ndarray, fired: np.ndarray, early: np.ndarray) -> dict:
    """For the alerts of objects `members` ((N,) bool): how many objects, the share the rule fired for at
    any alert and by the 5th detection (of those seen by then), each with its 95 % Wilson interval."""
    objects = set(scores.object_id[members].tolist())
    seen_early = set(scores.object_id[members & early].tolist())
    ever = len(set(scores.object_id[members & fired].tolist()))
    by_early = len(set(scores.object_id[members & fired & early].tolist()))
    return {"objects": len(objects), "fired": ever / len(objects) if objects else None,
            "fired_ci95": wilson_interval(ever, len(objects)),
            "objects_seen_by_5": len(seen_early),
            "fired_by_5": by_early / len(seen_early) if seen_early else None,
            "fired_by_5_ci95": wilson_interval(by_early, len(seen_early))}


def _rule_rates(scores: PacketScores, rule: str) -> dict:
    """Per label and for the SN and non-SN groups: `_firing`; and the rule's purity over objects."""
    fired = scores.fired[rule]
    early = scores.n_detections <= EARLY_DETECTIONS
    out = {label: _firing(scores, scores.label == label, fired, early) for label in sorted(set(scores.label.tolist()))}
    for group, members in {"SN": SN_LABELS, "non-SN": NON_SN_LABELS}.items():
        out[group] = _firing(scores, np.isin(scores.label, members), fired, early)
    sn_fired = out["SN"]["fired"] * out["SN"]["objects"] if out["SN"]["objects"] else 0
    non_sn_fired = (out["non-SN"]["fired"] or 0) * out["non-SN"]["objects"]
    out["purity"] = sn_fired / (sn_fired + non_sn_fired) if sn_fired + non_sn_fired else None
    return out


def _bins(scores: PacketScores) -> dict[str, np.ndarray]:
    """Rows of each N_det bin (`NDET_BINS`) and of "all", by bin name."""
    bins = {(f"{a}" if a == b else f"{a}+" if b is None else f"{a}-{b}"): _first_in_bin(scores, a, b)
            for a, b in NDET_BINS}
    bins["all"] = _last_alert(scores)
    return bins


def packet_report(scores: PacketScores) -> dict:
    """SN-vs-non-SN metrics per N_det bin and rule firing rates (see the module docstring)."""
    return {"n_alerts": len(scores.object_id), "n_objects": len(set(scores.object_id.tolist())),
            "sn_vs_non_sn": {name: _sn_metrics(scores, rows) for name, rows in _bins(scores).items()},
            "rules": {rule: _rule_rates(scores, rule) for rule in scores.fired}}


def roc_auc_over_peer(scores: PacketScores, peer: PacketScores) -> dict:
    """Per N_det bin: the model's SN-vs-non-SN ROC-AUC minus the peer's on the same alerts, and its 95 %
    paired bootstrap interval (`training.metrics.bootstrap_roc_auc_difference`); None where a bin lacks
    SNe or non-SNe."""
    out = {}
    for name, rows in _bins(scores).items():
        rows, truth = _judged(scores, rows)
        if not (truth.any() and (~truth).any()):
            out[name] = None
            continue
        model_score, peer_score = scores.sn_likelihood[rows], peer.sn_likelihood[rows]
        out[name] = {"difference": roc_auc(truth, model_score) - roc_auc(truth, peer_score),
                     "ci95": bootstrap_roc_auc_difference(truth, model_score, peer_score)}
    return out


def peer_scores(scores: PacketScores, split: str = "test", n_sim: int = PEER_SIM_CURVES, seed: int = 0,
                quick: bool = False, data_dir=None) -> PacketScores:
    """`scores` of the same alerts from the fair peer: light-curve features plus the same context
    features, gradient-boosted trees (`training.evaluation.peers.features.FeatureBaseline`), trained on what the
    transformer's real stage sees: simulated ZTF curves with their drawn contexts, the BTS train
    split in service form, and the real packets' train part."""
    from training.datasets import LabeledSet, simulated, ztf_bts, ztf_packet_set
    from training.evaluation.peers.features import FeatureBaseline

    train = LabeledSet.concatenate([simulated("train", n_sim, seed, "ztf"), ztf_bts("train", seed, data_dir),
                                    ztf_packet_set("train", data_dir)])
    peer = FeatureBaseline(fit_algorithm="lmsder" if quick else "mcmc-lmsder", seed=seed, with_context=True)
    peer.fit(train.curves, train.class_ids, train.contexts)
    windows = packet_windows(ztf_packets(split, data_dir))
    if list(windows.object_ids) != scores.object_id.tolist():
        raise RuntimeError("the peer's windows are not the transformer's rows")
    probs = peer.predict_proba(windows.curves, windows.contexts)
    return replace(scores, sn_likelihood=sn_likelihood(probs), probs=probs, fired={})


def evaluate_packets(checkpoint=None, split: str = "test", rules=None, data_dir=None, peer: bool = True,
                     quick: bool = False, precision: str = "fp32") -> dict:
    """The packet report of a checkpoint (default: the shipped model) scored on the CPU at `precision`
    with `rules` (default: the service's), and of the fair peer (`peer_scores`) on the same alerts."""
    scoring = ScoringSettings(checkpoint=str(checkpoint) if checkpoint else None, device="cpu", precision=precision)
    scorer = Scorer.from_checkpoint(scoring.checkpoint, scoring)
    rules = list(rules) if rules is not None else _service_rules()
    scores = score_packets(scorer, rules, split, data_dir=data_dir)
    report = {"split": split, "model_version": scorer.version, **packet_report(scores)}
    if peer:
        by_peer = peer_scores(scores, split, n_sim=QUICK_PEER_SIM_CURVES if quick else PEER_SIM_CURVES, quick=quick,
                              data_dir=data_dir)
        report["peer"] = {"name": "features+context GBT", "sn_vs_non_sn": packet_report(by_peer)["sn_vs_non_sn"],
                          "roc_auc_model_minus_peer": roc_auc_over_peer(scores, by_peer)}
    return report


def _service_rules() -> list[FollowupRule]:
    from stream.config import FollowupSettings

    return list(FollowupSettings().rules)


def format_packet_report(report: dict) -> str:
    """Plain-text tables: SN-vs-non-SN by N_det bin, then each rule's firing rate per label."""
    def num(x):
        return "    -" if x is None else f"{x:5.3f}"

    def interval(ci):
        return f"{'':11s}" if ci is None else f"{ci[0]:5.2f}-{ci[1]:<5.2f}"

    lines = [f"real ZTF packets, split {report['split']}: {report['n_alerts']} alerts of {report['n_objects']} objects, "
             f"model {report['model_version']} (95 % intervals: stratified bootstrap; Wilson for rates)",
             f"{'N_det':6s} {'SN':>4s} {'nonSN':>5s} {'ROC':>5s} {'ROC 95%':11s} {'PR':>5s} {'ECE':>5s} "
             f"{'ECE@' + STREAM_PRIOR:>14s}"]
    peer = report.get("peer", {}).get("sn_vs_non_sn", {})
    over_peer = report.get("peer", {}).get("roc_auc_model_minus_peer", {})
    if peer:
        lines[-1] += f"   peer: {'ROC':>5s} {'PR':>5s} {'ECE':>5s}  model-peer ROC, 95%"
    for name, m in report["sn_vs_non_sn"].items():
        line = (f"{name:6s} {m['n_sn']:4d} {m['n_non_sn']:5d} {num(m['roc_auc'])} {interval(m.get('roc_auc_ci95'))} "
                f"{num(m['pr_auc'])} {num(m['ece'])} {num(m.get('ece_stream_prior')):>14s}")
        if name in peer:
            line += f"         {num(peer[name]['roc_auc'])} {num(peer[name]['pr_auc'])} {num(peer[name]['ece'])}"
            if over_peer.get(name):
                line += f"  {over_peer[name]['difference']:+.3f} {interval(over_peer[name]['ci95'])}"
        lines.append(line)
    for rule, rates in report["rules"].items():
        lines.append(f"rule {rule}: purity {num(rates['purity'])}")
        lines.append(f"  {'label':16s} {'objects':>7s} {'fired':>6s} {'95%':11s} {'by5':>6s} {'95%':11s}")
        for label, r in rates.items():
            if label != "purity":
                lines.append(f"  {label:16s} {r['objects']:7d} {num(r['fired'])}  {interval(r['fired_ci95'])} "
                             f"{num(r['fired_by_5'])}  {interval(r['fired_by_5_ci95'])}")
    return "\n".join(lines)
