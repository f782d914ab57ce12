"""Benchmark: fastavro (`decode_rubin`, `decode_ztf`) against the batch decoders, side by side, one core.

    alertformer bench-decode [--seconds 2] [--batch-size 512] [--prv 40] [--forced 40]

prints one JSON report with alerts/s of both decoders and their ratio on

(a) simulated ``lsst.v11_1`` alerts with ``--prv`` previous diaSources and
    ``--forced`` previous forced sources, every schema field holding a value
    (real alerts fill most of the ~100 fields of a diaSource; nulls would
    flatter neither decoder much, but make the packet smaller), no cutouts;
(b) the 25 real LSSTCam alerts of ``data/rubin`` (schema 10.0, with
    their cutouts, 1-23 points each), re-encoded, cycled to fill a batch;
(c) the 2 real ZTF packets of ``data/ztf/alerts`` (schema 3.2 and 3.3, 12 and
    29 points), as ZTF sent them (with cutouts) and without their cutouts,
    cycled; the reference is decode_ztf (fastavro, then astropy for the times).

The fast decoder is timed twice: ``columns`` (the `RubinBatch`) and
``alerts`` (plus one `DecodedAlert` per message, what the stream loop uses).
Both decoders decode the same payloads in the same process, in alternating
rounds (each reports its best round: the machine may be shared); the first
batch is checked to agree with decode_rubin before timing. ``jit_s`` is the first
kernel call of this process (compile, or load from numba's cache).
"""
import io
import json
import os
import time

import fastavro
import numpy as np

from models.paths import data_dir

from stream.decode import decode_rubin, decode_ztf, encode_rubin, rubin_records_from_parquet, rubin_schema

REAL_SAMPLE = data_dir() / "rubin" / "lsstcam_alerts_v10_sample.parquet"
ZTF_ALERTS = data_dir() / "ztf" / "alerts"
SIM_VERSION = "11.1"
N_SIM_ALERTS = 256  # distinct packets, cycled
SEED = 20260301


def full_record(version: str, n_prv: int, n_forced: int, rng: np.random.Generator) -> dict:
    """An alert record of schema `version` with every field holding a value, and a plausible light curve.

    Parameters
    ----------
    version : str
        Rubin schema version, e.g. ``"11.1"``.
    n_prv, n_forced : int
        Previous diaSources and previous forced sources.
    rng : np.random.Generator

    Returns
    -------
    dict
        Ready for `encode_rubin` (without ``fill_defaults``): the diaSource is
        the latest detection; forced sources fall on other visits; no cutouts.
    """
    schema = rubin_schema(version)
    named = schema["__named_schemas"]
    prefix = schema["name"].rsplit(".", 1)[0]
    object_id = int(rng.integers(1, 2**62))
    t0 = float(rng.uniform(60800.0, 61100.0))
    n_points = 1 + n_prv + n_forced
    mjd = np.sort(t0 + rng.uniform(0.0, 365.0, n_points))
    visits = rng.choice(2**40, n_points, replace=False) + 1
    ids = rng.choice(2**62, n_points, replace=False) + 1

    def point(kind: str, k: int) -> dict:
        record = filled_value(named[f"{prefix}.{kind}"], named, rng)
        record.update(visit=int(visits[k]), midpointMjdTai=float(mjd[k]), band=str(rng.choice(list("ugrizy"))),
                      psfFlux=float(rng.normal(0.0, 2000.0)), psfFluxErr=float(rng.uniform(50.0, 400.0)),
                      ra=45.0, dec=-30.0, diaObjectId=object_id)
        record[f"{kind}Id"] = int(ids[k])
        return {name: value for name, value in record.items() if name in {f["name"] for f in
                                                                          named[f"{prefix}.{kind}"]["fields"]}}

    order = rng.permutation(n_points - 1)  # all but the last (the trigger) are history
    record = filled_value(schema, named, rng, top=True)
    record.update(
        diaSource=point("diaSource", n_points - 1),
        prvDiaSources=[point("diaSource", int(k)) for k in order[:n_prv]],
        prvDiaForcedSources=[point("diaForcedSource", int(k)) for k in order[n_prv:]],
        cutoutDifference=None, cutoutScience=None, cutoutTemplate=None,
    )
    record["alertId" if "alertId" in record else "diaSourceId"] = record["diaSource"]["diaSourceId"]
    return record


def filled_value(schema, named: dict, rng: np.random.Generator, top: bool = False):
    """A value of `schema` with every field set: random numbers, short strings, True, empty arrays.

    Nullable fields get their first non-null branch; with `top`, the alert's
    solar-system records stay null (most alerts have none).
    """
    if isinstance(schema, str):
        schema = named.get(schema, schema)
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        return filled_value(branches[0], named, rng)
    if isinstance(schema, dict):
        kind = schema["type"]
        if kind == "record":
            return {f["name"]: (None if top and f["name"] in ("ssSource", "mpc_orbits", "MPCORB", "ssObject")
                                else filled_value(f["type"], named, rng)) for f in schema["fields"]}
        if kind == "array":
            return []
        if kind == "long" and schema.get("logicalType", "").startswith("timestamp"):
            return 1_760_000_000_000_000
        return filled_value(kind, named, rng)
    return {"boolean": True, "int": int(rng.integers(0, 2**20)), "long": int(rng.integers(0, 2**40)),
            "float": float(np.float32(rng.normal())), "double": float(rng.normal()), "string": "LSSTCam",
            "bytes": b"\x00" * 16}[schema]


ROUNDS = 5  # timings alternate between the decoders; each reports its best round


def rate(decode, payloads: list[bytes], batch_size: int, seconds: float) -> float:
    """Alerts/s of `decode(batch)` over `payloads` in batches, for at least `seconds`."""
    batches = [payloads[i:i + batch_size] for i in range(0, len(payloads), batch_size)]
    n, started = 0, time.perf_counter()
    while True:
        for batch in batches:
            decode(batch)
            n += len(batch)
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return n / elapsed


def compare(name: str, payloads: list[bytes], decoder, batch_size: int, seconds: float,
            reference=decode_rubin) -> dict:
    """Side-by-side rates of `reference` (per message) and `decoder` on one payload set (checked to agree first)."""
    batch, errors = decoder.decode_batch(payloads)
    assert not errors and not batch.fallback.any(), (errors, batch.fallback)
    for i, payload in enumerate(payloads[:64]):
        expected, got = reference(payload), batch.alert(i)
        assert (expected.alert_id, expected.object_id, expected.ra_deg) == (got.alert_id, got.object_id, got.ra_deg)
        for field in expected.light_curve.FIELDS:
            assert np.array_equal(getattr(expected.light_curve, field), getattr(got.light_curve, field)), field
    contenders = {
        "fastavro": lambda b: [reference(p) for p in b],
        "columns": decoder.decode_batch,
        "alerts": lambda b: decoder.decode_batch(b)[0].alerts(),
    }
    best = dict.fromkeys(contenders, 0.0)
    for _ in range(ROUNDS):  # interleaved, so a busy moment on the machine hits all of them
        for name, decode in contenders.items():
            best[name] = max(best[name], rate(decode, payloads, batch_size, seconds / ROUNDS))
    fastavro_rate, columns_rate, alerts_rate = best["fastavro"], best["columns"], best["alerts"]
    points = np.diff(batch.curves.offsets)
    return {
        "alerts": len(payloads), "mean_payload_bytes": round(float(np.mean([len(p) for p in payloads])), 1),
        "mean_points": round(float(points.mean()), 1),
        "fastavro_alerts_per_s": round(fastavro_rate, 1),
        "fast_columns_alerts_per_s": round(columns_rate, 1),
        "fast_alerts_alerts_per_s": round(alerts_rate, 1),
        "ratio_columns": round(columns_rate / fastavro_rate, 1),
        "ratio_alerts": round(alerts_rate / fastavro_rate, 1),
    }


def cmd_bench_decode(args) -> int:
    """Print `measure`'s report of `args` (``alertformer bench-decode``'s options) as JSON."""
    print(json.dumps(measure(args), indent=2))
    return 0


def measure(args) -> dict:
    """The report of the module docstring."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, for both decoders
    from stream.decode.fast import FastRubinDecoder, FastZtfDecoder  # after pinning: numba's first call compiles here

    decoder = FastRubinDecoder()
    rng = np.random.default_rng(args.seed)
    simulated = [encode_rubin(full_record(SIM_VERSION, args.prv, args.forced, rng), SIM_VERSION)
                 for _ in range(N_SIM_ALERTS)]
    report = {"jit_s": round(decoder.jit_s, 2), "batch_size": args.batch_size,
              "cpu": os.sched_getaffinity(0).__len__() if hasattr(os, "sched_getaffinity") else None,
              f"simulated_v{SIM_VERSION}_prv{args.prv}_forced{args.forced}": compare(
                  "simulated", simulated, decoder, args.batch_size, args.seconds)}
    if REAL_SAMPLE.exists():
        records, version = rubin_records_from_parquet(REAL_SAMPLE)
        real = [encode_rubin(record, version) for record in records]
        real = real * -(-args.batch_size // len(real))  # cycled to fill a batch, as in a stream
        report[f"real_lsstcam_v{version}"] = compare("real", real, decoder, args.batch_size, args.seconds)
    ztf = [path.read_bytes() for path in sorted(ZTF_ALERTS.glob("*.avro"))]
    if ztf:
        for case, payloads in (("real_ztf", ztf), ("real_ztf_no_cutouts", [without_cutouts(p) for p in ztf])):
            payloads = payloads * -(-args.batch_size // len(payloads))
            report[case] = compare(case, payloads, FastZtfDecoder(), args.batch_size, args.seconds, decode_ztf)
    return report


def without_cutouts(packet: bytes) -> bytes:
    """A ZTF container file written again, its cutouts null."""
    reader = fastavro.reader(io.BytesIO(packet))
    records = [{**r, "cutoutScience": None, "cutoutTemplate": None, "cutoutDifference": None} for r in reader]
    buffer = io.BytesIO()
    fastavro.writer(buffer, reader.writer_schema, records)
    return buffer.getvalue()
