"""Follow-up rules: each condition alone and combined, cone edges, NaN magnitudes, the follow-up record."""
import numpy as np
import pytest

from models.bands import BAND_CODE
from models.context import N_CONTEXT, context_vector
from models.taxonomy import N_CLASSES
from stream import avro_io
from stream.config import FollowupRule, FollowupSettings, SkyRegion
from stream.rules import Trigger, angular_distance_deg, evaluate, followup_record, rule_mask
from stream.scored import ScoredBatch

# Flux (nJy) of an AB magnitude: 10^((31.4 - m) / 2.5).
FLUX_MAG_20 = 10 ** ((31.4 - 20.0) / 2.5)
FLUX_MAG_22 = 10 ** ((31.4 - 22.0) / 2.5)


def make_batch(n: int, **columns) -> ScoredBatch:
    """A batch of `n` alerts at (10, 10) deg, 5 visits, 20th mag, zero scores; `columns` override."""
    base = {
        "object_id": [f"obj{i}" for i in range(n)],
        "alert_id": np.arange(100, 100 + n, dtype=np.int64),
        "source_id": np.arange(200, 200 + n, dtype=np.int64),
        "survey": np.array(["rubin"] * n, dtype=object),
        "ra_deg": np.full(n, 10.0),
        "dec_deg": np.full(n, 10.0),
        "latest_mjd_tai": np.full(n, 60000.5),
        "latest_flux_njy": np.full(n, FLUX_MAG_20, dtype=np.float32),
        "latest_band": np.full(n, BAND_CODE["lsst-r"], dtype=np.int8),
        "n_visits": np.full(n, 5, dtype=np.int32),
        "n_detections": np.full(n, 5, dtype=np.int32),
        "probs": np.full((n, N_CLASSES), 1 / N_CLASSES, dtype=np.float32),
        "sn_likelihood": np.zeros(n, dtype=np.float32),
        "flare_likelihood": np.zeros(n, dtype=np.float32),
        "model_version": "v1",
        "scored_ms": 1_700_000_000_000,
        "context": np.full((n, N_CONTEXT), np.nan),
        "window_first_detection_mjd_tai": np.full(n, 60000.0),
    }
    for name, values in columns.items():
        base[name] = values if name in ("object_id", "model_version", "scored_ms", "context") else np.asarray(
            values, dtype=base[name].dtype)
    return ScoredBatch(**base)


def context_rows(**fields) -> np.ndarray:
    """(n, N_CONTEXT) contexts with the given fields (lists of n values), the rest missing."""
    n = len(next(iter(fields.values())))
    return np.stack([context_vector(**{k: v[i] for k, v in fields.items()}) for i in range(n)])


# (case, rule, batch columns, expected mask). Each condition alone, at and around its threshold.
CONDITIONS = [
    ("sn at/below/above", FollowupRule(name="r", min_sn_likelihood=0.8),
     {"sn_likelihood": [0.8, 0.79, 0.95]}, [True, False, True]),
    ("sn NaN", FollowupRule(name="r", min_sn_likelihood=0.0), {"sn_likelihood": [np.nan, 0.0]}, [False, True]),
    ("flare", FollowupRule(name="r", min_flare_likelihood=0.9),
     {"flare_likelihood": [0.9, 0.89, 1.0]}, [True, False, True]),
    ("min visits", FollowupRule(name="r", min_visits=3), {"n_visits": [2, 3, 4]}, [False, True, True]),
    ("min detections", FollowupRule(name="r", min_detections=2), {"n_detections": [1, 2, 9]}, [False, True, True]),
    ("defaults need one visit and one detection", FollowupRule(name="r"),
     {"n_visits": [0, 1, 1], "n_detections": [1, 0, 1]}, [False, False, True]),
    ("max mag: brighter passes, fainter fails", FollowupRule(name="r", max_mag_ab=21.0),
     {"latest_flux_njy": [FLUX_MAG_20, FLUX_MAG_22, -FLUX_MAG_20]}, [True, False, True]),
    ("max mag: zero flux is NaN and never passes", FollowupRule(name="r", max_mag_ab=99.0),
     {"latest_flux_njy": [0.0, FLUX_MAG_22]}, [False, True]),
    ("surveys", FollowupRule(name="r", surveys=["ztf", "elasticc"]),
     {"survey": ["rubin", "ztf", "elasticc"]}, [False, True, True]),
    ("cone", FollowupRule(name="r", region=SkyRegion(ra_deg=10.0, dec_deg=10.0, radius_deg=1.0)),
     {"ra_deg": [10.0, 10.0, 10.0], "dec_deg": [10.0, 10.9, 11.1]}, [True, True, False]),
    ("class probability by name", FollowupRule(name="r", min_prob={"KN": 0.5}),
     {"probs": [np.eye(N_CLASSES)[3] * 0.5, np.eye(N_CLASSES)[3] * 0.49, np.eye(N_CLASSES)[0]]}, [True, False, False]),
    ("class probability by id", FollowupRule(name="r", min_prob={"2232": 0.5}),
     {"probs": [np.eye(N_CLASSES)[3], np.eye(N_CLASSES)[0]]}, [True, False]),
    ("age: window's first detection", FollowupRule(name="r", max_age_days=30.0),
     {"latest_mjd_tai": [60030.0, 60030.1, 60010.0]}, [True, False, True]),
    ("age: the packet's history reaches further back", FollowupRule(name="r", max_age_days=30.0),
     {"latest_mjd_tai": [60010.0, 60010.0, 60010.0],
      "context": context_rows(first_detection_mjd_tai=[59000.0, 59990.0, None])}, [False, True, True]),
    ("age: few detections ever make an old first detection young", FollowupRule(
        name="r", max_age_days=30.0, young_history_detections=20),
     {"latest_mjd_tai": [60010.0] * 4, "context": context_rows(first_detection_mjd_tai=[59000.0] * 3 + [59990.0],
                                                               n_detections_history=[20, 21, None, 500])},
     [True, False, False, True]),
    ("real/bogus; missing is not applied", FollowupRule(name="r", min_real_bogus=0.5),
     {"context": context_rows(real_bogus=[0.5, 0.49, None])}, [True, False, True]),
    ("absurd real/bogus is missing", FollowupRule(name="r", min_real_bogus=0.5),
     {"context": context_rows(real_bogus=[7.0, -1.0])}, [True, True]),
    ("star-like counterpart within the match radius", FollowupRule(name="r", max_star_score=0.5),
     {"context": context_rows(star_score=[0.99, 0.99, 0.2, None], star_distance_arcsec=[0.3, 3.0, 0.3, 0.3])},
     [False, True, True, True]),
    ("nearby host; hostless is not applied", FollowupRule(name="r", max_host_redshift=0.05),
     {"context": context_rows(host_redshift=[0.05, 0.051, None])}, [True, False, True]),
    ("host separation", FollowupRule(name="r", max_host_separation_arcsec=2.0),
     {"context": context_rows(host_separation_arcsec=[0.5, 2.0, 2.5, None])}, [True, True, False, True]),
    ("a known asteroid never fires", FollowupRule(name="r"),
     {"context": context_rows(ss_distance_arcsec=[0.4, 5.0, 5.1, np.inf, None])}, [False, False, True, True, True]),
]


@pytest.mark.parametrize("case, rule, columns, expected", CONDITIONS, ids=[c[0] for c in CONDITIONS])
def test_each_condition_alone(case, rule, columns, expected):
    batch = make_batch(len(expected), **columns)
    assert rule_mask(rule, batch).tolist() == expected


# Cone edges: (case, cone centre and radius, source positions, expected mask).
CONES = [
    ("RA wraps at 0/360 from below", (359.5, 0.0, 1.0), [(0.4, 0.0), (0.6, 0.0), (358.6, 0.0), (358.4, 0.0)],
     [True, False, True, False]),
    ("RA wraps at 0/360 from above", (0.2, 0.0, 0.5), [(359.8, 0.0), (359.6, 0.0), (0.0, 0.0)], [True, False, True]),
    ("across the north pole", (0.0, 89.5, 1.0), [(180.0, 89.6), (180.0, 89.4), (90.0, 89.5), (0.0, 88.6)],
     [True, False, True, True]),
    ("on the south pole every RA is the centre", (123.0, -90.0, 0.1),
     [(0.0, -89.95), (271.0, -89.95), (45.0, -89.8)], [True, True, False]),
    ("RA degrees shrink with cos(dec)", (0.0, 60.0, 1.0), [(1.9, 60.0), (2.1, 60.0)], [True, False]),
    ("whole sky", (0.0, 0.0, 180.0), [(180.0, 0.0), (90.0, -90.0)], [True, True]),
]


@pytest.mark.parametrize("case, cone, positions, expected", CONES, ids=[c[0] for c in CONES])
def test_cone_edges(case, cone, positions, expected):
    ra, dec, radius = cone
    rule = FollowupRule(name="r", region=SkyRegion(ra_deg=ra, dec_deg=dec, radius_deg=radius))
    batch = make_batch(len(positions), ra_deg=[p[0] for p in positions], dec_deg=[p[1] for p in positions])
    assert rule_mask(rule, batch).tolist() == expected


def test_angular_distance_small_separation_is_exact():
    one_arcsec_deg = 1 / 3600
    assert angular_distance_deg(200.0, -30.0, 200.0, -30.0 + one_arcsec_deg) == pytest.approx(one_arcsec_deg, rel=1e-9)
    assert angular_distance_deg(10.0, 0.0, 190.0, 0.0) == pytest.approx(180.0)


def test_conditions_combine_with_and():
    rule = FollowupRule(name="bright_young_sn", min_sn_likelihood=0.8, min_visits=3, max_mag_ab=21.0,
                        surveys=["rubin"], region=SkyRegion(ra_deg=10.0, dec_deg=10.0, radius_deg=2.0))
    # Row 0 passes everything; each later row fails exactly one condition.
    batch = make_batch(6,
                       sn_likelihood=[0.9, 0.5, 0.9, 0.9, 0.9, 0.9],
                       n_visits=[3, 3, 2, 3, 3, 3],
                       latest_flux_njy=[FLUX_MAG_20, FLUX_MAG_20, FLUX_MAG_20, FLUX_MAG_22, FLUX_MAG_20, FLUX_MAG_20],
                       survey=["rubin", "rubin", "rubin", "rubin", "ztf", "rubin"],
                       dec_deg=[10.0, 10.0, 10.0, 10.0, 10.0, 13.0])
    assert rule_mask(rule, batch).tolist() == [True, False, False, False, False, False]


def test_evaluate_orders_by_row_then_rule():
    rules = [FollowupRule(name="young_sn", min_sn_likelihood=0.8), FollowupRule(name="flare", min_flare_likelihood=0.9),
             FollowupRule(name="anything")]
    batch = make_batch(3, sn_likelihood=[0.9, 0.1, 0.0], flare_likelihood=[0.95, 0.0, 0.99])
    assert evaluate(rules, batch) == [
        Trigger(0, "young_sn"), Trigger(0, "flare"), Trigger(0, "anything"),
        Trigger(1, "anything"),
        Trigger(2, "flare"), Trigger(2, "anything"),
    ]
    assert evaluate([], batch) == []
    assert evaluate(rules, make_batch(0)) == []


def test_followup_record_matches_schema():
    batch = make_batch(2, sn_likelihood=[0.9, 0.9], latest_flux_njy=[FLUX_MAG_20, 0.0],
                       latest_band=[BAND_CODE["lsst-g"], BAND_CODE["ztf-r"]])
    record = followup_record(batch, 0, "young_sn", created_ms=1_700_000_000_123)
    assert record["objectId"] == "obj0" and record["alertId"] == 100 and record["rule"] == "young_sn"
    assert record["latestBand"] == "lsst-g"
    assert record["latestMagAb"] == pytest.approx(20.0, abs=1e-4)
    assert record["snLikelihood"] == pytest.approx(0.9) and record["modelVersion"] == "v1"
    assert record["createdMs"] == 1_700_000_000_123
    zero_flux = followup_record(batch, 1, "young_sn", created_ms=0)
    assert zero_flux["latestMagAb"] is None and zero_flux["latestBand"] == "ztf-r"
    for rec in (record, zero_flux):
        name, decoded = avro_io.decode(avro_io.encode("alertformer.followup", rec))
        assert name == "alertformer.followup"
        assert decoded.keys() == rec.keys()
        assert decoded["objectId"] == rec["objectId"] and decoded["latestMagAb"] == pytest.approx(rec["latestMagAb"])


def test_unknown_class_or_bad_probability_in_a_rule_is_a_config_error():
    with pytest.raises(ValueError, match="'Kilonovae' is not one of the model's classes"):
        FollowupRule(name="r", min_prob={"Kilonovae": 0.5})
    with pytest.raises(ValueError, match=r"min_prob\[KN\] = 1.5"):
        FollowupRule(name="r", min_prob={"KN": 1.5})


def test_default_young_sn_rule_needs_a_young_real_source_not_on_a_star():
    (young_sn,) = [r for r in FollowupSettings().rules if r.name == "young_sn"]
    # Row 0 passes; row 1 was first detected 400 days ago (jdstarthist); row 2 is bogus; row 3 sits on a star.
    batch = make_batch(4, sn_likelihood=[0.9] * 4, latest_mjd_tai=[60005.0] * 4,
                       context=context_rows(first_detection_mjd_tai=[60000.0, 59605.0, 60000.0, 60000.0],
                                            real_bogus=[0.9, 0.9, 0.1, 0.9], star_score=[0.1, 0.1, 0.1, 0.98],
                                            star_distance_arcsec=[0.5, 0.5, 0.5, 0.2]))
    assert rule_mask(young_sn, batch).tolist() == [True, False, False, False]
