"""A short device check (~2 minutes on an H200): the model's throughput in each precision, and the scoring loop.

    alertformer bench-gpu [--quick] [--out FILE] [--bootstrap HOST:PORT --redis-url URL]
    deploy/gpu_bench.sh            (starts a private Kafka + Redis when it can, then runs this)

1. ``model``: per precision (CUDA: fp32 and bf16, each also through `torch.compile`;
   CPU: fp32, and int8 through `training.quantize.quantize_int8`; int8 and the compiled
   forms are measured only, not serving options; ``--compile`` adds the compiled form on
   the CPU too),
   `Scorer.forward` light curves/s at batch sizes 1 to 4096
   (`bench.limits.forward_sweep`), `Scorer.score` on ``scoring.batch_size``
   curves as served (sorting, encoding and chunks included), and the largest
   probability difference from fp32 on the same curves;
2. ``loop``: the scoring service's per-batch work in this process, without broker
   or Redis, pipelined as the service runs it: batch decoding
   (`stream.ingest.Ingest`), windows and encoding of a batch while the forward
   pass of the one before runs on a worker thread, then its scored and
   classification records (`stream.publish`), on simulated Rubin alerts, one row
   per batch size (``scoring.batch_size`` first, then larger ones): alerts/s, ms
   per batch, ms per alert and stage;
3. ``loop_processes``: the same loop in 1, 4, 8 and 16 processes at once, each with its
   own model on the same device, as the scorers of ``alertformer run --processes N``
   share a GPU host: alerts/s of all together, per number of processes, and the GPU's
   utilisation while they run (NVML, sampled every 100 ms; `GpuUtilisation`);
4. ``pipeline``, only with ``--bootstrap``: the real scoring service on that
   Kafka and Redis (`bench.pipeline.run_pipeline`): sustained, steady and
   burst phases, each input scored exactly once.

The device is ``--device`` (default: ``scoring.device``, so CUDA when present); on
a machine without CUDA everything runs on the CPU, which is how the tests run it.
The JSON report goes to ``--out``, else to ``$OUT/gpu_bench.json`` when ``OUT`` is
set, else to stdout.
"""
import json
import logging
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from stream.errors import AlertformerError

log = logging.getLogger(__name__)

SETTINGS = {
    "pool": 256,  # distinct simulated Rubin packets, cycled
    "forward_sizes": (1, 4, 16, 64, 256, 1024, 4096, 16384),
    "forward_s": 0.3,  # per batch size and pass
    "score_s": 1.0,  # Scorer.score on one batch, per precision
    "n_loop": 20_000,  # alerts through the in-process loop, per batch size
    "loop_batch_sizes": (4000, 20_000),  # beside scoring.batch_size
    "loop_processes": (1, 4, 8, 16),  # scorer processes sharing the device, each running n_loop alerts
    "n_backlog": 5000, "rate": 1000.0, "duration_s": 10.0, "n_burst": 10_000,  # pipeline phases
}
QUICK = SETTINGS | {"pool": 12, "forward_sizes": (1, 16), "forward_s": 0.02, "score_s": 0.02, "n_loop": 40,
                    "loop_batch_sizes": (40,), "loop_processes": (2,),
                    "n_backlog": 60, "rate": 50.0, "duration_s": 1.0, "n_burst": 100}
# fp32 first: the reference. CPU int8 is `bench.limits.int8_twin` of the fp32 scorer, "+compile" the
# `bench.limits.compiled_twin` of that precision's scorer; neither is served.
PRECISIONS = {"cuda": ("fp32", "bf16", "fp32+compile", "bf16+compile"), "cpu": ("fp32", "int8")}
COMPILED = "+compile"
UTILISATION_INTERVAL_S = 0.1
LOOP_TOPIC = "gpu-bench.alerts"
CHILD_TIMEOUT_S = 300.0  # a loop process starts (torch, model, decoder), warms up and runs within this
REPORT_NAME = "gpu_bench.json"


def environment() -> dict:
    """Versions, CPUs and the CUDA device, if any."""
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        env |= {"cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name(0),
                "bf16_supported": torch.cuda.is_bf16_supported()}
    return env


def model_throughput(checkpoint: Path, scoring, curves: list, settings: dict, compile: bool = False) -> dict:
    """Per precision of the device: forward sweep, served `Scorer.score` rate, and difference from fp32.

    Parameters
    ----------
    checkpoint : Path
    scoring : ScoringSettings
        Device, window, chunks and batch size as served; the precision is replaced by each in turn.
    curves : list of LightCurve
    settings : dict
        ``forward_sizes``, ``forward_s``, ``score_s`` (see `SETTINGS`).
    compile : bool
        Also measure the compiled fp32 forward pass on the CPU (on CUDA it always is).
    """
    import torch

    from bench.limits import best_forward, compiled_twin, forward_sweep, int8_twin, score_chunks
    from stream.score import PRECISIONS as SERVING_PRECISIONS
    from stream.score import Scorer, pick_device

    device = pick_device(scoring.device)
    out, reference, fp32 = {}, None, None
    batch = [curves[i % len(curves)] for i in range(scoring.batch_size)]
    variants = PRECISIONS[device.type] + (("fp32" + COMPILED,) if compile and device.type == "cpu" else ())
    for precision in variants:
        if precision == "int8":
            scorer = int8_twin(fp32)
        elif precision.endswith(COMPILED):
            scorer = compiled_twin(Scorer.from_file(checkpoint, None,
                                                    scoring.updated(precision=precision.removesuffix(COMPILED))))
        else:
            scorer = Scorer.from_file(checkpoint, None, scoring.updated(precision=precision))
        if precision == "fp32":
            fp32 = scorer
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        rows = forward_sweep(scorer, curves, settings["forward_sizes"], settings["forward_s"])
        probs = scorer.score(batch).probs  # (B, C)
        reference = probs if reference is None else reference
        best = best_forward(rows)
        fp32_rate = out["fp32"]["forward_best"]["forward_lc_per_s"] if out else best["forward_lc_per_s"]
        out[precision] = {"serving_option": precision in SERVING_PRECISIONS, "forward": rows, "forward_best": best,
                          "forward_best_over_fp32": round(best["forward_lc_per_s"] / fp32_rate, 2),
                          "score_batch": score_chunks(scorer, curves, scoring.batch_size, (scorer.chunk_curves,),
                                                      settings["score_s"])[0],
                          "max_abs_prob_diff_vs_fp32": round(float(np.abs(probs - reference).max()), 5)}
        if device.type == "cuda":
            out[precision]["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return {"device": str(device), "precisions": out}


def _messages(packets, first_offset: int) -> list:
    from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

    now_ms = time.time_ns() // 1_000_000
    return [Message(topic=LOOP_TOPIC, partition=0, offset=first_offset + i, key=p.key, value=p.value,
                    timestamp=(TIMESTAMP_CREATE_TIME, now_ms)) for i, p in enumerate(packets)]


def loop_without_broker(scorer, pool, n_alerts: int, batch_size: int, warm_up: bool = True) -> dict:
    """The service's per-batch work on `n_alerts` of `pool`, in process, pipelined as the service runs it.

    Each batch is decoded, windowed and encoded here while the forward pass of
    the batch before it runs on a worker thread; then that batch's records are
    built (`stream.service.ScoringService.prepare` and its finish, without broker
    or Redis). One untimed batch first (decoder compilation, device warm-up)
    unless `warm_up` is False.
    Windows have no stored history (each alert's own photometry), as for a first
    sighting.

    Returns
    -------
    dict
        ``alerts``, ``dead_letters``, ``alerts_per_s``, ``batch_ms`` (p50, p99, max:
        wall time per batch in the steady pipeline), ``ms_per_alert`` per stage of
        this thread (decode, windows, encode, forward_wait, records) and
        ``forward_thread_ms_per_alert``.
    """
    from stream.ingest import Ingest
    from stream.publish import scored_batch, scored_outputs
    from stream.window import build_windows

    ingest = Ingest({LOOP_TOPIC: "auto"}, "gpu-bench.deadletter")
    stages, batch_s, dead = defaultdict(float), [], [0]
    forward = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forward")

    def timed(name, fn, *args):
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            stages[name] += time.perf_counter() - t0

    def forward_pass(encoded):
        return timed("forward_thread", scorer.probabilities, encoded)

    def prepare(messages):
        good, dead_letters = timed("decode", ingest.batch, messages)
        dead[0] += len(dead_letters)
        windows = timed("windows", build_windows, good.alerts, {}, scorer.context_fields_by_survey)
        encoded = timed("encode", scorer.encode_batch, windows.curves, windows.model_contexts)
        return good, windows, encoded, forward.submit(forward_pass, encoded)

    def finish(good, windows, encoded, probabilities):
        probs = timed("forward_wait", probabilities.result)
        timed("records", lambda: scored_outputs(good, scored_batch(good, scorer.scores(encoded, probs), windows),
                                                time.time_ns() // 1_000_000, "scored", "classifications"))

    def run(n: int) -> None:
        waiting = None
        for start in range(0, n, batch_size):
            t0 = time.perf_counter()
            prepared = prepare(_messages(pool.cycle(start, min(batch_size, n - start)), start))
            if waiting:
                finish(*waiting)
            waiting = prepared
            batch_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        finish(*waiting)
        batch_s.append(time.perf_counter() - t0)

    try:
        if warm_up:
            run(min(batch_size, n_alerts))
            stages.clear()
            batch_s.clear()
            dead[0] = 0
        run(n_alerts)
    finally:
        forward.shutdown()
    total_s = sum(batch_s)
    ms = np.array(batch_s[1:] or batch_s) * 1e3  # the first batch only fills the pipeline
    forward_s = stages.pop("forward_thread")
    return {"alerts": n_alerts, "batch_size": batch_size, "dead_letters": dead[0],
            "alerts_per_s": round(n_alerts / total_s, 1),
            "batch_ms": {"p50": round(float(np.percentile(ms, 50)), 1), "p99": round(float(np.percentile(ms, 99)), 1),
                         "max": round(float(ms.max()), 1)},
            "ms_per_alert": {name: round(seconds / n_alerts * 1e3, 4) for name, seconds in stages.items()},
            "forward_thread_ms_per_alert": round(forward_s / n_alerts * 1e3, 4)}


def _loop_child(checkpoint: str, scoring: dict, pool, n_alerts: int, batch_size: int, ready, go, results) -> None:
    """One process of `loop_in_processes`: load the model, warm up, wait for `go`, run the loop."""
    from stream.config import ScoringSettings
    from stream.score import Scorer, set_torch_threads

    try:
        settings = ScoringSettings.model_validate(scoring)
        set_torch_threads(settings.torch_threads)
        scorer = Scorer.from_file(Path(checkpoint), None, settings)
        loop_without_broker(scorer, pool, batch_size, batch_size)
        ready.put(os.getpid())
        go.wait()
        start_s = time.time()
        row = loop_without_broker(scorer, pool, n_alerts, batch_size, warm_up=False)
        results.put(row | {"start_s": start_s, "end_s": time.time()})
    except Exception as err:  # reported to the parent, which raises it
        results.put({"error": f"{type(err).__name__}: {err}"})
        ready.put(os.getpid())


class GpuUtilisation:
    """The GPU's utilisation (percent of time a kernel ran, NVML) sampled on a thread while in the ``with`` block.

    `result` is ``{"measured": False, "note": ...}`` without CUDA or without the NVML bindings
    (``nvidia-ml-py``), else the mean, median and max over the samples.
    """

    def __init__(self, device_index: int = 0, interval_s: float = UTILISATION_INTERVAL_S):
        self.device_index, self.interval_s = device_index, interval_s
        self.samples: list[int] = []
        self.note: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "GpuUtilisation":
        import torch

        if not torch.cuda.is_available():
            self.note = "not measured: no CUDA device"
            return self
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(self.device_index)
        except Exception as err:  # no bindings or no driver: the bench goes on without this figure
            self.note = f"not measured: NVML unavailable ({type(err).__name__}: {err})"
            return self

        def sample() -> None:
            while not self._stop.wait(self.interval_s):
                self.samples.append(int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu))

        self._thread = threading.Thread(target=sample, name="gpu-utilisation", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def result(self) -> dict:
        if self.note or not self.samples:
            return {"measured": False, "note": self.note or "not measured: no sample taken"}
        values = np.array(self.samples)
        return {"measured": True, "samples": len(values), "mean_percent": round(float(values.mean()), 1),
                "p50_percent": float(np.percentile(values, 50)), "max_percent": int(values.max())}


def loop_in_processes(checkpoint: Path, scoring, pool, n_processes: int, n_alerts: int, batch_size: int) -> dict:
    """`loop_without_broker` in `n_processes` processes at once on `scoring`'s device.

    Each process loads its own model and warms up; all start together; the rate
    is all their alerts over the time from the first start to the last end.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    children = [ctx.Process(target=_loop_child, args=(str(checkpoint), scoring.model_dump(), pool, n_alerts,
                                                       batch_size, ready, go, results)) for _ in range(n_processes)]
    for child in children:
        child.start()
    try:
        for _ in children:
            ready.get(timeout=CHILD_TIMEOUT_S)
        with GpuUtilisation() as utilisation:
            go.set()
            rows = [results.get(timeout=CHILD_TIMEOUT_S) for _ in children]
    finally:
        for child in children:
            child.join(timeout=CHILD_TIMEOUT_S)
            if child.is_alive():
                child.kill()
    errors = [r["error"] for r in rows if "error" in r]
    if errors:
        raise AlertformerError(f"gpu bench: a loop process failed: {errors[0]}")
    seconds = max(r["end_s"] for r in rows) - min(r["start_s"] for r in rows)
    return {"processes": n_processes, "batch_size": batch_size, "alerts": n_processes * n_alerts,
            "alerts_per_s": round(n_processes * n_alerts / seconds, 1),
            "per_process_alerts_per_s": [r["alerts_per_s"] for r in rows], "gpu_utilisation": utilisation.result()}


def pipeline_on_stack(config, pool, settings: dict) -> dict:
    """The scoring service on the stack of `config` (`run_pipeline`), its topics and keys deleted after."""
    from bench import check_stack, cleanup_run
    from bench.pipeline import run_pipeline

    check_stack(config)
    run_id = uuid.uuid4().hex[:8]
    try:
        return run_pipeline(config, pool, settings, run_id)
    finally:
        cleanup_run(config, run_id)


def run(args) -> dict:
    """Every measurement of the module docstring; the report."""
    from bench import bench_checkpoint
    from bench.data import rubin_pool
    from bench.limits import light_curves
    from stream.config import load_config
    from stream.score import Scorer, set_torch_threads

    t_start = time.perf_counter()
    settings = dict(QUICK if args.quick else SETTINGS)
    config = load_config(args.config)
    scoring = config.scoring.updated(**({"device": args.device} if args.device else {}))
    kafka = config.kafka.updated(**({"bootstrap_servers": args.bootstrap} if args.bootstrap else {}))
    redis = config.redis.updated(**({"url": args.redis_url} if args.redis_url else {}))
    config = config.model_copy(update={"scoring": scoring, "kafka": kafka, "redis": redis})
    set_torch_threads(scoring.torch_threads)
    report = {"gpu_bench": {"started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            "quick": bool(args.quick), "environment": environment(),
                            "settings": dict(settings) | {"batch_size": scoring.batch_size}}}
    with tempfile.TemporaryDirectory(prefix="alertformer-gpu-bench-") as tmp:
        checkpoint, random_weights = bench_checkpoint(args.checkpoint, config, Path(tmp))
        log.info("gpu bench: %d simulated Rubin packets", settings["pool"])
        pool = rubin_pool(settings["pool"], np.random.default_rng(args.seed))
        curves = light_curves(pool)
        log.info("gpu bench: model throughput")
        report["model"] = model_throughput(checkpoint, scoring, curves, settings, compile=args.compile)
        scorer = Scorer.from_file(checkpoint, None, scoring)
        report["gpu_bench"]["served"] = {"checkpoint": str(checkpoint), "random_weights": random_weights,
                                         "version": scorer.version, "device": str(scorer.device),
                                         "precision": scorer.precision, "chunk_curves": scorer.chunk_curves}
        report["loop"] = []
        for batch_size in dict.fromkeys((scoring.batch_size, *settings["loop_batch_sizes"])):
            log.info("gpu bench: loop without broker, %d alerts in batches of %d", settings["n_loop"], batch_size)
            report["loop"].append(loop_without_broker(scorer, pool, settings["n_loop"], batch_size))
        report["loop_processes"] = []
        for n_processes in settings["loop_processes"]:
            log.info("gpu bench: loop without broker in %d processes", n_processes)
            report["loop_processes"].append(loop_in_processes(checkpoint, scoring, pool, n_processes,
                                                              settings["n_loop"], scoring.batch_size))
        if args.bootstrap:
            log.info("gpu bench: pipeline on %s", args.bootstrap)
            settings |= {"checkpoint": str(checkpoint), "device": scoring.device}
            report["pipeline"] = pipeline_on_stack(config, pool, settings)
        else:
            report["pipeline"] = {"measured": False, "note": "not measured: no --bootstrap (deploy/gpu_bench.sh "
                                                             "passes one when it could start Kafka and Redis)"}
    report["gpu_bench"]["wall_s"] = round(time.perf_counter() - t_start, 1)
    return report


def summary(report: dict) -> str:
    """A few lines: forward best and served score rate per precision, the loop, the pipeline."""
    lines = [f"gpu bench on {report['model']['device']} ({report['gpu_bench']['wall_s']:.0f} s)"]
    for precision, r in report["model"]["precisions"].items():
        best = r["forward_best"]
        label = precision if r["serving_option"] else f"{precision} (not served)"
        lines.append(f"  {label}: forward {best['forward_lc_per_s']:,.0f} lc/s (batch {best['batch_size']}, "
                     f"{r['forward_best_over_fp32']}x fp32), "
                     f"score {r['score_batch']['lc_per_s']:,.0f} lc/s, max |dp| vs fp32 "
                     f"{r['max_abs_prob_diff_vs_fp32']:.4f}")
    for loop in report["loop"]:
        lines.append(f"  loop without broker, batches of {loop['batch_size']}: {loop['alerts_per_s']:,.0f} alerts/s, "
                     f"batch p50/p99 {loop['batch_ms']['p50']}/{loop['batch_ms']['p99']} ms")
    for row in report["loop_processes"]:
        busy = row["gpu_utilisation"]
        lines.append(f"  loop without broker, {row['processes']} processes: {row['alerts_per_s']:,.0f} alerts/s "
                     f"together" + (f", GPU busy {busy['mean_percent']:.0f} % (mean)" if busy["measured"] else ""))
    pipeline = report["pipeline"]
    if "sustained" in pipeline:
        lines.append(f"  pipeline: {pipeline['sustained'].get('alerts_per_s')} alerts/s sustained, burst "
                     f"{pipeline['burst']['all_published_s']} s, exactly once {pipeline['verified']['exactly_once']}")
    else:
        lines.append(f"  pipeline: {pipeline['note']}")
    return "\n".join(lines)


def cmd_bench_gpu(args) -> int:
    """Run ``alertformer bench-gpu`` with `args`: the JSON report to --out (or $OUT, or stdout), a summary on
    stderr; exit status 1 if the pipeline lost or duplicated a record."""
    from bench import json_default

    report = run(args)
    text = json.dumps(report, indent=2, default=json_default)
    out = args.out or (str(Path(os.environ["OUT"]) / REPORT_NAME) if os.environ.get("OUT") else None)
    if out:
        Path(out).write_text(text + "\n")
        print(f"report: {out}", file=sys.stderr)
    else:
        print(text)
    print(summary(report), file=sys.stderr)
    verified = report["pipeline"].get("verified", {}).get("exactly_once", True)
    return 0 if verified else 1
