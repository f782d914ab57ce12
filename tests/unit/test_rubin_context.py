"""Which context fields a model is shown, per survey, is its checkpoint's; simulated Rubin contexts follow it."""
import numpy as np
import pytest
import torch

from models.checkpoint import CheckpointMismatch, load_checkpoint
from models.context import CONTEXT_INDEX, LEGACY_CONTEXT_FIELDS_BY_SURVEY, N_CONTEXT, context_vector, valid_context
from models.errors import ConfigError
from models.lightcurve import LightCurve
from models.model import ModelConfig
from models.taxonomy import SOLAR_SYSTEM_ID
from stream.alert import AlertBatch, DecodedAlert
from stream.config import ScoringSettings
from stream.score import SHIPPED_CHECKPOINT, Scorer
from stream.window import build_windows, first_detection_mjd_tai
from training import sim_context
from training.datasets import simulated
from training.recipe import DEFAULTS, TrainConfig, load_recipe
from training.sim_survey import SURVEY_START_MJD_TAI

WIDE = {"rubin": ("real_bogus", "first_detection_mjd_tai", "ss_distance_arcsec")}
LONG_LIVED_ID, SN_IA_ID = 2332, 2222


def with_table(tmp_path, table) -> str:
    """A copy of the shipped checkpoint whose model_config carries `table` (None: no entry, as shipped)."""
    ckpt = torch.load(SHIPPED_CHECKPOINT, weights_only=True)
    ckpt["model_config"].pop("context_fields_by_survey", None)
    if table is not None:
        ckpt["model_config"]["context_fields_by_survey"] = table
    path = tmp_path / f"model-{len(list(tmp_path.iterdir()))}.pt"
    torch.save(ckpt, path)
    return path


def scorer_of(path) -> Scorer:
    torch.set_num_threads(1)
    return Scorer.from_file(path, "test", ScoringSettings())


def rubin_alerts(real_bogus: float, survey: str = "rubin") -> AlertBatch:
    """Four alerts of one survey whose packets say reliability, history and no asteroid nearby."""
    rng = np.random.default_rng(5)
    alerts = []
    for i in range(4):
        n = 3 + i
        curve = LightCurve.from_arrays(np.arange(n) + 100 * i, 60900.0 + np.sort(rng.uniform(0, 20, n)),
                                       np.full(n, 2), rng.uniform(300, 3000, n), np.full(n, 50.0), np.ones(n, bool))
        context = context_vector(real_bogus=real_bogus, first_detection_mjd_tai=60600.0 + 50 * i,
                                 n_detections_history=40, ss_distance_arcsec=np.inf)
        alerts.append(DecodedAlert(survey=survey, schema="lsst.v9_0" if survey == "rubin" else "ztf",
                                   object_id=f"o{i}", alert_id=100 * i + n - 1, source_id=100 * i + n - 1,
                                   ra_deg=10.0, dec_deg=-5.0, light_curve=curve, context=context))
    return AlertBatch.from_alerts(alerts)


def probabilities(scorer: Scorer, alerts: AlertBatch) -> np.ndarray:
    """The service's path: windows with the scorer's model's table, then its scores."""
    windows = build_windows(alerts, {}, scorer.context_fields_by_survey)
    return scorer.score(windows.curves, windows.model_contexts).probs


def test_a_checkpoint_without_a_table_is_shown_the_solar_system_association_alone_and_scores_as_before(tmp_path):
    shipped = scorer_of(SHIPPED_CHECKPOINT)
    assert shipped.context_fields_by_survey == LEGACY_CONTEXT_FIELDS_BY_SURVEY
    explicit = scorer_of(with_table(tmp_path, {"rubin": ["ss_distance_arcsec"]}))
    for survey in ("rubin", "ztf"):
        alerts = rubin_alerts(0.9, survey)
        np.testing.assert_array_equal(probabilities(shipped, alerts), probabilities(explicit, alerts))
    # what the table leaves out of a Rubin alert, the model never sees: its reliability changes nothing
    np.testing.assert_array_equal(probabilities(shipped, rubin_alerts(0.05)), probabilities(shipped, rubin_alerts(0.95)))
    # by hand, the old rule: a Rubin alert's context minus everything but the solar-system association
    alerts = rubin_alerts(0.9)
    by_hand = np.full((len(alerts), N_CONTEXT), np.nan)
    by_hand[:, CONTEXT_INDEX["ss_distance_arcsec"]] = np.inf
    windows = build_windows(alerts, {}, shipped.context_fields_by_survey)
    np.testing.assert_array_equal(probabilities(shipped, alerts), shipped.score(windows.curves, by_hand).probs)


def test_a_checkpoint_with_the_wide_table_is_shown_a_rubin_alerts_reliability_and_history(tmp_path):
    wide = scorer_of(with_table(tmp_path, WIDE))
    assert wide.context_fields_by_survey == WIDE
    assert not np.array_equal(probabilities(wide, rubin_alerts(0.05)), probabilities(wide, rubin_alerts(0.95)))
    history = rubin_alerts(0.9)
    windows = build_windows(history, {}, wide.context_fields_by_survey)
    shown = windows.model_contexts[:, CONTEXT_INDEX["first_detection_mjd_tai"]]
    np.testing.assert_array_equal(shown, history.context[:, CONTEXT_INDEX["first_detection_mjd_tai"]])
    assert np.isnan(windows.model_contexts[:, CONTEXT_INDEX["n_detections_history"]]).all()


def test_a_table_naming_an_unknown_field_is_an_error_naming_it(tmp_path):
    with pytest.raises(ValueError, match="reliability"):
        ModelConfig(context_fields_by_survey={"rubin": ("reliability",)})
    with pytest.raises(CheckpointMismatch, match="reliability"):
        load_checkpoint(with_table(tmp_path, {"rubin": ["reliability"]}))
    with pytest.raises(ConfigError, match=r"rubin_context_fields: unknown context field\(s\) \['reliability'\]"):
        load_recipe(argv_overrides=["--rubin_context_fields=real_bogus,reliability"])
    with pytest.raises(ConfigError, match="reliability"):
        TrainConfig(rubin_context_fields="ss_distance_arcsec, reliability")


def test_the_recipe_shows_rubin_context_on_request_and_the_solar_system_association_by_default():
    assert DEFAULTS["rubin_context_fields"] == "ss_distance_arcsec"
    assert TrainConfig().context_fields_by_survey() == LEGACY_CONTEXT_FIELDS_BY_SURVEY
    assert scorer_of(SHIPPED_CHECKPOINT).context_fields_by_survey == LEGACY_CONTEXT_FIELDS_BY_SURVEY
    wide = load_recipe(argv_overrides=["--rubin_context_fields=" + ",".join(WIDE["rubin"])])
    assert TrainConfig(**wide).context_fields_by_survey() == WIDE
    assert TrainConfig(rubin_context_fields="").context_fields_by_survey() == {"rubin": ()}


@pytest.fixture
def small_pools(monkeypatch):
    """Real-context pools of a known real/bogus per class (the real ones decode every train packet)."""
    def pool(real_bogus: float) -> np.ndarray:
        contexts = np.full((5, N_CONTEXT), np.nan)
        contexts[:, CONTEXT_INDEX["real_bogus"]] = real_bogus
        return contexts

    pools = {cid: pool(0.3 if cid == SOLAR_SYSTEM_ID else 0.6 if cid in sim_context.LONG_LIVED else 0.9)
             for cid in sim_context.CONTEXT_SOURCES}
    monkeypatch.setattr(sim_context, "real_context_pools", lambda: pools)


def test_simulated_rubin_contexts_are_drawn_per_class_valid_and_masked_by_the_table(small_pools):
    s = simulated("val", 44, seed=3, survey="lsst", context_fields_by_survey=WIDE)
    class_ids, contexts = s.class_ids, s.contexts
    usable, absurd = valid_context(contexts)
    assert not absurd.any()
    shown = [CONTEXT_INDEX[f] for f in WIDE["rubin"]]
    hidden = np.setdiff1d(np.arange(N_CONTEXT), shown)
    assert np.isnan(contexts[:, hidden]).all()  # n_detections_history included: it would not follow the cuts
    real_bogus = contexts[:, CONTEXT_INDEX["real_bogus"]]
    np.testing.assert_array_equal(real_bogus, np.where(class_ids == SOLAR_SYSTEM_ID, 0.3,
                                                       np.where(np.isin(class_ids, sim_context.LONG_LIVED), 0.6, 0.9)))
    first = contexts[:, CONTEXT_INDEX["first_detection_mjd_tai"]]
    curve_first = first_detection_mjd_tai(s.curves)
    solar_system = class_ids == SOLAR_SYSTEM_ID
    assert np.isnan(first[solar_system]).all()  # a known asteroid has no diaObject
    np.testing.assert_array_equal(first[class_ids == SN_IA_ID], curve_first[class_ids == SN_IA_ID])
    long_lived = np.isin(class_ids, sim_context.LONG_LIVED)
    assert (first[long_lived] < curve_first[long_lived]).all()  # detected before the window...
    assert (first[long_lived] >= np.minimum(SURVEY_START_MJD_TAI, curve_first[long_lived])).all()  # ...by Rubin
    np.testing.assert_array_equal(contexts[:, CONTEXT_INDEX["ss_distance_arcsec"]],
                                  np.where(solar_system, 0.0, np.inf))
    legacy = simulated("val", 44, seed=3, survey="lsst")
    np.testing.assert_array_equal(legacy.contexts[:, CONTEXT_INDEX["ss_distance_arcsec"]],
                                  contexts[:, CONTEXT_INDEX["ss_distance_arcsec"]])
    assert np.isnan(np.delete(legacy.contexts, CONTEXT_INDEX["ss_distance_arcsec"], axis=1)).all()
    np.testing.assert_array_equal(legacy.class_ids, class_ids)  # the contexts are drawn after the curves
    assert all(np.array_equal(a.flux_njy, b.flux_njy) for a, b in zip(legacy.curves, s.curves))


def test_long_lived_rubin_sources_have_long_histories(small_pools):
    n = 400
    class_ids = np.repeat([LONG_LIVED_ID, SN_IA_ID], n // 2)
    first = np.full(n, SURVEY_START_MJD_TAI + 900.0)
    contexts = sim_context.draw_contexts(class_ids, first, "lsst", np.random.default_rng(0), WIDE)
    history_days = first - contexts[:, CONTEXT_INDEX["first_detection_mjd_tai"]]
    assert (history_days[class_ids == SN_IA_ID] == 0).all()
    agn = history_days[class_ids == LONG_LIVED_ID]
    assert agn.min() >= sim_context.LONG_HISTORY_DAYS[0] and agn.max() <= 900.0  # Rubin saw it from its start
    assert np.median(agn) > 300.0
