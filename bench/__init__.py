"""`alertformer bench`: the scoring stream's throughput and latency on the real stack, with its limits and the
obvious alternative, all in one run.

Everything is measured in the same run, on the same messages, broker, Redis and model:

1. limits, each stage alone: raw Kafka consume (librdkafka, nothing decoded), decoding
   (fastavro, and the batch Rubin decoder), the model's forward pass (light curves/s,
   batch sizes 1 to 4096) at the served precision, beside it the other one (bf16 and fp32;
   on the CPU bf16 only with AMX or AVX-512 BF16) and, for an fp32 CPU scorer, int8
   (`training.quantize.quantize_int8`, measured only: not a serving precision), with
   another torch thread count, and `Scorer.score` on a
   batch of ``scoring.batch_size`` curves in chunks of several sizes;
2. the pipeline (`alertformer run`'s `ScoringService`, in its own process): sustained
   alerts/s on a backlog, latency percentiles at a steady rate, and a burst; latency runs
   from an alert's Kafka timestamp to the commit of the transaction holding its scored
   record; peak resident memory; where the time goes, stage by stage;
3. the obvious alternative (per message: fastavro decode, one model call, produce,
   flush, commit), in its own process;
4. ratios: pipeline / slowest essential stage (raw consume or model forward), pipeline /
   alternative, batch decoder / fastavro, transformer / SuperNNova (when a SuperNNova
   model is given).

Alerts: simulated Rubin alerts with >= 30 previous diaSources, forced sources, filled
fields and ~100 kB of cutouts, and the real ZTF packets with rewritten ids
(`bench.data`). Needs a running Kafka and Redis (``deploy/stack.sh up``); the
bench makes its own topics, consumer groups and Redis prefix and deletes them after.

    alertformer bench [--quick] [--out report.json]
"""
import json
import logging
import os
import platform
import shlex
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# Default run (~4-5 min on 2 cores): sizes chosen so each figure rests on thousands of alerts.
SETTINGS = {
    "pool": 256,  # distinct packets per survey, cycled
    "n_backlog": 5000,  # sustained phase: a backlog drained as fast as possible
    "rate": 300.0,  # steady phase, alerts/s
    "duration_s": 15.0,
    "n_burst": 10_000,
    "alt_backlog": 600,  # the alternative's backlog
    "alt_backlog_timeout_s": 30.0,  # it stops there if slower than alt_backlog / this
    "alt_duration_s": 8.0,
    "decode_s": 1.5,  # per survey, all decoders together
    "forward_s": 0.3,  # per batch size and pass (at least one call)
    "forward_sizes": (1, 4, 16, 64, 256, 1024, 4096),
    "thread_sizes": (1, 64, 1024),  # the forward pass again with another torch thread count
    "score_chunks": (None, 256, 128, 64, 32),  # Scorer.score on batch_size curves in chunks of this many
    "score_s": 1.0,  # per chunk size and pass (at least one call)
    "raw_max": 10_000,  # messages read by the raw consumer
    "snn_curves": 512,
}
# --quick: the report's structure in well under a minute; the figures mean little.
QUICK = SETTINGS | {
    "pool": 12, "n_backlog": 60, "rate": 50.0, "duration_s": 1.0, "n_burst": 100, "alt_backlog": 25,
    "alt_backlog_timeout_s": 20.0, "alt_duration_s": 1.0, "decode_s": 0.15, "forward_s": 0.02,
    "forward_sizes": (1, 16), "thread_sizes": (), "score_chunks": (None, 16), "score_s": 0.02, "raw_max": 100,
    "snn_curves": 32,
}
SURVEYS = ("rubin", "ztf")
STACK_TIMEOUT_S = 15.0  # Kafka and Redis must answer within this
RAW_CONSUME_TIMEOUT_S = 60.0
AIM_FRACTION_OF_SLOWEST = 0.7  # the pipeline should reach this share of its slowest essential stage
AIM_BURST = (10_000, 20.0)  # alerts, seconds: a Rubin burst fully scored and published
AIM_PIPELINE_ALERTS_PER_S = {"rubin": 4_000.0, "ztf": 2_000.0}  # sustained, 2 cores, the shipped model
AIM_MODEL_OVER_SUPERNNOVA = 3.0  # light curves/s on the same curves
INT8_NOTE = ("training.quantize.quantize_int8 of the served model, measured only: not a serving precision, as it "
             "moved the evaluation metrics by more than 0.5 points (README, Performance)")


def settings_from(args) -> dict:
    """The run's sizes: the mode's defaults, then each option given."""
    settings = dict(QUICK if args.quick else SETTINGS)
    for name in ("pool", "n_backlog", "rate", "duration_s", "n_burst", "alt_backlog", "alt_duration_s"):
        if getattr(args, name, None) is not None:
            settings[name] = getattr(args, name)
    return settings


def _config(args):
    from stream.config import load_config

    config = load_config(args.config)
    if args.bootstrap:
        kafka = config.kafka.updated(bootstrap_servers=args.bootstrap)
        config = config.model_copy(update={"kafka": kafka})
    if args.redis_url:
        config = config.model_copy(update={"redis": config.redis.updated(url=args.redis_url)})
    scoring = {k: v for k, v in (("device", args.device), ("precision", args.precision),
                                 ("torch_threads", args.torch_threads)) if v is not None}
    if scoring:
        config = config.model_copy(update={"scoring": config.scoring.updated(**scoring)})
    return config


def check_stack(config) -> None:
    """Fail fast, saying how to start one, when Kafka (with transactions) or Redis does not answer."""
    from bench.pipeline import BenchError
    from stream.health import wait_for_kafka, wait_for_redis

    deadline = time.monotonic() + STACK_TIMEOUT_S
    try:
        wait_for_redis(config.redis, deadline)
        wait_for_kafka(config.kafka.client_config(), deadline)
    except TimeoutError as err:
        raise BenchError(f"{err}; start the local stack with deploy/stack.sh up "
                         "(or point --bootstrap/--redis-url at one)") from None


def bench_checkpoint(explicit: str | None, config, tmp: Path) -> tuple[Path, bool]:
    """The model to serve and whether it is a random-weight stand-in."""
    from models.paths import SHIPPED_CHECKPOINT, checkpoint_path

    for candidate in (explicit and checkpoint_path(explicit), config.scoring.checkpoint, SHIPPED_CHECKPOINT):
        if candidate and Path(candidate).is_file():
            return Path(candidate), False
        if candidate and candidate is not SHIPPED_CHECKPOINT:
            from stream.errors import ConfigError

            raise ConfigError(f"checkpoint {candidate} does not exist")
    import torch

    from models.checkpoint import save_checkpoint
    from models.model import AlertTransformer, ModelConfig

    torch.manual_seed(0)
    path = tmp / "random-weights.pt"
    save_checkpoint(path, AlertTransformer(ModelConfig()), metrics={},
                    train_config={"note": "random weights, default architecture: for benchmarks only"},
                    data={"seed": 0}, code_version=None)
    log.warning("bench: %s not found; serving a random-weight model of the default architecture (same cost)",
                SHIPPED_CHECKPOINT)
    return path, True


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat (Linux), else None."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def _machine() -> dict:
    import confluent_kafka
    import torch

    return {"cpus": os.cpu_count(), "load_avg_start": [round(v, 2) for v in os.getloadavg()],
            "python": platform.python_version(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "confluent_kafka": confluent_kafka.version(), "librdkafka": confluent_kafka.libversion()[0],
            "platform": platform.platform()}


def cleanup_run(config, run_id: str) -> None:
    """Delete this run's topics and Redis keys."""
    from confluent_kafka.admin import AdminClient

    from stream.redis_io import make_redis

    admin = AdminClient(config.kafka.client_config())
    names = [t for t in admin.list_topics(timeout=30).topics if t.startswith(f"bench.{run_id}.")]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            try:
                future.result()
            except Exception as err:  # a leftover topic is not worth failing the report for
                log.warning("bench: could not delete a topic: %s", err)
    client = make_redis(config.redis)
    keys = list(client.scan_iter(match=f"bench-{run_id}-*", count=1000))
    for i in range(0, len(keys), 1000):
        client.delete(*keys[i:i + 1000])


def run_bench(args) -> dict:
    """Run every measurement and return the report (see the module docstring)."""
    import torch

    from bench.data import rubin_pool, ztf_pool
    from bench.limits import (
        best_forward, decode_rates, forward_sweep, forward_with_threads, int8_twin, light_curves, other_precision,
        raw_consume, score_chunks, supernnova, with_ratios,
    )
    from bench.pipeline import BenchError, peak_rss_mb, run_alternative, run_pipeline
    from stream.score import Scorer, set_torch_threads

    t_start, started_utc, jiffies = time.perf_counter(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), \
        _cpu_jiffies()
    settings = settings_from(args)
    surveys = [s.strip() for s in args.surveys.split(",") if s.strip()]
    if not surveys or set(surveys) - set(SURVEYS):
        raise BenchError(f"--surveys: expected a comma-separated subset of {','.join(SURVEYS)}, got {args.surveys!r}")
    config = _config(args)
    default_threads = torch.get_num_threads()
    set_torch_threads(config.scoring.torch_threads)  # the forward limits run as the scorer does
    settings["torch_threads"] = torch.get_num_threads()
    check_stack(config)
    run_id = uuid.uuid4().hex[:8]
    report = {"bench": {"command": _command(), "started_utc": started_utc, "quick": bool(args.quick),
                        "run_id": run_id, "machine": _machine(),
                        "stack": {"bootstrap": config.kafka.bootstrap_servers, "redis": config.redis.url}},
              "alerts": {}, "limits": {}, "pipeline": {}, "alternative": {}}
    with tempfile.TemporaryDirectory(prefix="alertformer-bench-") as tmp:
        checkpoint, random_weights = bench_checkpoint(args.checkpoint, config, Path(tmp))
        settings |= {"checkpoint": str(checkpoint), "device": config.scoring.device}
        scorer = Scorer.from_file(checkpoint, None, config.scoring)
        other = other_precision(scorer)
        if other is not None:
            other = Scorer.from_file(checkpoint, scorer.version, config.scoring.updated(precision=other))
        fp32_cpu = scorer.device.type == "cpu" and scorer.precision == "fp32"
        int8 = int8_twin(scorer) if fp32_cpu else None  # measured only, never served
        report["bench"]["model"] = {"checkpoint": str(checkpoint), "version": scorer.version,
                                    "random_weights": random_weights, "params": scorer.n_params,
                                    "device": str(scorer.device), "max_visits": scorer.max_visits,
                                    "precision": scorer.precision, "chunk_curves": scorer.chunk_curves}
        report["bench"]["settings"] = {k: v for k, v in settings.items() if k not in ("checkpoint", "device")} | {
            "batch_size": config.scoring.batch_size, "batch_timeout_ms": config.scoring.batch_timeout_ms,
            "partitions": config.topics.partitions}

        pools, curves = {}, {}
        rng = np.random.default_rng(args.seed)
        for survey in surveys:
            log.info("bench: making %d distinct %s packets", settings["pool"], survey)
            pools[survey] = rubin_pool(settings["pool"], rng) if survey == "rubin" else ztf_pool(settings["pool"])
            report["alerts"][survey] = pools[survey].description
            curves[survey] = light_curves(pools[survey])

        for survey, pool in pools.items():
            log.info("bench: limits of %s (decode, forward)", survey)
            limits = {"decode": decode_rates(pool, config.scoring.batch_size, settings["decode_s"]),
                      "forward": forward_sweep(scorer, curves[survey], settings["forward_sizes"],
                                               settings["forward_s"])}
            limits["forward_best"] = best_forward(limits["forward"])
            if other is not None:
                rows = with_ratios(forward_sweep(other, curves[survey], settings["forward_sizes"],
                                                 settings["forward_s"]), limits["forward"])
                limits["forward_other_precision"] = {"precision": other.precision, "rows": rows,
                                                     "best": best_forward(rows)}
            if int8 is not None:
                rows = with_ratios(forward_sweep(int8, curves[survey], settings["forward_sizes"],
                                                 settings["forward_s"]), limits["forward"])
                limits["forward_int8"] = {"rows": rows, "best": best_forward(rows), "note": INT8_NOTE}
            threads = 1 if settings["torch_threads"] > 1 else default_threads
            if settings["thread_sizes"] and threads != settings["torch_threads"] and scorer.device.type == "cpu":
                limits["forward_other_threads"] = {
                    "torch_threads": threads, "rows": forward_with_threads(
                        scorer, curves[survey], settings["thread_sizes"], settings["forward_s"], threads)}
            limits["score_chunks"] = score_chunks(scorer, curves[survey], config.scoring.batch_size,
                                                  settings["score_chunks"], settings["score_s"])
            report["limits"][survey] = limits

        try:
            for survey, pool in pools.items():
                pipeline = run_pipeline(config, pool, settings, run_id)
                log.info("bench: raw consume of %s", pipeline["input_topic"])
                report["limits"][survey]["raw_consume"] = raw_consume(
                    config.kafka, pipeline["input_topic"], settings["raw_max"], config.scoring.batch_size,
                    RAW_CONSUME_TIMEOUT_S)
                report["pipeline"][survey] = pipeline
                if not args.skip_alternative:
                    report["alternative"][survey] = run_alternative(config, pool, settings, run_id)
        finally:
            if not args.keep_topics:
                cleanup_run(config, run_id)

        if "rubin" in curves and not args.quick:
            log.info("bench: SuperNNova")
            snn_curves = [curves["rubin"][i % len(curves["rubin"])] for i in range(settings["snn_curves"])]
            report["supernnova"] = supernnova(args.supernnova_model, snn_curves, scorer)
        else:
            report["supernnova"] = {"measured": False, "note": "not measured: --quick, or no Rubin alerts"}

    report["ratios"] = ratios(report)
    report["aims"] = aims(report, settings)
    bench = report["bench"]
    bench["machine"]["load_avg_end"] = [round(v, 2) for v in os.getloadavg()]
    end_jiffies = _cpu_jiffies()
    if jiffies and end_jiffies:
        busy, total = (b - a for a, b in zip(jiffies, end_jiffies))
        bench["machine"]["machine_busy_fraction"] = round(busy / total, 2) if total else None
    bench["main_process_peak_rss_mb"] = peak_rss_mb()
    bench["wall_s"] = round(time.perf_counter() - t_start, 1)
    return report


def _command() -> str:
    argv = list(sys.argv)
    argv[0] = Path(argv[0]).name
    if argv[0] == "__main__.py":
        argv[0:1] = ["python", "-m", "alertformer.cli"]
    return shlex.join(argv)


def ratios(report: dict) -> dict:
    """Pipeline / slowest essential stage and / alternative, decoder / fastavro, model / SuperNNova."""
    out = {}
    for survey, pipeline in report["pipeline"].items():
        limits = report["limits"][survey]
        stages = {"raw_consume": limits.get("raw_consume", {}).get("messages_per_s"),
                  "model_forward": limits["forward_best"]["forward_lc_per_s"]}
        measured = {k: v for k, v in stages.items() if v}
        rate = pipeline["sustained"].get("alerts_per_s")
        slowest = min(measured, key=measured.get) if measured else None
        alternative = report["alternative"].get(survey, {}).get("sustained", {}).get("alerts_per_s")
        out[survey] = {
            "pipeline_alerts_per_s": rate, "slowest_stage": slowest,
            "slowest_stage_per_s": measured.get(slowest),
            "pipeline_over_slowest_stage": round(rate / measured[slowest], 2) if rate and slowest else None,
            "alternative_alerts_per_s": alternative,
            "pipeline_over_alternative": round(rate / alternative, 1) if rate and alternative else None,
            "decoder_over_fastavro": limits["decode"].get("fast_over_fastavro"),
        }
        # What the scorer actually decodes with: the batch decoder for Rubin, fastavro for ZTF.
        served = limits["decode"].get("fast_alerts_per_s") or limits["decode"].get("fastavro_alerts_per_s")
        with_decode = measured | ({"decode": served} if served else {})
        slowest_all = min(with_decode, key=with_decode.get) if with_decode else None
        out[survey] |= {"slowest_stage_incl_decode": slowest_all,
                        "pipeline_over_slowest_stage_incl_decode":
                            round(rate / with_decode[slowest_all], 2) if rate and slowest_all else None}
        compared = limits.get("forward_other_precision")
        if compared:  # e.g. bf16 / fp32 on CUDA: the forward pass at the other precision, best batch each
            out[survey]["forward_other_precision_over_served"] = round(
                compared["best"]["forward_lc_per_s"] / limits["forward_best"]["forward_lc_per_s"], 2)
        int8 = limits.get("forward_int8")
        if int8:  # CPU: int8 (measured only) / served fp32, best batch each
            out[survey]["forward_int8_over_fp32"] = round(
                int8["best"]["forward_lc_per_s"] / limits["forward_best"]["forward_lc_per_s"], 2)
    snn = report.get("supernnova", {})
    out["model_over_supernnova"] = snn.get("alertformer_over_supernnova") if snn.get("measured") else snn.get("note")
    return out


def aims(report: dict, settings: dict) -> dict:
    """The issue's aims for a 2-core machine with the shipped model, each with its value and whether it is met
    (None for a rate under ``--quick``, whose sizes are too small to judge it)."""
    out, quick = {}, report["bench"].get("quick")
    for survey, r in report["ratios"].items():
        if not isinstance(r, dict):
            continue
        if r.get("pipeline_over_slowest_stage") is not None:
            value = r["pipeline_over_slowest_stage"]
            out[f"{survey}_pipeline_over_slowest_stage"] = {"aim": f">= {AIM_FRACTION_OF_SLOWEST}", "value": value,
                                                           "met": bool(value >= AIM_FRACTION_OF_SLOWEST)}
        if r.get("pipeline_alerts_per_s") is not None and survey in AIM_PIPELINE_ALERTS_PER_S:
            value, aim = r["pipeline_alerts_per_s"], AIM_PIPELINE_ALERTS_PER_S[survey]
            out[f"{survey}_pipeline_alerts_per_s"] = {"aim": f">= {aim:,.0f} alerts/s", "value": value,
                                                      "met": None if quick else bool(value >= aim)}
    burst = report["pipeline"].get("rubin", {}).get("burst")
    if burst:
        n, limit_s = AIM_BURST
        value = burst["all_published_s"]
        out["rubin_burst_10000_within_20_s"] = {
            "aim": f"{n} alerts in <= {limit_s:g} s", "value_s": value, "n_burst": settings["n_burst"],
            "met": bool(value <= limit_s) if settings["n_burst"] == n else None}
    snn = report["ratios"].get("model_over_supernnova")
    if isinstance(snn, (int, float)):
        out["model_over_supernnova"] = {"aim": f">= {AIM_MODEL_OVER_SUPERNNOVA:g}x", "value": snn,
                                        "met": bool(snn >= AIM_MODEL_OVER_SUPERNNOVA)}
    out["shipped_model"] = not report["bench"]["model"]["random_weights"]
    return out


def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float) and value >= 100:
        return f"{value:,.0f}{unit}"
    if isinstance(value, (int, float)):
        return f"{value:,.3g}{unit}" if isinstance(value, float) else f"{value:,}{unit}"
    return str(value)


def table(report: dict) -> str:
    """A short text table of the report's main figures, one column per survey."""
    surveys = list(report["pipeline"]) or list(report["limits"])
    bench = report["bench"]
    m = bench["machine"]
    rows = [("", *surveys)]

    def get(d: dict, *path):
        for key in path:
            if not isinstance(d, dict) or key not in d:
                return None
            d = d[key]
        return d

    def row(label: str, fn):
        rows.append((label, *(fn(s) for s in surveys)))

    lat = lambda phase, s, who="pipeline": "/".join(  # noqa: E731
        _fmt(get(report, who, s, phase, "latency_ms", p)) for p in ("p50", "p95", "p99"))
    row("raw consume, msgs/s", lambda s: _fmt(get(report, "limits", s, "raw_consume", "messages_per_s")))
    row("fastavro decode, alerts/s", lambda s: _fmt(get(report, "limits", s, "decode", "fastavro_alerts_per_s")))
    row("fast decoder, alerts/s", lambda s: _fmt(get(report, "limits", s, "decode", "fast_alerts_per_s")))
    model = bench["model"]
    row(f"model forward {model.get('precision', '')}, lc/s (batch)",
        lambda s: f"{_fmt(get(report, 'limits', s, 'forward_best', 'forward_lc_per_s'))}"
                  f" ({get(report, 'limits', s, 'forward_best', 'batch_size')})")
    others = {get(report, "limits", s, "forward_other_precision", "precision") for s in surveys} - {None}
    if others:
        row(f"model forward {'/'.join(sorted(others))}, lc/s (batch)",
            lambda s: f"{_fmt(get(report, 'limits', s, 'forward_other_precision', 'best', 'forward_lc_per_s'))}"
                      f" ({get(report, 'limits', s, 'forward_other_precision', 'best', 'batch_size')})")
    if any(get(report, "limits", s, "forward_int8") for s in surveys):
        row("model forward int8 (not served), lc/s (batch)",
            lambda s: f"{_fmt(get(report, 'limits', s, 'forward_int8', 'best', 'forward_lc_per_s'))}"
                      f" ({get(report, 'limits', s, 'forward_int8', 'best', 'batch_size')})")

    def chunk_rates(s):
        measured = get(report, "limits", s, "score_chunks") or []
        return " / ".join(f"{r['chunk_curves'] or 'all'}: {_fmt(r['lc_per_s'])}" for r in measured) or "-"

    row(f"score {bench['settings']['batch_size']:,} curves by chunk, lc/s", chunk_rates)
    row("pipeline sustained, alerts/s", lambda s: _fmt(get(report, "pipeline", s, "sustained", "alerts_per_s")))
    row("  / slowest stage", lambda s: f"{_fmt(get(report, 'ratios', s, 'pipeline_over_slowest_stage'))} "
        f"({get(report, 'ratios', s, 'slowest_stage')})")
    row(f"steady {_fmt(bench['settings']['rate'])}/s p50/p95/p99 ms", lambda s: lat("steady", s))
    row(f"burst {bench['settings']['n_burst']:,}: all published, s",
        lambda s: _fmt(get(report, "pipeline", s, "burst", "all_published_s")))
    row("burst p50/p95/p99 ms", lambda s: lat("burst", s))
    row("scorer peak RSS, MB", lambda s: _fmt(get(report, "pipeline", s, "scorer", "peak_rss_mb")))
    row("exactly once (read back)", lambda s: _fmt(get(report, "pipeline", s, "verified", "exactly_once")))
    if report["alternative"]:
        row("alternative, alerts/s", lambda s: _fmt(get(report, "alternative", s, "sustained", "alerts_per_s")))
        row("  pipeline / alternative", lambda s: _fmt(get(report, "ratios", s, "pipeline_over_alternative")))
        row("  alternative steady p50/p95/p99", lambda s: lat("steady", s, "alternative"))
        row("  alternative burst, s (extrapolated)",
            lambda s: _fmt(get(report, "alternative", s, "burst_extrapolated_s")))
    width = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = [f"alertformer bench: {m['cpus']} CPUs, load {m['load_avg_start'][0]:.1f}, model "
             f"{bench['model']['version']}{' (random weights)' if bench['model']['random_weights'] else ''} on "
             f"{bench['model']['device']}, {bench['settings']['torch_threads']} torch thread(s), "
             f"{bench['wall_s']:.0f} s"]
    lines += ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, width)))
              for r in rows]
    for survey in surveys:
        breakdown = get(report, "pipeline", survey, "sustained", "breakdown") or {}
        top = sorted(breakdown.get("stages", {}).items(), key=lambda kv: -(kv[1]["share"] or 0))[:5]
        if top:
            forward = breakdown["forward_thread"]
            overlapped = forward["overlapped_share"]  # None when no forward pass fell in the phase
            lines.append(f"{survey} pipeline time (sustained), service thread: " + ", ".join(
                f"{name} {v['share'] or 0:.0%} ({v['ms_per_1000_alerts'] / 1e3:.2f} ms/alert)" for name, v in top)
                + f"; forward thread {forward['ms_per_1000_alerts'] / 1e3:.2f} ms/alert"
                + (f", {overlapped:.0%} of it overlapped" if overlapped is not None else ""))
    snn = report.get("supernnova", {})
    lines.append("model / SuperNNova: " + (f"{snn['alertformer_over_supernnova']}x ({snn['alertformer_lc_per_s']:,.0f}"
                                         f" vs {snn['supernnova_lc_per_s']:,.0f} lc/s)" if snn.get("measured")
                                         else snn.get("note", "not measured")))
    for name, aim in report["aims"].items():
        if isinstance(aim, dict):
            lines.append(f"aim {name}: {aim['aim']}: {aim.get('value', aim.get('value_s'))} -> "
                         f"{'met' if aim['met'] else 'not met' if aim['met'] is False else 'n/a'}")
    return "\n".join(lines)


def json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def cmd_bench(args) -> int:
    report = run_bench(args)
    text = json.dumps(report, indent=2, default=json_default)
    if args.out:
        Path(args.out).write_text(text + "\n")
        print(table(report))
    else:
        print(text)
        print(table(report), file=sys.stderr)
    verified = [p.get("verified", {}).get("exactly_once") for p in report["pipeline"].values()]
    return 0 if all(verified) else 1
