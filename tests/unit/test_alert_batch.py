"""The hot path's columns: `AlertBatch` and `Ingest.batch` give what the per-message decoders give, in input
order; the window step's columns equal the per-alert merge; `finish()`'s `BatchResult.after_commit` follows
the commit."""
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeConsumer, FakeMessage, FakeProducer

from models.context import LEGACY_CONTEXT_FIELDS_BY_SURVEY
from models.lightcurve import LightCurve
from stream.alert import AlertBatch, DecodedAlert
from stream.decode import decode_auto, decode_elasticc, encode_elasticc, encode_rubin
from stream.decode.rubin import rubin_records_from_parquet
from stream.history import PACKED_DTYPE, HistoryStore, last_points, unpack
from stream.ingest import Ingest
from stream.keys import Keys
from stream.loop import BatchResult, Output, TransactionalLoop
from stream.window import TIME_SLACK_DAYS, build_windows

DATA = Path(__file__).resolve().parents[2] / "data"


def same_curve(a: LightCurve, b: LightCurve) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) and getattr(a, f).dtype == getattr(b, f).dtype
               for f in LightCurve.FIELDS)


def assert_same_alert(got: DecodedAlert, expected: DecodedAlert) -> None:
    for name in ("survey", "schema", "alert_id", "source_id", "object_id", "ra_deg", "dec_deg", "dropped_points"):
        assert getattr(got, name) == getattr(expected, name), name
    np.testing.assert_array_equal(got.context, expected.context)
    assert same_curve(got.light_curve, expected.light_curve)


def elasticc_payload() -> bytes:
    source = {"diaSourceId": 103, "diaObjectId": 1234, "midPointTai": 60010.5, "filterName": "r", "ra": 150.25,
              "decl": 2.5, "psFlux": 950.0, "psFluxErr": 40.0, "snr": 10.0}
    return encode_elasticc({"alertId": 77, "diaSource": source, "prvDiaSources": [], "prvDiaForcedSources": [],
                            "diaObject": {"diaObjectId": 1234, "simVersion": "t", "ra": 150.25, "decl": 2.5}},
                           fill_defaults=True)


@pytest.fixture(scope="module")
def mixed() -> list[FakeMessage]:
    """Rubin (wire format), ZTF (containers), ELAsTiCC (per message) and junk, interleaved."""
    records, version = rubin_records_from_parquet(DATA / "rubin" / "lsstcam_alerts_v10_sample.parquet")
    rubin = [encode_rubin(r, version) for r in records[:4]]
    ztf = [p.read_bytes() for p in sorted((DATA / "ztf" / "alerts").glob("*.avro"))]
    values = [ztf[0], rubin[0], elasticc_payload(), b"junk", rubin[1], ztf[1], rubin[2][:-30], rubin[3]]
    topics = ["ztf", "auto", "elasticc", "auto", "auto", "ztf", "auto", "auto"]
    return [FakeMessage(v, _topic=t, _offset=k) for k, (v, t) in enumerate(zip(values, topics))]


def test_ingest_batch_gives_each_decoded_message_in_input_order_as_the_per_message_decoders(mixed):
    ingest = Ingest({"ztf": "ztf", "elasticc": "elasticc", "auto": "auto"}, "dlq")
    good, dead = ingest.batch(mixed)
    assert ingest.fast_rubin is not None and ingest.fast_ztf is not None
    assert good.offset.tolist() == [0, 1, 2, 4, 5, 7] and [d.source.offset() for d in dead] == [3, 6]
    assert good.topic == [mixed[k].topic() for k in good.offset] and good.messages[2] is mixed[2]
    assert good.alerts.curves.ids.tolist() == good.alerts.alert_id.tolist()
    for j, k in enumerate(good.offset.tolist()):
        decode = decode_elasticc if mixed[k].topic() == "elasticc" else decode_auto
        assert_same_alert(good.alerts.alert(j), decode(mixed[k].value()))
    per_alert, _ = ingest(mixed)  # the per-alert form, for callers outside the hot path
    assert [g.offset for g in per_alert] == good.offset.tolist()
    assert [g.alert.object_id for g in per_alert] == good.alerts.object_id.tolist()


def curve(source_ids, mjd_tai, flux_njy=None) -> LightCurve:
    n = len(source_ids)
    flux = np.arange(n, dtype=float) + 100.0 if flux_njy is None else flux_njy
    return LightCurve.from_arrays(source_ids, mjd_tai, np.arange(n) % 3, flux, np.full(n, 10.0), np.arange(n) % 2 == 0)


def alert(object_id: str, source_id: int, light_curve: LightCurve) -> DecodedAlert:
    return DecodedAlert("rubin", "lsst.v10_0", source_id, source_id, object_id, 1.0, 2.0, light_curve)


def test_trigger_points_find_the_triggering_source_else_the_latest_point():
    alerts = AlertBatch.from_alerts([alert("a", 12, curve([11, 12, 13], [1.0, 2.0, 3.0])),
                                     alert("b", 99, curve([21, 22], [1.0, 2.0])),
                                     alert("c", 31, curve([31], [5.0]))])
    assert alerts.trigger_points().tolist() == [1, 4, 5]  # into the columns: a's second, b's last, c's only
    taken = alerts.take(np.array([2, 0]))
    assert taken.object_id.tolist() == ["c", "a"] and taken.trigger_points().tolist() == [0, 2]
    both = AlertBatch.concatenate([taken, alerts])
    assert len(both) == 5 and both.object_id.tolist() == ["c", "a", "a", "b", "c"]
    assert same_curve(both.curves[4], alerts.curves[2])


def _until(curve: LightCurve, mjd_tai: float) -> LightCurve:
    keep = curve.mjd_tai <= mjd_tai + TIME_SLACK_DAYS
    return LightCurve(*(getattr(curve, f)[keep] for f in LightCurve.FIELDS))


def reference_windows(alerts: list[DecodedAlert], history: dict) -> tuple[list[LightCurve], dict]:
    """The per-alert merge the window step replaced, written out."""
    merged, curves = dict(history), []
    for a in alerts:
        hit = np.flatnonzero(a.light_curve.source_id == a.source_id)
        trigger_mjd = a.light_curve.mjd_tai[hit[0] if hit.size else -1]
        stored = merged.get(a.object_id)
        if stored is None or len(stored) == 0:
            merged[a.object_id] = a.light_curve
            curves.append(a.light_curve)
        else:
            merged[a.object_id] = LightCurve.concatenate([stored, a.light_curve])
            curves.append(LightCurve.concatenate([_until(stored, trigger_mjd), a.light_curve]))
    return curves, {a.object_id: merged[a.object_id] for a in alerts}


@pytest.mark.parametrize("seed", range(5))
def test_windows_as_columns_equal_the_per_alert_merge(seed):
    rng = np.random.default_rng(seed)
    alerts, history = [], {}
    for k in range(40):
        object_id = f"o{rng.integers(0, 25)}"
        n = int(rng.integers(1, 6))
        ids = rng.choice(60, n, replace=False) + 1000 * int(object_id[1:])
        times = 60000.0 + np.round(rng.uniform(0, 30, n), 1)  # rounded: equal times happen
        a = alert(object_id, int(ids[rng.integers(0, n)]) if rng.random() < 0.9 else -1, curve(ids, times))
        alerts.append(a)
        if rng.random() < 0.3 and object_id not in history:
            m = int(rng.integers(0, 6))
            history[object_id] = curve(rng.choice(60, m, replace=False) + 1000 * int(object_id[1:]),
                                       60000.0 + np.round(rng.uniform(0, 30, m), 1))
    assert max(Counter(a.object_id for a in alerts).values()) > 1 and min(map(len, history.values())) == 0
    windows = build_windows(AlertBatch.from_alerts(alerts), history, LEGACY_CONTEXT_FIELDS_BY_SURVEY)
    expected_curves, expected_merged = reference_windows(alerts, history)
    assert len(windows.curves) == len(alerts)
    assert all(same_curve(got, want) for got, want in zip(windows.curves, expected_curves))
    assert windows.curves.ids.tolist() == [a.alert_id for a in alerts]
    assert list(windows.merged) == list(expected_merged)
    assert all(same_curve(windows.merged[o], expected_merged[o]) for o in expected_merged)
    for a, trigger in zip(alerts, windows.trigger_index.tolist()):
        hit = np.flatnonzero(a.light_curve.source_id == a.source_id)
        assert trigger == (hit[0] if hit.size else len(a.light_curve) - 1)


def test_after_commit_runs_with_the_batch_after_its_transaction_commits():
    message = FakeMessage(b"x")
    producer = FakeProducer()
    seen = []

    def prepare(messages):
        return lambda: BatchResult([Output("out", b"v", source=message)],
                                   lambda committed, refused: seen.append((list(producer.calls), committed, refused)))

    TransactionalLoop(FakeConsumer([[message]]), producer, ["alerts"], prepare).run(max_messages=1)
    assert seen == [(["init", "begin", "send_offsets", "commit"], [message], [])]


class RecordingPipe:
    def __init__(self):
        self.sets = {}

    def set(self, key, value, ex=None):
        self.sets[key] = value


def test_merged_curves_are_stored_packed_as_one_array_with_the_same_bytes_as_curve_by_curve():
    alerts = [alert("a", 1, curve([1, 2, 3], [1.0, 2.0, 3.0])), alert("b", 4, curve([4], [1.5])),
              alert("a", 5, curve([5, 6], [4.0, 5.0]))]
    merged = build_windows(AlertBatch.from_alerts(alerts), {"b": curve([7, 8], [0.5, 0.7])},
                           LEGACY_CONTEXT_FIELDS_BY_SURVEY).merged
    assert list(merged) == ["a", "b"]
    by_columns, by_curve = RecordingPipe(), RecordingPipe()
    store = HistoryStore(None, Keys("t"), 60, max_points=4)
    store.put(merged, by_columns)
    store.put(dict(merged.items()), by_curve)
    expected = {Keys("t").light_curve(o): np.rec.fromarrays([getattr(last_points(merged[o], 4), f)
                                                             for f in LightCurve.FIELDS], dtype=PACKED_DTYPE).tobytes()
                for o in ("a", "b")}
    assert by_columns.sets == by_curve.sets == expected
    assert len(unpack(by_columns.sets[Keys("t").light_curve("a")])) == 4  # the last 4 of a's 5 points


@pytest.mark.parametrize("subscription, rubin, ztf", [
    (["ztf-alerts"], False, True), (["lsst-alerts"], True, False), (["other"], True, True),
    (["^lsst.*"], True, True), (["ztf-alerts", "lsst-alerts"], True, True)])
def test_prepare_makes_the_batch_decoders_the_subscribed_formats_need(subscription, rubin, ztf):
    ingest = Ingest({"ztf-alerts": "ztf", "lsst-alerts": "rubin"}, "dlq")
    assert ingest.fast_rubin is None and ingest.fast_ztf is None  # made lazily without it
    ingest.prepare(subscription)
    assert (ingest.fast_rubin is not None) == rubin and (ingest.fast_ztf is not None) == ztf
