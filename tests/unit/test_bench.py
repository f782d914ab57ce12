"""`alertformer bench`: its packets, its bookkeeping, and a --quick run's report on the real stack.

Correctness only: no figure is asserted (benchmarks are not timed tests).
"""
import argparse
import json
import pickle
import sys
import types

import numpy as np
import pytest

from alertformer.cli.bench import add_parser
from bench import aims, ratios, table
from bench.data import CUTOUT_BYTES, MIN_PRV_SOURCES, rubin_pool, synthetic_cutout, ztf_pool
from bench.limits import int8_twin, light_curves, supernnova, with_ratios
from bench.pipeline import breakdown, latency, sustained_rate
from stream.decode import decode_rubin, decode_ztf
from stream.decode.fast import FastRubinDecoder
from stream.score import cpu_has_bf16


def parse(argv):
    parser = argparse.ArgumentParser(prog="alertformer")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["bench", *argv])


def test_parser_options_and_help(capsys):
    args = parse(["--quick", "--out", "r.json", "--n-burst", "50", "--rate", "20", "--duration-s", "1",
                  "--skip-alternative"])
    assert (args.quick, args.out, args.n_burst, args.rate, args.duration_s, args.skip_alternative) == \
        (True, "r.json", 50, 20.0, 1.0, True)
    with pytest.raises(SystemExit):
        parse(["--help"])
    text = capsys.readouterr().out
    for option in ("--quick", "--out", "--n-burst", "--rate", "--duration-s", "--skip-alternative",
                   "--supernnova-model", "--torch-threads", "--precision"):
        assert option in text


def test_scoring_options_override_the_config(monkeypatch):
    from bench import _config

    monkeypatch.setenv("ALERTFORMER_SCORING__TORCH_THREADS", "3")
    assert _config(parse([])).scoring.torch_threads == 3  # the bench runs as `alertformer run` would
    scoring = _config(parse(["--precision", "fp32", "--torch-threads", "2", "--device", "cpu"])).scoring
    assert (scoring.precision, scoring.torch_threads, scoring.device) == ("fp32", 2, "cpu")
    with pytest.raises(SystemExit):  # int8 is measured beside fp32 (int8_twin), never served
        parse(["--precision", "int8"])


def test_int8_twin_quantises_a_copy_for_measuring_only():
    import torch

    from models.model import AlertTransformer, ModelConfig
    from stream.score import Scorer

    torch.manual_seed(0)
    model = AlertTransformer(ModelConfig(d_model=16, n_heads=2, n_layers=1))
    scorer = Scorer(model, "v", torch.device("cpu"), 16, chunk_curves=8)
    twin = int8_twin(scorer)
    assert not any(type(m) is torch.nn.Linear for m in twin.model.modules())
    assert any(type(m) is torch.nn.Linear for m in scorer.model.modules())  # the served scorer is untouched
    assert (twin.version, twin.chunk_curves, twin.n_params) == (scorer.version, 8, scorer.n_params)
    curves = light_curves(rubin_pool(3, np.random.default_rng(0)))
    np.testing.assert_allclose(twin.score(curves).probs, scorer.score(curves).probs, atol=0.05)
    rows = with_ratios([{"batch_size": 4, "forward_lc_per_s": 300.0}], [{"batch_size": 4, "forward_lc_per_s": 200.0}])
    assert rows[0]["over_served"] == 1.5


def test_rubin_pool_alerts_are_rubin_like():
    pool = rubin_pool(4, np.random.default_rng(0))
    batch, errors = FastRubinDecoder().decode_batch([p.value for p in pool.packets])
    assert not errors and not batch.fallback.any()
    for i, packet in enumerate(pool.packets):
        alert = decode_rubin(packet.value)
        assert alert.object_id.encode() == packet.key
        assert int(alert.light_curve.is_detection.sum()) >= MIN_PRV_SOURCES + 1
        assert np.array_equal(alert.light_curve.flux_njy, batch.alert(i).light_curve.flux_njy)
        assert len(packet.value) > 3 * CUTOUT_BYTES
    assert pool.description["prv_dia_sources"]["min"] >= MIN_PRV_SOURCES


def test_synthetic_cutout_size_and_variety():
    rng = np.random.default_rng(1)
    a, b = synthetic_cutout(rng), synthetic_cutout(rng)
    assert len(a) == len(b) == CUTOUT_BYTES and a != b and a.startswith(b"SIMPLE  =")


def test_ztf_pool_rewrites_ids():
    pool = ztf_pool(5)
    alerts = [decode_ztf(p.value) for p in pool.packets]
    assert len({a.alert_id for a in alerts}) == len({a.object_id for a in alerts}) == 5
    assert [a.object_id.encode() for a in alerts] == [p.key for p in pool.packets]
    assert len(alerts[0].light_curve) != len(alerts[1].light_curve)  # both real packets are used


def _batch(ts_ms, commit_ms, **stages):
    return {"n": len(ts_ms), "ts_ms": np.array(ts_ms, np.int64), "commit_ms": commit_ms, "stages": stages}


def test_latency_rate_and_breakdown_bookkeeping():
    stages = {"consume": 0.1, "decode": 0.2, "redis_read": 0.0, "windows": 0.0, "encode": 0.1, "prepare": 0.4,
              "forward": 0.4, "forward_wait": 0.1, "scored_batch": 0.0, "avro_encode": 0.1, "rules": 0.0,
              "finish": 0.3, "produce": 0.05, "commit": 0.05, "redis_write": 0.0, "batch": 0.5}
    batches = [_batch([1000, 1000], 1500.0, **stages), _batch([1200, 1300], 2500.0, **stages),
               _batch([2000], 3500.0, **stages)]
    lat = latency(batches)
    assert lat["alerts"] == 5 and lat["latency_ms"]["max"] == 1500.0
    assert lat["first_input_to_last_commit_s"] == 2.5
    rate = sustained_rate(batches)  # the first batch is the starting line
    assert (rate["timed_alerts"], rate["seconds"], rate["alerts_per_s"]) == (3, 2.0, 1.5)
    out = breakdown(batches)
    assert out["alerts"] == 5
    assert out["stages"]["prepare_other"]["ms_per_1000_alerts"] == pytest.approx(3 * 0.1 / 5 * 1e6)
    assert out["stages"]["finish_other"]["ms_per_1000_alerts"] == pytest.approx(3 * 0.1 / 5 * 1e6)
    assert out["stages"]["txn_other"]["ms_per_1000_alerts"] == pytest.approx(3 * 0.1 / 5 * 1e6)
    assert sum(s["share"] for s in out["stages"].values()) == pytest.approx(1.0, abs=0.01)
    assert "forward" not in out["stages"]  # on its own thread
    assert out["forward_thread"] == {"ms_per_1000_alerts": pytest.approx(3 * 0.4 / 5 * 1e6),
                                     "overlapped_share": pytest.approx(0.75)}
    assert latency([_batch([1], None, **stages)]) == {"alerts": 0}  # aborted: nothing committed
    assert "cpu_ms_per_1000_alerts" not in out["stages"]["decode"]  # no CPU times reported: none made up
    waited = {name: seconds / 2 for name, seconds in stages.items()}  # each stage computed half its wall time
    out = breakdown([b | {"cpu_stages": waited} for b in batches])
    assert out["stages"]["decode"]["cpu_ms_per_1000_alerts"] == pytest.approx(3 * 0.1 / 5 * 1e6)
    assert out["stages"]["txn_other"]["cpu_ms_per_1000_alerts"] == pytest.approx(3 * 0.05 / 5 * 1e6)
    assert out["service_thread_cpu_ms_per_1000_alerts"] == pytest.approx(out["busy_s"] / 2 / 5 * 1e6, rel=1e-3)
    assert out["forward_thread"]["cpu_ms_per_1000_alerts"] == pytest.approx(3 * 0.2 / 5 * 1e6)


def test_the_table_reads_a_phase_without_a_forward_pass():
    """A short sustained phase can hold no forward pass of its own (its batches' passes ran before the first
    commit): the table says so instead of failing on the missing overlap."""
    stages = {"consume": 0.1, "decode": 0.2, "redis_read": 0.0, "windows": 0.0, "encode": 0.1, "prepare": 0.4,
              "forward": 0.0, "forward_wait": 0.0, "scored_batch": 0.0, "avro_encode": 0.1, "rules": 0.0,
              "finish": 0.3, "produce": 0.05, "commit": 0.05, "redis_write": 0.0, "batch": 0.5}
    sustained = {"alerts_per_s": 10.0, "breakdown": breakdown([_batch([1000, 1000], 1500.0, **stages)])}
    assert sustained["breakdown"]["forward_thread"]["overlapped_share"] is None
    report = {"bench": {"machine": {"cpus": 2, "load_avg_start": [0.5]}, "wall_s": 1.0,
                        "model": {"version": "v", "random_weights": True, "device": "cpu", "precision": "fp32"},
                        "settings": {"batch_size": 1000, "rate": 50.0, "n_burst": 100, "torch_threads": 1}},
              "pipeline": {"rubin": {"sustained": sustained}}, "limits": {"rubin": {}}, "alternative": {},
              "ratios": {}, "aims": {}, "supernnova": {"measured": False, "note": "not measured: --quick"}}
    text = table(report)
    assert "forward thread 0.00 ms/alert" in text and "overlapped" not in text


def test_aims_judge_each_rate_against_the_issue_s_figure():
    report = {"bench": {"quick": False, "model": {"random_weights": False}},
              "pipeline": {"rubin": {"burst": {"all_published_s": 12.0}}},
              "ratios": {"rubin": {"pipeline_over_slowest_stage": 0.8, "pipeline_alerts_per_s": 1_200.0},
                         "ztf": {"pipeline_over_slowest_stage": 0.6, "pipeline_alerts_per_s": 3_000.0},
                         "model_over_supernnova": 1.5}}
    judged = aims(report, {"n_burst": 10_000})
    assert {k: v["met"] for k, v in judged.items() if isinstance(v, dict)} == {
        "rubin_pipeline_over_slowest_stage": True, "rubin_pipeline_alerts_per_s": False,
        "ztf_pipeline_over_slowest_stage": False, "ztf_pipeline_alerts_per_s": True,
        "rubin_burst_10000_within_20_s": True, "model_over_supernnova": False}
    report["bench"]["quick"] = True  # too small to judge a rate
    assert aims(report, {"n_burst": 100})["ztf_pipeline_alerts_per_s"]["met"] is None
    report["ratios"]["model_over_supernnova"] = "not measured: no model given"
    assert "model_over_supernnova" not in aims(report, {"n_burst": 100})


@pytest.mark.integration
def test_quick_bench_report(stack, tmp_path):
    """A --quick run on the real stack: every section present, every input scored exactly once, JSON-clean."""
    from bench import cmd_bench

    out = tmp_path / "bench.json"
    args = parse(["--quick", "--bootstrap", stack["bootstrap"], "--redis-url", stack["redis_url"],
                  "--out", str(out)])
    assert cmd_bench(args) == 0
    report = json.loads(out.read_text())
    assert set(report) >= {"bench", "alerts", "limits", "pipeline", "alternative", "supernnova", "ratios", "aims"}
    assert report["bench"]["quick"] and report["bench"]["command"]
    for survey in ("rubin", "ztf"):
        limits = report["limits"][survey]
        assert {"raw_consume", "decode", "forward", "forward_best"} <= set(limits)
        assert [r["batch_size"] for r in limits["forward"]] == [1, 16]
        served = report["bench"]["model"]
        if served["device"] == "cpu":  # fp32 served, int8 measured beside it
            assert served["precision"] == "fp32"
            assert [r["batch_size"] for r in limits["forward_int8"]["rows"]] == [1, 16]
            assert all(r["over_served"] > 0 for r in limits["forward_int8"]["rows"])
            assert report["ratios"][survey]["forward_int8_over_fp32"] > 0
        else:
            assert "forward_int8" not in limits
        if served["device"] != "cpu" or cpu_has_bf16():  # the other of fp32 and bf16, where the device runs both
            assert limits["forward_other_precision"]["precision"] == {"fp32": "bf16", "bf16": "fp32"}[served["precision"]]
            assert limits["forward_other_precision"]["best"]["forward_lc_per_s"] > 0
        else:
            assert "forward_other_precision" not in limits
        assert [r["chunk_curves"] for r in limits["score_chunks"]] == [None, 16]
        pipeline = report["pipeline"][survey]
        assert pipeline["verified"]["exactly_once"], pipeline["verified"]
        for phase in ("steady", "burst"):
            assert set(pipeline[phase]["latency_ms"]) == {"p50", "p95", "p99", "max"}
            assert pipeline[phase]["breakdown"]["forward_thread"]["ms_per_1000_alerts"] > 0
        assert pipeline["burst"]["all_published_s"] > 0 and pipeline["scorer"]["peak_rss_mb"] > 0
        alternative = report["alternative"][survey]
        assert alternative["sustained"]["alerts"] == 25 and alternative["process"]["peak_rss_mb"] > 0
        assert set(report["ratios"][survey]) >= {"pipeline_over_slowest_stage", "pipeline_over_alternative",
                                                 "decoder_over_fastavro"}
    assert report["limits"]["rubin"]["decode"]["fast_alerts_per_s"] > 0
    assert report["supernnova"]["measured"] is False and "not measured" in report["supernnova"]["note"]
    assert "rubin_burst_10000_within_20_s" in report["aims"]
    assert report["ratios"] == ratios(report) and report["aims"] == aims(report, report["bench"]["settings"])
    assert "pipeline sustained" in table(report)


def test_a_peer_pickle_this_version_cannot_read_is_not_measured(tmp_path, monkeypatch):
    """A peer cached by an older layout (its class's module gone) is named, not a traceback."""
    gone = types.ModuleType("alertformer_gone_peers")
    peer_class = type("SuperNNovaPeer", (), {"__module__": gone.__name__})
    gone.SuperNNovaPeer = peer_class
    monkeypatch.setitem(sys.modules, gone.__name__, gone)
    path = tmp_path / "old.pkl"
    path.write_bytes(pickle.dumps((peer_class(), {})))
    monkeypatch.delitem(sys.modules, gone.__name__)
    out = supernnova(str(path), [], None)
    assert out["measured"] is False and "old.pkl" in out["note"] and gone.__name__ in out["note"]


def test_bench_forward_reports_every_runtime_beside_the_trace(tmp_path, capsys):
    """`alertformer bench-forward`: each runtime's rate, ratio to the trace, difference and GFLOP/s."""
    import json

    import torch

    from alertformer.cli import main as cli_main
    from models.checkpoint import save_checkpoint
    from models.model import AlertTransformer, ModelConfig

    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "tiny.pt", AlertTransformer(ModelConfig(d_model=16, n_heads=2, n_layers=1)))
    assert cli_main(["bench-forward", "--checkpoint", str(checkpoint), "--curves", "80", "--rounds", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    peak = report["bench_forward"]["matmul_peak_gflop_per_s"]
    assert peak["fp32"] > 0 and ("bf16" in peak) is cpu_has_bf16()
    for survey in ("rubin", "ztf"):
        measured = report[survey]
        assert measured["curves"] == 80 and measured["chunks"] == 2  # 64-curve chunks
        assert measured["mflop_per_curve"] > 0
        runtimes = measured["runtimes"]
        assert {"trace", "eager"} <= set(runtimes) and runtimes["trace"]["over_trace"] == 1.0
        assert set(runtimes) | set(measured["not_measured"]) == {"trace", "eager", "bf16", "onnxruntime", "compile"}
        assert ("bf16" in runtimes) is cpu_has_bf16()
        for name, r in runtimes.items():
            assert r["lc_per_s"] > 0 and r["gflop_per_s"] > 0
            if name == "bf16":  # rounded to bf16's 8 bits in the products, not another model
                assert 1e-5 < r["max_abs_prob_diff_vs_trace"] < 0.05
            else:
                assert r["max_abs_prob_diff_vs_trace"] < 1e-5, name  # the same model in every runtime

    # --against: a wider model measured beside the served one on the same chunks, with its own arithmetic
    wide = save_checkpoint(tmp_path / "wide.pt", AlertTransformer(ModelConfig(d_model=32, n_heads=2, n_layers=2)))
    assert cli_main(["bench-forward", "--checkpoint", str(checkpoint), "--against", str(wide), "--curves", "80",
                     "--rounds", "1", "--survey", "ztf"]) == 0
    measured = json.loads(capsys.readouterr().out)["ztf"]
    assert measured["against_mflop_per_curve"] > 2 * measured["mflop_per_curve"]
    assert measured["runtimes"]["against"]["lc_per_s"] > 0 and measured["runtimes"]["against"]["over_trace"] > 0
    assert measured["runtimes"]["against"]["max_abs_prob_diff_vs_trace"] > 1e-5  # another model
    assert ("against_bf16" in measured["runtimes"]) is cpu_has_bf16()
    short = save_checkpoint(tmp_path / "short.pt", AlertTransformer(ModelConfig(d_model=16, n_heads=2, n_layers=1,
                                                                                max_visits=32)))
    assert cli_main(["bench-forward", "--checkpoint", str(checkpoint), "--against", str(short), "--curves", "8",
                     "--survey", "ztf"]) == 2
    assert "--against" in capsys.readouterr().err
