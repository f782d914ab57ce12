"""Real labelled ZTF alert packets (``data/labeled/ztf_packets``) as the stream would carry them.

Each row of ``alerts.parquet`` becomes the Avro container file ZTF would have sent
(`packet_bytes`), so the evaluation and training read it through the service's own
decoder. Rows from Fink's aggregated and flat tables lack fields that the ZTF schema
requires; they are filled with the schema's defaults (`stream.decode._avro.fill_defaults`),
and the previous detections of aggregated rows, which lost their ``candid``, get the
``candid`` of the same exposure (``jd``, ``fid``) from the object's other alerts, or
an id derived from the exposure when no alert of the object has it.

Labels (``objects.csv``) are grouped for the SN-vs-rest question (`SN_LABELS`,
`NON_SN_LABELS`); ``unknown``, ``other`` and ``galaxy-nucleus`` are in neither group (the
label says nothing about the transient, see the data README). Objects are split
60/20/20 within each label by a hash of the object id (`packet_split`): the test part is
fixed by the ids alone, so it never moves, and no training or tuning reads it.
"""
import csv
import hashlib
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import fastavro
import numpy as np

from models import paths
from models.encode import MAX_VISITS
from stream.decode._avro import coerced, fill_defaults

SN_LABELS = ("SN Ia", "SN II", "SN Ib/c", "SLSN", "SN (untyped)")
NON_SN_LABELS = ("QSO/AGN", "variable star", "CV", "YSO", "star", "asteroid")
# Labels that are model classes (ELAsTiCC2 ids); the others (stars, asteroids, unknown, ...) have none.
LABEL_CLASS_IDS = {"SN Ia": 2222, "SN Ib/c": 2223, "SN II": 2224, "SLSN": 2242, "TDE": 2243, "QSO/AGN": 2332,
                   "CV": 2234, "asteroid": 9000}
TOPIC = "ztf"

ZTF_SCHEMA_FILES = ("candidate", "prv_candidate", "fp_hist", "cutout", "alert")  # dependency order
JD_MINUS_MJD = 2400000.5
SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class LabeledPackets:
    """Real ZTF alerts in time order, with their objects' labels.

    Attributes
    ----------
    object_id : list of str, candid : (N,) int64, jd : (N,) float64 (exposure start, JD UTC)
    payload : list of bytes
        Avro object container files, one alert each, as the ZTF stream sends them.
    label : list of str
        The object's label (``objects.csv``), e.g. ``"SN Ia"``, ``"QSO/AGN"``, ``"asteroid"``.
    """

    object_id: list
    candid: np.ndarray
    jd: np.ndarray
    payload: list
    label: list

    def __len__(self) -> int:
        return len(self.object_id)

    def subset(self, keep: np.ndarray) -> "LabeledPackets":
        idx = np.flatnonzero(keep)
        return LabeledPackets([self.object_id[i] for i in idx], self.candid[idx], self.jd[idx],
                              [self.payload[i] for i in idx], [self.label[i] for i in idx])


def ztf_schema(data_dir: Path | None = None) -> dict:
    """The ZTF alert schema of ``data/ztf/schema`` (ztf-avro-alert), parsed."""
    folder = Path(data_dir or paths.data_dir()) / "ztf" / "schema"
    return fastavro.schema.load_schema_ordered([str(folder / f"{name}.avsc") for name in ZTF_SCHEMA_FILES])


def _exposure_id(jd: float, fid: int) -> int:
    """A positive id for a detection whose candid was lost: exposure start in whole seconds, and the filter."""
    return int(round((jd - JD_MINUS_MJD) * SECONDS_PER_DAY)) * 10 + int(fid)


def packet_bytes(row: dict, schema: dict, candid_of_exposure: dict) -> bytes:
    """The Avro container file of one ``alerts.parquet`` row (see the module docstring)."""
    previous = []
    for point in row["prv_candidates"] or []:
        point = dict(point)
        if point.get("magpsf") is not None and point.get("candid") is None:
            key = (point["jd"], point["fid"])
            point["candid"] = candid_of_exposure.get(key) or _exposure_id(*key)
        previous.append(point)
    record = {"schemavsn": row["schemavsn"] or "3.3", "publisher": row["publisher"] or "Fink",
              "objectId": row["objectId"], "candid": row["candid"], "candidate": row["candidate"],
              "prv_candidates": previous if row["prv_candidates"] is not None else None}
    buffer = io.BytesIO()
    fastavro.writer(buffer, schema, [fill_defaults(coerced(record, schema), schema)])
    return buffer.getvalue()


@lru_cache(maxsize=2)
def _load(folder: str) -> LabeledPackets:
    import pyarrow.parquet as pq  # training only

    folder = Path(folder)
    labels = {row["objectId"]: row["label"] for row in csv.DictReader(open(folder / "objects.csv", newline=""))}
    rows = pq.read_table(folder / "alerts.parquet").to_pylist()
    rows.sort(key=lambda r: (r["candidate"]["jd"], r["candid"]))
    candid_of_exposure: dict[str, dict] = {}  # per object: (jd, fid) -> candid of its alerts
    for row in rows:
        candidate = row["candidate"]
        candid_of_exposure.setdefault(row["objectId"], {})[(candidate["jd"], candidate["fid"])] = row["candid"]
    schema = ztf_schema(folder.parents[1])
    payloads = [packet_bytes(row, schema, candid_of_exposure[row["objectId"]]) for row in rows]
    return LabeledPackets([r["objectId"] for r in rows], np.array([r["candid"] for r in rows], dtype=np.int64),
                          np.array([r["candidate"]["jd"] for r in rows], dtype=np.float64), payloads,
                          [labels[r["objectId"]] for r in rows])


def packet_split(object_ids, labels) -> dict[str, set]:
    """Object ids of each split ("train", "val", "test"): per label, ranked by SHA-256 of the id.

    Within a label, the objects sorted by the hash of their id take turns: ranks 0, 5, 10, ...
    go to test, 1, 6, 11, ... to val, the rest to train; so each label with at least one object
    has one in test, and the split of an object never depends on the others.
    """
    by_label: dict[str, set] = {}
    for object_id, label in zip(object_ids, labels):
        by_label.setdefault(label, set()).add(object_id)
    parts = {"train": set(), "val": set(), "test": set()}
    for members in by_label.values():
        ranked = sorted(members, key=lambda o: hashlib.sha256(o.encode()).hexdigest())
        for rank, object_id in enumerate(ranked):
            parts["test" if rank % 5 == 0 else "val" if rank % 5 == 1 else "train"].add(object_id)
    return parts


@dataclass(frozen=True)
class PacketWindows:
    """What the scoring service gives the model for each packet: window, context and the object's label."""

    curves: list  # of LightCurve
    contexts: np.ndarray  # (N, N_CONTEXT)
    labels: list  # of str
    object_ids: list  # of str


def packet_messages(packets: LabeledPackets) -> list:
    """`packets` as the messages of one topic (`TOPIC`, format ztf) keyed by object id, offsets in order."""
    from stream.offline import RecordedMessage

    return [RecordedMessage(TOPIC, payload, object_id.encode(), 0, offset)
            for offset, (payload, object_id) in enumerate(zip(packets.payload, packets.object_id))]


def packet_windows(packets: LabeledPackets, batch_size: int = 256, max_visits: int = MAX_VISITS) -> PacketWindows:
    """The service's windows and contexts of `packets`, in time order (`stream.offline.OfflineScoring.windows`),
    with the stored curves as long as a scorer of window `max_visits` keeps them. The contexts are every field
    the packets say: no model's table hides a ZTF field (`models.model.ModelConfig.context_fields_by_survey`)."""
    from stream.offline import OfflineScoring
    from stream.service import HISTORY_POINTS_FACTOR

    label_of = dict(zip(packets.object_id, packets.label))
    offline = OfflineScoring(None, {TOPIC: "ztf"}, (), HISTORY_POINTS_FACTOR * max_visits, {})
    curves, contexts, object_ids = [], [], []
    for good, _, windows in offline.windows(packet_messages(packets), batch_size):
        curves += windows.curves
        contexts.append(windows.model_contexts)
        object_ids += good.alerts.object_id.tolist()
    return PacketWindows(curves, np.concatenate(contexts), [label_of[o] for o in object_ids], object_ids)


def ztf_packets(split: str = "all", data_dir: Path | None = None) -> LabeledPackets:
    """The labelled real ZTF packets of one split ("train", "val", "test" or "all"), in time order."""
    packets = _load(str((Path(data_dir or paths.data_dir()) / "labeled" / "ztf_packets").resolve()))
    if split == "all":
        return packets
    parts = packet_split(packets.object_id, packets.label)
    if split not in parts:
        raise ValueError(f"split={split!r}: expected one of all, {', '.join(parts)}")
    return packets.subset(np.array([o in parts[split] for o in packets.object_id]))
