"""The peers as the evaluation trains them: on the transformer's training data, one per survey, cached."""
import hashlib
import json
import logging
import pickle
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training import datasets
from training.prefixes import detections_only
from training.simulate import ELASTICC_CLASS_IDS

log = logging.getLogger(__name__)

PEER_KINDS = ("features", "supernnova")
_RUN_ONLY_SETTINGS = ("work_dir", "progress", "n_jobs", "classifier_threads", "torch_threads")  # not in the cache key


@dataclass(frozen=True)
class PeerSettings:
    """How the evaluation trains its peers.

    ``quick`` gives tiny sizes (tests); ``threads`` are the CPU threads of every
    model; ``cache_dir`` keeps trained peers for reuse (None: train afresh).
    """

    n_train: int
    seed: int
    drop_nondetections_prob: float
    quick: bool = False
    data_dir: str | Path | None = None
    cache_dir: str | Path | None = None
    progress: bool = False
    threads: int = 1
    feature_fit: str = "mcmc-lmsder"
    feature_max_iter: int = 300
    snn_epochs: int = 90
    n_bts_train: int | None = None  # real BTS train curves added for ZTF (None: all)


@dataclass
class TrainedPeer:
    """A fitted peer and what its training was: ``info`` goes to the report (source, sizes, seconds, settings;
    ``cached`` when it came from the cache)."""

    peer: object
    info: dict


def peer_training_set(survey: str, settings: PeerSettings) -> datasets.LabeledSet:
    """The peers' training data for one survey: simulated train curves (+ real BTS train for ZTF).

    A ``drop_nondetections_prob`` share of the curves is shown with detections
    only (`training.prefixes.detections_only`), as in the transformer's training.
    """
    s = settings
    parts = [datasets.simulated("train", s.n_train, seed=s.seed, survey=survey, mix="balanced",
                                classes=ELASTICC_CLASS_IDS)]
    if survey == "ztf":
        try:
            bts = datasets.ztf_bts("train", seed=s.seed, data_dir=s.data_dir, service_form=False)
            if s.n_bts_train is not None:
                bts = bts.subset(np.arange(min(s.n_bts_train, len(bts))))
            parts.append(bts)
        except FileNotFoundError as err:
            log.warning("peers: ZTF BTS train split not found, training on simulations only: %s", err)
    train = datasets.LabeledSet.concatenate(parts)
    rng = np.random.default_rng(np.random.SeedSequence([s.seed, 0xD40B]))
    drop = rng.random(len(train)) < s.drop_nondetections_prob
    train.curves = [detections_only(c) if d and c.is_detection.any() else c
                    for c, d in zip(train.curves, drop.tolist())]
    return train


def make_peer(kind: str, settings: PeerSettings, work_dir: Path):
    """A fresh peer of ``kind`` ("features" or "supernnova") with the evaluation's settings."""
    from training.evaluation.peers.features import FeatureBaseline
    from training.evaluation.peers.supernnova import SuperNNovaPeer

    s = settings
    if kind == "features":
        return FeatureBaseline(fit_algorithm=s.feature_fit, max_iter=s.feature_max_iter, seed=s.seed,
                               progress=s.progress, n_jobs=s.threads, classifier_threads=s.threads)
    return SuperNNovaPeer(work_dir=work_dir, nb_epoch=s.snn_epochs, seed=s.seed, torch_threads=s.threads)


def peer_settings(peer) -> dict:
    """The plain settings of a peer (its public scalar attributes), for the report."""
    return {k: v for k, v in vars(peer).items()
            if not k.startswith("_") and (v is None or isinstance(v, (bool, int, float, str, dict)))}


def _cache_path(kind: str, survey: str, peer, settings: PeerSettings) -> Path | None:
    """The cache file of this training: its name holds everything the training depends on (kind, survey,
    size, seed, quick, the detections-only share, and a hash of the peer's settings)."""
    if not settings.cache_dir:
        return None
    s = settings
    kept = {k: v for k, v in peer_settings(peer).items() if k not in _RUN_ONLY_SETTINGS}
    digest = hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:8]
    key = (f"{kind}-{survey}-n{s.n_train}-seed{s.seed}-drop{s.drop_nondetections_prob:g}"
           f"{'-quick' if s.quick else ''}-{digest}")
    return Path(s.cache_dir) / f"{key}.pkl"


def _load_cached(cached: Path, threads: int) -> TrainedPeer | None:
    """The peer pickled at `cached`, or None (with a warning) when this code cannot read it back: a cache
    written by an older layout of the package names modules that no longer exist, and is trained again."""
    try:
        with open(cached, "rb") as f:
            peer, info = pickle.load(f)
    except (ImportError, AttributeError, EOFError, pickle.UnpicklingError, ValueError) as err:
        log.warning("peer cache %s is unreadable here (%s: %s); training it again", cached, type(err).__name__, err)
        return None
    for attr in ("n_jobs", "classifier_threads", "torch_threads"):  # this run's threads, not the cached run's
        if hasattr(peer, attr):
            setattr(peer, attr, threads)
    log.info("peer loaded from cache path=%s", cached)
    return TrainedPeer(peer, info | {"cached": str(cached)})


def trained_peer(kind: str, survey: str, settings: PeerSettings, work_dir: Path) -> TrainedPeer:
    """A peer trained for one survey, from the cache when it holds one made with the same settings.

    SuperNNova's files then live in the cache too.
    """
    peer = make_peer(kind, settings, work_dir)
    cached = _cache_path(kind, survey, peer, settings)
    loaded = _load_cached(cached, settings.threads) if cached is not None and cached.is_file() else None
    if loaded is not None:
        return loaded
    train = peer_training_set(survey, settings)
    if cached is not None:  # SuperNNova's model must outlive this run
        peer = make_peer(kind, settings, cached.with_suffix(""))
    log.info("training peer=%s survey=%s n_curves=%d source=%s", kind, survey, len(train), train.source)
    t0 = time.perf_counter()
    peer.fit(train.curves, train.class_ids)
    info = {"source": train.source, "n_curves": len(train),
            "class_counts": {str(k): v for k, v in train.class_counts().items()},
            "seconds": time.perf_counter() - t0, "settings": peer_settings(peer)}
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump((peer, info), f)
        tmp.replace(cached)
    return TrainedPeer(peer, info)
