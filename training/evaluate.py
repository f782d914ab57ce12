"""``alertformer evaluate``: the transformer against its peers, on the same test sets and prefixes.

For the checkpoint and each requested peer (`training.evaluation.peers`), on

1. ``sim-lsst-balanced``: simulated LSST test split, equal class counts;
2. ``sim-lsst-realistic``: the same at the PLAsTiCC-like stream mix
   (`training.simulate.REALISTIC_MIX`), where purity depends on the prior;
3. ``ztf-bts``: the held-out real ZTF Bright Transient Survey test split
   (`training.datasets.ztf_bts("test")`, a fixed holdout);

each cut to what the stream knew at N_det = 1, 2, 3, 5, 10 and all detections
(`training.prefixes.first_n_detections`: the curve as of the alert its N-th
detection triggered, so "all" ends at the last detection; a curve with fewer
than N detections is skipped and counted), at the whole simulated curve
("whole": with the forced photometry after the last detection, which no alert
carries), and at 1, 3, 7, 14 and 30 days after the first detection
(`days_after_first_detection`), the report gives
macro-F1, per-class precision and recall, the confusion matrix,
SN-vs-rest and flare-vs-rest ROC-AUC and PR-AUC (scored with ``sn_likelihood``
and ``flare_likelihood``), top-label ECE with reliability bins, and light
curves per second of inference (preprocessing included: encoding for the
transformer, feature extraction for the feature peer, SuperNNova's own
formatting for it). `training.metrics` states the conventions.

Peers are trained here on the data the transformer was trained on (the
``training.datasets`` train splits), at a modest size (``--n-train-peers``):
one model per survey, since their inputs are per band. The LSST peer learns
from simulated LSST curves; the ZTF peer from simulated ZTF curves plus the
real BTS train split, as the transformer was fine-tuned. As in the
transformer's recipe, a share of the training curves (the checkpoint's
``drop_nondetections_prob``, else 0.2) is shown with detections only. Nothing
is tuned on a test split.

Outputs in ``--out``: ``report.json`` and PNG figures (confusion matrices,
reliability diagrams, metrics against N_det and days, throughput).
"""
import hashlib
import json
import logging
import math
import pickle
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from models.device import device_of
from models.lightcurve import LightCurve
from models.paths import SHIPPED_CHECKPOINT
from models.priors import apply_prior, prior_weights
from models.taxonomy import CLASS_IDS, CLASS_NAMES, class_indices
from training.context_check import context_comparison, format_context_comparison, plot_context_comparison
from training.metrics import ECE_BINS, classification_report, expected_calibration_error, macro_f1
from training.packet_eval import evaluate_packets, format_packet_report
from training.sim_check import format_comparison as format_sim_comparison, simulated_vs_bts
from training.simulate import ELASTICC_CLASS_IDS

log = logging.getLogger(__name__)

N_DET_CUTS: tuple = (1, 2, 3, 5, 10, "all")
DAY_CUTS: tuple[float, ...] = (1, 3, 7, 14, 30)
TEST_SETS: tuple[str, ...] = ("sim-lsst-balanced", "sim-lsst-realistic", "ztf-bts")
# the stream prior (`models.priors`) a set's class mix follows: its probabilities are also scored as
# published under that prior (`scoring.class_prior`)
STREAM_PRIORS = {"sim-lsst-realistic": "lsst-plasticc"}
PEER_CHOICES = ("features", "supernnova", "none", "all")
DEFAULT_N_TEST = 2000  # per simulated test set (~180 per class when balanced)
DEFAULT_N_TRAIN_PEERS = 5000  # simulated train curves per survey for each peer
DEFAULT_DROP_NONDETECTIONS_PROB = 0.2  # training.train's default, used if the checkpoint does not say
WHOLE_CURVE = "whole"  # every point, also forced photometry after the last detection
HEADLINE_CUTS = ("n_det=1", "n_det=2", "n_det=3", "n_det=all", WHOLE_CURVE)
QUICK = {"n_test": 44, "n_train_peers": 110, "n_bts_test": 30, "n_bts_train": 40, "feature_fit": "lmsder",
         "feature_max_iter": 20, "snn_epochs": 2, "n_context_sim": 240}


def _under_prior(probs, targets, prior: str) -> dict:
    """Accuracy, macro-F1 and top-label ECE of the probabilities published under `prior` (`models.priors`)."""
    shifted = apply_prior(np.asarray(probs, dtype=np.float64), prior_weights(prior))
    predicted = shifted.argmax(axis=1)
    return {"prior": prior, "accuracy": float(np.mean(predicted == targets)),
            "macro_f1": macro_f1(targets, predicted), "ece": expected_calibration_error(shifted, targets, ECE_BINS)}


def condition_names() -> list[str]:
    """Names of the prefix conditions, in report order: ``n_det=1`` .. ``n_det=all``, ``whole``, ``days=1`` .. ``days=30``."""
    return [f"n_det={n}" for n in N_DET_CUTS] + [WHOLE_CURVE] + [f"days={d:g}" for d in DAY_CUTS]


def cut_curves(curves: Sequence[LightCurve]) -> dict[str, np.ndarray | list]:
    """Every prefix condition of ``curves``.

    Returns
    -------
    dict
        ``{condition: (kept_index, prefixes)}``: ``kept_index`` (K,) int64,
        the curves that reach the condition (N_det detections; any detection
        for a days cut), and their prefixes.
    """
    from training.prefixes import days_after_first_detection, first_n_detections

    out = {}
    for name in condition_names():
        kind, _, value = name.partition("=")
        if kind == WHOLE_CURVE:
            cut = list(curves)
        elif kind == "n_det":
            cut = [first_n_detections(c, max(int(c.is_detection.sum()), 1) if value == "all" else int(value))
                   for c in curves]
        else:
            cut = [days_after_first_detection(c, float(value)) for c in curves]
        kept = np.array([i for i, c in enumerate(cut) if c is not None and len(c)], dtype=np.int64)
        out[name] = (kept, [cut[i] for i in kept])
    return out


class TransformerScorer:
    """The checkpoint as a peer-like model: ``predict_proba(curves)`` through `encode` in batches."""

    name = "transformer"

    def __init__(self, model, batch_size: int = 1024):
        self.model = model.eval()
        self.batch_size = batch_size
        self.device = model.temperature.device

    def predict_proba(self, curves: Sequence[LightCurve], contexts: np.ndarray | None = None) -> np.ndarray:
        """(N, C) probabilities of `curves` with their (N, N_CONTEXT) alert `contexts` (None: unknown)."""
        from models.encode import encode

        out = [self.model.predict_proba(encode(curves[s:s + self.batch_size], self.model.config.max_visits,
                                               contexts=None if contexts is None else contexts[s:s + self.batch_size]
                                               )).cpu()
               for s in range(0, len(curves), self.batch_size)]
        return np.concatenate([o.numpy() for o in out]).astype(np.float64) if out else np.zeros((0, len(CLASS_IDS)))

    def predict_sets(self, sets, contexts=None):
        """``{name: (probs, seconds)}`` of ``{name: curves}``, with ``{name: contexts}`` if given."""
        import torch

        out = {}
        self.predict_proba(next((c for c in sets.values() if len(c)), [])[:8])  # warm-up, untimed
        for name, curves in sets.items():
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            start = time.perf_counter()
            probs = self.predict_proba(curves, None if contexts is None else contexts[name])  # .cpu() inside syncs
            out[name] = (probs, time.perf_counter() - start)
        return out


@dataclass
class EvalSet:
    name: str
    survey: str
    labeled: object  # training.datasets.LabeledSet


def load_test_sets(names: Sequence[str], n_test: int, seed: int, n_bts: int | None = None,
                   data_dir=None) -> tuple[list[EvalSet], dict[str, str]]:
    """The requested test sets; a set that cannot be loaded (no shared data) is reported, not fatal."""
    from training import datasets

    sets, missing = [], {}
    for name in names:
        if name == "ztf-bts":
            try:
                labeled = datasets.ztf_bts("test", seed=seed, data_dir=data_dir, service_form=False)
            except FileNotFoundError as err:
                missing[name] = str(err)
                continue
            if n_bts is not None:
                labeled = labeled.subset(np.random.default_rng(seed).permutation(len(labeled))[:n_bts])
            sets.append(EvalSet(name, "ztf", labeled))
        else:
            _, survey, mix = name.split("-")
            sets.append(EvalSet(name, survey, datasets.simulated("test", n_test, seed=seed, survey=survey, mix=mix,
                                                                 classes=None if mix == "realistic" else ELASTICC_CLASS_IDS)))
    return sets, missing


def peer_training_set(survey: str, n_train: int, seed: int, drop_nondetections_prob: float,
                      n_bts: int | None = None, data_dir=None):
    """The peers' training data for one survey: simulated train curves (+ real BTS train for ZTF).

    A ``drop_nondetections_prob`` share of the curves is shown with detections
    only (`training.prefixes.detections_only`), as in the transformer's training.
    """
    from training import datasets
    from training.prefixes import detections_only

    parts = [datasets.simulated("train", n_train, seed=seed, survey=survey, mix="balanced",
                                classes=ELASTICC_CLASS_IDS)]
    if survey == "ztf":
        try:
            bts = datasets.ztf_bts("train", seed=seed, data_dir=data_dir, service_form=False)
            if n_bts is not None:
                bts = bts.subset(np.arange(min(n_bts, len(bts))))
            parts.append(bts)
        except FileNotFoundError as err:
            log.warning("peers: ZTF BTS train split not found, training on simulations only: %s", err)
    train = datasets.LabeledSet.concatenate(parts)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xD40B]))
    drop = rng.random(len(train)) < drop_nondetections_prob
    train.curves = [detections_only(c) if d and c.is_detection.any() else c
                    for c, d in zip(train.curves, drop.tolist())]
    return train


def make_peer(kind: str, seed: int, quick: bool, work_dir: Path, progress: bool = False, threads: int = 1):
    """A fresh peer of ``kind`` ("features" or "supernnova") with the evaluation's settings."""
    from training.evaluation.peers.features import FeatureBaseline
    from training.evaluation.peers.supernnova import SuperNNovaPeer

    if kind == "features":
        return FeatureBaseline(fit_algorithm=QUICK["feature_fit"] if quick else "mcmc-lmsder",
                               max_iter=QUICK["feature_max_iter"] if quick else 300, seed=seed, progress=progress,
                               n_jobs=threads, classifier_threads=threads)
    return SuperNNovaPeer(work_dir=work_dir, nb_epoch=QUICK["snn_epochs"] if quick else 90, seed=seed,
                          torch_threads=threads)


def trained_peer(kind: str, survey: str, n_train: int, seed: int, drop_prob: float, *, quick: bool = False,
                 data_dir=None, work_dir: Path, cache_dir=None, progress: bool = False, threads: int = 1):
    """A peer trained for one survey, from ``cache_dir`` when it holds one made with the same settings.

    The cache key names everything the training depends on (kind, survey, size,
    seed, quick, the detections-only share, and a hash of the peer's
    settings); SuperNNova's files then live in the cache too. Returns
    ``(peer, train_info)``.
    """
    peer = make_peer(kind, seed, quick, work_dir, progress, threads)
    settings = {k: v for k, v in _peer_settings(peer).items()
                if k not in ("work_dir", "progress", "n_jobs", "classifier_threads", "torch_threads")}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]
    key = f"{kind}-{survey}-n{n_train}-seed{seed}-drop{drop_prob:g}{'-quick' if quick else ''}-{digest}"
    cached = Path(cache_dir) / f"{key}.pkl" if cache_dir else None
    if cached is not None and cached.is_file():
        with open(cached, "rb") as f:
            peer, info = pickle.load(f)
        for attr in ("n_jobs", "classifier_threads", "torch_threads"):  # this run's threads, not the cached run's
            if hasattr(peer, attr):
                setattr(peer, attr, threads)
        log.info("peer loaded from cache path=%s", cached)
        return peer, info | {"cached": str(cached)}
    train = peer_training_set(survey, n_train, seed, drop_prob, n_bts=QUICK["n_bts_train"] if quick else None,
                              data_dir=data_dir)
    if cached is not None:  # SuperNNova's model must outlive this run
        peer = make_peer(kind, seed, quick, cached.with_suffix(""), progress, threads)
    log.info("training peer=%s survey=%s n_curves=%d source=%s", kind, survey, len(train), train.source)
    t0 = time.perf_counter()
    peer.fit(train.curves, train.class_ids)
    info = {"source": train.source, "n_curves": len(train),
            "class_counts": {str(k): v for k, v in train.class_counts().items()},
            "seconds": time.perf_counter() - t0, "settings": _peer_settings(peer)}
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump((peer, info), f)
        tmp.replace(cached)
    return peer, info


def _peer_settings(peer) -> dict:
    """The plain settings of a peer (its public scalar attributes), for the report."""
    return {k: v for k, v in vars(peer).items()
            if not k.startswith("_") and (v is None or isinstance(v, (bool, int, float, str, dict)))}


def _progress(iterable, desc: str, enabled: bool, total=None):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, file=sys.stderr)


def _json_safe(x):
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return None if not math.isfinite(float(x)) else float(x)
    return x


def evaluate(checkpoint=SHIPPED_CHECKPOINT, out_dir="out/eval", *, n_test: int = DEFAULT_N_TEST,
             n_train_peers: int = DEFAULT_N_TRAIN_PEERS, peers: str = "all", seed: int = 0, quick: bool = False,
             test_sets: Sequence[str] = TEST_SETS, device: str = "auto", data_dir=None,
             peer_cache=None, threads: int = 1, progress: bool = True, figures: bool = True,
             quantize: str = "none") -> dict:
    """Evaluate the checkpoint and its peers; write ``report.json`` and figures to ``out_dir``.

    Parameters
    ----------
    checkpoint : str or Path
        A `models.checkpoint` file.
    out_dir : str or Path
        Created if missing; SuperNNova's working files go to ``out_dir/work``.
    n_test : int
        Curves per simulated test set.
    n_train_peers : int
        Simulated training curves per survey for each peer.
    peers : {"features", "supernnova", "none", "all"}
    seed : int
        Seed of the test sets, the peers' training sets and the peers.
    quick : bool
        Tiny sizes everywhere (tests): overrides ``n_test`` and ``n_train_peers``.
    test_sets : sequence of str
        Among `TEST_SETS`.
    device : str
        ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``, for the transformer.
    data_dir : str or Path, optional
        Shared data directory holding ``labeled/`` (default: `models.paths.data_dir`).
    peer_cache : str or Path, optional
        Keep trained peers here and reuse them when the training settings
        match (`trained_peer`); default: train them afresh.
    threads : int
        CPU threads of every model (torch for the transformer and SuperNNova,
        feature extraction and trees for the feature peer), so light curves/s
        compare like with like. Default 1: per core, and robust on a small
        machine shared with other work, where 2 OpenMP threads were up to 30x
        slower than 1.
    progress : bool
        Progress bars on stderr.
    figures : bool
        Write the PNG figures.
    quantize : {"none", "int8"}
        int8: evaluate the transformer after `training.quantize.quantize_int8` (CPU), to
        measure what int8 would cost; not a serving option, because it moved the metrics
        by more than 0.5 points (README, Performance).

    Returns
    -------
    dict
        The report (also written as ``out_dir/report.json``).
    """
    import torch

    from models.checkpoint import load_checkpoint
    from training.quantize import quantize_int8

    if peers not in PEER_CHOICES:
        raise ValueError(f"peers={peers!r}: expected one of {PEER_CHOICES}")
    if quantize not in ("none", "int8"):
        raise ValueError(f"quantize={quantize!r}: expected 'none' or 'int8'")
    unknown = set(test_sets) - set(TEST_SETS)
    if unknown:
        raise ValueError(f"unknown test set(s) {sorted(unknown)}; known: {TEST_SETS}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if quick:
        n_test, n_train_peers = QUICK["n_test"], QUICK["n_train_peers"]
    started = time.perf_counter()

    if device == "auto":
        device = str(device_of("auto"))
    torch_threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    model, meta = load_checkpoint(checkpoint, map_location=device)
    scorer = TransformerScorer(quantize_int8(model) if quantize == "int8" else model)
    drop_prob = float(meta.get("train_config", {}).get("drop_nondetections_prob", DEFAULT_DROP_NONDETECTIONS_PROB))

    sets, missing = load_test_sets(test_sets, n_test, seed, n_bts=QUICK["n_bts_test"] if quick else None,
                                   data_dir=data_dir)
    for name, why in missing.items():
        log.warning("test set %s not available: %s", name, why)

    # Prefix conditions of each test set, computed once and shared by every model.
    cuts = {ts.name: cut_curves(ts.labeled.curves) for ts in _progress(sets, "cutting prefixes", progress)}

    peer_kinds = {"all": ["features", "supernnova"], "none": []}.get(peers, [peers])
    models_info = {"transformer": {"status": "ok", "device": device}}
    # predictions[model][test set] = {condition: (probs, seconds)}
    predictions: dict[str, dict[str, dict]] = {"transformer": {}}
    for ts in _progress(sets, "transformer", progress):
        predictions["transformer"][ts.name] = scorer.predict_sets(
            {c: curves for c, (_, curves) in cuts[ts.name].items()},
            {c: ts.labeled.contexts[kept] for c, (kept, _) in cuts[ts.name].items()})

    surveys_needed = sorted({ts.survey for ts in sets})
    for kind in peer_kinds:
        info = {"status": "ok", "train": {}}
        predictions[kind] = {}
        try:
            for survey in surveys_needed:
                peer, info["train"][survey] = trained_peer(
                    kind, survey, n_train_peers, seed, drop_prob, quick=quick, data_dir=data_dir,
                    work_dir=out_dir / "work" / f"{kind}-{survey}", cache_dir=peer_cache, progress=progress,
                    threads=threads)
                for ts in _progress([s for s in sets if s.survey == survey], f"{kind} ({survey})", progress):
                    predictions[kind][ts.name] = peer.predict_sets(
                        {c: curves for c, (_, curves) in cuts[ts.name].items()})
        except Exception as err:  # a peer that cannot run is reported, and the evaluation goes on
            log.error("peer %s failed: %s\n%s", kind, err, traceback.format_exc())
            info = {"status": "not run", "error": f"{type(err).__name__}: {err}", "train": info["train"]}
            predictions.pop(kind)
        models_info[kind] = info

    results = {}
    for ts in sets:
        targets = class_indices(ts.labeled.class_ids)
        results[ts.name] = {}
        for cond, (kept, _) in cuts[ts.name].items():
            entry = {"n_curves": int(len(kept)), "n_skipped": int(len(targets) - len(kept)), "models": {}}
            for model_name, per_set in predictions.items():
                if ts.name not in per_set:
                    continue
                probs, seconds = per_set[ts.name][cond]
                if len(kept) == 0:
                    entry["models"][model_name] = {"n": 0}
                    continue
                rep = classification_report(probs, targets[kept], ECE_BINS)
                if ts.name in STREAM_PRIORS:
                    rep["under_stream_prior"] = _under_prior(probs, targets[kept], STREAM_PRIORS[ts.name])
                rep["seconds"] = seconds
                rep["curves_per_s"] = len(kept) / seconds if seconds > 0 else None
                entry["models"][model_name] = rep
            results[ts.name][cond] = entry

    report = {
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": {"path": str(checkpoint), "created_utc": meta.get("created_utc"),
                       "code_version": meta.get("code_version"), "temperature": meta.get("temperature"),
                       "model_config": meta.get("model_config"), "n_parameters": model.get_num_params(),
                       "data": meta.get("data")},
        "config": {"n_test": n_test, "n_train_peers": n_train_peers, "peers": peers, "seed": seed, "quick": quick,
                   "peer_cache": str(peer_cache) if peer_cache else None,
                   "device": device, "threads": threads, "quantize": quantize,
                   "conditions": condition_names(), "ece_bins": ECE_BINS,
                   "peer_drop_nondetections_prob": drop_prob},
        "conventions": {
            "macro_f1": "mean F1 over the classes present in the test set's truth",
            "sn_vs_rest": "truth: SN Ia, Ib/c, II, SLSN; score: sn_likelihood (sum of their probabilities)",
            "flare_vs_rest": "truth: M-dwarf flare; score: flare_likelihood",
            "pr_auc": "average precision (step function, as scikit-learn's average_precision_score)",
            "ece": f"top-label expected calibration error, {ECE_BINS} equal-width bins",
            "curves_per_s": "light curves per second of inference, preprocessing included, with config.threads "
                            "CPU threads per model (or the GPU for the transformer if config.device is cuda)",
            "null": "undefined (e.g. no positives of that class in the set)",
        },
        "classes": {"ids": list(CLASS_IDS), "names": list(CLASS_NAMES)},
        "test_sets": {ts.name: {"source": ts.labeled.source, "survey": ts.survey, "n": len(ts.labeled),
                                "class_counts": {str(k): v for k, v in ts.labeled.class_counts().items()}}
                      for ts in sets} | {name: {"status": "not available", "error": why}
                                         for name, why in missing.items()},
        "models": models_info,
        "results": results,
        "throughput": _throughput(results),
        "real_packets": evaluate_packets(checkpoint, "test", data_dir=data_dir, peer=peers != "none", quick=quick),
        "context_check": write_context_check(out_dir, data_dir, figures, quick),
        "sim_check": write_sim_check(out_dir, data_dir, quick),
        "headline": _headline(results),
    }
    report["wall_seconds"] = time.perf_counter() - started
    torch.set_num_threads(torch_threads_before)
    if figures:
        report["figures"] = write_figures(report, out_dir)
    report = _json_safe(report)
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, allow_nan=False))
    log.info("evaluation written out=%s seconds=%.0f", out_dir, report["wall_seconds"])
    return report


def _throughput(results: dict) -> dict:
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


def _headline(results: dict) -> dict:
    """Macro-F1, SN and flare PR-AUC and ECE at N_det = 1, 2, 3 and all, per set and model."""
    out = {}
    for set_name, per_cond in results.items():
        out[set_name] = {}
        for cond in HEADLINE_CUTS:
            for model, rep in per_cond[cond]["models"].items():
                if rep.get("n"):
                    out[set_name].setdefault(model, {})[cond] = {
                        "n": rep["n"], "macro_f1": rep["macro_f1"], "sn_pr_auc": rep["sn_vs_rest"]["pr_auc"],
                        "flare_pr_auc": rep["flare_vs_rest"]["pr_auc"], "ece": rep["ece"]}
    return out


# ---------------------------------------------------------------------------------------------
# Figures (matplotlib, Agg backend: files only)
# ---------------------------------------------------------------------------------------------

CONFUSION_CUTS = ("n_det=1", "n_det=3", "n_det=all")
RELIABILITY_CUTS = ("n_det=3", "n_det=all")
_MODEL_COLORS = {"transformer": "tab:blue", "features": "tab:orange", "supernnova": "tab:green"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _models_of(per_cond: dict) -> list[str]:
    return list(dict.fromkeys(m for entry in per_cond.values() for m, rep in entry["models"].items() if rep.get("n")))


def _figure_confusion(per_cond: dict, set_name: str, path: Path) -> None:
    """Row-normalised confusion matrices (recall on the diagonal): models x N_det cuts."""
    plt = _pyplot()
    models = _models_of(per_cond)
    fig, axes = plt.subplots(len(models), len(CONFUSION_CUTS), figsize=(4.2 * len(CONFUSION_CUTS), 4.0 * len(models)),
                             squeeze=False, constrained_layout=True)
    for r, model in enumerate(models):
        for c, cond in enumerate(CONFUSION_CUTS):
            ax = axes[r, c]
            rep = per_cond[cond]["models"].get(model, {})
            if not rep.get("n"):
                ax.set_axis_off()
                continue
            cm = np.asarray(rep["confusion_matrix"], dtype=np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                norm = cm / cm.sum(axis=1, keepdims=True)
            ax.imshow(np.nan_to_num(norm), vmin=0, vmax=1, cmap="Blues")
            for i, j in zip(*np.nonzero(cm)):
                ax.text(j, i, f"{norm[i, j]:.2f}".lstrip("0"), ha="center", va="center", fontsize=5,
                        color="white" if norm[i, j] > 0.5 else "black")
            ticks = np.arange(len(CLASS_NAMES))
            ax.set_xticks(ticks, CLASS_NAMES, rotation=90, fontsize=6)
            ax.set_yticks(ticks, CLASS_NAMES, fontsize=6)
            f1 = rep["macro_f1"]
            ax.set_title(f"{model}, {cond} (n={rep['n']}, macro-F1 {f1:.3f})" if f1 is not None else
                         f"{model}, {cond} (n={rep['n']})", fontsize=8)
            ax.set_xlabel("predicted", fontsize=7)
            ax.set_ylabel("true", fontsize=7)
    fig.suptitle(f"{set_name}: confusion matrices, rows normalised to recall")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _figure_reliability(per_cond: dict, set_name: str, path: Path) -> None:
    """Top-label reliability diagrams: accuracy against confidence per bin, with each model's ECE."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(RELIABILITY_CUTS), figsize=(5 * len(RELIABILITY_CUTS), 4.6), squeeze=False,
                             constrained_layout=True)
    for ax, cond in zip(axes[0], RELIABILITY_CUTS):
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
        for model, rep in per_cond[cond]["models"].items():
            if not rep.get("n"):
                continue
            rel = rep["reliability"]
            count = np.asarray(rel["count"])
            used = count > 0
            conf = np.asarray([np.nan if v is None else v for v in rel["confidence"]], dtype=np.float64)[used]
            acc = np.asarray([np.nan if v is None else v for v in rel["accuracy"]], dtype=np.float64)[used]
            ax.plot(conf, acc, marker="o", ms=3, color=_MODEL_COLORS.get(model),
                    label=f"{model} (ECE {rep['ece']:.3f})")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top-class probability)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{cond} (n={per_cond[cond]['n_curves']})")
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"{set_name}: reliability")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _figure_curves(per_cond: dict, set_name: str, path: Path) -> None:
    """Macro-F1, SN-vs-rest and flare-vs-rest PR-AUC and ECE against N_det (top) and days (bottom)."""
    plt = _pyplot()
    panels = (("macro-F1", lambda r: r["macro_f1"]), ("SN-vs-rest PR-AUC", lambda r: r["sn_vs_rest"]["pr_auc"]),
              ("flare-vs-rest PR-AUC", lambda r: r["flare_vs_rest"]["pr_auc"]), ("ECE", lambda r: r["ece"]))
    rows = (("N_det", [f"n_det={n}" for n in N_DET_CUTS], [str(n) for n in N_DET_CUTS]),
            ("days after first detection", [f"days={d:g}" for d in DAY_CUTS], [f"{d:g}" for d in DAY_CUTS]))
    fig, axes = plt.subplots(2, len(panels), figsize=(4 * len(panels), 7), constrained_layout=True)
    for r, (xlabel, conds, ticks) in enumerate(rows):
        for c, (title, get) in enumerate(panels):
            ax = axes[r, c]
            for model in _models_of(per_cond):
                y = [get(per_cond[k]["models"][model]) if per_cond[k]["models"].get(model, {}).get("n") else None
                     for k in conds]
                y = np.array([np.nan if v is None else v for v in y], dtype=np.float64)
                ax.plot(np.arange(len(conds)), y, marker="o", color=_MODEL_COLORS.get(model), label=model)
            ax.set_xticks(np.arange(len(conds)), ticks)
            ax.set_xlabel(xlabel)
            ax.set_title(title)
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"{set_name}: metrics as the light curve grows")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _figure_throughput(throughput: dict, config: dict, path: Path) -> None:
    plt = _pyplot()
    models = list(throughput)
    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    x = np.arange(len(models))
    for k, (key, label) in enumerate((("curves_per_s", "all prefixes"), ("whole_curves_per_s", "whole curves"))):
        vals = [throughput[m][key] or 0.0 for m in models]
        bars = ax.bar(x + (k - 0.5) * 0.38, vals, width=0.38, label=label)
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in vals], fontsize=7)
    ax.set_xticks(x, models)
    ax.set_yscale("log")
    where = "GPU for the transformer, " if config.get("device") == "cuda" else ""
    ax.set_ylabel(f"light curves / s ({where}{config.get('threads')} CPU thread(s))")
    ax.set_title("inference throughput, preprocessing included")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_figures(report: dict, out_dir: Path) -> list[str]:
    """Write every PNG of the report into ``out_dir``; returns their file names."""
    out_dir = Path(out_dir)
    names = []
    for set_name, per_cond in report["results"].items():
        for stem, draw in (("confusion", _figure_confusion), ("reliability", _figure_reliability),
                           ("metrics", _figure_curves)):
            name = f"{stem}_{set_name}.png"
            draw(per_cond, set_name, out_dir / name)
            names.append(name)
    if report["throughput"]:
        _figure_throughput(report["throughput"], report["config"], out_dir / "throughput.png")
        names.append("throughput.png")
    return names


def format_headline(report: dict) -> str:
    """The headline as a plain-text table: one line per test set, model and N_det cut."""
    def num(x):
        return "   -  " if x is None else f"{x:6.3f}"

    lines = [f"{'test set':20s} {'model':12s} {'cut':10s} {'n':>5s} {'F1':>6s} {'SN-AP':>6s} {'fl-AP':>6s} {'ECE':>6s}"]
    for set_name, per_model in report["headline"].items():
        for model, per_cut in per_model.items():
            for cut, h in per_cut.items():
                lines.append(f"{set_name:20s} {model:12s} {cut:10s} {h['n']:5d} {num(h['macro_f1'])} "
                             f"{num(h['sn_pr_auc'])} {num(h['flare_pr_auc'])} {num(h['ece'])}")
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
    report = simulated_vs_bts(n_per_class=200 if quick else 2000, data_dir=data_dir)
    (out_dir / "sim_check.json").write_text(json.dumps(_json_safe(report), indent=1, allow_nan=False))
    return report


def write_context_check(out_dir: Path, data_dir=None, figures: bool = True, quick: bool = False) -> dict:
    """`training.context_check` on the real packets' test part: ``context_check.json`` and, with `figures`,
    ``context_distributions.png`` in `out_dir`; returns the report."""
    report = context_comparison("test", n_sim=QUICK["n_context_sim"] if quick else 2400, data_dir=data_dir)
    if figures:
        plot_context_comparison(report, out_dir / "context_distributions.png")
    report = {k: v for k, v in report.items() if k != "_values"}
    (out_dir / "context_check.json").write_text(json.dumps(_json_safe(report), indent=1, allow_nan=False))
    return report


def cmd_evaluate(args) -> int:
    if not Path(args.checkpoint).is_file():
        print(f"alertformer evaluate: checkpoint {args.checkpoint} not found", file=sys.stderr)
        return 2
    if args.packets_only:
        report = evaluate_packets(args.checkpoint, "test", data_dir=args.data_dir, peer=args.peers != "none",
                                  quick=args.quick)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "packets.json").write_text(json.dumps(_json_safe(report), indent=1, allow_nan=False))
        print(format_packet_report(report))
        print(format_context_comparison(write_context_check(out, args.data_dir, not args.no_figures, args.quick)))
        print(format_sim_comparison(write_sim_check(out, args.data_dir, args.quick)))
        print(f"report: {out / 'packets.json'}, {out / 'context_check.json'}, {out / 'sim_check.json'}")
        return 0
    report = evaluate(args.checkpoint, args.out, n_test=args.n_test, n_train_peers=args.n_train_peers,
                      peers=args.peers, seed=args.seed, quick=args.quick, test_sets=args.test_sets,
                      device=args.device, data_dir=args.data_dir, peer_cache=args.peer_cache, threads=args.threads,
                      progress=not args.quiet,
                      figures=not args.no_figures, quantize=args.quantize)
    print(format_headline(report))
    print(format_packet_report(report["real_packets"]))
    print(format_sim_comparison(report["sim_check"]))
    print(f"report: {Path(args.out) / 'report.json'}; figures: {', '.join(report.get('figures', []))}")
    return 0
