"""training.evaluation: the --quick path end to end with a tiny random-weight checkpoint and the feature peer."""
import argparse
import json

import numpy as np
import pytest
import torch

from alertformer.cli import evaluate as evaluate_cli
from models.checkpoint import save_checkpoint
from models.model import AlertTransformer, ModelConfig
from training.evaluation import sets as ev_sets
from training.evaluation.peers import trained as ev_trained
from models.taxonomy import N_CLASSES
from training.evaluation.report import paired_against_first, under_prior
from training.evaluation.run import EvaluationSettings, evaluate


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = AlertTransformer(ModelConfig(d_model=16, n_heads=2, n_layers=1, dropout=0.0))
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", model,
                           train_config={"drop_nondetections_prob": 0.2})


def _parse(argv):
    parser = argparse.ArgumentParser(prog="alertformer")
    sub = parser.add_subparsers(dest="command", required=True)
    evaluate_cli.add_parser(sub)
    return parser.parse_args(argv)


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit):
        _parse(["evaluate", "--help"])
    text = capsys.readouterr().out
    for option in ("--checkpoint", "--out", "--n-test", "--n-train-peers", "--peers", "--seed", "--quick",
                   "--test-sets"):
        assert option in text


def test_condition_cuts_skip_short_curves():
    from training.datasets import simulated

    curves = simulated("test", 22, survey="lsst").curves
    cuts = ev_sets.cut_curves(curves)
    assert list(cuts) == ev_sets.condition_names()
    n_det = [int(c.is_detection.sum()) for c in curves]
    kept, prefixes = cuts["n_det=3"]
    assert kept.tolist() == [i for i, n in enumerate(n_det) if n >= 3]
    assert all(int(p.is_detection.sum()) == 3 for p in prefixes)
    kept, prefixes = cuts["n_det=all"]  # as of the last alert: every detection, nothing after the last
    assert kept.tolist() == [i for i, n in enumerate(n_det) if n >= 1]
    assert all(p.is_detection[-1] and p.is_detection.sum() == n_det[i] for i, p in zip(kept, prefixes))
    assert any(len(p) < len(curves[i]) for i, p in zip(kept, prefixes))  # forced photometry came later
    kept, whole = cuts[ev_sets.WHOLE_CURVE]
    assert kept.tolist() == list(range(len(curves))) and all(w is c for w, c in zip(whole, curves))


def test_bts_test_split_comes_as_published_and_in_the_service_form(shared_data):
    """The same BTS test objects twice: detections alone and no context, then with the upper limits and the
    context a ZTF packet would carry, as the service scores them."""
    sets, missing = ev_sets.load_test_sets(["ztf-bts", "ztf-bts-service"], n_test=0, seed=0, n_bts=40,
                                           data_dir=shared_data)
    assert not missing
    published, service = (s.labeled for s in sets)
    assert list(published.object_ids) == list(service.object_ids)
    assert (published.class_ids == service.class_ids).all()
    assert all(c.is_detection.all() for c in published.curves) and np.isnan(published.contexts).all()
    assert any((~c.is_detection).any() for c in service.curves)
    assert np.isfinite(service.contexts).any(axis=1).all()
    for pub, svc in zip(published.curves, service.curves):  # the same detections, limits added
        assert np.array_equal(pub.mjd_tai, svc.mjd_tai[svc.is_detection])


def test_quick_evaluation_end_to_end(tiny_checkpoint, tmp_path, shared_data):
    for module in ("light_curve", "sklearn", "matplotlib"):  # the eval extra
        pytest.importorskip(module)
    out = tmp_path / "eval"
    args = _parse(["evaluate", "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--quick",
                   "--peers", "features", "--quiet", "--data-dir", str(shared_data)])
    assert args.func(args) == 0

    report = json.loads((out / "report.json").read_text())
    assert {"checkpoint", "config", "conventions", "test_sets", "models", "results", "throughput",
            "headline", "figures"} <= set(report)
    assert report["models"]["transformer"]["status"] == "ok"
    assert report["models"]["features"]["status"] == "ok", report["models"]["features"]
    assert set(report["results"]) == set(ev_sets.TEST_SETS)
    for set_name, per_cond in report["results"].items():
        assert list(per_cond) == ev_sets.condition_names()
        whole = per_cond[ev_sets.WHOLE_CURVE]
        assert whole["n_skipped"] == 0 and whole["n_curves"] == report["test_sets"][set_name]["n"]
        for model in ("transformer", "features"):
            rep = whole["models"][model]
            assert {"macro_f1", "per_class", "confusion_matrix", "sn_vs_rest", "flare_vs_rest", "ece",
                    "reliability", "curves_per_s"} <= set(rep)
            assert {"roc_auc", "pr_auc"} <= set(rep["sn_vs_rest"])
            assert 0 <= rep["macro_f1"] <= 1 and rep["curves_per_s"] > 0
        assert per_cond["n_det=3"]["n_curves"] + per_cond["n_det=3"]["n_skipped"] == whole["n_curves"]
    # BTS has no flares: flare-vs-rest is undefined there, and said so with null.
    assert report["results"]["ztf-bts"]["n_det=all"]["models"]["transformer"]["flare_vs_rest"]["pr_auc"] is None
    assert report["throughput"]["features"]["curves_per_s"] > 0
    # the peer is compared with the transformer on the same curves, with a paired interval
    whole = report["results"]["ztf-bts"]["n_det=all"]["models"]
    gap = whole["features"]["macro_f1_first_minus_this"]
    assert gap["difference"] == pytest.approx(whole["transformer"]["macro_f1"] - whole["features"]["macro_f1"])
    assert -1 <= gap["ci95"][0] <= gap["ci95"][1] <= 1 and "macro_f1_first_minus_this" not in whole["transformer"]
    for name in report["figures"]:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"confusion_ztf-bts.png", "reliability_sim-lsst-balanced.png", "metrics_sim-lsst-realistic.png",
            "throughput.png"} <= set(report["figures"])
    # the realistic set is also scored as published under its stream prior
    prior = report["results"]["sim-lsst-realistic"]["n_det=all"]["models"]["transformer"]["under_stream_prior"]
    assert prior["prior"] == "lsst-plasticc" and 0 <= prior["ece"] <= 1 and 0 <= prior["macro_f1"] <= 1
    # and BTS typing as the ZTF stream prior publishes it (the same objects, another answer per object)
    for name in ev_sets.BTS_SERVICE_FORM:
        rep = report["results"][name]["n_det=all"]["models"]["transformer"]
        assert rep["under_stream_prior"]["prior"] == "ztf-alerts"
        assert rep["under_stream_prior"]["typing"]["classes"] == rep["typing"]["classes"]
    # simulated contexts checked against the real test packets, per kind of source and field
    check = report["context_check"]
    assert check["asteroids"]["real_bogus"]["n_real"] > 0 and 0 <= check["asteroids"]["real_bogus"]["ks"] <= 1
    assert check["transients"]["history_days"]["n_real"] > 0  # the model's history feature is checked too
    assert (out / "context_distributions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_typing_under_a_stream_prior_weighs_the_types_by_their_rates():
    """P(Ia) 0.4 against P(II) 0.6 is II when types are equally common, Ia where Ia is twice as common as II."""
    from models.taxonomy import CLASS_NAMES

    ia, ii = CLASS_NAMES.index("Ia"), CLASS_NAMES.index("II")
    probs = np.zeros((3, len(CLASS_NAMES)))
    probs[:, ia], probs[:, ii] = 0.4, 0.6
    targets = np.array([ia, ia, ii])
    assert under_prior(probs, targets, "balanced")["typing"]["accuracy"] == pytest.approx(1 / 3)
    shifted = under_prior(probs, targets, "ztf-alerts")
    assert shifted["typing"]["accuracy"] == pytest.approx(2 / 3) and shifted["typing"]["classes"] == ["Ia", "II"]


def test_a_peer_is_read_against_the_transformer_on_the_same_curves():
    """A transformer that names every class right against a peer that always answers one: the paired
    interval of their macro-F1 difference lies above zero; against itself it is zero."""
    targets = np.array([0, 1, 2] * 20)
    right, one_class = np.eye(N_CLASSES)[targets], np.eye(N_CLASSES)[np.zeros(60, dtype=int)]
    reports = {"transformer": {"macro_f1": 1.0}, "features": {"macro_f1": 1 / 6}, "same": {"macro_f1": 1.0}}
    paired_against_first(reports, {"transformer": right, "features": one_class, "same": right}, targets)
    assert reports["features"]["macro_f1_first_minus_this"]["difference"] == pytest.approx(5 / 6)
    assert reports["features"]["macro_f1_first_minus_this"]["ci95"][0] > 0.5
    assert reports["same"]["macro_f1_first_minus_this"]["ci95"] == [0.0, 0.0]
    assert "macro_f1_first_minus_this" not in reports["transformer"]


def test_failing_peer_is_reported_not_fatal(tiny_checkpoint, tmp_path, monkeypatch):
    class Broken:
        def fit(self, curves, class_ids):
            raise RuntimeError("no luck")

    monkeypatch.setattr(ev_trained, "make_peer", lambda *a, **k: Broken())
    report = evaluate(tiny_checkpoint, tmp_path, EvaluationSettings(quick=True, peers="supernnova",
                      test_sets=["sim-lsst-balanced"], progress=False, figures=False))
    assert report["models"]["supernnova"] == {"status": "not run", "error": "RuntimeError: no luck", "train": {}}
    assert set(report["results"]["sim-lsst-balanced"]["n_det=1"]["models"]) == {"transformer"}


def test_peer_cache_reuses_trained_peers(tiny_checkpoint, tmp_path):
    for module in ("light_curve", "sklearn"):
        pytest.importorskip(module)
    kw = dict(quick=True, peers="features", test_sets=["sim-lsst-balanced"], progress=False, figures=False,
              peer_cache=tmp_path / "cache")
    first = evaluate(tiny_checkpoint, tmp_path / "a", EvaluationSettings(**kw))
    second = evaluate(tiny_checkpoint, tmp_path / "b", EvaluationSettings(**kw))
    assert "cached" not in first["models"]["features"]["train"]["lsst"]
    assert second["models"]["features"]["train"]["lsst"]["cached"].endswith(".pkl")
    a = first["results"]["sim-lsst-balanced"]["n_det=all"]["models"]["features"]
    b = second["results"]["sim-lsst-balanced"]["n_det=all"]["models"]["features"]
    assert a["confusion_matrix"] == b["confusion_matrix"]
    # a cache written by an older layout of the package (a module since moved) is trained again, not fatal
    from pathlib import Path
    Path(second["models"]["features"]["train"]["lsst"]["cached"]).write_bytes(b"ctraining.peers\nFeatureBaseline\n.")
    third = evaluate(tiny_checkpoint, tmp_path / "c", EvaluationSettings(**kw))
    assert third["models"]["features"]["status"] == "ok" and "cached" not in third["models"]["features"]["train"]["lsst"]
    c = third["results"]["sim-lsst-balanced"]["n_det=all"]["models"]["features"]
    assert c["confusion_matrix"] == a["confusion_matrix"]


def test_quantize_int8_evaluates_the_quantised_transformer(tiny_checkpoint, tmp_path, monkeypatch):
    import training.quantize

    quantized = []
    real = training.quantize.quantize_int8
    monkeypatch.setattr(training.quantize, "quantize_int8", lambda model: quantized.append(model) or real(model))
    args = _parse(["evaluate", "--checkpoint", str(tiny_checkpoint), "--quantize", "int8"])
    assert args.quantize == "int8"
    report = evaluate(tiny_checkpoint, tmp_path, EvaluationSettings(
        quick=True, peers="none", test_sets=["sim-lsst-balanced"], device="cpu", progress=False, figures=False,
        quantize=args.quantize))
    assert len(quantized) == 1 and report["config"]["quantize"] == "int8"
    assert report["models"]["transformer"]["status"] == "ok"
    assert report["results"]["sim-lsst-balanced"]["n_det=all"]["models"]["transformer"]["curves_per_s"] > 0
    with pytest.raises(ValueError, match="quantize"):
        evaluate(tiny_checkpoint, tmp_path, EvaluationSettings(quick=True, peers="none", quantize="int4"))


def test_precision_bf16_scores_the_test_sets_and_packets_in_bf16(tiny_checkpoint, tmp_path, monkeypatch):
    from stream import score as score_module

    monkeypatch.setattr(score_module, "cpu_has_bf16", lambda: True)  # emulated where the CPU lacks it: slower only
    precisions = []
    real_init = score_module.Scorer.__init__
    monkeypatch.setattr(score_module.Scorer, "__init__",
                        lambda self, *a, **k: real_init(self, *a, **k) or precisions.append(self.precision))
    args = _parse(["evaluate", "--checkpoint", str(tiny_checkpoint), "--precision", "bf16"])
    report = evaluate(tiny_checkpoint, tmp_path, EvaluationSettings(
        quick=True, peers="none", test_sets=["sim-lsst-balanced"], device="cpu", progress=False, figures=False,
        precision=args.precision))
    assert precisions == ["bf16", "bf16"]  # the test sets' scorer, then the real packets' (the service's path)
    assert report["config"]["precision"] == "bf16"
    assert report["results"]["sim-lsst-balanced"]["n_det=all"]["models"]["transformer"]["macro_f1"] >= 0


def test_precision_and_int8_are_exclusive():
    with pytest.raises(ValueError, match="precision and quantize"):
        EvaluationSettings(precision="bf16", quantize="int8")


@pytest.mark.parametrize("field, value", [("peers", "trees"), ("test_sets", ("ztf-bts", "sim-ztf-weird")),
                                          ("quantize", "fp8"), ("precision", "fp16")])
def test_settings_name_the_bad_field(field, value):
    with pytest.raises(ValueError, match=field):
        EvaluationSettings(**{field: value})


def test_quick_settings_shrink_every_size():
    quick = EvaluationSettings(quick=True, n_test=5000, peers="all")
    assert (quick.n_test, quick.n_train_peers) < (EvaluationSettings().n_test, EvaluationSettings().n_train_peers)
    assert quick.peer_kinds == ["features", "supernnova"] and EvaluationSettings(peers="none").peer_kinds == []
    peers = quick.peer_settings(0.3)
    assert peers.quick and peers.drop_nondetections_prob == 0.3 and peers.feature_fit != "mcmc-lmsder"
