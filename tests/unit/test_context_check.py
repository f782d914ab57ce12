"""The days a source was detected before its window, as the context check compares them."""
import numpy as np

from models.context import CONTEXT_INDEX, N_CONTEXT
from models.lightcurve import LightCurve
from training.context_check import window_history_days

FIRST = CONTEXT_INDEX["first_detection_mjd_tai"]


def test_window_history_days_is_the_models_never_negative_lead_of_the_first_detection():
    def curve(mjd, detected):
        n = len(mjd)
        return LightCurve.from_arrays(np.arange(n), mjd, np.zeros(n), np.full(n, 100.0), np.full(n, 10.0), detected)

    curves = [curve([59990.0, 60010.0], [False, True]), curve([60010.0], [True]), curve([60010.0], [True])]
    contexts = np.full((3, N_CONTEXT), np.nan)
    contexts[:, FIRST] = [60000.0, 60020.0, np.nan]  # 10 days before; after the window (clock skew); unknown
    days = window_history_days(curves, contexts)
    assert days[0] == 10.0 and days[1] == 0.0 and np.isnan(days[2])
