"""Produce alert packets into a topic at a chosen rate: files, directories, the Rubin sample Parquet.

Packets are read into memory first (keys extracted from the records), so the
producing phase measures the broker and not the reading. A *visit* mode emits
LSST-like bursts: ``visit_size`` alerts as fast as possible every ``visit_interval_s``.
"""
import io
import json
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import cycle, islice
from pathlib import Path

import fastavro
from confluent_kafka import Producer
from tqdm import tqdm

from stream.decode import decode_auto, decode_elasticc, encode_rubin, rubin_records_from_parquet
from stream.config import load_config
from stream.errors import AlertformerError, BadPacket
from stream.kafka_io import check_readable, make_producer

log = logging.getLogger(__name__)
FLUSH_TIMEOUT_S = 60.0  # wait for outstanding deliveries at the end
WIRE_MAGIC = b"\x00"  # first byte of the Confluent wire format (Rubin)
QUEUE_FULL_BACKOFF_S = 0.05  # librdkafka's local queue is full: serve callbacks, then retry


class ReplayError(AlertformerError):
    """A source that cannot be replayed (missing file, unknown kind); the message names it."""


@dataclass(frozen=True)
class Packet:
    """One message to produce: Kafka key (object id as UTF-8, or None) and value (alert bytes)."""

    key: bytes | None
    value: bytes


def _keyed(value: bytes, source: Path) -> "Packet":
    """A packet keyed by the object id its decoder reports (the stream's own notion of the object)."""
    try:
        return Packet(decode_auto(value).object_id.encode(), value)
    except BadPacket as err:
        log.warning("replay: a packet of %s does not decode (%s); sending it without a key", source, err)
        return Packet(None, value)


def packet_from_file(path: Path) -> Packet:
    """A file of one alert packet: the Confluent wire format (sent even if it does not decode, as a
    malformed alert for the stream to dead-letter) or ELAsTiCC's schemaless Avro.

    Raises
    ------
    ReplayError
        For any other file (text, CSV, an unknown format): it is not an alert packet.
    """
    value = path.read_bytes()
    if value[:1] == WIRE_MAGIC:
        return _keyed(value, path)
    try:
        return Packet(decode_elasticc(value).object_id.encode(), value)
    except BadPacket:
        raise ReplayError(f"{path}: not an alert packet (starts with {value[:4]!r}: neither the Confluent wire "
                          f"format b'\\x00', an Avro container file b'Obj\\x01', Parquet of Rubin alerts, nor an "
                          "ELAsTiCC alert)") from None


def packets_from_container(path: Path) -> list[Packet]:
    """An Avro object container file: as it is if it holds one record (ZTF style), else one
    single-record container per record with the same writer schema."""
    data = path.read_bytes()
    try:
        reader = fastavro.reader(io.BytesIO(data))
        records = list(reader)
    except (ValueError, EOFError, TypeError) as err:
        raise ReplayError(f"{path}: not a readable Avro container file ({err})") from None
    if len(records) == 1:
        return [_keyed(data, path)]
    packets = []
    for record in records:
        buf = io.BytesIO()
        fastavro.writer(buf, reader.writer_schema, [record], codec=reader.codec)
        packets.append(_keyed(buf.getvalue(), path))
    return packets


def packets_from_rubin_parquet(path: Path, schema_version: str | None = None) -> list[Packet]:
    """Rubin alerts stored as Parquet rows, re-encoded in the Confluent wire format."""
    records, version = rubin_records_from_parquet(path, schema_version)
    return [_keyed(encode_rubin(r, version), path) for r in records]


def load_packets(sources: Sequence[str | Path], rubin_schema_version: str | None = None) -> list[Packet]:
    """Read every source into packets, in the order given; directories are walked in name order.

    Raises `ReplayError` naming a missing source or a file that is not an alert packet.
    """
    packets: list[Packet] = []
    for source in map(Path, sources):
        if not source.exists():
            raise ReplayError(f"{source}: no such file or directory")
        files = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else [source]
        for path in files:
            if path.suffix == ".parquet":
                packets += packets_from_rubin_parquet(path, rubin_schema_version)
            elif path.read_bytes()[:4] == b"Obj\x01":
                packets += packets_from_container(path)
            else:
                packets.append(packet_from_file(path))
    return packets


def schedule_s(n: int, rate_per_s: float, visit_size: int, visit_interval_s: float) -> Iterator[float]:
    """Send time of each message, in seconds from the start.

    ``rate_per_s`` = 0 means as fast as possible; a positive `visit_size` sends
    bursts of that many messages as fast as possible every `visit_interval_s`.

    >>> list(schedule_s(5, 0, 2, 30.0))
    [0.0, 0.0, 30.0, 30.0, 60.0]
    >>> list(schedule_s(3, 2.0, 0, 0))
    [0.0, 0.5, 1.0]
    """
    for i in range(n):
        if visit_size:
            yield (i // visit_size) * visit_interval_s
        elif rate_per_s:
            yield i / rate_per_s
        else:
            yield 0.0


def replay(producer: Producer, topic: str, packets: Sequence[Packet], *, count: int | None = None,
           rate_per_s: float = 0.0, visit_size: int = 0, visit_interval_s: float = 30.0,
           progress: bool = True) -> dict:
    """Produce `count` messages (default: each packet once; more cycles through them) to `topic`.

    Returns a report: messages sent and failed, elapsed seconds and achieved rate.
    Messages are keyed by object id so that an object's alerts stay in one partition, in order.
    """
    if not packets:
        raise ReplayError("nothing to replay: the sources hold no packets")
    count = len(packets) if count is None else count
    failures: list[str] = []

    def on_delivery(err, _msg):
        if err is not None:
            failures.append(str(err))

    start = time.monotonic()
    bar = tqdm(total=count, unit="alert", disable=not progress, desc=f"replay → {topic}")
    for packet, due_s in zip(islice(cycle(packets), count), schedule_s(count, rate_per_s, visit_size, visit_interval_s)):
        wait_s = start + due_s - time.monotonic()
        if wait_s > 0:
            producer.poll(0)
            time.sleep(wait_s)
        while True:
            try:
                producer.produce(topic, packet.value, packet.key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(QUEUE_FULL_BACKOFF_S)
        producer.poll(0)
        bar.update()
    remaining = producer.flush(FLUSH_TIMEOUT_S)
    bar.close()
    elapsed_s = time.monotonic() - start
    return {
        "topic": topic,
        "sent": count - len(failures) - remaining,
        "failed": len(failures) + remaining,
        "first_error": failures[0] if failures else None,
        "elapsed_s": round(elapsed_s, 3),
        "rate_per_s": round(count / elapsed_s, 1) if elapsed_s > 0 else None,
    }


def cmd_replay(args) -> int:
    """``alertformer replay``: produce the packets of `args.sources`, print the JSON report; 1 if any failed."""
    config = load_config(args.config)
    packets = load_packets(args.sources, rubin_schema_version=args.rubin_schema_version)
    topic = args.topic or config.input_subscription()[0]  # into the input cluster: the alert topics are there
    kafka = config.input_kafka().as_kafka()
    role, _ = config.roles()
    check_readable(kafka, [("--topic" if args.topic else config.input_topics_field(), topic)], role,
                   "input.kafka" if config.two_clusters else "kafka")
    report = replay(make_producer(kafka), topic, packets, count=args.count, rate_per_s=args.rate,
                    visit_size=args.visit_size, visit_interval_s=args.visit_interval_s, progress=not args.quiet)
    print(json.dumps(report))
    return 0 if report["failed"] == 0 else 1
