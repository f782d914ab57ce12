"""Labels in: parse label messages, join each with its object's light curve, keep snapshots on disk.

A snapshot holds the light curve as it was known at the label's time (points up to
``labeledMs``), in the service's form (the history the scorer keeps: detections, forced
photometry or upper limits), and the alert context of the object's latest scored alert, so
a retrain learns from what the scorer sees, and a retrain from the same snapshots is
reproducible even after the object's history in Redis has moved on or expired.
"""
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.time import Time

from models.context import N_CONTEXT, pad_context
from models.lightcurve import LightCurve
from models import taxonomy
from stream import avro_io
from stream.errors import BadPacket
from training.datasets import LabeledSet

LABEL_SCHEMA = "alertformer.label"


@dataclass(frozen=True)
class Label:
    object_id: str
    class_id: int
    source: str
    labeled_ms: int
    reference: str | None
    origin: str  # "topic/partition/offset" of the label message: dedupes a redelivered message


def parse_label(payload: bytes, origin: str) -> Label:
    """Decode and validate a label message; BadPacket names the bad field (unknown class, bad object id)."""
    name, record = avro_io.decode(payload)
    if name != LABEL_SCHEMA:
        raise BadPacket(f"expected an {LABEL_SCHEMA} record, got {name}")
    class_id = record["classId"]
    if class_id is None:
        if not record["className"]:
            raise BadPacket("label has neither classId nor className")
        try:
            class_id = taxonomy.class_id(record["className"])
        except ValueError:
            raise BadPacket(f"className {record['className']!r} is not a class the model knows "
                            f"({', '.join(taxonomy.CLASS_NAMES)})") from None
    if class_id not in taxonomy.CLASS_IDS:
        raise BadPacket(f"classId {class_id} is not a class the model knows ({', '.join(map(str, taxonomy.CLASS_IDS))})")
    if not record["objectId"]:
        raise BadPacket("objectId is empty")
    return Label(record["objectId"], int(class_id), record["source"], int(record["labeledMs"]),
                 record["reference"], origin)


def ms_to_mjd_tai(ms: np.ndarray) -> np.ndarray:
    """Unix time in ms (UTC) to MJD TAI, one astropy call for the whole array."""
    return Time(np.asarray(ms, dtype=np.float64) / 1e3, format="unix", scale="utc").tai.mjd


def snapshot(curve: LightCurve, until_mjd_tai: float) -> LightCurve:
    keep = curve.mjd_tai <= until_mjd_tai
    return LightCurve(*(getattr(curve, f)[keep] for f in LightCurve.FIELDS))


class SnapshotStore:
    """Append-only label snapshots: one ``.npz`` per accepted batch, written atomically."""

    def __init__(self, directory: str | os.PathLike):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def append(self, labels: list[Label], curves: list[LightCurve], contexts: np.ndarray | None = None) -> Path | None:
        """Write one snapshot file; `contexts` (len(labels), N_CONTEXT) float64, default all unknown (NaN)."""
        if not labels:
            return None
        if contexts is None:
            contexts = np.full((len(labels), N_CONTEXT), np.nan)
        offsets = np.cumsum([0] + [len(c) for c in curves])
        columns = {f: np.concatenate([getattr(c, f) for c in curves]) for f in LightCurve.FIELDS}
        meta = [{"object_id": l.object_id, "class_id": l.class_id, "source": l.source, "labeled_ms": l.labeled_ms,
                 "reference": l.reference, "origin": l.origin} for l in labels]
        number = 1 + max((int(p.stem) for p in self.dir.glob("[0-9]*.npz")), default=0)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-", suffix=".npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, offsets=offsets, labels=np.array(json.dumps(meta)),
                     contexts=np.asarray(contexts, dtype=np.float64), **columns)
            f.flush()
            os.fsync(f.fileno())
        path = self.dir / f"{number:06d}.npz"
        os.replace(tmp, path)
        return path

    def load(self, since: int = 0) -> tuple[LabeledSet, int]:
        """Every snapshot from file number `since` + 1 on, deduplicated by label message;
        returns the set and the last file number read."""
        curves, class_ids, object_ids, contexts, seen, last = [], [], [], [], set(), since
        for path in sorted(self.dir.glob("[0-9]*.npz")):
            number = int(path.stem)
            if number <= since:
                continue
            last = number
            with np.load(path) as data:
                offsets = data["offsets"]
                # files written before snapshots kept contexts: unknown; under fewer context fields: NaN after
                file_contexts = (pad_context(data["contexts"]) if "contexts" in data.files
                                 else np.full((len(offsets) - 1, N_CONTEXT), np.nan))
                for i, meta in enumerate(json.loads(str(data["labels"]))):
                    if meta["origin"] in seen:
                        continue
                    seen.add(meta["origin"])
                    s, e = offsets[i], offsets[i + 1]
                    curves.append(LightCurve(*(data[f][s:e] for f in LightCurve.FIELDS)))
                    class_ids.append(meta["class_id"])
                    object_ids.append(meta["object_id"])
                    contexts.append(file_contexts[i])
        return LabeledSet(curves, np.array(class_ids, dtype=np.int64), object_ids, "labels",
                          np.array(contexts).reshape(-1, N_CONTEXT)), last
