"""The bench's alert packets: simulated Rubin alerts as real ones are filled, and real ZTF packets with new ids.

Rubin (`rubin_pool`): alerts of the project's simulator (`training.sim_alerts`)
with at least `MIN_PRV_SOURCES` previous diaSources (12 months of history, so
also ~30-140 previous forced sources). The simulator leaves every nullable field
null; real LSSTCam diaSources have ~85 % of their ~100 fields set (the sample in
``data/rubin``), and null fields are cheaper to decode and to ship, so
each packet is decoded, every nullable field of its diaSources, forced sources
and diaObject is given a value of its type (`bench.decode.filled_value`;
solar-system records stay null, as most alerts have none), and three synthetic
cutouts of the real sample's size are added (`synthetic_cutout`).

ZTF (`ztf_pool`): the two real packets of ``data/ztf/alerts``, cycled,
each copy rewritten by fastavro (same writer schema and codec) with its own
``candid`` and ``objectId``, so every message is a distinct alert of a distinct
object. Their photometry (28 and 11 previous candidates) and real cutouts stay.

A pool holds a few hundred distinct packets; the bench cycles through it, so an
object recurs as it would night after night, and the Redis history grows.
"""
import io
import string
from dataclasses import dataclass, field
from pathlib import Path

import fastavro
import numpy as np

from models.paths import data_dir

from bench.decode import filled_value
from stream.decode import encode_rubin, rubin_schema
from stream.decode._avro import read_record, WIRE_HEADER

MIN_PRV_SOURCES = 30  # previous diaSources of every bench Rubin alert
CUTOUT_BYTES = 34_560  # each cutout of the real LSSTCam sample: 12 FITS blocks (a 30 x 30 float32 image + headers)
FITS_BLOCK_BYTES = 2880
CUTOUT_SIDE = 30  # pixels
MIN_SIMULATED_OBJECTS = 200  # ~35 % of simulated objects reach 30 previous detections
SOLAR_SYSTEM_FIELDS = ("ssSource", "ssObject", "mpc_orbits", "MPCORB")
KEEP_SIMULATED = {"ssObjectId"}  # null: the alert is not of a solar-system object
ZTF_FIRST_CANDID = 3_000_000_000_000_000_000  # above every real candid (they count from 2017 in ~1e18)


@dataclass(frozen=True)
class Packet:
    key: bytes  # object id, UTF-8
    value: bytes


@dataclass(frozen=True)
class Pool:
    """Distinct packets of one survey, cycled by the bench; `description` goes into the report."""

    survey: str
    packets: list[Packet]
    description: dict = field(default_factory=dict)

    def cycle(self, start: int, count: int) -> list[Packet]:
        n = len(self.packets)
        return [self.packets[(start + i) % n] for i in range(count)]


def _fits_cards(rng: np.random.Generator, cards: list[tuple[str, str]], n_random: int, blocks: int) -> bytes:
    """A FITS header: `cards` as given, `n_random` keyword cards with random values, END, padded to `blocks`."""
    lines = [f"{k:<8}= {v:>20}" for k, v in cards]
    values = rng.normal(0.0, 1e3, n_random)
    words = rng.integers(ord("a"), ord("z") + 1, (n_random, 24), dtype=np.uint8).view("S24").ravel()
    lines += [f"{'HIERARCH':<8} LSST K{j:03d} = {values[j]:.12E} / {words[j].decode()}" for j in range(n_random)]
    lines.append("END")
    text = "".join(f"{line:<80}"[:80] for line in lines).encode("ascii")
    size = blocks * FITS_BLOCK_BYTES
    assert len(text) <= size, (len(text), size)
    return text.ljust(size, b" ")


def synthetic_cutout(rng: np.random.Generator) -> bytes:
    """`CUTOUT_BYTES` of FITS like a real LSSTCam cutout: a primary header, then image, mask and variance HDUs.

    30 x 30 pixels each (float32 noise, int32 mostly-zero mask, float32
    variance), headers of keyword cards with random values and comments. Like
    the real cutouts it compresses to under half (zlib level 1: 0.42; the
    sample's: 0.45), so Kafka's lz4 gains about what it would on real data.

    >>> len(synthetic_cutout(np.random.default_rng(0))) == CUTOUT_BYTES
    True
    """
    n_pix = CUTOUT_SIDE * CUTOUT_SIDE
    data_blocks = -(-4 * n_pix // FITS_BLOCK_BYTES)  # 2

    def data(array: np.ndarray) -> bytes:
        return array.tobytes().ljust(data_blocks * FITS_BLOCK_BYTES, b"\x00")

    image_cards = [("XTENSION", "'IMAGE   '"), ("BITPIX", "-32"), ("NAXIS", "2"), ("NAXIS1", str(CUTOUT_SIDE)),
                   ("NAXIS2", str(CUTOUT_SIDE)), ("PCOUNT", "0"), ("GCOUNT", "1")]
    mask = np.zeros(n_pix, dtype=">i4")
    mask[rng.integers(0, n_pix, 20)] = rng.integers(1, 2**12, 20)
    parts = [
        _fits_cards(rng, [("SIMPLE", "T"), ("BITPIX", "8"), ("NAXIS", "0"), ("EXTEND", "T")], 100, 3),
        _fits_cards(rng, image_cards, 28, 1), data(rng.normal(0.0, 50.0, n_pix).astype(">f4")),
        _fits_cards(rng, [*image_cards[:1], ("BITPIX", "32"), *image_cards[2:]], 28, 1), data(mask),
        _fits_cards(rng, image_cards, 28, 1), data((2500.0 + rng.normal(0.0, 30.0, n_pix)).astype(">f4")),
    ]
    cutout = b"".join(parts)
    assert len(cutout) == CUTOUT_BYTES, len(cutout)
    return cutout


def _previous_detections(sims) -> tuple[np.ndarray, np.ndarray]:
    """Per point of `sims`: earlier detections and earlier points within the alert history window."""
    from training.sim_alerts import HISTORY_DAYS

    n_prv = np.zeros(len(sims.mjd_tai), dtype=np.int64)
    n_earlier = np.zeros_like(n_prv)
    for i in range(len(sims)):
        s, e = sims.offsets[i], sims.offsets[i + 1]
        mjd, det = sims.mjd_tai[s:e], sims.is_detection[s:e]
        cum = np.concatenate([[0], np.cumsum(det)])
        first = np.searchsorted(mjd, mjd - HISTORY_DAYS, side="left")
        idx = np.arange(e - s)
        n_prv[s:e] = cum[idx] - cum[first]
        n_earlier[s:e] = idx - first
    return n_prv, n_earlier


class _Filler:
    """Values for the nullable fields a simulated record leaves null, one set per alert."""

    def __init__(self, version: str):
        self.schema = rubin_schema(version)
        self.named = self.schema["__named_schemas"]
        self.prefix = self.schema["name"].rsplit(".", 1)[0]

    def values(self, kind: str, rng: np.random.Generator) -> dict:
        values = filled_value(self.named[f"{self.prefix}.{kind}"], self.named, rng)
        return {k: v for k, v in values.items() if k not in KEEP_SIMULATED}

    def fill(self, record: dict, rng: np.random.Generator) -> dict:
        per_kind = {k: self.values(k, rng) for k in ("diaSource", "diaForcedSource", "diaObject")}

        def filled(point: dict | None, kind: str) -> dict | None:
            if point is None:
                return None
            return per_kind[kind] | {k: v for k, v in point.items() if v is not None}

        out = dict(record)
        out["diaSource"] = filled(record["diaSource"], "diaSource")
        out["prvDiaSources"] = [filled(p, "diaSource") for p in record.get("prvDiaSources") or []]
        out["prvDiaForcedSources"] = [filled(p, "diaForcedSource") for p in record.get("prvDiaForcedSources") or []]
        if "diaObject" in out:
            out["diaObject"] = filled(record["diaObject"], "diaObject")
        for name in SOLAR_SYSTEM_FIELDS:
            if name in out:
                out[name] = None
        return out


def rubin_pool(n: int, rng: np.random.Generator, version: str | None = None) -> Pool:
    """`n` distinct Rubin alerts (wire format) with >= `MIN_PRV_SOURCES` previous diaSources, filled fields and cutouts.

    Parameters
    ----------
    n : int
        Packets wanted.
    rng : np.random.Generator
        Drives the simulation, the choice of alerts, field values and cutouts.
    version : str, optional
        Rubin schema version; default the simulator's (the latest).

    Returns
    -------
    Pool
        In alert-time order; keys are diaObjectIds.
    """
    from training.sim_alerts import FIRST_OBJECT_ID, RubinAlertStream
    from training.simulate import simulate

    sims = simulate(max(MIN_SIMULATED_OBJECTS, n), rng, first_object_id=FIRST_OBJECT_ID)
    stream = RubinAlertStream(sims, version)
    n_prv, n_earlier = _previous_detections(sims)
    eligible = stream.points[n_prv[stream.points] >= MIN_PRV_SOURCES]
    if len(eligible) < n:
        raise RuntimeError(f"only {len(eligible)} simulated alerts have {MIN_PRV_SOURCES} previous detections; "
                           f"{n} wanted")
    # RubinAlertStream encodes the alerts of its `points` (flat trigger indices, in time order).
    stream.points = eligible[np.sort(rng.choice(len(eligible), size=n, replace=False))]
    filler = _Filler(stream.version)
    packets = []
    for alert in stream:
        record = filler.fill(read_record(alert.value, filler.schema, offset=WIRE_HEADER.size), rng)
        record.update(cutoutDifference=synthetic_cutout(rng), cutoutScience=synthetic_cutout(rng),
                      cutoutTemplate=synthetic_cutout(rng))
        packets.append(Packet(alert.key, encode_rubin(record, stream.version)))
    sizes = np.array([len(p.value) for p in packets])
    chosen = stream.points
    return Pool("rubin", packets, {
        "source": "training.sim_alerts (simulated LSST), nullable fields filled, synthetic cutouts",
        "schema": f"lsst.v{stream.version.replace('.', '_')}.alert", "distinct_packets": n,
        "distinct_objects": len({p.key for p in packets}),
        "mean_packet_bytes": round(float(sizes.mean())), "cutout_bytes": 3 * CUTOUT_BYTES,
        "prv_dia_sources": _spread(n_prv[chosen]), "prv_dia_forced_sources": _spread(n_earlier[chosen]),
    })


def _spread(values: np.ndarray) -> dict:
    return {"min": int(values.min()), "median": float(np.median(values)), "max": int(values.max())}


def ztf_object_id(i: int) -> str:
    """A ZTF-style object id (``ZTF`` + 2 digits + 7 letters), distinct for each `i` < 26**7.

    >>> ztf_object_id(0), ztf_object_id(27)
    ('ZTF26aaaaaaa', 'ZTF26aaaaabb')
    """
    letters = []
    for _ in range(7):
        i, r = divmod(i, 26)
        letters.append(string.ascii_lowercase[r])
    return "ZTF26" + "".join(reversed(letters))


def ztf_pool(n: int, alert_dir: Path | None = None) -> Pool:
    """`n` ZTF packets: the real packets of `alert_dir`, cycled, each with a new ``candid`` and ``objectId``.

    Raises
    ------
    FileNotFoundError
        When `alert_dir` holds no ``*.avro`` packet.
    """
    bases = []
    alert_dir = Path(alert_dir) if alert_dir is not None else data_dir() / "ztf" / "alerts"
    for path in sorted(alert_dir.glob("*.avro")):
        with open(path, "rb") as f:
            reader = fastavro.reader(f)
            schema, codec, records = reader.writer_schema, reader.codec, list(reader)
        bases.append((fastavro.parse_schema(schema), codec, records[0]))
    if not bases:
        raise FileNotFoundError(f"no ZTF packets (*.avro) in {alert_dir}")
    packets = []
    for i in range(n):
        schema, codec, base = bases[i % len(bases)]
        candid = ZTF_FIRST_CANDID + i
        record = base | {"candid": candid, "objectId": ztf_object_id(i),
                         "candidate": base["candidate"] | {"candid": candid}}
        buf = io.BytesIO()
        fastavro.writer(buf, schema, [record], codec=codec)
        packets.append(Packet(record["objectId"].encode(), buf.getvalue()))
    sizes = np.array([len(p.value) for p in packets])
    n_prv = np.array([len(b[2].get("prv_candidates") or []) for b in bases])
    return Pool("ztf", packets, {
        "source": f"{len(bases)} real packets of {alert_dir}, cycled, candid/objectId rewritten (fastavro)",
        "schema": f"ztf {bases[0][2].get('schemavsn')}", "distinct_packets": n, "distinct_objects": n,
        "mean_packet_bytes": round(float(sizes.mean())), "prv_candidates": _spread(n_prv),
    })
