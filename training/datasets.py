"""Labeled light-curve sets for training and evaluation: simulated and real (ZTF BTS).

Every set is a `LabeledSet`: light curves, ELAsTiCC2 class ids, object ids and
a ``source`` string naming where it came from. Splits are deterministic and
disjoint:

- `simulated(split, n, seed, survey, mix)`: the simulator's generator is seeded
  from ``(seed, split, survey, mix)`` through `numpy.random.SeedSequence`, so
  "train", "val" and "test" are independent draws, and object ids come from
  disjoint blocks (`sim_first_object_id`).
- `ztf_bts(split, seed)`: the real ZTF Bright Transient Survey objects of
  ``data/labeled``, split 60/20/20 stratified by class. The test fifth
  is drawn with a constant seed (`BTS_TEST_SEED`), whatever ``seed`` is, so it
  stays one fixed holdout that no training run sees; ``seed`` only reshuffles
  the remaining objects between train and val.
"""
import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from models.bands import band_codes
from models.context import LEGACY_CONTEXT_FIELDS_BY_SURVEY, N_CONTEXT
from models.lightcurve import LightCurve
from models import paths
from models.taxonomy import CLASS_IDS, class_indices
from stream.window import first_detection_mjd_tai
from training.real_packets import LABEL_CLASS_IDS, packet_windows, ztf_packets
from training.sim_context import draw_contexts
from training.simulate import REALISTIC_MIX, simulate

SPLITS = ("train", "val", "test")
SURVEYS = ("lsst", "ztf")
MIXES = ("balanced", "realistic")

# Simulated object ids: block b = ((split * 2 + survey) * 2 + mix) + 1 starts at b * this,
# so the sets of one seed never share an object id (n must stay below it).
SIM_OBJECT_ID_BLOCK = 1_000_000_000
# Mixed into every simulated set's seed, so these draws differ from other users of `simulate`.
_SIM_SEED_TAG = 0xA1E27F0

# ZTF BTS (SCIENCE.md / data README): fluxes in microJansky, labels -> ELAsTiCC2 class ids.
UJY_TO_NJY = 1000.0
BTS_BANDS = {"ztfg": "ztf-g", "ztfr": "ztf-r", "ztfi": "ztf-i"}
# Nova (classical novae: not the dwarf novae of class 2234) and "other" (a mixed bag) are
# outside the model's taxonomy and are left out.
BTS_LABELS = {"SNIa": 2222, "SNII": 2224, "SNIbc": 2223, "SLSN": 2242, "TDE": 2243}
BTS_EXCLUDED_LABELS = ("Nova", "other")
BTS_TEST_SEED = 20240607  # fixed: the BTS test holdout must not move with the training seed
BTS_FRACTIONS = {"val": 0.2, "test": 0.2}  # train gets the rest (60 %)
BTS_POINT_ID_STRIDE = 10_000  # source_id = object index * this + point index
BTS_LIMIT_ID_OFFSET = 5_000  # simulated upper limits: object index * stride + this + their index
BTS_SERVICE_FORM_SEED = 20261204  # the simulated limits and drawn contexts of every BTS object (fixed)
ZTF_HISTORY_DAYS = 30.0
ZTF_VISIT_GAP_DAYS = (1.0, 4.0)  # uniform gap between ZTF visits of a field, days
ZTF_LIMIT_MAG = (20.3, 0.4)  # mean and scatter of diffmaglim, AB


@dataclass
class LabeledSet:
    """Labeled light curves.

    Attributes
    ----------
    curves : list of LightCurve, length N
    class_ids : (N,) int64 ndarray
        ELAsTiCC2 class ids (`models.taxonomy.CLASS_IDS`).
    object_ids : list of str, length N
        Unique within the set.
    source : str
        Where the set came from, e.g. ``"sim-lsst-balanced-train-seed0"`` or ``"ztf-bts-val-seed0"``.
    contexts : (N, N_CONTEXT) float64 ndarray, optional
        Each curve's alert context (`models.context`); default all unknown (NaN).
    """

    curves: list
    class_ids: np.ndarray
    object_ids: list
    source: str
    contexts: np.ndarray | None = None

    def __post_init__(self):
        self.class_ids = np.asarray(self.class_ids, dtype=np.int64)
        if self.contexts is None:
            self.contexts = np.full((len(self.curves), N_CONTEXT), np.nan)
        if not (len(self.curves) == len(self.class_ids) == len(self.object_ids) == len(self.contexts)):
            raise ValueError(f"{self.source}: {len(self.curves)} curves, {len(self.class_ids)} class ids, "
                             f"{len(self.object_ids)} object ids, {len(self.contexts)} contexts")

    def __len__(self) -> int:
        return len(self.curves)

    def subset(self, idx) -> "LabeledSet":
        """The objects at ``idx`` (integer indices or a boolean mask), in that order."""
        idx = np.arange(len(self))[np.asarray(idx)] if len(self) else np.asarray(idx, dtype=np.int64)
        return LabeledSet([self.curves[i] for i in idx], self.class_ids[idx],
                          [self.object_ids[i] for i in idx], self.source, self.contexts[idx])

    @property
    def targets(self) -> np.ndarray:
        """(N,) int64 model output indices of the classes (`models.taxonomy.class_indices`)."""
        return class_indices(self.class_ids)

    def class_counts(self) -> dict[int, int]:
        """Objects per ELAsTiCC2 class id, for the classes present."""
        ids, counts = np.unique(self.class_ids, return_counts=True)
        return dict(zip(ids.tolist(), counts.tolist()))

    @classmethod
    def concatenate(cls, sets, source: str | None = None) -> "LabeledSet":
        """One set of all the objects of ``sets``; ``source`` defaults to their sources joined by ``+``."""
        sets = list(sets)
        return cls([c for s in sets for c in s.curves],
                   np.concatenate([s.class_ids for s in sets]) if sets else np.empty(0, np.int64),
                   [o for s in sets for o in s.object_ids],
                   source if source is not None else "+".join(s.source for s in sets),
                   np.concatenate([s.contexts for s in sets]) if sets else None)


def _check_choice(name: str, value: str, choices) -> int:
    if value not in choices:
        raise ValueError(f"{name}={value!r}: expected one of {choices}")
    return choices.index(value)


def sim_first_object_id(split: str, survey: str, mix: str) -> int:
    """First object id of a simulated set; each (split, survey, mix) has its own block."""
    block = (_check_choice("split", split, SPLITS) * len(SURVEYS) + _check_choice("survey", survey, SURVEYS)) \
        * len(MIXES) + _check_choice("mix", mix, MIXES)
    return (block + 1) * SIM_OBJECT_ID_BLOCK


def sim_rng(split: str, seed: int = 0, survey: str = "lsst", mix: str = "balanced") -> np.random.Generator:
    """The generator `simulated` uses: seeded from (tag, seed, split, survey, mix)."""
    key = [_SIM_SEED_TAG, int(seed), _check_choice("split", split, SPLITS),
           _check_choice("survey", survey, SURVEYS), _check_choice("mix", mix, MIXES)]
    return np.random.default_rng(np.random.SeedSequence(key))


def simulated(split: str, n: int, seed: int = 0, survey: str = "lsst", mix: str = "balanced",
              context_fields_by_survey: dict[str, tuple[str, ...]] = LEGACY_CONTEXT_FIELDS_BY_SURVEY,
              **simulate_kwargs) -> LabeledSet:
    """``n`` simulated, labeled light curves of one split.

    Parameters
    ----------
    split : {"train", "val", "test"}
        Each split has its own generator (`sim_rng`) and object-id block, so
        splits never share objects; the same arguments give the same set.
    n : int
        Number of objects (< `SIM_OBJECT_ID_BLOCK`).
    seed : int
        Base seed; different seeds reuse the id blocks (ids are unique within one seed).
    survey : {"lsst", "ztf"}
    mix : {"balanced", "realistic"}
        Equal class counts, or the PLAsTiCC-like `training.simulate.REALISTIC_MIX`.
    context_fields_by_survey : dict of survey to context fields
        The contexts are those a model of this table is shown (`training.sim_context.draw_contexts`);
        the default is the table of checkpoints that carry none.
    **simulate_kwargs
        Passed to `training.simulate.simulate` (e.g. ``follow_days``).

    Returns
    -------
    LabeledSet
        Object ids are the simulator's integer ids as strings; ``source`` is
        ``f"sim-{survey}-{mix}-{split}-seed{seed}"``.

    >>> s = simulated("val", 22, seed=1, survey="ztf")
    >>> len(s), s.source, len(set(s.object_ids))
    (22, 'sim-ztf-balanced-val-seed1', 22)
    """
    if not 0 <= n < SIM_OBJECT_ID_BLOCK:
        raise ValueError(f"n={n}: need 0 <= n < {SIM_OBJECT_ID_BLOCK}")
    rng = sim_rng(split, seed, survey, mix)
    sims = simulate(n, rng, survey, class_weights=REALISTIC_MIX if mix == "realistic" else None,
                    first_object_id=sim_first_object_id(split, survey, mix), **simulate_kwargs)
    curves, class_ids = list(sims), sims.class_id.astype(np.int64)
    contexts = draw_contexts(class_ids, first_detection_mjd_tai(curves), survey, rng, context_fields_by_survey)
    return LabeledSet(curves, class_ids, [str(i) for i in sims.object_id.tolist()],
                      f"sim-{survey}-{mix}-{split}-seed{seed}", contexts)


@lru_cache(maxsize=4)
def _load_bts(labeled_dir: str, service_form: bool) -> LabeledSet:
    """Every BTS object of the model's classes, sorted by object id (cached per directory and form)."""
    path = Path(labeled_dir) / "ztf_bts_lightcurves.csv"
    if not path.is_file():
        raise FileNotFoundError(f"ZTF BTS light curves not found at {path}; set ALERTFORMER_DATA "
                                "or pass data_dir")
    columns: dict[str, list] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["label"] not in BTS_LABELS:
                if row["label"] not in BTS_EXCLUDED_LABELS:
                    raise ValueError(f"{path}: unknown label {row['label']!r}")
                continue
            columns.setdefault(row["object_id"], []).append(row)
    curves, class_ids, object_ids = [], [], []
    for index, object_id in enumerate(sorted(columns)):
        rows = columns[object_id]
        n = len(rows)
        if n >= BTS_POINT_ID_STRIDE:
            raise ValueError(f"{path}: {object_id} has {n} points, more than source ids allow")
        curves.append(LightCurve.from_arrays(
            source_id=index * BTS_POINT_ID_STRIDE + np.arange(n),
            # Times as given: MJD to 0.1 d, in UTC rather than TAI (the 37 s difference is far below
            # the rounding), so intra-night timing is lost.
            mjd_tai=[float(r["mjd"]) for r in rows],
            band=band_codes([BTS_BANDS[r["band"]] for r in rows]),
            flux_njy=[float(r["flux"]) * UJY_TO_NJY for r in rows],
            flux_err_njy=[float(r["flux_err"]) * UJY_TO_NJY for r in rows],
            is_detection=np.ones(n, dtype=bool),  # the file holds detections only
        ))
        labels = {r["label"] for r in rows}
        if len(labels) != 1:
            raise ValueError(f"{path}: {object_id} has labels {sorted(labels)}")
        class_ids.append(BTS_LABELS[labels.pop()])
        object_ids.append(object_id)
    class_ids = np.array(class_ids, dtype=np.int64)
    if not service_form:
        return LabeledSet(curves, class_ids, object_ids, "ztf-bts")
    rng = np.random.default_rng(BTS_SERVICE_FORM_SEED)
    curves = [with_ztf_limits(c, i * BTS_POINT_ID_STRIDE + BTS_LIMIT_ID_OFFSET, rng) for i, c in enumerate(curves)]
    contexts = draw_contexts(class_ids, first_detection_mjd_tai(curves), "ztf", rng)
    return LabeledSet(curves, class_ids, object_ids, "ztf-bts", contexts)


def with_ztf_limits(curve: LightCurve, first_source_id: int, rng: np.random.Generator) -> LightCurve:
    """`curve` with the upper limits a ZTF packet would carry before its first detection.

    The BTS file has detections only; a ZTF packet also carries the non-detections of the 30
    days before (SCIENCE.md: g and r every 2-3 nights, 5-sigma depths ~20.7). Visits are drawn
    every `ZTF_VISIT_GAP_DAYS` back from the first detection over `ZTF_HISTORY_DAYS`, band g or r
    at random, each a 5-sigma limit ~ N(`ZTF_LIMIT_MAG`) kept as flux 0 with error F(limit) / 5,
    as the ZTF decoder keeps them.
    """
    first = curve.mjd_tai[curve.is_detection][0]
    gaps = rng.uniform(*ZTF_VISIT_GAP_DAYS, int(ZTF_HISTORY_DAYS / ZTF_VISIT_GAP_DAYS[0]) + 1)
    times = first - np.cumsum(gaps)
    times = times[times >= first - ZTF_HISTORY_DAYS][::-1]
    n = len(times)
    limit_mag = rng.normal(*ZTF_LIMIT_MAG, n)
    limits = LightCurve.from_arrays(first_source_id + np.arange(n), times,
                                    band_codes(rng.choice(["ztf-g", "ztf-r"], n).tolist()), np.zeros(n),
                                    10.0 ** ((31.4 - limit_mag) / 2.5) / 5.0, np.zeros(n, dtype=bool))
    return LightCurve.concatenate([curve, limits])


def bts_split_indices(class_ids: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Stratified 60/20/20 split of objects (given in a fixed order) into train/val/test indices.

    Per class, ``round(0.2 n)`` objects go to test, drawn with `BTS_TEST_SEED`
    (fixed), then ``round(0.2 n)`` of the rest to val, drawn with ``seed``;
    the remainder is train. Indices are sorted.
    """
    test_rng = np.random.default_rng(BTS_TEST_SEED)
    val_rng = np.random.default_rng(np.random.SeedSequence([BTS_TEST_SEED, int(seed)]))
    parts = {s: [] for s in SPLITS}
    for cid in sorted(set(np.asarray(class_ids).tolist())):
        members = np.flatnonzero(class_ids == cid)
        n_test = int(round(BTS_FRACTIONS["test"] * len(members)))
        n_val = int(round(BTS_FRACTIONS["val"] * len(members)))
        shuffled = test_rng.permutation(members)
        test, rest = shuffled[:n_test], shuffled[n_test:]
        rest = val_rng.permutation(rest)
        parts["test"].append(test)
        parts["val"].append(rest[:n_val])
        parts["train"].append(rest[n_val:])
    return {s: np.sort(np.concatenate(p)).astype(np.int64) for s, p in parts.items()}


def ztf_bts(split: str, seed: int = 0, data_dir=None, service_form: bool = True) -> LabeledSet:
    """Real ZTF Bright Transient Survey light curves of one split.

    1,346 of the 1,359 objects of ``labeled/ztf_bts_lightcurves.csv`` (Nova and
    "other" are not model classes and are excluded): SN Ia, II, Ib/c, SLSN, TDE.

    Units and conventions: band ``ztfg``/``ztfr`` -> ``ztf-g``/``ztf-r``; flux
    and error in microJansky x 1000 -> nJy; every point is a detection (the
    file has no upper limits); ``mjd_tai`` holds the file's MJD as given, UTC
    to 0.1 d (TAI - UTC = 37 s is below the rounding; sub-day timing is lost);
    source ids are synthesised, ``object index * 10000 + point index``, with
    objects indexed in sorted object-id order. Object ids are the ZTF names.

    Parameters
    ----------
    split : {"train", "val", "test", "all"}
        60/20/20 stratified by class (`bts_split_indices`); test is a fixed
        holdout, the same for every ``seed``. Never train or tune on it.
    seed : int
        Reshuffles train vs val only.
    data_dir : str or Path, optional
        The data directory (holding ``labeled/``); default
        `models.paths.data_dir()`.
    service_form : bool
        Give each object what a ZTF packet would carry besides its detections (`with_ztf_limits`:
        the upper limits of the 30 days before; a context drawn from the real SN packets,
        `training.sim_context`), the same for every split and seed. False: the file's detections
        alone, no context (the published form, which the evaluation scores).

    Returns
    -------
    LabeledSet
        ``source`` is ``f"ztf-bts-{split}-seed{seed}"``.
    """
    if split != "all":
        _check_choice("split", split, SPLITS)
    labeled_dir = (Path(data_dir) if data_dir is not None else paths.data_dir()) / "labeled"
    full = _load_bts(str(labeled_dir.resolve()), service_form)
    out = full if split == "all" else full.subset(bts_split_indices(full.class_ids, seed)[split])
    return LabeledSet(list(out.curves), out.class_ids.copy(), list(out.object_ids), f"ztf-bts-{split}-seed{seed}",
                      out.contexts.copy())


def ztf_packet_set(split: str, data_dir=None) -> LabeledSet:
    """Real ZTF packets of one split as the service gives them to the model: one window and context per
    alert (`training.real_packets.packet_windows`), for the objects whose label is a model class
    (`LABEL_CLASS_IDS`). Object ids are ZTF names, repeated for an object's several alerts."""
    windows = packet_windows(ztf_packets(split, data_dir))
    keep = [i for i, label in enumerate(windows.labels) if label in LABEL_CLASS_IDS]
    return LabeledSet([windows.curves[i] for i in keep], [LABEL_CLASS_IDS[windows.labels[i]] for i in keep],
                      [windows.object_ids[i] for i in keep], f"ztf-packets-{split}", windows.contexts[keep])


def class_balance_weights(class_ids: np.ndarray, max_ratio: float | None = None) -> np.ndarray:
    """(C,) float32 loss weights in `CLASS_IDS` order, inverse to class frequency.

    Present classes get ``N / (K n_c)`` (K = number of present classes), so a
    balanced set gets 1 everywhere; absent classes get 0. With ``max_ratio``
    the weights are clipped to at most that multiple of the smallest one.
    """
    counts = np.bincount(class_indices(class_ids), minlength=len(CLASS_IDS)).astype(np.float64)  # (C,)
    present = counts > 0
    weights = np.zeros(len(CLASS_IDS))
    weights[present] = counts.sum() / (present.sum() * counts[present])
    if max_ratio is not None and present.any():
        weights[present] = np.minimum(weights[present], max_ratio * weights[present].min())
    return weights.astype(np.float32)
