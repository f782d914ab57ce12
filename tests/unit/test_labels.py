"""Label messages and label snapshots."""
import json

import numpy as np
import pytest
from label_messages import label_message

from models.context import context_vector, missing_context
from models.lightcurve import LightCurve
from stream.errors import BadPacket
from training.labels import SnapshotStore, ms_to_mjd_tai, parse_label, snapshot


@pytest.mark.parametrize("kwargs,class_id", [
    ({"class_id": 2222}, 2222), ({"class_name": "SN Ia"}, 2222), ({"class_name": "SNIbc"}, 2223),
    ({"class_name": "M-dwarf flare"}, 2233), ({"class_name": "flare"}, 2233), ({"class_name": "tde"}, 2243),
    ({"class_name": "kilonova"}, 2232), ({"class_name": "KN"}, 2232), ({"class_name": "Ia"}, 2222),
    ({"class_name": "Dwarf Novae"}, 2234), ({"class_name": "SN IIP"}, 2224),
])
def test_parse_known_classes(kwargs, class_id):
    label = parse_label(label_message("obj1", labeled_ms=1_700_000_000_000, **kwargs), "t/0/5")
    assert label.class_id == class_id and label.object_id == "obj1" and label.origin == "t/0/5"


@pytest.mark.parametrize("payload,match", [
    (label_message("o", class_id=9999), "classId 9999"),
    (label_message("o", class_name="quasar-ish"), "className 'quasar-ish'"),
    (label_message("o"), "neither classId nor className"),
    (label_message("", class_id=2222), "objectId is empty"),
    (b"garbage", "single-object"),
])
def test_bad_labels_name_the_problem(payload, match):
    with pytest.raises(BadPacket, match=match):
        parse_label(payload, "t/0/0")


def test_ms_to_mjd_tai():
    # 2000-01-01T00:00:00 UTC = MJD 51544.0 UTC; TAI - UTC was 32 s then.
    mjd = ms_to_mjd_tai(np.array([946_684_800_000]))
    assert abs((mjd[0] - 51544.0) * 86400 - 32.0) < 1e-3


def test_snapshot_store_round_trip_and_dedupe(tmp_path):
    curve = LightCurve.from_arrays([1, 2, 3], [60000.0, 60001.0, 60002.0], [1, 2, 3], [10, 20, 30], [1, 1, 1],
                                   [True, True, False])
    assert len(snapshot(curve, 60001.5)) == 2
    store = SnapshotStore(tmp_path)
    label = parse_label(label_message("a", class_id=2222), "t/0/1")
    store.append([label], [snapshot(curve, 60001.5)])
    store.append([label, parse_label(label_message("b", class_id=2233), "t/0/2")], [curve, curve])
    labeled, last = store.load()
    assert last == 2 and labeled.object_ids == ["a", "b"] and labeled.class_ids.tolist() == [2222, 2233]
    assert len(labeled.curves[0]) == 2
    newer, _ = store.load(since=1)
    assert newer.object_ids == ["a", "b"]
    assert list(tmp_path.glob(".tmp-*")) == []


def test_snapshots_keep_each_labels_context_and_old_files_read_as_unknown(tmp_path):
    curve = LightCurve.from_arrays([1, 2], [60000.0, 60001.0], [1, 2], [10, 20], [1, 1], [True, True])
    store = SnapshotStore(tmp_path)
    labels = [parse_label(label_message(name, class_id=2222), f"t/0/{i}") for i, name in enumerate("ab")]
    contexts = np.stack([context_vector(real_bogus=0.9, ss_distance_arcsec=np.inf), missing_context()])
    store.append(labels, [curve, curve], contexts)
    np.testing.assert_array_equal(store.load()[0].contexts, contexts)
    old = tmp_path / "000002.npz"  # a file from before contexts were kept
    np.savez(old, offsets=np.array([0, 2]), labels=np.array(json.dumps([{
        "object_id": "c", "class_id": 2222, "source": "s", "labeled_ms": 0, "reference": None, "origin": "t/0/9"}])),
        **{f: getattr(curve, f) for f in LightCurve.FIELDS})
    labeled, _ = store.load(since=1)
    assert labeled.object_ids == ["c"] and np.isnan(labeled.contexts).all()
