"""stream.window.build_windows: what each alert is scored on, and what is stored back."""
import dataclasses

import numpy as np

from models.context import CONTEXT_INDEX, LEGACY_CONTEXT_FIELDS_BY_SURVEY, N_CONTEXT, context_vector, model_context
from models.lightcurve import LightCurve
from stream.alert import AlertBatch, DecodedAlert
from stream.window import build_windows as build_columns
from training.sim_context import draw_contexts


def curve(source_ids, mjd_tai, flux_njy=None) -> LightCurve:
    n = len(source_ids)
    flux = np.full(n, 100.0) if flux_njy is None else flux_njy
    return LightCurve.from_arrays(source_ids, mjd_tai, np.zeros(n), flux, np.full(n, 10.0), np.ones(n, bool))


def alert(object_id: str, source_id: int, light_curve: LightCurve) -> DecodedAlert:
    return DecodedAlert(survey="rubin", schema="lsst.v11_0", object_id=object_id, alert_id=source_id, source_id=source_id,
                        ra_deg=10.0, dec_deg=-5.0, light_curve=light_curve)


def build_windows(alerts: list[DecodedAlert], history: dict, fields_by_survey=LEGACY_CONTEXT_FIELDS_BY_SURVEY):
    """`stream.window.build_windows` of the alerts as columns, for a model of table `fields_by_survey`."""
    return build_columns(AlertBatch.from_alerts(alerts), history, fields_by_survey)


def same(a: LightCurve, b: LightCurve) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in LightCurve.FIELDS)


def test_first_sighting_is_scored_and_stored_as_it_came():
    first = alert("o1", 2, curve([1, 2], [60000.0, 60001.0]))
    windows = build_windows([first], {})
    assert same(windows.curves[0], first.light_curve) and same(windows.merged["o1"], first.light_curve)


def test_history_is_merged_stored_points_win_on_repeated_ids():
    stored = curve([1, 2], [60000.0, 60001.0], np.array([111.0, 222.0]))
    new = alert("o1", 3, curve([2, 3], [60001.0, 60002.0], np.array([999.0, 333.0])))
    windows = build_windows([new], {"o1": stored})
    expected = curve([1, 2, 3], [60000.0, 60001.0, 60002.0], np.array([111.0, 222.0, 333.0]))
    assert same(windows.curves[0], expected) and same(windows.merged["o1"], expected)


def test_stored_points_after_the_trigger_stay_out_of_the_window_but_stay_stored():
    """Re-scoring an old alert (a replay, a crash) gives the window it had the first time."""
    stored = curve([1, 5], [60000.0, 60010.0])
    old = alert("o1", 2, curve([2], [60001.0]))
    windows = build_windows([old], {"o1": stored})
    assert same(windows.curves[0], curve([1, 2], [60000.0, 60001.0]))
    assert same(windows.merged["o1"], curve([1, 2, 5], [60000.0, 60001.0, 60010.0]))


def test_a_second_alert_of_an_object_in_the_batch_sees_the_first():
    first = alert("o1", 1, curve([1], [60000.0]))
    second = alert("o1", 2, curve([2], [60001.0]))
    other = alert("o2", 9, curve([9], [60000.5]))
    windows = build_windows([first, other, second], {})
    both = curve([1, 2], [60000.0, 60001.0])
    assert same(windows.curves[0], first.light_curve) and same(windows.curves[1], other.light_curve)
    assert same(windows.curves[2], both) and same(windows.merged["o1"], both)
    assert set(windows.merged) == {"o1", "o2"}


def test_the_model_is_shown_the_context_fields_its_training_gave_the_survey():
    full = context_vector(real_bogus=0.9, n_detections_history=12, ss_distance_arcsec=np.inf)
    rubin = dataclasses.replace(alert("r", 1, curve([1], [60000.0])), context=full)
    ztf = dataclasses.replace(alert("z", 2, curve([2], [60000.0])), survey="ztf", schema="ztf", context=full)
    windows = build_windows([rubin, ztf], {})
    np.testing.assert_array_equal(windows.contexts, [full, full])  # the rules see every field
    shown = windows.model_contexts
    assert np.isnan(shown[0, CONTEXT_INDEX["real_bogus"]]) and shown[0, CONTEXT_INDEX["ss_distance_arcsec"]] == np.inf
    np.testing.assert_array_equal(shown[1], full)
    # the simulated Rubin curves the model learnt from carry exactly the fields it is shown
    drawn = draw_contexts(np.array([2222, 9000]), np.array([60000.0, 60000.0]), "lsst", np.random.default_rng(0))
    shown_fields = ~np.isnan(model_context(np.zeros((1, N_CONTEXT)), ["rubin"], LEGACY_CONTEXT_FIELDS_BY_SURVEY))[0]
    assert (~np.isnan(drawn) == shown_fields).all()


def test_a_model_with_a_wider_table_is_shown_rubins_reliability_and_history():
    full = context_vector(real_bogus=0.9, first_detection_mjd_tai=59990.0, n_detections_history=12,
                          ss_distance_arcsec=np.inf)
    rubin = dataclasses.replace(alert("r", 1, curve([1], [60000.0])), context=full)
    wide = {"rubin": ("real_bogus", "first_detection_mjd_tai", "ss_distance_arcsec")}
    shown = build_windows([rubin], {}, wide).model_contexts[0]
    assert shown[CONTEXT_INDEX["real_bogus"]] == 0.9 and shown[CONTEXT_INDEX["first_detection_mjd_tai"]] == 59990.0
    assert np.isnan(shown[CONTEXT_INDEX["n_detections_history"]])
