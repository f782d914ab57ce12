"""`alertformer evaluate-diff`: the metrics of two evaluation reports lined up, in points."""
import copy
import json

import pytest

from alertformer.cli import main as cli_main
from models.errors import ConfigError
from training.evaluation.compare import compare_reports


def _entry(macro_f1, ci, sn_ap, flare_ap):
    return {"models": {"transformer": {"n": 100, "macro_f1": macro_f1, "macro_f1_ci95": ci,
                                       "sn_vs_rest": {"pr_auc": sn_ap}, "flare_vs_rest": {"pr_auc": flare_ap}}}}


def _report(path: str, f1_at_3: float, packets_pr: float) -> dict:
    return {"checkpoint": {"path": path, "n_parameters": 10},
            "test_sets": {"sim-lsst-balanced": {"n": 100}},
            "results": {"sim-lsst-balanced": {"n_det=1": _entry(0.40, [0.38, 0.42], 0.80, None),
                                              "n_det=3": _entry(f1_at_3, [0.55, 0.59], 0.90, 0.70)}},
            "real_packets": {"sn_vs_non_sn": {"5-9": {"roc_auc": 0.99, "pr_auc": packets_pr},
                                              "1": {"roc_auc": None, "pr_auc": None}}}}


def test_a_fall_beyond_the_tolerance_is_named_with_its_interval():
    before, after = _report("a.pt", 0.57, 0.95), _report("b.pt", 0.553, 0.952)
    diff = compare_reports(before, after, tolerance_points=0.5)
    # 2 conditions x 3 metrics + 1 packet bin x 2 metrics, less the undefined ones (flare at n_det=1, bin "1")
    assert diff["comparisons"] == 7 and diff["undefined"] == 3
    assert [d["where"] for d in diff["worse_beyond_tolerance"]] == ["sim-lsst-balanced n_det=3"]
    drop = diff["worse_beyond_tolerance"][0]
    assert drop["metric"] == "macro-F1" and drop["change"] == pytest.approx(-1.7) and drop["before_ci95"] == [55, 59]
    assert diff["holds_within_tolerance"] is False
    assert diff["holds_within_ci95"] is True  # 55.3 is inside [55, 59]
    assert diff["better_beyond_tolerance"] == 0
    worse = compare_reports(before, _report("c.pt", 0.52, 0.95))
    assert worse["holds_within_ci95"] is False and worse["inside_before_ci95"]["of"] == 2


def test_a_small_move_holds_and_other_test_sets_are_refused():
    before = _report("a.pt", 0.57, 0.95)
    assert compare_reports(before, _report("b.pt", 0.568, 0.953))["holds_within_tolerance"] is True
    other = copy.deepcopy(before)
    other["test_sets"]["sim-lsst-balanced"]["n"] = 50
    with pytest.raises(ConfigError, match="same test sets .sim-lsst-balanced differ"):
        compare_reports(before, other)


def test_a_test_set_only_one_report_holds_is_left_out_and_named():
    before = _report("a.pt", 0.57, 0.95)
    after = copy.deepcopy(before)
    after["test_sets"]["ztf-bts-service"] = {"n": 270}
    after["results"]["ztf-bts-service"] = {"n_det=3": _entry(0.10, [0.05, 0.15], 0.5, None)}
    diff = compare_reports(before, after)
    assert diff["test_sets_left_out"] == ["ztf-bts-service"]
    assert diff == compare_reports(before, before) | {"after": diff["after"], "test_sets_left_out": ["ztf-bts-service"]}


def test_typing_metrics_are_compared_and_macro_f1_of_typing_only_on_a_subset_of_classes():
    def entry(ia_auc, typing_f1, classes):
        rep = _entry(0.3, [0.2, 0.4], None, None)
        rep["models"]["transformer"] |= {"per_class": dict.fromkeys(("Ia", "Ib/c", "II", "AGN")),
                                         "typing": {"classes": classes, "macro_f1": typing_f1,
                                                    "ia_vs_rest": {"roc_auc": ia_auc,
                                                                   "roc_auc_ci95": [ia_auc - 0.03, ia_auc + 0.03]}}}
        return rep

    def report(ia_auc):
        return {"test_sets": {}, "results": {"ztf-bts": {"n_det=3": entry(ia_auc, 0.25, ["Ia", "II"])},
                                             "sim": {"n_det=3": entry(0.9, 0.3, ["Ia", "Ib/c", "II", "AGN"])}}}

    diff = compare_reports(report(0.62), report(0.58))
    assert [(d["where"], d["metric"]) for d in diff["worse_beyond_tolerance"]] == [
        ("ztf-bts n_det=3", "Ia-vs-rest ROC-AUC (typing)")]
    assert diff["comparisons"] == 5  # macro-F1 twice, Ia-vs-rest twice, typing macro-F1 on BTS only
    # the Ia-vs-rest AUC carries its bootstrap interval: 58 is below [59, 65], 60 inside it
    assert [d["where"] for d in diff["inside_before_ci95"]["outside"]] == ["ztf-bts n_det=3"]
    assert diff["holds_within_ci95"] is False
    assert compare_reports(report(0.62), report(0.60))["holds_within_ci95"] is True



def test_the_command_exits_1_when_the_candidate_falls(tmp_path, capsys):
    paths = []
    for name, f1 in (("before", 0.57), ("held", 0.571), ("fell", 0.50)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(_report(f"{name}.pt", f1, 0.95)))
    assert cli_main(["evaluate-diff", str(paths[0]), str(paths[1])]) == 0
    assert cli_main(["evaluate-diff", str(paths[0]), str(paths[2])]) == 1
    capsys.readouterr()
    (tmp_path / "garbage.json").write_text("{not json")
    assert cli_main(["evaluate-diff", str(paths[0]), str(tmp_path / "garbage.json")]) == 2
    assert "not a readable evaluation report" in capsys.readouterr().err
