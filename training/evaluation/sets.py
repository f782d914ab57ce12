"""The evaluation's test sets and the prefixes of their curves that each condition keeps."""
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.context import LEGACY_CONTEXT_FIELDS_BY_SURVEY
from models.lightcurve import LightCurve
from training import datasets
from training.prefixes import days_after_first_detection, first_n_detections
from training.simulate import ELASTICC_CLASS_IDS

log = logging.getLogger(__name__)

N_DET_CUTS: tuple = (1, 2, 3, 5, 10, "all")
DAY_CUTS: tuple[float, ...] = (1, 3, 7, 14, 30)
# the BTS test split in its published form (detections alone, no context) and in the form a ZTF packet
# gives the service (`training.datasets.ztf_bts` with ``service_form``: 30 days of upper limits, a context)
BTS_SERVICE_FORM: dict[str, bool] = {"ztf-bts": False, "ztf-bts-service": True}
TEST_SETS: tuple[str, ...] = ("sim-lsst-balanced", "sim-lsst-realistic", *BTS_SERVICE_FORM)
WHOLE_CURVE = "whole"  # every point, also forced photometry after the last detection


@dataclass
class EvaluationSet:
    """A named test set of one survey (`training.finetune.EvalSet` is another thing: the training's val prefixes)."""

    name: str
    survey: str
    labeled: datasets.LabeledSet


def condition_names() -> list[str]:
    """Names of the prefix conditions, in report order: ``n_det=1`` .. ``n_det=all``, ``whole``, ``days=1`` .. ``days=30``."""
    return [f"n_det={n}" for n in N_DET_CUTS] + [WHOLE_CURVE] + [f"days={d:g}" for d in DAY_CUTS]


def cut_curves(curves: Sequence[LightCurve]) -> dict[str, tuple[np.ndarray, list]]:
    """Every prefix condition of ``curves``.

    Returns
    -------
    dict
        ``{condition: (kept_index, prefixes)}``: ``kept_index`` (K,) int64,
        the curves that reach the condition (N_det detections; any detection
        for a days cut), and their prefixes.
    """
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


def load_test_sets(names: Sequence[str], n_test: int, seed: int, n_bts: int | None = None, data_dir=None,
                   context_fields_by_survey: dict[str, tuple[str, ...]] = LEGACY_CONTEXT_FIELDS_BY_SURVEY
                   ) -> tuple[list[EvaluationSet], dict[str, str]]:
    """The requested test sets, and ``{name: why}`` of those that cannot be loaded (no shared data): reported,
    not fatal. The simulated sets carry the contexts a model of table `context_fields_by_survey` is shown."""
    sets, missing = [], {}
    for name in names:
        if name in BTS_SERVICE_FORM:
            try:
                labeled = datasets.ztf_bts("test", seed=seed, data_dir=data_dir, service_form=BTS_SERVICE_FORM[name])
            except FileNotFoundError as err:
                missing[name] = str(err)
                log.warning("test set %s not available: %s", name, err)
                continue
            if n_bts is not None:
                labeled = labeled.subset(np.random.default_rng(seed).permutation(len(labeled))[:n_bts])
            sets.append(EvaluationSet(name, "ztf", labeled))
        else:
            _, survey, mix = name.split("-")
            sets.append(EvaluationSet(name, survey, datasets.simulated(
                "test", n_test, seed=seed, survey=survey, mix=mix, context_fields_by_survey=context_fields_by_survey,
                classes=None if mix == "realistic" else ELASTICC_CLASS_IDS)))
    return sets, missing
