"""What each essential stage can do alone, on the bench's own messages: Kafka consume, decoding, the model, SuperNNova.

Every rate here is a ceiling for the pipeline: raw consume (librdkafka through
confluent-kafka, with the scorer's consumer settings, nothing decoded), decoding
(fastavro, and the batch decoders), and the model's forward pass on
prebuilt batches of the alerts' light curves (`Scorer.forward`: the served
precision, device copies included). `score_chunks` times `Scorer.score` (encode
and forward) on one batch in chunks of several sizes. `int8_twin` gives the
forward pass of `training.quantize.quantize_int8` on the CPU to compare with, a
measurement only: int8 is not a serving precision (README, Performance).
"""
import copy
import io
import logging
import pickle
import tempfile
import time
import uuid
from pathlib import Path

import fastavro
import torch

from models.lightcurve import LightCurve
from training.quantize import quantize_int8
from bench.data import Pool
from bench.decode import rate as decode_rate
from stream.config import KafkaSettings
from stream.decode import decode_rubin, decode_ztf, rubin_schema
from stream.decode._avro import WIRE_HEADER
from stream.kafka_io import make_consumer
from stream.errors import ConfigError
from stream.score import Scorer, pick_precision, trace_model

log = logging.getLogger(__name__)
CONSUME_POLL_S = 0.5  # one consume() call's wait
CONSUME_IDLE_S = 3.0  # stop reading a topic after this long without a message
DECODE_ROUNDS = 3  # decoders alternate; each reports its best round (the machine is shared)


def raw_consume(kafka: KafkaSettings, topic: str, max_messages: int, batch_size: int, timeout_s: float) -> dict:
    """Messages/s and MB/s reading `topic` from the start with the scorer's consumer settings, without decoding.

    The first batch (group join, first fetch) is not timed: the rate runs from its
    arrival to the last batch's.

    Parameters
    ----------
    kafka : KafkaSettings
    topic : str
    max_messages : int
        Stop after this many messages.
    batch_size : int
        Messages per ``consume`` call (the scorer's ``scoring.batch_size``).
    timeout_s : float
        Give up reading after this long, s.
    """
    consumer = make_consumer(kafka, f"bench-raw-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([topic])
    n = n_bytes = n_first = bytes_first = 0
    t_first = t_last = None
    deadline = time.monotonic() + timeout_s
    try:
        while n < max_messages and time.monotonic() < deadline:
            messages = [m for m in consumer.consume(batch_size, CONSUME_POLL_S) if m.error() is None]
            now = time.perf_counter()
            if not messages:
                if t_last is not None and now - t_last > CONSUME_IDLE_S:
                    break
                continue
            size = sum(len(m.value()) for m in messages)
            if t_first is None:
                t_first, n_first, bytes_first = now, len(messages), size
            n, n_bytes, t_last = n + len(messages), n_bytes + size, now
    finally:
        consumer.close()
    if t_first is None or t_last <= t_first:
        return {"messages": n, "messages_per_s": None, "note": "too few batches to time"}
    seconds = t_last - t_first
    return {"messages": n, "timed_messages": n - n_first, "seconds": round(seconds, 3),
            "messages_per_s": round((n - n_first) / seconds, 1),
            "mb_per_s": round((n_bytes - bytes_first) / seconds / 1e6, 1)}


def decode_rates(pool: Pool, batch_size: int, seconds: float) -> dict:
    """Alerts/s of each decoder on the pool's packets, interleaved rounds, best round each.

    ``fastavro_records``: fastavro alone (bytes to Python dicts); ``fastavro``:
    the project's per-message decoder (fastavro, then the `LightCurve`; for ZTF
    astropy too), what the scorer falls back to and what a hand-written consumer
    would do; ``fast``: `FastRubinDecoder` / `FastZtfDecoder`
    ``.decode_batch(...).decoded()`` (the alerts as columns, `stream.alert.AlertBatch`) in batches
    of `batch_size`, what the scorer runs.
    """
    from stream.decode.fast import FastRubinDecoder, FastZtfDecoder

    payloads = [p.value for p in pool.packets]
    if pool.survey == "rubin":
        sid = WIRE_HEADER.unpack_from(payloads[0])[1]
        schema = rubin_schema(f"{sid // 100}.{sid % 100}")
        decoder = FastRubinDecoder()
        contenders = {
            "fastavro_records": lambda b: [fastavro.schemaless_reader(io.BytesIO(p[WIRE_HEADER.size:]), schema)
                                           for p in b],
            "fastavro": lambda b: [decode_rubin(p) for p in b],
        }
    else:
        decoder = FastZtfDecoder()
        contenders = {
            "fastavro_records": lambda b: [next(iter(fastavro.reader(io.BytesIO(p)))) for p in b],
            "fastavro": lambda b: [decode_ztf(p) for p in b],
        }
    contenders["fast"] = lambda b: decoder.decode_batch(b)[0].decoded()
    best = dict.fromkeys(contenders, 0.0)
    for _ in range(DECODE_ROUNDS):
        for name, decode in contenders.items():
            best[name] = max(best[name], decode_rate(decode, payloads, batch_size, seconds / DECODE_ROUNDS))
    out = {f"{name}_alerts_per_s": round(value, 1) for name, value in best.items()}
    out["fast_over_fastavro"] = round(best["fast"] / best["fastavro"], 2)
    return out


def light_curves(pool: Pool) -> list[LightCurve]:
    """The light curve each pool packet carries (what a window holds before any stored history)."""
    decode = decode_rubin if pool.survey == "rubin" else decode_ztf
    return [decode(p.value).light_curve for p in pool.packets]


def _cycled(curves: list[LightCurve], n: int) -> list[LightCurve]:
    return [curves[i % len(curves)] for i in range(n)]


FORWARD_PASSES = 2  # sweeps over the batch sizes; each size keeps its best (the machine may be shared)


def other_precision(scorer: Scorer) -> str | None:
    """The other serving precision (fp32 or bf16) to measure the forward pass at beside the served one, if
    the scorer's device runs it (`stream.score.pick_precision`: on the CPU, bf16 needs AMX or AVX-512 BF16)."""
    other = "fp32" if scorer.precision == "bf16" else "bf16"
    try:
        return pick_precision(other, scorer.device)
    except ConfigError:
        return None


def int8_twin(scorer: Scorer) -> Scorer:
    """A copy of the CPU fp32 `scorer` whose model is `training.quantize.quantize_int8` of its own.

    For measuring what int8 would gain (`forward_sweep`, `score_chunks`), never for
    serving. The copy's ``precision`` stays ``"fp32"`` (no autocast); its linear
    layers compute in int8. The original scorer is left unchanged.

    Raises
    ------
    ValueError
        If `scorer` is not an fp32 scorer on the CPU.
    """
    if scorer.device.type != "cpu" or scorer.precision != "fp32":
        raise ValueError(f"int8_twin: needs an fp32 scorer on the CPU, got {scorer.precision} on {scorer.device}")
    twin = copy.copy(scorer)
    twin.model = quantize_int8(scorer.model)
    twin.traced = trace_model(twin.model)
    return twin


def compiled_twin(scorer: Scorer) -> Scorer:
    """A copy of `scorer` whose forward pass runs through `torch.compile` (``Scorer(compile=True)``).

    For measuring, never for serving (see `Scorer`); the original scorer is left unchanged. The
    graph is compiled at the first call of each new shape class, so time it after a warm-up.
    """
    return Scorer(scorer.model, scorer.version, scorer.device, scorer.max_visits, scorer.precision,
                  scorer.chunk_curves, scorer.prior_weights, compile=True)


def with_ratios(rows: list[dict], served: list[dict]) -> list[dict]:
    """`forward_sweep` rows with ``over_served``: their light curves/s over `served`'s at the same batch size."""
    rate = {r["batch_size"]: r["forward_lc_per_s"] for r in served}
    return [r | {"over_served": round(r["forward_lc_per_s"] / rate[r["batch_size"]], 2)} for r in rows]


def forward_sweep(scorer: Scorer, curves: list[LightCurve], batch_sizes, seconds_per_size: float) -> list[dict]:
    """Light curves/s of the model's forward pass alone, per batch size, on prebuilt batches of `curves`.

    Per batch size: one `Scorer.encode` (timed once), then `Scorer.forward` (copy to the
    device, forward at the scorer's precision, softmax) and the copy back to the
    host, repeated for at least `seconds_per_size` (at least once);
    `FORWARD_PASSES` sweeps, the best of each size kept. Runs on the scorer's
    device with the process's torch threads.

    Returns
    -------
    list of dict
        ``batch_size``, ``tokens`` (L, the padded window), ``forward_ms``,
        ``forward_lc_per_s``, ``encode_lc_per_s``, ``encode_forward_lc_per_s``.
    """
    scorer.forward(scorer.encode(_cycled(curves, 8))).cpu()  # warm-up
    best: dict[int, dict] = {}
    for _ in range(FORWARD_PASSES):
        for size in batch_sizes:
            chosen = _cycled(curves, size)
            t0 = time.perf_counter()
            batch = scorer.encode(chosen)
            encode_s = time.perf_counter() - t0
            calls, t0 = 0, time.perf_counter()
            while True:
                scorer.forward(batch).cpu()
                calls += 1
                elapsed = time.perf_counter() - t0
                if elapsed >= seconds_per_size:
                    break
            forward_s = elapsed / calls
            row = {"batch_size": size, "tokens": int(batch.mask.shape[1]), "calls": calls,
                   "forward_ms": round(forward_s * 1e3, 2), "forward_lc_per_s": round(size / forward_s, 1),
                   "encode_lc_per_s": round(size / encode_s, 1),
                   "encode_forward_lc_per_s": round(size / (encode_s + forward_s), 1)}
            if size not in best or row["forward_lc_per_s"] > best[size]["forward_lc_per_s"]:
                best[size] = row
    return [best[size] for size in batch_sizes]


def best_forward(rows: list[dict]) -> dict:
    best = max(rows, key=lambda r: r["forward_lc_per_s"])
    return {"forward_lc_per_s": best["forward_lc_per_s"], "batch_size": best["batch_size"]}


def forward_with_threads(scorer: Scorer, curves: list[LightCurve], batch_sizes, seconds_per_size: float,
                         threads: int) -> list[dict]:
    """`forward_sweep` with torch limited to `threads` intra-op threads (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return forward_sweep(scorer, curves, batch_sizes, seconds_per_size)
    finally:
        torch.set_num_threads(before)


def score_chunks(scorer: Scorer, curves: list[LightCurve], n_curves: int, chunk_sizes,
                 seconds_per_size: float) -> list[dict]:
    """Light curves/s of `Scorer.score` (sort, encode, forward, back to the host) on `n_curves` curves, per chunk size.

    Parameters
    ----------
    scorer : Scorer
        Its device, precision and threads; its own ``chunk_curves`` is replaced by each size in turn.
    curves : list of LightCurve
        Cycled to `n_curves` (the scorer's ``scoring.batch_size``).
    chunk_sizes : sequence of int or None
        Curves per forward call; None: the whole batch in one call.
    seconds_per_size : float
        Repeat each size for at least this long (at least once); `FORWARD_PASSES` passes, best kept.

    Returns
    -------
    list of dict
        ``chunk_curves`` (None = whole batch), ``calls``, ``score_ms`` (per batch), ``lc_per_s``.
    """
    batch = _cycled(curves, n_curves)
    best: dict = {}
    for _ in range(FORWARD_PASSES):
        for size in chunk_sizes:
            chunked = copy.copy(scorer)
            chunked.chunk_curves = size
            calls, t0 = 0, time.perf_counter()
            while True:
                chunked.score(batch)
                calls += 1
                elapsed = time.perf_counter() - t0
                if elapsed >= seconds_per_size:
                    break
            row = {"chunk_curves": size, "calls": calls, "score_ms": round(elapsed / calls * 1e3, 1),
                   "lc_per_s": round(n_curves * calls / elapsed, 1)}
            if size not in best or row["lc_per_s"] > best[size]["lc_per_s"]:
                best[size] = row
    return [best[size] for size in chunk_sizes]


def supernnova(model_path: str | None, curves: list[LightCurve], scorer: Scorer) -> dict:
    """SuperNNova's light curves/s against the transformer's, on the same curves.

    Parameters
    ----------
    model_path : str or None
        A SuperNNova model (``.pt``) trained by the model issue's peer setup
        (``alertformer evaluate --peers supernnova``, under
        ``<out>/work/supernnova-lsst/dump/models/``), or a peer pickled by its
        ``--peer-cache``. None: not measured.
    curves : list of LightCurve
        LSST curves (SuperNNova's model knows the bands it was trained on).
    scorer : Scorer
        The transformer, timed on the same curves with `Scorer.score` (its
        chunks, `encode` included), as SuperNNova's timing includes its own
        formatting.

    Returns
    -------
    dict
        ``measured`` False with a ``note`` when no model or no SuperNNova
        environment is available; else both rates and their ratio.
    """
    from training.evaluation.peers.supernnova import SuperNNovaError, SuperNNovaPeer
    from training.evaluation.peers.supernnova_env import DEFAULT_SUPERNNOVA_VENV, supernnova_venv_ready

    if not model_path:
        return {"measured": False, "note": "not measured: pass --supernnova-model (a SuperNNova .pt or peer .pkl "
                                           "from `alertformer evaluate --peers supernnova`)"}
    path = Path(model_path)
    if path.suffix == ".pkl":
        with open(path, "rb") as f:
            try:
                model_file = pickle.load(f)[0].model_file
            except (ModuleNotFoundError, AttributeError) as err:  # peers cached before training/evaluation/peers/
                return {"measured": False, "note": f"not measured: --supernnova-model {path} is not a peer this "
                                                   f"version can read ({err}); cache it again with `alertformer "
                                                   f"evaluate --peers supernnova --peer-cache DIR`"}
    else:
        model_file = str(path)
    if not model_file or not Path(model_file).is_file():
        return {"measured": False, "note": f"not measured: no SuperNNova model at {model_file}"}
    venv = DEFAULT_SUPERNNOVA_VENV
    if not supernnova_venv_ready(venv):  # never install from a bench
        return {"measured": False, "note": f"not measured: SuperNNova's environment {venv} is not installed"}
    with tempfile.TemporaryDirectory(prefix="bench-snn-") as work:
        peer = SuperNNovaPeer(work_dir=work, venv_dir=venv, device=str(scorer.device))
        peer.model_file = model_file
        try:
            probs, snn_s = peer.predict_sets({"curves": curves})["curves"]
        except SuperNNovaError as err:
            return {"measured": False, "note": f"not measured: SuperNNova failed: {str(err).splitlines()[0]}"}
    best_s = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        scorer.score(curves)
        best_s = min(best_s, time.perf_counter() - t0)
    return {"measured": True, "model_file": model_file, "curves": len(curves),
            "supernnova_lc_per_s": round(len(curves) / snn_s, 1),
            "alertformer_lc_per_s": round(len(curves) / best_s, 1),
            "alertformer_over_supernnova": round(snn_s / best_s, 1),
            "note": "both include their input formatting (SuperNNova: its on-the-fly classify_lcs, pandas; "
                    "alertformer: encode), neither its imports; all curves in one call each (alertformer: "
                    "Scorer.score with its forward chunks)"}
