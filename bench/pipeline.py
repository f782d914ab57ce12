"""The scoring service and the obvious alternative on the real stack, each in its own process, fed from this one.

`run_pipeline` starts `scorer_child`: the real `ScoringService` (transactional
loop, fast decoder, Redis windows, the batch scored in forward chunks, Avro outputs,
Redis state), as it runs in production; its per-stage timing record
(`ScoringService.times`) is read after each committed batch. This process produces the input, as a
survey would, with `alertformer replay`'s producer settings, in three phases:

1. ``sustained``: a backlog produced before the scorer starts, drained as fast
   as it can (rate over all batches but the first, which joins the group);
2. ``steady``: `rate` alerts/s for `duration_s`;
3. ``burst``: `n_burst` alerts produced as fast as possible.

A phase begins once the previous one is fully committed. Latency is per alert:
the wall-clock time ``commit_transaction`` returned for its batch minus its
Kafka timestamp (set by the producer when it produced the alert; one host, one
clock). After the run the scored topic is read back (read_committed) to check
that every input gave exactly one scored record.

`run_alternative` does the same with `naive_child`: what one would write without
alertformer: per message, fastavro decode, one model call, produce a JSON record,
flush, commit the offset synchronously (at-least-once); no history, no Redis.
"""
import json
import logging
import multiprocessing
import os
import queue
import resource
import threading
import time
import traceback
import uuid
from collections import defaultdict
from collections.abc import Callable

import numpy as np

from bench.data import Pool
from stream.config import KafkaSettings
from stream.errors import AlertformerError
from stream.kafka_io import make_producer

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 180.0  # a child imports torch, loads the model and compiles/loads the decoder
FINISH_TIMEOUT_S = 60.0
QUEUE_FULL_BACKOFF_S = 0.05
NAIVE_POLL_S = 0.2
NAIVE_REPORT_EVERY = 50  # messages per report from the naive child (or every NAIVE_REPORT_S)
NAIVE_REPORT_S = 0.5
WARMUP_MESSAGES = 20  # the alternative's first messages, not timed (model warm-up, group join)


class BenchError(AlertformerError):
    """The bench could not complete a measurement; the message says which and why."""


# ----------------------------------------------------------------------------- children


class StageClock:
    """Seconds per named stage, accumulated until `take` (the alternative's stages)."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] += seconds

    def take(self) -> dict[str, float]:
        out = dict(self.seconds)
        self.seconds.clear()
        return out


def _child_setup() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def _proc_status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(f"{field}:"):
                    return round(int(line.split()[1]) / 1024, 1)  # kB
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """This process's peak resident memory, MB: ``VmHWM`` of /proc/self/status (Linux).

    Not ``ru_maxrss`` where /proc is there: a spawned child inherits its parent's through fork and exec.
    """
    return _proc_status_mb("VmHWM") or round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _usage() -> dict:
    times = os.times()
    return {"peak_rss_mb": peak_rss_mb(), "cpu_s": times.user + times.system}


def _now_ms() -> float:
    return time.time_ns() / 1e6


def _batch_reporter(times, reports):
    """The `ScoringService.on_batch` observer that reports each batch (size, timestamps, commit time, stages).

    A batch's stages are the seconds `times` (the service's `StageTimes`) gained since the batch
    before it: its own finish and transaction, the next batch's consume and prepare, and the
    forward thread's passes (`breakdown` sums them over the run).
    """
    last, last_cpu = times.as_dict(), times.cpu_as_dict()

    def report(messages, committed_ms: float) -> None:
        nonlocal last, last_cpu
        now, now_cpu = times.as_dict(), times.cpu_as_dict()
        reports.put({"kind": "batch", "n": len(messages), "commit_ms": committed_ms,
                     "ts_ms": np.fromiter((m.timestamp()[1] for m in messages), np.int64, len(messages)),
                     "stages": {name: seconds - last[name] for name, seconds in now.items()},
                     "cpu_stages": {name: seconds - last_cpu[name] for name, seconds in now_cpu.items()}})
        last, last_cpu = now, now_cpu

    return report


def scorer_child(spec: dict, reports, go, stop) -> None:
    """Child process: the scoring service with `spec["config"]`, instrumented; runs from `go` until `stop`."""
    _child_setup()
    try:
        t0 = time.perf_counter()
        import torch

        from stream.config import StreamConfig
        from stream.service import ScoringService

        # model_validate: exactly this configuration (no second pass over the environment); the service
        # sets scoring.torch_threads
        service = ScoringService(StreamConfig.model_validate(spec["config"]))
        service.on_batch = _batch_reporter(service.times, reports)
        scorer = service.scorer
        reports.put({"kind": "ready", "startup_s": round(time.perf_counter() - t0, 2),
                     "model_version": scorer.version, "device": str(scorer.device),
                     "torch_threads": torch.get_num_threads(), "params": scorer.n_params,
                     "precision": scorer.precision, "chunk_curves": scorer.chunk_curves,
                     "rss_ready_mb": _proc_status_mb("VmRSS")})
        go.wait()
        threading.Thread(target=lambda: (stop.wait(), service.loop.stop()), daemon=True).start()
        before, t_run = _usage(), time.perf_counter()
        stats = service.run()
        after = _usage()
        reports.put({"kind": "final", "run_s": time.perf_counter() - t_run,
                     "cpu_s": after["cpu_s"] - before["cpu_s"], "peak_rss_mb": after["peak_rss_mb"],
                     "redis_outages": service.redis_health.outages,
                     "loop": vars(stats)})
    except BaseException:
        reports.put({"kind": "error", "error": traceback.format_exc()})
        raise


def naive_child(spec: dict, reports, go, stop) -> None:
    """Child process: the obvious hand-written scorer (see the module docstring); runs from `go` until `stop`."""
    _child_setup()
    try:
        t0 = time.perf_counter()
        import torch
        from confluent_kafka import Consumer, Producer

        from models.checkpoint import load_checkpoint
        from models.encode import encode
        from stream.decode import decode_rubin, decode_ztf
        from stream.errors import BadPacket
        from stream.score import pick_device

        if spec.get("torch_threads"):
            torch.set_num_threads(spec["torch_threads"])
        decode = decode_rubin if spec["survey"] == "rubin" else decode_ztf
        device = pick_device(spec["device"])
        model, _ = load_checkpoint(spec["checkpoint"], map_location=device)
        model.eval()
        consumer = Consumer(spec["client"] | {"group.id": spec["group"], "auto.offset.reset": "earliest",
                                              "enable.auto.commit": False})
        producer = Producer(spec["client"])
        consumer.subscribe([spec["topic"]])
        reports.put({"kind": "ready", "startup_s": round(time.perf_counter() - t0, 2), "device": str(device),
                     "torch_threads": torch.get_num_threads(), "rss_ready_mb": _proc_status_mb("VmRSS")})
        go.wait()
        clock, ts_ms, commit_ms = StageClock(), [], []
        before, t_run, last_report = _usage(), time.perf_counter(), time.perf_counter()

        def report():
            reports.put({"kind": "batch", "n": len(ts_ms), "ts_ms": np.array(ts_ms, np.int64),
                         "commit_ms": np.array(commit_ms), "stages": clock.take()})
            ts_ms.clear()
            commit_ms.clear()

        while not stop.is_set():
            msg = consumer.poll(NAIVE_POLL_S)
            if msg is not None and msg.error() is None:
                t1 = time.perf_counter()
                try:
                    alert = decode(msg.value())
                except BadPacket:
                    alert = None
                t2 = time.perf_counter()
                if alert is not None:
                    probs = model.predict_proba(encode([alert.light_curve], max_visits=spec["max_visits"]))
                    t3 = time.perf_counter()
                    record = {"objectId": alert.object_id, "alertId": alert.alert_id,
                              "probabilities": probs[0].tolist()}
                    producer.produce(spec["out_topic"], json.dumps(record).encode(), msg.key())
                    producer.flush()
                else:
                    t3 = t2
                t4 = time.perf_counter()
                consumer.commit(message=msg, asynchronous=False)
                t5 = time.perf_counter()
                ts_ms.append(msg.timestamp()[1])
                commit_ms.append(_now_ms())
                for name, seconds in (("decode", t2 - t1), ("forward", t3 - t2), ("produce_flush", t4 - t3),
                                      ("commit", t5 - t4)):
                    clock.add(name, seconds)
            if ts_ms and (len(ts_ms) >= NAIVE_REPORT_EVERY or time.perf_counter() - last_report > NAIVE_REPORT_S):
                report()
                last_report = time.perf_counter()
        if ts_ms:
            report()
        consumer.close()
        after = _usage()
        reports.put({"kind": "final", "run_s": time.perf_counter() - t_run, "cpu_s": after["cpu_s"] - before["cpu_s"],
                     "peak_rss_mb": after["peak_rss_mb"]})
    except BaseException:
        reports.put({"kind": "error", "error": traceback.format_exc()})
        raise


# ----------------------------------------------------------------------------- parent side


class Child:
    """A spawned child process and the reports it sends: readiness, one per batch, a final one."""

    def __init__(self, target: Callable, spec: dict, name: str):
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch/librdkafka state from here
        self.queue, self.go, self.stop_event = ctx.Queue(), ctx.Event(), ctx.Event()
        self.process = ctx.Process(target=target, args=(spec, self.queue, self.go, self.stop_event),
                                   name=name, daemon=True)
        self.name = name
        self.batches: list[dict] = []
        self.committed = 0
        self.ready: dict | None = None
        self.final: dict | None = None

    def start(self) -> "Child":
        self.process.start()
        return self

    def pump(self, timeout_s: float = 0.0) -> None:
        """Take the reports that arrived, waiting up to `timeout_s` for the first one."""
        try:
            report = self.queue.get(timeout=timeout_s) if timeout_s > 0 else self.queue.get_nowait()
        except queue.Empty:
            if not self.process.is_alive() and self.final is None:
                raise BenchError(f"{self.name} exited (code {self.process.exitcode}) without a final report")
            return
        while True:
            self._take(report)
            try:
                report = self.queue.get_nowait()
            except queue.Empty:
                return

    def _take(self, report: dict) -> None:
        kind = report["kind"]
        if kind == "batch":
            self.batches.append(report)
            if report["commit_ms"] is not None:
                self.committed += report["n"]
        elif kind == "ready":
            self.ready = {k: v for k, v in report.items() if k != "kind"}
        elif kind == "final":
            self.final = {k: v for k, v in report.items() if k != "kind"}
        elif kind == "error":
            raise BenchError(f"{self.name} failed:\n{report['error']}")

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> dict:
        deadline = time.monotonic() + timeout_s
        while self.ready is None:
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name} not ready after {timeout_s:.0f} s")
            self.pump(0.5)
        return self.ready

    def wait_committed(self, n: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.committed < n and time.monotonic() < deadline:
            self.pump(0.2)
        return self.committed >= n

    def finish(self, timeout_s: float = FINISH_TIMEOUT_S) -> dict:
        """Stop the child, collect its final report, and reap it."""
        self.stop_event.set()
        self.go.set()  # a child stopped before it began
        deadline = time.monotonic() + timeout_s
        try:
            while self.final is None and time.monotonic() < deadline:
                self.pump(0.5)
        finally:
            self.process.join(10.0)
            if self.process.is_alive():
                self.process.terminate()
                self.process.join(5.0)
        if self.final is None:
            raise BenchError(f"{self.name} sent no final report within {timeout_s:.0f} s")
        return self.final

    def close(self) -> None:
        """`finish` a child that has not finished (after an error), ignoring a missing final report."""
        if self.final is None:
            try:
                self.finish(10.0)
            except BenchError:
                pass


class Feeder:
    """Produces bench input the way `alertformer replay` does: idempotent, lz4, keyed by object id."""

    def __init__(self, kafka: KafkaSettings):
        self.producer = make_producer(kafka)
        self.failed = 0

    def _delivered(self, err, _msg) -> None:
        if err is not None:
            self.failed += 1

    def send(self, topic: str, packets, rate_per_s: float | None = None,
             idle: Callable[[float], None] | None = None) -> dict:
        """Produce `packets`, at `rate_per_s` (else as fast as possible), then flush.

        `idle(seconds)` is called to wait between paced messages (default: sleep).
        Returns ``produce_ms`` (the wall-clock time of each produce call, ms: the
        Kafka timestamp librdkafka gives the message) and the production time.
        """
        idle = idle or time.sleep
        produce_ms = np.empty(len(packets))
        t0 = time.perf_counter()
        for i, packet in enumerate(packets):
            if rate_per_s:
                while (wait := t0 + i / rate_per_s - time.perf_counter()) > 0:
                    idle(wait)
            while True:
                try:
                    produce_ms[i] = _now_ms()
                    self.producer.produce(topic, packet.value, packet.key, on_delivery=self._delivered)
                    break
                except BufferError:
                    self.producer.poll(QUEUE_FULL_BACKOFF_S)
            self.producer.poll(0)
        produced_s = time.perf_counter() - t0
        while self.producer.flush(1.0) > 0:
            idle(0.0)
        if self.failed:
            raise BenchError(f"{self.failed} message(s) to {topic} were not delivered")
        return {"produce_ms": produce_ms, "produce_s": produced_s,
                "flushed_s": time.perf_counter() - t0}


# ----------------------------------------------------------------------------- metrics


def _percentiles(values: np.ndarray) -> dict:
    if not len(values):
        return {}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {"p50": round(float(p50), 1), "p95": round(float(p95), 1), "p99": round(float(p99), 1),
            "max": round(float(values.max()), 1)}


def _arrays(batches: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(timestamp, commit) ms of every committed message of `batches`."""
    committed = [b for b in batches if b["commit_ms"] is not None]
    if not committed:
        return np.empty(0), np.empty(0)
    ts = np.concatenate([b["ts_ms"] for b in committed]).astype(np.float64)
    commit = np.concatenate([np.broadcast_to(b["commit_ms"], (b["n"],)) for b in committed])
    return ts, commit


def latency(batches: list[dict]) -> dict:
    """Kafka timestamp → commit, ms: percentiles, and first input to last commit."""
    ts, commit = _arrays(batches)
    if not len(ts):
        return {"alerts": 0}
    return {"alerts": len(ts), "latency_ms": _percentiles(commit - ts),
            "first_input_to_last_commit_s": round(float(commit.max() - ts.min()) / 1e3, 3)}


def sustained_rate(batches: list[dict], warmup_messages: int = 0) -> dict:
    """Alerts/s from the first timed commit to the last.

    The pipeline's first batch (`warmup_messages` = 0) or the alternative's first
    `warmup_messages` messages are the starting line, not timed.
    """
    _, commit = _arrays(batches)
    commit = np.sort(commit)
    if warmup_messages:
        start = min(warmup_messages, len(commit) - 1)
    else:
        start = batches[0]["n"] if batches and batches[0]["commit_ms"] is not None else 0
        start = min(start, len(commit) - 1)
    if len(commit) < 2 or start < 1 or commit[-1] <= commit[start - 1]:
        return {"alerts": int(len(commit)), "alerts_per_s": None}
    seconds = (commit[-1] - commit[start - 1]) / 1e3
    return {"alerts": int(len(commit)), "timed_alerts": int(len(commit) - start), "seconds": round(seconds, 3),
            "alerts_per_s": round((len(commit) - start) / seconds, 1),
            "mean_batch": round(len(commit) / max(len(batches), 1), 1)}


# Stages of the service's thread as it runs them; "…_other" are what the wrapped calls do not cover.
STAGE_ORDER = ("consume", "decode", "redis_read", "windows", "encode", "prepare_other", "forward_wait",
               "scored_batch", "rules", "avro_encode", "finish_other", "produce", "commit", "txn_other", "redis_write")
NAIVE_STAGES = ("decode", "forward", "produce_flush", "commit")


def _service_stages(total: dict[str, float]) -> dict[str, float]:
    """Seconds per `STAGE_ORDER` stage of the service's thread from the `StageTimes` totals."""
    stages = dict(total)
    stages["prepare_other"] = total["prepare"] - sum(total[k] for k in ("decode", "redis_read", "windows", "encode"))
    stages["finish_other"] = total["finish"] - sum(total[k] for k in ("forward_wait", "scored_batch", "avro_encode",
                                                                      "rules"))
    stages["txn_other"] = total["batch"] - total["finish"] - total["produce"] - total["commit"]
    return {name: stages[name] for name in STAGE_ORDER if name in stages}


def breakdown(batches: list[dict], naive: bool = False) -> dict:
    """Where the time went: per stage, ms per 1,000 alerts and share of the busy time (idle waits excluded), and
    where the batches say (``cpu_stages``) the CPU ms per 1,000 alerts of the thread that ran it.

    The service's thread: ``consume`` is the consume() call that returned a batch
    (with any wait to fill it); ``forward_wait`` its wait for the forward thread;
    ``txn_other`` is begin_transaction, send_offsets_to_transaction and bookkeeping;
    ``redis_write`` is the post-commit work (Redis state: light curves, scores, top sets,
    metrics). ``forward_thread``: the forward passes, on their own thread, overlapping
    those stages. A stage whose CPU time is well below its wall time waited: for a core,
    the broker or Redis.
    """
    total, cpu = defaultdict(float), defaultdict(float)
    n = 0
    for b in batches:
        n += b["n"]
        for name, seconds in b["stages"].items():
            total[name] += seconds
        for name, seconds in b.get("cpu_stages", {}).items():
            cpu[name] += seconds
    if not n:
        return {}

    def per_1000(seconds: float) -> float:
        return round(seconds / n * 1e6, 1)

    if naive:
        stages = {name: total[name] for name in NAIVE_STAGES}
        cpu_stages = {}
    else:
        stages = _service_stages(total)
        cpu_stages = _service_stages(cpu) if cpu else {}
    busy = sum(stages.values())
    report = {"alerts": n, "busy_s": round(busy, 3),
              "busy_alerts_per_s": round(n / busy, 1) if busy > 0 else None,
              "stages": {name: {"ms_per_1000_alerts": per_1000(seconds),
                                "share": round(seconds / busy, 3) if busy > 0 else None}
                         | ({"cpu_ms_per_1000_alerts": per_1000(cpu_stages[name])} if cpu_stages else {})
                         for name, seconds in stages.items()}}
    if cpu_stages:
        report["service_thread_cpu_ms_per_1000_alerts"] = per_1000(sum(cpu_stages.values()))
    if not naive:
        report["forward_thread"] = {"ms_per_1000_alerts": per_1000(total["forward"]),
                                    "overlapped_share": round(1 - total["forward_wait"] / total["forward"], 3)
                                    if total["forward"] > 0 else None}
        if cpu:
            report["forward_thread"]["cpu_ms_per_1000_alerts"] = per_1000(cpu["forward"])
    return report


# ----------------------------------------------------------------------------- runs


def _create_topics(kafka: KafkaSettings, names: list[str], partitions: int) -> None:
    from stream.health import create_topics

    create_topics(kafka.client_config(), names, partitions)


def read_back(kafka: KafkaSettings, topic: str, expected: int, timeout_s: float) -> dict:
    """Read the scored topic (read_committed) and check each input appears exactly once."""
    from confluent_kafka import Consumer

    from stream import avro_io

    consumer = Consumer(kafka.client_config() | {
        "group.id": f"bench-verify-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest",
        "isolation.level": "read_committed", "enable.auto.commit": False})
    consumer.subscribe([topic])
    seen, n = set(), 0
    deadline = time.monotonic() + timeout_s
    try:
        while n < expected and time.monotonic() < deadline:
            for m in consumer.consume(1000, 0.5):
                if m.error() is None:
                    _, record = avro_io.decode(m.value())
                    seen.add((record["topic"], record["partition"], record["offset"]))
                    n += 1
        for m in consumer.consume(1000, 1.0):  # anything beyond `expected` would be a duplicate
            if m.error() is None:
                n += 1
    finally:
        consumer.close()
    return {"inputs": expected, "scored_records": n, "distinct_inputs_scored": len(seen),
            "exactly_once": n == expected == len(seen)}


def _phase_timeout_s(n: int, floor_rate_per_s: float = 50.0) -> float:
    return 60.0 + n / floor_rate_per_s


def run_pipeline(config, pool: Pool, settings: dict, run_id: str) -> dict:
    """The scoring service on `pool`'s alerts: sustained, steady and burst phases; see the module docstring.

    Parameters
    ----------
    config : StreamConfig
        The user's resolved configuration; the scorer runs with it, except for
        fresh topics, consumer group and Redis prefix, the bench's checkpoint,
        no registry (no hot-swap) and no webhook.
    pool : Pool
    settings : dict
        The bench's settings (`bench.SETTINGS`).
    run_id : str
        Names this run's topics, group and Redis prefix.

    Returns
    -------
    dict
        The phase figures with per-stage breakdowns, the child's peak RSS and
        CPU use, and the read-back check. Topics (``bench.<run_id>.*``) and Redis
        keys stay: the input topic is read again by `raw_consume`; the caller
        deletes them.
    """
    kafka = config.kafka
    stem = f"bench.{run_id}.{pool.survey}"
    input_topic = f"{stem}.alerts"
    topics = {"inputs": {input_topic: "auto"}, "scored": f"{stem}.scored",
              "classifications": f"{stem}.classifications", "followup": f"{stem}.followup",
              "deadletter": f"{stem}.deadletter", "labels": f"{stem}.labels",
              "partitions": config.topics.partitions}
    names = [input_topic, *(topics[k] for k in ("scored", "classifications", "followup", "deadletter", "labels"))]
    _create_topics(kafka, names, config.topics.partitions)
    resolved = config.model_dump()  # secrets stay SecretStr (picklable), not masked
    resolved["topics"] = topics
    resolved["redis"]["prefix"] = f"bench-{run_id}-{pool.survey}"
    resolved["scoring"] |= {"group_id": f"bench-{run_id}-{pool.survey}",
                            "instance_id": f"bench-{run_id}-{pool.survey}",
                            "checkpoint": settings["checkpoint"], "device": settings["device"]}
    resolved["registry"]["path"] = None
    resolved["followup"]["webhook_url"] = None
    out = {"input_topic": input_topic, "redis_prefix": resolved["redis"]["prefix"],
           "batch_size": config.scoring.batch_size, "batch_timeout_ms": config.scoring.batch_timeout_ms}
    child = Child(scorer_child, {"config": resolved}, f"scorer-{pool.survey}").start()
    feeder, cursor = Feeder(kafka), 0
    try:
        n = settings["n_backlog"]
        log.info("bench pipeline survey=%s phase=sustained backlog=%d", pool.survey, n)
        feeder.send(input_topic, pool.cycle(cursor, n))  # while the child starts
        cursor += n
        out["scorer"] = child.wait_ready()
        child.go.set()
        mark = len(child.batches)
        if not child.wait_committed(cursor, _phase_timeout_s(n)):
            raise BenchError(f"{pool.survey} pipeline: backlog of {n} not committed in time "
                             f"({child.committed} committed)")
        # The first batch is the rate's starting line, so the breakdown starts after it too.
        out["sustained"] = sustained_rate(child.batches[mark:]) | {"breakdown": breakdown(child.batches[mark + 1:])}

        n = int(round(settings["rate"] * settings["duration_s"]))
        log.info("bench pipeline survey=%s phase=steady rate=%g/s n=%d", pool.survey, settings["rate"], n)
        mark = len(child.batches)
        sent = feeder.send(input_topic, pool.cycle(cursor, n), rate_per_s=settings["rate"], idle=child.pump)
        cursor += n
        if not child.wait_committed(cursor, _phase_timeout_s(n)):
            raise BenchError(f"{pool.survey} pipeline: steady phase not committed in time")
        out["steady"] = {"target_alerts_per_s": settings["rate"], "duration_s": settings["duration_s"],
                         "produced_alerts_per_s": round(n / sent["produce_s"], 1)} | latency(child.batches[mark:]) \
            | {"mean_batch": round(n / max(len(child.batches) - mark, 1), 1),
               "breakdown": breakdown(child.batches[mark:])}

        n = settings["n_burst"]
        log.info("bench pipeline survey=%s phase=burst n=%d", pool.survey, n)
        mark = len(child.batches)
        sent = feeder.send(input_topic, pool.cycle(cursor, n), idle=child.pump)
        cursor += n
        if not child.wait_committed(cursor, _phase_timeout_s(n)):
            raise BenchError(f"{pool.survey} pipeline: burst not committed in time")
        burst = latency(child.batches[mark:])
        out["burst"] = {"produce_s": round(sent["flushed_s"], 3)} | burst | {
            "all_published_s": burst.get("first_input_to_last_commit_s"),
            "alerts_per_s": round(n / burst["first_input_to_last_commit_s"], 1),
            "drain": sustained_rate(child.batches[mark:]), "breakdown": breakdown(child.batches[mark:])}
        out["scorer"] |= child.finish()
        out["scorer"]["cpu_utilisation"] = round(out["scorer"]["cpu_s"] / out["scorer"]["run_s"], 2)
        out["verified"] = read_back(kafka, topics["scored"], cursor, timeout_s=_phase_timeout_s(cursor, 2000.0))
    finally:
        child.close()
    return out


def run_alternative(config, pool: Pool, settings: dict, run_id: str) -> dict:
    """The obvious alternative on `pool`'s alerts: its drain rate on a backlog, then its latency at `rate`.

    The steady phase runs `alt_duration_s` (then waits as long again at most);
    alerts still unscored when it is stopped count with their age at that moment,
    so the percentiles are then lower bounds (``censored`` > 0). A 10,000-alert
    burst would take minutes, so its time is extrapolated from the drain rate.
    """
    kafka = config.kafka
    stem = f"bench.{run_id}.{pool.survey}.naive"
    in_topic, out_topic = f"{stem}.alerts", f"{stem}.scored"
    _create_topics(kafka, [in_topic, out_topic], config.topics.partitions)
    spec = {"survey": pool.survey, "client": kafka.client_config(), "group": f"{stem}.group",
            "topic": in_topic, "out_topic": out_topic, "checkpoint": settings["checkpoint"],
            "device": settings["device"], "max_visits": config.scoring.max_visits,
            "torch_threads": settings.get("torch_threads")}
    out = {}
    child = Child(naive_child, spec, f"naive-{pool.survey}").start()
    feeder, cursor = Feeder(kafka), 0
    try:
        n = settings["alt_backlog"]
        log.info("bench alternative survey=%s phase=sustained backlog=%d", pool.survey, n)
        feeder.send(in_topic, pool.cycle(cursor, n))
        cursor += n
        out["process"] = child.wait_ready()
        child.go.set()
        drained = child.wait_committed(cursor, settings["alt_backlog_timeout_s"])
        out["sustained"] = sustained_rate(child.batches, WARMUP_MESSAGES) | {
            "drained": drained, "breakdown": breakdown(child.batches, naive=True)}
        rate = out["sustained"].get("alerts_per_s")
        out["burst_extrapolated_s"] = round(settings["n_burst"] / rate, 1) if rate else None
        if drained:
            n = int(round(settings["rate"] * settings["alt_duration_s"]))
            log.info("bench alternative survey=%s phase=steady rate=%g/s n=%d", pool.survey, settings["rate"], n)
            mark = len(child.batches)
            sent = feeder.send(in_topic, pool.cycle(cursor, n), rate_per_s=settings["rate"], idle=child.pump)
            cursor += n
            kept_up = child.wait_committed(cursor, settings["alt_duration_s"])
            stop_ms = _now_ms()
            ts, commit = _arrays(child.batches[mark:])
            censored = n - len(ts)
            ages = stop_ms - np.sort(sent["produce_ms"])[len(ts):]  # the latest-produced are the unscored ones
            out["steady"] = {"target_alerts_per_s": settings["rate"], "duration_s": settings["alt_duration_s"],
                             "alerts": n, "scored": int(len(ts)), "kept_up": kept_up, "censored": censored,
                             "latency_ms": _percentiles(np.concatenate([commit - ts, ages]))}
        else:
            out["steady"] = {"note": "not run: the backlog was not drained in time"}
        out["process"] |= child.finish()
    finally:
        child.close()
    return out
