"""Simulated Rubin alert streams (training.sim_alerts, training.simulate_stream).

The central check: a packet decoded by the stream and the simulated curve cut at
the same alert give identical model input, so training and serving see the same
tensors.
"""
import argparse
import csv

import numpy as np
import pytest
import torch

from alertformer.cli.simulate import add_parser
from models.encode import encode
from models.lightcurve import LightCurve
from stream.decode import decode_auto, rubin_schema, rubin_versions, schema_id
from stream.decode._avro import WIRE_HEADER, read_record
from stream.errors import ConfigError
from stream.replay import load_packets
from training.sim_alerts import (
    FIRST_OBJECT_ID, FORCED_TWIN_ID_BIT, HISTORY_DAYS, RubinAlertStream, SimAlert, rubin_alert_stream, visit_ids,
)
from training.simulate import CLASS_NAMES, REALISTIC_MIX, SimulatedSet, simulate
from training.simulate import POINT_ID_STRIDE
from training.simulate_stream import ID_BLOCKS, MAX_OBJECTS_PER_SEED, PACKET_SUFFIX, first_object_id

N_OBJECTS = 12
SEED = 20260214
WIDE_WINDOW = 10_000  # max_visits that keeps every point of a one-year window


def _simulate(n: int = N_OBJECTS, seed: int = SEED, **kwargs) -> SimulatedSet:
    return simulate(n, np.random.default_rng(seed), first_object_id=FIRST_OBJECT_ID, **kwargs)


@pytest.fixture(scope="module")
def sims() -> SimulatedSet:
    return _simulate()


@pytest.fixture(scope="module")
def alerts(sims) -> list[SimAlert]:
    return rubin_alert_stream(sims)


def _index_of(sims: SimulatedSet, object_id: int) -> int:
    return int(np.flatnonzero(sims.object_id == object_id)[0])


def _expected_curve(sims: SimulatedSet, alert: SimAlert) -> LightCurve:
    """The simulated curve as the alert shows it: points of the last HISTORY_DAYS up to the alert."""
    lc = sims.light_curve(_index_of(sims, alert.object_id))
    t = alert.alert_mjd_tai
    keep = (lc.mjd_tai >= t - HISTORY_DAYS) & (lc.mjd_tai <= t)
    return LightCurve(*(getattr(lc, name)[keep] for name in LightCurve.FIELDS))


def _assert_same_curve(actual: LightCurve, expected: LightCurve) -> None:
    for name in LightCurve.FIELDS:
        a, e = getattr(actual, name), getattr(expected, name)
        assert a.dtype == e.dtype, name
        np.testing.assert_array_equal(a, e, err_msg=name)


def _raw_record(alert: SimAlert) -> dict:
    sid = WIRE_HEADER.unpack_from(alert.value)[1]
    return read_record(alert.value, rubin_schema(f"{sid // 100}.{sid % 100}"), offset=WIRE_HEADER.size)


def _last_alerts(alerts: list[SimAlert]) -> dict[int, SimAlert]:
    return {alert.object_id: alert for alert in alerts}  # later alerts overwrite earlier ones


# --- the stream ---------------------------------------------------------------------
def test_one_alert_per_detection_in_time_order_keyed_by_object(sims, alerts):
    assert len(alerts) == int(sims.is_detection.sum())
    times = np.array([a.alert_mjd_tai for a in alerts])
    assert np.all(np.diff(times) >= 0)
    assert len({a.alert_id for a in alerts}) == len(alerts)
    assert len({a.object_id for a in alerts}) == len(sims)  # interleaved across all objects
    for alert in alerts:
        assert alert.key == str(alert.object_id).encode()
        assert alert.class_id == int(sims.class_id[_index_of(sims, alert.object_id)])


def test_same_seed_gives_identical_packets():
    first, second = (rubin_alert_stream(_simulate(4, seed=7)) for _ in range(2))
    assert [(a.key, a.value) for a in first] == [(b.key, b.value) for b in second]


def test_every_packet_decodes_to_the_simulated_photometry(sims, alerts):
    for alert in alerts:
        decoded = decode_auto(alert.value)
        assert decoded.survey == "rubin" and decoded.schema == f"lsst.v{rubin_versions()[-1].replace('.', '_')}.alert"
        assert (decoded.alert_id, decoded.source_id) == (alert.alert_id, alert.alert_id)
        assert decoded.object_id.encode() == alert.key
        i = _index_of(sims, alert.object_id)
        assert (decoded.ra_deg, decoded.dec_deg) == (sims.ra_deg[i], sims.dec_deg[i])
        _assert_same_curve(decoded.light_curve, _expected_curve(sims, alert))


def test_history_is_cut_to_the_last_year(sims, alerts):
    """Some alerts must come more than a year after their object's first point, or the cut goes untested."""
    cut = 0
    for alert in alerts:
        lc = sims.light_curve(_index_of(sims, alert.object_id))
        cut += int(np.sum(lc.mjd_tai < alert.alert_mjd_tai - HISTORY_DAYS))
        assert len(decode_auto(alert.value).light_curve) == len(_expected_curve(sims, alert))
    assert cut > 0


def test_serving_and_training_encode_identical_tensors(sims, alerts):
    last = _last_alerts(alerts)
    served = [decode_auto(alert.value).light_curve for alert in last.values()]
    trained = [_expected_curve(sims, alert) for alert in last.values()]
    for max_visits in (64, WIDE_WINDOW):
        a, b = encode(served, max_visits), encode(trained, max_visits)
        assert torch.equal(a.features, b.features)
        assert torch.equal(a.dt_days, b.dt_days)
        assert torch.equal(a.mask, b.mask)


def test_forced_photometry_covers_every_earlier_visit_with_twins_of_detections(sims, alerts):
    for alert in _last_alerts(alerts).values():
        record = _raw_record(alert)
        detections = {s["visit"]: s for s in record["prvDiaSources"]}
        forced = {f["visit"]: f for f in record["prvDiaForcedSources"]}
        expected = _expected_curve(sims, alert)
        earlier = expected.mjd_tai < alert.alert_mjd_tai
        assert len(forced) == len(record["prvDiaForcedSources"]) == int(earlier.sum())
        assert set(detections) <= set(forced) and record["diaSource"]["visit"] not in forced
        for visit, source in detections.items():
            twin = forced[visit]
            assert twin["diaForcedSourceId"] == source["diaSourceId"] | FORCED_TWIN_ID_BIT
            assert (twin["psfFlux"], twin["psfFluxErr"]) == (source["psfFlux"], source["psfFluxErr"])
        lc = sims.light_curve(_index_of(sims, alert.object_id))
        assert record["diaObject"]["nDiaSources"] == int(np.sum(lc.is_detection & (lc.mjd_tai <= alert.alert_mjd_tai)))


def test_visit_ids_are_shared_only_by_the_same_exposure():
    mjd = np.array([61000.25, 61000.25, 61000.25, 61000.25 + 2 / 86400])
    band = np.array([1, 1, 2, 1], dtype=np.int8)
    ids = visit_ids(mjd, band)
    assert ids[0] == ids[1] and len(set(ids[1:].tolist())) == 3


@pytest.mark.parametrize("version", rubin_versions())
def test_every_schema_version_round_trips(version):
    sims = _simulate(1, seed=3)
    stream = rubin_alert_stream(sims, version)
    assert stream[0].value[:5] == WIRE_HEADER.pack(0, schema_id(version))
    for alert in (stream[0], stream[-1]):
        decoded = decode_auto(alert.value)
        assert decoded.schema == f"lsst.v{version.replace('.', '_')}.alert"
        assert decoded.alert_id == alert.alert_id
        _assert_same_curve(decoded.light_curve, _expected_curve(sims, alert))


def test_time_range_keeps_the_alerts_inside_it_with_their_history(sims, alerts):
    t = np.array([a.alert_mjd_tai for a in alerts])
    start, end = float(np.quantile(t, 0.4)), float(np.quantile(t, 0.6))
    night = RubinAlertStream(sims, start_mjd_tai=start, end_mjd_tai=end)
    inside = [a for a in alerts if start <= a.alert_mjd_tai < end]
    assert len(night) == len(inside) > 0
    assert [a.value for a in night] == [a.value for a in inside]


def test_rejects_ztf_sets_and_non_positive_object_ids():
    with pytest.raises(ValueError, match="LSST"):
        RubinAlertStream(simulate(1, np.random.default_rng(0), "ztf", first_object_id=FIRST_OBJECT_ID))
    with pytest.raises(ValueError, match="first_object_id"):
        RubinAlertStream(simulate(1, np.random.default_rng(0)))  # object id 0 means "no object"


# --- the command ----------------------------------------------------------------------
def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="alertformer")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["simulate", *argv])
    return args.func(args)


def test_cli_writes_packets_that_replay_reads_and_labels(tmp_path, capsys):
    out = tmp_path / "night"
    assert _run_cli(["--n", "3", "--seed", "5", "--out", str(out), "--quiet"]) == 0
    files = sorted(out.iterdir())
    assert files[0].name == f"000001{PACKET_SUFFIX}"
    expected = rubin_alert_stream(simulate(3, np.random.default_rng(5), class_weights=REALISTIC_MIX,
                                           first_object_id=first_object_id(5)))  # the command's defaults
    packets = load_packets([out])
    assert [(p.key, p.value) for p in packets] == [(a.key, a.value) for a in expected]
    with open(tmp_path / "night_labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    labels = {a.object_id: a.class_id for a in expected}
    assert {int(r["object_id"]): int(r["class_id"]) for r in rows} == labels
    assert all(r["class_name"] == CLASS_NAMES[int(r["class_id"])] for r in rows)
    assert '"alerts": %d' % len(expected) in capsys.readouterr().out



def _label_ids(tmp_path, name: str, seed: int) -> set[int]:
    assert _run_cli(["--n", "4", "--seed", str(seed), "--out", str(tmp_path / name), "--quiet"]) == 0
    with open(tmp_path / f"{name}_labels.csv", newline="") as f:
        return {int(r["object_id"]) for r in csv.DictReader(f)}


def test_object_ids_depend_on_the_seed(tmp_path, capsys):
    """Two seeds' streams replayed into one topic must not merge their objects."""
    seed_1, seed_1_again, seed_2 = (_label_ids(tmp_path, n, s) for n, s in (("a", 1), ("b", 1), ("c", 2)))
    assert seed_1 == seed_1_again and not seed_1 & seed_2
    assert min(seed_1) >= first_object_id(1) and max(seed_1) < first_object_id(2) <= min(seed_2)
    # The last seed's ids still make source ids (object id * stride + point) below the forced-twin bit.
    assert (first_object_id(ID_BLOCKS - 1) + MAX_OBJECTS_PER_SEED) * POINT_ID_STRIDE <= FORCED_TWIN_ID_BIT
    assert first_object_id(1_764_800_000) == first_object_id(1_764_800_000 % ID_BLOCKS)  # a demo's time seed


@pytest.mark.parametrize("argv, message", [
    (["--seed", "-1"], "--seed -1: need a seed >= 0"),
    (["--n", str(MAX_OBJECTS_PER_SEED + 1)], "each seed's block of ids"),
])
def test_seeds_and_counts_outside_the_id_blocks_are_refused(tmp_path, argv, message):
    with pytest.raises(ConfigError, match=message):
        _run_cli(["--n", "1", *argv, "--out", str(tmp_path / "x")])


def test_cli_refuses_paths_that_would_mix_files_into_a_replay(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "000001.avro-wire").write_bytes(b"\0")
    with pytest.raises(ConfigError, match="not an empty directory"):
        _run_cli(["--n", "1", "--out", str(tmp_path / "old")])
    with pytest.raises(ConfigError, match="inside --out"):
        _run_cli(["--n", "1", "--out", str(tmp_path / "new"), "--labels", str(tmp_path / "new" / "labels.csv")])
    with pytest.raises(ConfigError, match="--out DIR, --topic TOPIC"):
        _run_cli(["--n", "1"])
