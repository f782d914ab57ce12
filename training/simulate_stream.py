"""``alertformer simulate``: a simulated Rubin alert stream, as packet files, into a topic, or both.

`cmd_simulate` runs it (its options: `alertformer.cli.simulate`): simulate objects
(`training.simulate`), encode their alerts in time order (`training.sim_alerts`),
write one file per packet (``DIR/000001.avro-wire``, ...; the Confluent wire
format, which ``alertformer replay DIR`` sends as raw packets in name order) and
the labels CSV, and optionally produce the packets to a topic with
`stream.replay.replay`. Heavy imports wait until the command runs.
"""
import csv
import json
import logging
import time
from pathlib import Path

from stream.errors import ConfigError

log = logging.getLogger(__name__)
PACKET_SUFFIX = ".avro-wire"
MIN_NAME_DIGITS = 6  # 000001.avro-wire: names sort in alert order
# Each seed simulates its objects in its own block of ids, so the streams of two seeds can go to
# one topic and one Redis without their objects merging: ids of seed s are
# FIRST_OBJECT_ID + s * MAX_OBJECTS_PER_SEED + 0..n-1 (training.sim_alerts.FIRST_OBJECT_ID = 10**12).
MAX_OBJECTS_PER_SEED = 10**7
# Source ids (object id * POINT_ID_STRIDE + point) must stay below 2**62 (training.sim_alerts), which
# leaves room for this many blocks; seeds that are equal modulo it share a block.
ID_BLOCKS = 46_000_000


def first_object_id(seed: int) -> int:
    """The first simulated object id of `seed` (>= 0): the start of the seed's block of ids.

    >>> first_object_id(0), first_object_id(1), first_object_id(ID_BLOCKS + 1)
    (1000000000000, 1000010000000, 1000010000000)
    """
    from training.sim_alerts import FIRST_OBJECT_ID

    return FIRST_OBJECT_ID + seed % ID_BLOCKS * MAX_OBJECTS_PER_SEED


def cmd_simulate(args) -> int:
    """Run ``alertformer simulate`` with parsed `args`; returns the exit status (1 if producing failed).

    Raises
    ------
    ConfigError
        Neither --out nor --topic, a non-empty --out, a labels path inside --out,
        --n < 1, --days <= 0 or an unknown schema version.
    """
    import numpy as np
    from tqdm import tqdm

    from stream.decode import rubin_schema
    from training.sim_alerts import RubinAlertStream
    from training.simulate import CLASS_NAMES, REALISTIC_MIX, simulate

    labels_path = _check_paths(args)
    if not 1 <= args.n <= MAX_OBJECTS_PER_SEED:
        raise ConfigError(f"--n {args.n}: need 1 to {MAX_OBJECTS_PER_SEED:,} objects (each seed's block of ids)")
    if args.seed < 0:
        raise ConfigError(f"--seed {args.seed}: need a seed >= 0")
    if args.days is not None and args.days <= 0:
        raise ConfigError(f"--days {args.days}: need a positive span")
    if args.schema_version is not None:
        rubin_schema(args.schema_version)  # fail before simulating
    log.info("simulate n=%d seed=%d survey=%s mix=%s out=%s topic=%s",
             args.n, args.seed, args.survey, args.mix, args.out, args.topic)

    start_s = time.monotonic()
    sims = simulate(args.n, np.random.default_rng(args.seed), args.survey,
                    class_weights=REALISTIC_MIX if args.mix == "realistic" else None,
                    first_object_id=first_object_id(args.seed))
    start_mjd = args.start_mjd
    if start_mjd is None and args.days is not None:
        start_mjd = float(sims.mjd_tai[sims.is_detection].min())
    end_mjd = None if args.days is None else start_mjd + args.days
    stream = RubinAlertStream(sims, args.schema_version, start_mjd, end_mjd)
    simulated_s = time.monotonic()

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    digits = max(MIN_NAME_DIGITS, len(str(len(stream))))
    to_produce, labels = [], {}
    for k, alert in enumerate(tqdm(stream, unit="alert", disable=args.quiet, desc="simulate"), start=1):
        if args.out is not None:
            (args.out / f"{k:0{digits}d}{PACKET_SUFFIX}").write_bytes(alert.value)
        if args.topic is not None:
            to_produce.append(alert)
        labels[alert.object_id] = alert.class_id
    encode_s = time.monotonic() - simulated_s  # encoding and writing the packets

    if labels_path is not None:
        with open(labels_path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["object_id", "class_id", "class_name"])
            writer.writerows((oid, cid, CLASS_NAMES[cid]) for oid, cid in sorted(labels.items()))
    summary = {
        "objects": len(sims), "alerted_objects": len(labels), "alerts": len(stream), "seed": args.seed,
        "survey": args.survey, "mix": args.mix, "schema_version": stream.version,
        "start_mjd_tai": start_mjd, "end_mjd_tai": end_mjd,
        "out": None if args.out is None else str(args.out),
        "labels": None if labels_path is None else str(labels_path),
        "simulate_s": round(simulated_s - start_s, 3), "encode_s": round(encode_s, 3),
        "alerts_per_s": round(len(stream) / encode_s, 1) if encode_s > 0 else None,
    }
    status = 0
    if args.topic is not None:
        summary["replay"] = _produce(args, to_produce)
        status = 0 if summary["replay"]["failed"] == 0 else 1
    print(json.dumps(summary))
    return status


def _check_paths(args) -> Path | None:
    """Validate --out/--labels/--topic and return the labels path (None: no labels file)."""
    if args.out is None and args.topic is None:
        raise ConfigError("simulate: give --out DIR, --topic TOPIC or both")
    out = args.out
    if out is not None and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out}: exists and is not an empty directory; replay would mix in its files")
    labels = args.labels
    if labels is None and out is not None:
        labels = out.parent / f"{out.name}_labels.csv"
    if labels is not None and out is not None and labels.resolve().is_relative_to(out.resolve()):
        raise ConfigError(f"--labels {labels}: inside --out, where replay would send it as a packet")
    return labels


def _produce(args, alerts: list) -> dict:
    """Produce `alerts` (SimAlert, in order) to ``args.topic``; returns `stream.replay.replay`'s report."""
    from stream.config import load_config
    from stream.kafka_io import make_producer
    from stream.replay import Packet, replay

    config = load_config(args.config)
    packets = [Packet(alert.key, alert.value) for alert in alerts]
    return replay(make_producer(config.kafka), args.topic, packets, rate_per_s=args.rate, progress=not args.quiet)
