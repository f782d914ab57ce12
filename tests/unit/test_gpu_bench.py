"""bench.gpu: the device check's report, on the CPU here (fp32, int8 beside it), on CUDA where there is one.

Correctness only: no figure is asserted (benchmarks are not timed tests).
"""
import json

import pytest
import torch

from alertformer.cli import main as cli_main
from models.checkpoint import save_checkpoint
from models.model import AlertTransformer, ModelConfig
from bench import gpu


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt",
                           AlertTransformer(ModelConfig(d_model=16, n_heads=2, n_layers=1)))


def run_quick(tmp_path, monkeypatch, checkpoint, *extra) -> dict:
    monkeypatch.setenv("OUT", str(tmp_path))  # the report goes to $OUT/gpu_bench.json
    assert cli_main(["bench-gpu", "--quick", "--checkpoint", str(checkpoint), *extra]) == 0
    return json.loads((tmp_path / gpu.REPORT_NAME).read_text())


def check_report(report: dict, precisions: tuple[str, ...]) -> None:
    model = report["model"]["precisions"]
    assert tuple(model) == precisions
    for precision, r in model.items():
        assert [row["batch_size"] for row in r["forward"]] == list(gpu.QUICK["forward_sizes"])
        assert r["forward_best"]["forward_lc_per_s"] > 0 and r["score_batch"]["lc_per_s"] > 0
        assert r["forward_best_over_fp32"] > 0 and r["serving_option"] is (precision in ("fp32", "bf16"))
    assert model["fp32"]["forward_best_over_fp32"] == 1.0
    assert model["fp32"]["max_abs_prob_diff_vs_fp32"] == 0.0
    assert 0.0 < model[precisions[1]]["max_abs_prob_diff_vs_fp32"] < 0.05
    served_batch_size = report["gpu_bench"]["settings"]["batch_size"]
    assert [loop["batch_size"] for loop in report["loop"]] == [served_batch_size, *gpu.QUICK["loop_batch_sizes"]]
    for loop in report["loop"]:
        assert loop["alerts"] == gpu.QUICK["n_loop"] and loop["dead_letters"] == 0 and loop["alerts_per_s"] > 0
        assert set(loop["ms_per_alert"]) == {"decode", "windows", "encode", "forward_wait", "records"}
        assert loop["forward_thread_ms_per_alert"] > 0
    [together] = report["loop_processes"]
    assert together["processes"] == 2 and together["alerts"] == 2 * gpu.QUICK["n_loop"]
    assert together["alerts_per_s"] > 0 and len(together["per_process_alerts_per_s"]) == 2
    assert together["gpu_utilisation"]["measured"] is torch.cuda.is_available() or \
        "not measured" in together["gpu_utilisation"]["note"]


def test_quick_run_on_cpu_writes_the_report_to_out(tmp_path, monkeypatch, tiny_checkpoint):
    report = run_quick(tmp_path, monkeypatch, tiny_checkpoint, "--device", "cpu")
    check_report(report, ("fp32", "int8"))
    assert report["gpu_bench"]["served"]["device"] == "cpu"
    assert report["pipeline"]["measured"] is False and "--bootstrap" in report["pipeline"]["note"]
    assert "int8 (not served)" in gpu.summary(report)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_quick_run_on_cuda_compares_bf16_with_fp32(tmp_path, monkeypatch, tiny_checkpoint):
    report = run_quick(tmp_path, monkeypatch, tiny_checkpoint, "--device", "cuda")
    check_report(report, ("fp32", "bf16", "fp32+compile", "bf16+compile"))
    assert report["model"]["precisions"]["fp32+compile"]["max_abs_prob_diff_vs_fp32"] < 1e-4
    assert report["gpu_bench"]["served"]["precision"] == "fp32"
    assert report["model"]["precisions"]["bf16"]["peak_gpu_memory_mb"] > 0


@pytest.mark.integration
def test_quick_run_with_the_stack_runs_the_pipeline(tmp_path, monkeypatch, tiny_checkpoint, stack):
    report = run_quick(tmp_path, monkeypatch, tiny_checkpoint, "--bootstrap", stack["bootstrap"],
                       "--redis-url", stack["redis_url"])
    pipeline = report["pipeline"]
    assert pipeline["verified"]["exactly_once"], pipeline["verified"]
    assert pipeline["burst"]["all_published_s"] > 0


def test_gpu_bench_sh_names_what_is_missing_on_a_host_without_the_dependencies(tmp_path):
    """A host with a bare Python (no wheels passed): a clear message and exit 2, before any measuring."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OUT": str(tmp_path / "out"),
           "PYTHON": str(tmp_path / "bare" / "bin" / "python")}
    done = subprocess.run([str(repo / "deploy" / "gpu_bench.sh"), "--quick"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "does not import here: ModuleNotFoundError: No module named" in done.stderr
    assert "deploy/gpu_wheels.sh" in done.stderr
    bad = subprocess.run([str(repo / "deploy" / "gpu_bench.sh"), "--wheels", str(tmp_path / "none")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--wheels needs a folder" in bad.stderr
