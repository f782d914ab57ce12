"""Benchmark: the CPU forward pass in each runtime, side by side, and its arithmetic rate.

    alertformer bench-forward [--survey both] [--curves 2048] [--rounds 3] [--compile] [--threads 1]
                              [--checkpoint PATH] [--against PATH] [--config FILE]

On the chunks that `Scorer.encode_batch` makes of the bench's simulated Rubin and real
ZTF alerts (windows sorted by length, `stream.score.CPU_CHUNK_CURVES` curves each), in one
process, in alternating rounds (each runtime keeps its best round: the machine may be shared):

- ``trace``: the TorchScript trace the service runs on the CPU (the reference);
- ``eager``: the eager model (`AlertTransformer.predict_proba`);
- ``bf16``: the served trace at ``scoring.precision = "bf16"`` (bf16 autocast, attention in fp32),
  on a CPU with AMX or AVX-512 BF16 (`stream.score.cpu_has_bf16`);
- ``onnxruntime``: the model exported to ONNX (opset 18, dynamic batch and length) on ONNX
  Runtime's CPU provider with the same threads, when ``onnx`` and ``onnxruntime`` are installed
  (the ``eval`` extra);
- ``compile``: `torch.compile` (Inductor), with ``--compile`` (about a minute of compiling);
- ``against``: with ``--against PATH``, another checkpoint's TorchScript trace on the same chunks
  (a smaller model that may replace the served one; its probabilities differ by design, so its
  difference from the trace is not a check), and ``against_bf16``, its trace in bf16, where
  ``bf16`` is measured.

Each gets light curves/s, its ratio to the trace, its largest probability difference from the
trace, and its arithmetic rate: the multiply-adds the model's shape implies for each chunk's
padded tokens (`forward_flops`), over the time. The report's header holds what one large
matrix product reaches on these threads in fp32 and bf16 (`matmul_peak_gflop_per_s`), the
ceiling to read those rates against: near it, only fewer operations (a smaller model, shorter
windows) or narrower numbers (bf16, int8) make the forward pass faster.
"""
import json
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
ONNX_OPSET = 18
INPUT_NAMES = ("features", "dt_days", "mask", "context", "context_mask")


def forward_flops(config, n_curves: int, n_tokens: int) -> float:
    """Floating-point operations (2 per multiply-add) of one forward pass over `n_curves` windows padded to `n_tokens`.

    Counts the matrix products: the token and context embeddings, per block the q/k/v and output
    projections (4 d^2 per token), attention scores and weighted values (2 T d per token, T = the
    tokens with the context token) and the MLP (8 d^2 per token), and the class head. Norms,
    activations and softmax are left out (a few percent).

    >>> from models.model import ModelConfig
    >>> round(forward_flops(ModelConfig(), 1, 64) / 1e6, 1)
    30.2
    """
    d, tokens = config.d_model, n_tokens + 1  # + the context token
    embed = n_tokens * (config.n_features + 2 * config.n_time_freqs) * d + 2 * config.n_context * d
    block = tokens * 12 * d * d + 2 * tokens * tokens * d
    return 2.0 * n_curves * (embed + config.n_layers * block + d * config.n_classes)


def _onnx_runner(model, example, threads: int, folder: Path):
    """A callable running `model`'s probabilities in ONNX Runtime, or None (with the reason) if unavailable."""
    try:
        import onnx  # noqa: F401 (torch's exporter writes the graph with it)
        import onnxruntime
    except ImportError as err:
        return None, f"not measured: {err.name} is not installed (pip install onnx onnxruntime)"
    import torch

    from stream.score import _Probabilities

    path = folder / "model.onnx"
    batch_axes = {"features": {0: "B", 1: "L"}, "dt_days": {0: "B", 1: "L"}, "mask": {0: "B", 1: "L"},
                  "context": {0: "B"}, "context_mask": {0: "B"}, "probs": {0: "B"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Probabilities(model).eval(), example.as_tuple(), str(path), input_names=list(INPUT_NAMES),
                          output_names=["probs"], dynamic_axes=batch_axes, opset_version=ONNX_OPSET, dynamo=False)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(batch):
        return session.run(None, {name: t.numpy() for name, t in zip(INPUT_NAMES, batch.as_tuple())})[0]
    return run, None


def _trace_runner(traced):
    """A callable running a `stream.score.trace_model` trace on a batch, to a (B, C) ndarray."""
    import torch

    def trace(batch):
        with torch.inference_mode():
            return traced(*batch.as_tuple()).numpy()
    return trace


def runtimes(scorer, example, threads: int, compile: bool, folder: Path, against=None) -> tuple[dict, dict]:
    """``{name: run(batch) -> (B, C) ndarray}`` of the runtimes measured, and ``{name: note}`` of those not."""
    from bench.limits import compiled_twin
    from stream.score import cpu_has_bf16, trace_model

    def eager(batch):
        return scorer.model.predict_proba(batch).numpy()

    runs, notes = {"trace": _trace_runner(scorer.traced), "eager": eager}, {}
    if cpu_has_bf16():
        runs["bf16"] = _trace_runner(trace_model(scorer.model, "bf16"))
    else:
        notes["bf16"] = "not measured: this CPU has neither AMX nor AVX-512 BF16"
    if against is not None:
        runs["against"] = _trace_runner(against.traced)
        if "bf16" in runs:
            runs["against_bf16"] = _trace_runner(trace_model(against.model, "bf16"))
    onnx, note = _onnx_runner(scorer.model, example, threads, folder)
    if onnx is not None:
        runs["onnxruntime"] = onnx
    else:
        notes["onnxruntime"] = note
    if compile:
        twin = compiled_twin(scorer)
        runs["compile"] = lambda batch: twin.forward(batch).numpy()
    else:
        notes["compile"] = "not measured: pass --compile (about a minute of compiling on a small CPU)"
    return runs, notes


def measure(scorer, chunks: list, threads: int, rounds: int, compile: bool, against=None) -> dict:
    """Best-round light curves/s, ratio to the trace, difference and GFLOP/s of each runtime on `chunks`
    (``against``: another model's `Scorer`, whose trace is measured beside the served one)."""
    n_curves = sum(int(c.mask.shape[0]) for c in chunks)

    def flops_of(model_config) -> float:
        return sum(forward_flops(model_config, int(c.mask.shape[0]), int(c.mask.shape[1])) for c in chunks)
    flops = flops_of(scorer.model.config)
    with tempfile.TemporaryDirectory(prefix="alertformer-bench-forward-") as folder:
        runs, notes = runtimes(scorer, chunks[len(chunks) // 2], threads, compile, Path(folder), against)
        reference = [runs["trace"](c) for c in chunks]
        difference = {name: float(max(np.abs(run(c) - r).max() for c, r in zip(chunks, reference)))
                      for name, run in runs.items()}  # also the warm-up (and compilation) of each
        best = dict.fromkeys(runs, 0.0)
        for _ in range(rounds):
            for name, run in runs.items():
                start = time.perf_counter()
                for chunk in chunks:
                    run(chunk)
                best[name] = max(best[name], n_curves / (time.perf_counter() - start))
    flops_by_run = dict.fromkeys(runs, flops)
    if against is not None:
        against_flops = flops_of(against.model.config)
        flops_by_run |= {name: against_flops for name in ("against", "against_bf16") if name in runs}
    out = {name: {"lc_per_s": round(rate, 1), "over_trace": round(rate / best["trace"], 2),
                  "gflop_per_s": round(flops_by_run[name] / (n_curves / rate) / 1e9, 1),
                  "max_abs_prob_diff_vs_trace": round(difference[name], 7)} for name, rate in best.items()}
    report = {"curves": n_curves, "chunks": len(chunks),
              "tokens_per_curve_mean": round(float(np.mean([c.mask.shape[1] for c in chunks])), 1),
              "mflop_per_curve": round(flops / n_curves / 1e6, 2), "runtimes": out, "not_measured": notes}
    if against is not None:
        report["against_mflop_per_curve"] = round(flops_by_run["against"] / n_curves / 1e6, 2)
    return report


def matmul_peak_gflop_per_s(size: int = 1024, rounds: int = 5) -> dict:
    """GFLOP/s of a (size x size) @ (size x size) product on torch's current threads, best of `rounds`, in fp32
    and, where the CPU has bf16 hardware (`stream.score.cpu_has_bf16`), in bf16."""
    import torch

    from stream.score import cpu_has_bf16

    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        if name == "bf16" and not cpu_has_bf16():
            continue
        a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
        torch.mm(a, b)  # warm-up: oneDNN picks and caches its kernel
        best_s = min(_seconds(torch.mm, a, b) for _ in range(rounds))
        out[name] = round(2.0 * size ** 3 / best_s / 1e9, 1)
    return out


def _seconds(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def run(args) -> dict:
    """The report of ``alertformer bench-forward`` (module docstring)."""
    import torch

    from bench import bench_checkpoint
    from bench.data import rubin_pool, ztf_pool
    from bench.limits import light_curves
    from models.errors import ConfigError
    from models.paths import checkpoint_path
    from stream.config import load_config
    from stream.score import Scorer

    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    cpu_fp32 = config.scoring.updated(device="cpu", precision="fp32")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, random_weights = bench_checkpoint(args.checkpoint, config, Path(tmp))
        scorer = Scorer.from_file(checkpoint, None, cpu_fp32)
    against = None
    if args.against:
        against = Scorer.from_file(checkpoint_path(args.against), None, cpu_fp32)
        trained, served = against.model.config.max_visits, scorer.model.config.max_visits
        if trained != served:
            raise ConfigError(f"--against {args.against}: trained on windows of {trained} visits, the served "
                              f"model on {served}; the two must read the same chunks")
    report = {"bench_forward": {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                "torch": torch.__version__, "threads": args.threads, "cpus": os.cpu_count(),
                                "checkpoint": str(checkpoint), "random_weights": random_weights,
                                "against": args.against,
                                "chunk_curves": scorer.chunk_curves, "rounds": args.rounds,
                                "matmul_peak_gflop_per_s": matmul_peak_gflop_per_s()}}
    surveys = ("rubin", "ztf") if args.survey == "both" else (args.survey,)
    for survey in surveys:
        pool = rubin_pool(args.curves, np.random.default_rng(args.seed)) if survey == "rubin" else ztf_pool(args.curves)
        chunks = scorer.encode_batch(light_curves(pool)).chunks
        log.info("bench-forward: %s, %d curves in %d chunks", survey, args.curves, len(chunks))
        report[survey] = measure(scorer, chunks, args.threads, args.rounds, args.compile, against)
    return report


def cmd_bench_forward(args) -> int:
    """Run ``alertformer bench-forward``: the JSON report on stdout."""
    report = run(args)
    print(json.dumps(report, indent=1))
    return 0
