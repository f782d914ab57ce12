"""The shipped checkpoints (the scorer's default and the opt-in small one): each loads and still separates SNe
and flares on new data.

The thresholds come from `alertformer evaluate` on the shipped model (out/eval/report.json,
README "The model"): on 2,000 balanced simulated LSST test curves it reached the ROC-AUCs
quoted beside each threshold. Here a fresh draw (another seed, 1,100 curves) is scored;
the thresholds sit a few standard errors below the report, so a healthy model passes
and a broken window, encoding or checkpoint (ROC-AUC ~0.5) fails. The small model's report
(README, Performance) is within 0.01 of the default's at these conditions, so the same thresholds hold it.
"""
from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoint import load_checkpoint
from models.encode import ENCODING_VERSION, encode
from models.taxonomy import flare_likelihood, sn_likelihood
from models.paths import SHIPPED_CHECKPOINT, SMALL_CHECKPOINT
from training.datasets import simulated
from training.metrics import roc_auc
from training.prefixes import first_n_detections
from training.simulate import ELASTICC_CLASS_IDS

FRESH_SEED = 20261128
SN_IDS = (2222, 2223, 2224, 2242)
FLARE_ID = 2233
# (condition, minimum SN-vs-rest ROC-AUC, minimum flare-vs-rest ROC-AUC). The evaluation report gave
# n_det=1: SN 0.887, flare 0.961; n_det=3: SN 0.963 (no flare reaches 3 detections); whole curves:
# SN 0.992, flare 0.997. With ~400 SNe and ~100 flares here the standard error of a ROC-AUC is about
# 0.01-0.015, so each threshold sits 2.5-3 standard errors below the report.
THRESHOLDS = [("n_det=1", 0.85, 0.92), ("n_det=3", 0.93, None), ("whole", 0.96, 0.97)]


@pytest.fixture(scope="module", params=[SHIPPED_CHECKPOINT, SMALL_CHECKPOINT], ids=["default", "small"])
def shipped(request):
    torch.set_num_threads(1)
    model, meta = load_checkpoint(request.param)
    return model.eval(), meta, request.param


@pytest.fixture(scope="module")
def fresh_lsst():
    """Simulated LSST alerts of the evaluation's 11 ELAsTiCC2 classes, with the context the Rubin decoder gives."""
    return simulated("test", 1100, seed=FRESH_SEED, survey="lsst", classes=ELASTICC_CLASS_IDS)


def test_shipped_checkpoint_is_small_and_current(shipped):
    model, meta, path = shipped
    assert path.stat().st_size <= 10 * 2**20
    assert model.get_num_params() <= 2_000_000
    assert meta["encoding_version"] == ENCODING_VERSION


def test_the_small_model_is_the_default_one_at_half_the_arithmetic():
    default, _ = load_checkpoint(SHIPPED_CHECKPOINT)
    small, meta = load_checkpoint(SMALL_CHECKPOINT)
    assert small.get_num_params() < default.get_num_params() / 2
    assert small.config.max_visits == default.config.max_visits  # it reads the same windows
    assert small.config.context_fields_by_survey == default.config.context_fields_by_survey
    assert Path(meta["train_config"]["teacher"]).name == SHIPPED_CHECKPOINT.name


@pytest.mark.parametrize("condition,min_sn_auc,min_flare_auc", THRESHOLDS)
def test_separates_supernovae_and_flares_on_fresh_simulations(shipped, fresh_lsst, condition, min_sn_auc,
                                                              min_flare_auc):
    model = shipped[0]
    if condition == "whole":
        curves, class_ids, contexts = fresh_lsst.curves, fresh_lsst.class_ids, fresh_lsst.contexts
    else:
        n = int(condition.split("=")[1])
        cut = [(first_n_detections(c, n), k, x)
               for c, k, x in zip(fresh_lsst.curves, fresh_lsst.class_ids, fresh_lsst.contexts)]
        curves, class_ids, contexts = zip(*[(c, k, x) for c, k, x in cut if c is not None])
        class_ids, contexts = np.asarray(class_ids), np.stack(contexts)
    with torch.no_grad():
        probs = torch.cat([model.predict_proba(encode(curves[s:s + 512], model.config.max_visits,
                                                      contexts=contexts[s:s + 512]))
                           for s in range(0, len(curves), 512)]).numpy()
    sn_auc = roc_auc(np.isin(class_ids, SN_IDS), sn_likelihood(probs))
    assert sn_auc > min_sn_auc, f"{condition}: SN-vs-rest ROC-AUC {sn_auc:.3f}"
    if min_flare_auc is not None:
        flare_auc = roc_auc(class_ids == FLARE_ID, flare_likelihood(probs))
        assert flare_auc > min_flare_auc, f"{condition}: flare-vs-rest ROC-AUC {flare_auc:.3f}"


def test_the_small_model_is_served_by_its_name():
    from alertformer.api import Model
    from stream.score import checkpoint_version

    assert Model("shipped-small", device="cpu").scorer.version == checkpoint_version(SMALL_CHECKPOINT, {})
