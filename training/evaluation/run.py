"""``alertformer evaluate``: the transformer against its peers, on the same test sets and prefixes.

For the checkpoint and each requested peer (`training.evaluation.peers`), on

1. ``sim-lsst-balanced``: simulated LSST test split, equal class counts;
2. ``sim-lsst-realistic``: the same at the PLAsTiCC-like stream mix
   (`training.simulate.REALISTIC_MIX`), where purity depends on the prior;
3. ``ztf-bts``: the held-out real ZTF Bright Transient Survey test split
   (`training.datasets.ztf_bts("test")`, a fixed holdout) as published: detections alone, no context;
4. ``ztf-bts-service``: the same objects in the form a ZTF packet gives the service: the
   upper limits of the 30 days before each detection and a context drawn from real SN packets;

each cut to what the stream knew at N_det = 1, 2, 3, 5, 10 and all detections
(`training.prefixes.first_n_detections`: the curve as of the alert its N-th
detection triggered, so "all" ends at the last detection; a curve with fewer
than N detections is skipped and counted), at the whole simulated curve
("whole": with the forced photometry after the last detection, which no alert
carries), and at 1, 3, 7, 14 and 30 days after the first detection
(`days_after_first_detection`), the report (`training.evaluation.report`) gives
macro-F1, per-class precision and recall, the confusion matrix,
SN-vs-rest and flare-vs-rest ROC-AUC and PR-AUC (scored with ``sn_likelihood``
and ``flare_likelihood``), top-label ECE with reliability bins, and light
curves per second of inference (preprocessing included: encoding for the
transformer, feature extraction for the feature peer, SuperNNova's own
formatting for it). `training.metrics` states the conventions.

The transformer is scored by the service's own `stream.score.Scorer`
(`Scorer.timed_probabilities`: its length-sorted chunks and, on the CPU, its
TorchScript trace), so the evaluation measures what is served.

Peers are trained here on the data the transformer was trained on (the
``training.datasets`` train splits), at a modest size (``n_train_peers``):
one model per survey, since their inputs are per band. The LSST peer learns
from simulated LSST curves; the ZTF peer from simulated ZTF curves plus the
real BTS train split, as the transformer was fine-tuned. As in the
transformer's recipe, a share of the training curves (the checkpoint's
``drop_nondetections_prob``, else 0.2) is shown with detections only. Nothing
is tuned on a test split.

Stages of `evaluate`: `load_scorer` → `training.evaluation.sets.load_test_sets`
and `cut_curves` → `predict_transformer` → `predict_peer` per peer →
`training.evaluation.report.model_results` → the real-packet, context and
simulator checks → ``report.json`` and the figures (`training.evaluation.figures`)
in the output directory.
"""
import logging
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from models.checkpoint import load_checkpoint
from models.device import device_of
from models.paths import SHIPPED_CHECKPOINT, checkpoint_path
from stream.score import CPU_CHUNK_CURVES, PRECISIONS, Scorer, checkpoint_version, pick_precision
from training.context_check import format_context_comparison
from training.evaluation import report as rep
from training.evaluation.figures import write_figures
from training.evaluation.peers.trained import PEER_KINDS, PeerSettings, trained_peer
from training.evaluation.sets import TEST_SETS, EvaluationSet, condition_names, cut_curves, load_test_sets
from training.metrics import ECE_BINS
from training.packet_eval import evaluate_packets, format_packet_report
from training.sim_check import format_comparison as format_sim_comparison

log = logging.getLogger(__name__)

PEER_CHOICES = (*PEER_KINDS, "none", "all")
QUANTIZE_CHOICES = ("none", "int8")
DEFAULT_N_TEST = 2000  # per simulated test set (~180 per class when balanced)
DEFAULT_N_TRAIN_PEERS = 5000  # simulated train curves per survey for each peer
# for a checkpoint whose train_config does not record its detections-only share (an early recipe's value;
# today's is training.recipe.TrainConfig.drop_nondetections_prob)
DEFAULT_DROP_NONDETECTIONS_PROB = 0.2
QUICK = {"n_test": 44, "n_train_peers": 110, "n_bts_test": 30, "n_bts_train": 40, "feature_fit": "lmsder",
         "feature_max_iter": 20, "snn_epochs": 2}


@dataclass(frozen=True)
class EvaluationSettings:
    """What `evaluate` runs (``alertformer evaluate``'s options).

    Parameters
    ----------
    n_test : int
        Curves per simulated test set.
    n_train_peers : int
        Simulated training curves per survey for each peer.
    peers : {"features", "supernnova", "none", "all"}
    seed : int
        Seed of the test sets, the peers' training sets and the peers.
    quick : bool
        Tiny sizes everywhere (tests): overrides ``n_test`` and ``n_train_peers`` (`QUICK`).
    test_sets : tuple of str
        Among `TEST_SETS`.
    device : str
        ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``, for the transformer.
    data_dir : str or Path, optional
        Shared data directory holding ``labeled/`` (default: `models.paths.data_dir`).
    peer_cache : str or Path, optional
        Keep trained peers here and reuse them when the training settings match
        (`training.evaluation.peers.trained.trained_peer`); default: train them afresh.
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
    precision : {"fp32", "bf16"}
        The transformer's ``scoring.precision``, on the test sets and the real packets
        (`stream.score.pick_precision`: bf16 needs CUDA, or a CPU with AMX or AVX-512 BF16).

    Raises
    ------
    ValueError
        Naming the field of a value out of its choices.
    """

    n_test: int = DEFAULT_N_TEST
    n_train_peers: int = DEFAULT_N_TRAIN_PEERS
    peers: str = "all"
    seed: int = 0
    quick: bool = False
    test_sets: tuple[str, ...] = TEST_SETS
    device: str = "auto"
    data_dir: str | Path | None = None
    peer_cache: str | Path | None = None
    threads: int = 1
    progress: bool = True
    figures: bool = True
    quantize: str = "none"
    precision: str = "fp32"

    def __post_init__(self):
        if self.peers not in PEER_CHOICES:
            raise ValueError(f"peers={self.peers!r}: expected one of {PEER_CHOICES}")
        if self.quantize not in QUANTIZE_CHOICES:
            raise ValueError(f"quantize={self.quantize!r}: expected 'none' or 'int8'")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}: expected one of {PRECISIONS}")
        if self.precision != "fp32" and self.quantize != "none":
            raise ValueError("precision and quantize: int8 quantises an fp32 model; pass one of them")
        unknown = set(self.test_sets) - set(TEST_SETS)
        if unknown:
            raise ValueError(f"test_sets: unknown test set(s) {sorted(unknown)}; known: {TEST_SETS}")
        object.__setattr__(self, "test_sets", tuple(self.test_sets))
        if self.quick:
            object.__setattr__(self, "n_test", QUICK["n_test"])
            object.__setattr__(self, "n_train_peers", QUICK["n_train_peers"])

    @property
    def peer_kinds(self) -> list[str]:
        return {"all": list(PEER_KINDS), "none": []}.get(self.peers, [self.peers])

    def peer_settings(self, drop_nondetections_prob: float) -> PeerSettings:
        """How the peers are trained under these settings."""
        quick = self.quick
        return PeerSettings(
            n_train=self.n_train_peers, seed=self.seed, drop_nondetections_prob=drop_nondetections_prob, quick=quick,
            data_dir=self.data_dir, cache_dir=self.peer_cache, progress=self.progress, threads=self.threads,
            feature_fit=QUICK["feature_fit"] if quick else "mcmc-lmsder",
            feature_max_iter=QUICK["feature_max_iter"] if quick else 300,
            snn_epochs=QUICK["snn_epochs"] if quick else 90, n_bts_train=QUICK["n_bts_train"] if quick else None)

    def report_entry(self, device: str, drop_nondetections_prob: float) -> dict:
        """The report's ``config``."""
        return {"n_test": self.n_test, "n_train_peers": self.n_train_peers, "peers": self.peers, "seed": self.seed,
                "quick": self.quick, "peer_cache": str(self.peer_cache) if self.peer_cache else None,
                "device": device, "threads": self.threads, "quantize": self.quantize,
                "precision": self.precision,
                "conditions": condition_names(), "ece_bins": ECE_BINS,
                "peer_drop_nondetections_prob": drop_nondetections_prob}


@dataclass
class LoadedCheckpoint:
    """The checkpoint as the evaluation scores it: the serving `Scorer` and the file's metadata."""

    path: Path
    scorer: Scorer
    meta: dict
    n_parameters: int

    @property
    def drop_nondetections_prob(self) -> float:
        """The detections-only share the transformer was trained with, for its peers."""
        return float(self.meta.get("train_config", {}).get("drop_nondetections_prob",
                                                           DEFAULT_DROP_NONDETECTIONS_PROB))


def load_scorer(checkpoint, device: str, quantize: str = "none", precision: str = "fp32") -> LoadedCheckpoint:
    """`checkpoint` in a `Scorer` on `device` (a resolved name) at `precision` with the service's CPU chunks,
    no class prior. Raises ConfigError for a precision the device cannot run."""
    from training.quantize import quantize_int8

    path = Path(checkpoint)
    model, meta = load_checkpoint(path, map_location=device)
    n_parameters = model.get_num_params()
    if quantize == "int8":
        model = quantize_int8(model)
    dev = device_of(device)
    scorer = Scorer(model, checkpoint_version(path, meta), dev, model.config.max_visits,
                    pick_precision(precision, dev), chunk_curves=CPU_CHUNK_CURVES if dev.type == "cpu" else None)
    return LoadedCheckpoint(path, scorer, meta, n_parameters)


def _progress(iterable, desc: str, enabled: bool, total=None):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False, file=sys.stderr)


def predict_transformer(loaded: LoadedCheckpoint, sets: list[EvaluationSet], cuts: dict, device: str,
                        progress: bool = False) -> rep.ModelPredictions:
    """The transformer's probabilities and seconds on every condition of every set, with the alerts' contexts."""
    by_set = {}
    for ts in _progress(sets, "transformer", progress):
        by_set[ts.name] = loaded.scorer.timed_probabilities(
            {c: curves for c, (_, curves) in cuts[ts.name].items()},
            {c: ts.labeled.contexts[kept] for c, (kept, _) in cuts[ts.name].items()})
    return rep.ModelPredictions("transformer", {"status": "ok", "device": device}, by_set)


def predict_peer(kind: str, sets: list[EvaluationSet], cuts: dict, settings: PeerSettings, work_dir: Path
                 ) -> rep.ModelPredictions:
    """One peer kind trained per survey of `sets` and run on their conditions; a peer that cannot run is
    reported with status "not run" and no predictions, and the evaluation goes on."""
    info = {"status": "ok", "train": {}}
    by_set = {}
    try:
        for survey in sorted({ts.survey for ts in sets}):
            trained = trained_peer(kind, survey, settings, work_dir / f"{kind}-{survey}")
            info["train"][survey] = trained.info
            for ts in _progress([s for s in sets if s.survey == survey], f"{kind} ({survey})", settings.progress):
                by_set[ts.name] = trained.peer.predict_sets({c: curves for c, (_, curves) in cuts[ts.name].items()})
    except Exception as err:  # noqa: BLE001 (any failure of a peer is reported in its entry)
        log.error("peer %s failed: %s\n%s", kind, err, traceback.format_exc())
        return rep.ModelPredictions(kind, {"status": "not run", "error": f"{type(err).__name__}: {err}",
                                           "train": info["train"]}, {})
    return rep.ModelPredictions(kind, info, by_set)


def evaluate(checkpoint=SHIPPED_CHECKPOINT, out_dir="out/eval", settings: EvaluationSettings | None = None) -> dict:
    """Evaluate the checkpoint and its peers with `settings`; write ``report.json`` and figures to ``out_dir``
    (created if missing; SuperNNova's working files go to ``out_dir/work``).

    Returns
    -------
    dict
        The report (also written as ``out_dir/report.json``).
    """
    import torch

    s = settings or EvaluationSettings()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    device = str(device_of("auto")) if s.device == "auto" else s.device
    torch_threads_before = torch.get_num_threads()
    torch.set_num_threads(s.threads)
    try:
        loaded = load_scorer(checkpoint, device, s.quantize, s.precision)
        drop_prob = loaded.drop_nondetections_prob
        sets, missing = load_test_sets(s.test_sets, s.n_test, s.seed, n_bts=QUICK["n_bts_test"] if s.quick else None,
                                       data_dir=s.data_dir,
                                       context_fields_by_survey=loaded.scorer.context_fields_by_survey)
        # Prefix conditions of each test set, computed once and shared by every model.
        cuts = {ts.name: cut_curves(ts.labeled.curves) for ts in _progress(sets, "cutting prefixes", s.progress)}
        models = [predict_transformer(loaded, sets, cuts, device, s.progress)]
        models += [predict_peer(kind, sets, cuts, s.peer_settings(drop_prob), out_dir / "work")
                   for kind in s.peer_kinds]
        results = rep.model_results(sets, cuts, models)
        report = {
            "created_utc": rep.now_utc(),
            "checkpoint": rep.checkpoint_entry(checkpoint, loaded.meta, loaded.n_parameters),
            "config": s.report_entry(device, drop_prob),
            **rep.conventions(),
            "test_sets": rep.test_sets_entry(sets, missing),
            "models": {m.name: m.info for m in models},
            "results": results,
            "throughput": rep.throughput(results),
            "real_packets": evaluate_packets(checkpoint, "test", data_dir=s.data_dir, peer=s.peers != "none",
                                             quick=s.quick, precision=s.precision),
            "context_check": rep.write_context_check(out_dir, s.data_dir, s.figures, s.quick),
            "sim_check": rep.write_sim_check(out_dir, s.data_dir, s.quick),
            "headline": rep.headline(results),
        }
        report["wall_seconds"] = time.perf_counter() - started
    finally:
        torch.set_num_threads(torch_threads_before)
    if s.figures:
        report["figures"] = write_figures(report, out_dir)
    report = rep.write_json(report, out_dir / "report.json")
    log.info("evaluation written out=%s seconds=%.0f", out_dir, report["wall_seconds"])
    return report


def evaluate_packets_only(checkpoint, out_dir, data_dir=None, peer: bool = True, quick: bool = False,
                          figures: bool = True, precision: str = "fp32") -> None:
    """The real packets on the service path (`training.packet_eval`), the context and simulator checks:
    ``packets.json``, ``context_check.json`` and ``sim_check.json`` in `out_dir`, each printed."""
    report = evaluate_packets(checkpoint, "test", data_dir=data_dir, peer=peer, quick=quick, precision=precision)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rep.write_json(report, out / "packets.json")
    print(format_packet_report(report))
    print(format_context_comparison(rep.write_context_check(out, data_dir, figures, quick)))
    print(format_sim_comparison(rep.write_sim_check(out, data_dir, quick)))
    print(f"report: {out / 'packets.json'}, {out / 'context_check.json'}, {out / 'sim_check.json'}")


def cmd_evaluate(args) -> int:
    """``alertformer evaluate`` with its parsed `args`: 0, or 2 with one line for a missing checkpoint."""
    checkpoint = checkpoint_path(args.checkpoint)
    if not checkpoint.is_file():
        print(f"alertformer evaluate: checkpoint {checkpoint} not found", file=sys.stderr)
        return 2
    if args.packets_only:
        evaluate_packets_only(checkpoint, args.out, args.data_dir, peer=args.peers != "none", quick=args.quick,
                              figures=not args.no_figures, precision=args.precision)
        return 0
    settings = EvaluationSettings(n_test=args.n_test, n_train_peers=args.n_train_peers, peers=args.peers,
                                  seed=args.seed, quick=args.quick, test_sets=tuple(args.test_sets),
                                  device=args.device, data_dir=args.data_dir, peer_cache=args.peer_cache,
                                  threads=args.threads, progress=not args.quiet, figures=not args.no_figures,
                                  quantize=args.quantize, precision=args.precision)
    report = evaluate(checkpoint, args.out, settings)
    print(rep.format_headline(report))
    print(format_packet_report(report["real_packets"]))
    print(format_sim_comparison(report["sim_check"]))
    print(f"report: {Path(args.out) / 'report.json'}; figures: {', '.join(report.get('figures', []))}")
    return 0
