"""The Python API (`alertformer.score`, `score_magnitudes`, `Model`): units, bands, errors, one predict path."""
import doctest
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.table import QTable, Table
from astropy.time import Time

from alertformer import FluxScaleWarning, Model, Score
from models.bands import parse_band_names
from models.lightcurve import LightCurve
from models.taxonomy import CLASS_IDS, CLASS_NAMES
from stream.score import Scorer

REPO = Path(__file__).resolve().parents[2]
# A young ZTF supernova: AB magnitudes rising from 19.6 to 18.3 over 9 days, errors 0.05-0.12 mag.
MJD = np.array([60000.15, 60000.20, 60002.18, 60002.25, 60004.16, 60005.21, 60007.19, 60009.22])
BANDS = ["ztf-g", "ztf-r", "ztf-g", "ztf-r", "ztf-g", "ztf-r", "ztf-g", "ztf-r"]
MAG_AB = np.array([19.6, 19.5, 19.1, 19.0, 18.8, 18.6, 18.5, 18.3])
MAG_ERR = np.array([0.12, 0.11, 0.09, 0.08, 0.07, 0.06, 0.06, 0.05])
FLUX_NJY = 10 ** ((31.4 - MAG_AB) / 2.5)
FLUX_ERR_NJY = np.log(10) / 2.5 * MAG_ERR * FLUX_NJY
PROB_TOLERANCE = 1e-4  # float32 rounding of the converted fluxes moves probabilities by ~1e-6


@pytest.fixture(scope="module")
def model() -> Model:
    return Model(device="cpu")


def columns(**changes) -> dict:
    return {"mjd": MJD, "band": BANDS} | changes


def probabilities(result: Score) -> np.ndarray:
    return np.array([result.probabilities[name] for name in CLASS_NAMES])


def test_the_result_names_classes_and_comes_from_the_streams_scorer(model):
    result = model.score(**columns(flux=FLUX_NJY, flux_err=FLUX_ERR_NJY), flux_unit="nJy")
    assert isinstance(model.scorer, Scorer)
    curve = LightCurve.from_arrays(np.arange(8), MJD, parse_band_names(BANDS), FLUX_NJY, FLUX_ERR_NJY, [True] * 8)
    expected = model.scorer.score([curve])
    np.testing.assert_array_equal(probabilities(result), expected.probs[0])
    assert list(result.probabilities) == list(CLASS_NAMES) and list(result.class_ids.values()) == list(CLASS_IDS)
    assert result.top_class == CLASS_NAMES[int(np.argmax(expected.probs[0]))]
    assert result.class_ids[result.top_class] == result.top_class_id
    assert result.sn_likelihood == pytest.approx(sum(result.probabilities[c] for c in ("Ia", "Ib/c", "II", "SLSN")))
    assert result.flare_likelihood == result.probabilities["M-dwarf Flare"]
    assert (result.n_visits, result.n_detections, result.model_version) == (8, 8, model.version)


# Each the same curve: (columns, options).
SAME_CURVE = {
    "nJy": (columns(flux=FLUX_NJY, flux_err=FLUX_ERR_NJY), {"flux_unit": "nJy"}),
    "uJy": (columns(flux=FLUX_NJY / 1e3, flux_err=FLUX_ERR_NJY / 1e3), {"flux_unit": "uJy"}),
    "µJy": (columns(flux=FLUX_NJY / 1e3, flux_err=FLUX_ERR_NJY / 1e3), {"flux_unit": "µJy"}),
    "mJy": (columns(flux=FLUX_NJY / 1e6, flux_err=FLUX_ERR_NJY / 1e6), {"flux_unit": "mJy"}),
    "astropy unit": (columns(flux=FLUX_NJY / 1e3, flux_err=FLUX_ERR_NJY / 1e3), {"flux_unit": u.uJy}),
    "Quantity": (columns(flux=FLUX_NJY / 1e6 * u.mJy, flux_err=FLUX_ERR_NJY / 1e6 * u.mJy), {}),
    "Quantities in two units": (columns(flux=FLUX_NJY / 1e6 * u.mJy, flux_err=FLUX_ERR_NJY / 1e3 * u.uJy), {}),
    "cgs Quantity": (columns(flux=(FLUX_NJY * u.nJy).to(u.erg / u.s / u.cm**2 / u.Hz),
                             flux_err=(FLUX_ERR_NJY * u.nJy).to(u.erg / u.s / u.cm**2 / u.Hz)), {}),
    "bare letters": (columns(band=[b[-1] for b in BANDS], flux=FLUX_NJY, flux_err=FLUX_ERR_NJY),
                     {"flux_unit": "nJy", "survey": "ztf"}),
    "other spellings": (columns(band=[b.replace("-", "").upper() for b in BANDS], flux=FLUX_NJY,
                                flux_err=FLUX_ERR_NJY), {"flux_unit": "nJy"}),
    "Time (UTC)": (columns(mjd=Time(MJD, format="mjd", scale="tai").utc, flux=FLUX_NJY, flux_err=FLUX_ERR_NJY),
                   {"flux_unit": "nJy"}),
}


@pytest.mark.parametrize("case", list(SAME_CURVE))
def test_the_same_curve_in_other_units_scores_the_same(model, case):
    reference = probabilities(model.score(**SAME_CURVE["nJy"][0], flux_unit="nJy"))
    given, options = SAME_CURVE[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error", FluxScaleWarning)  # the right unit warns of nothing
        result = model.score(**given, **options)
    np.testing.assert_allclose(probabilities(result), reference, atol=PROB_TOLERANCE)


def test_magnitudes_and_tables_score_the_same(model):
    reference = probabilities(model.score(**columns(flux=FLUX_NJY, flux_err=FLUX_ERR_NJY), flux_unit="nJy"))
    results = [
        model.score_magnitudes(**columns(mag=MAG_AB, mag_err=MAG_ERR)),
        model.score_magnitudes(**columns(mag=MAG_AB * u.ABmag, mag_err=MAG_ERR * u.mag)),
        model.score(Table({"mjd": MJD, "band": BANDS, "flux": FLUX_NJY / 1e3, "flux_err": FLUX_ERR_NJY / 1e3,
                           "ra": np.zeros(8)}), flux_unit="uJy"),
        model.score(QTable({"mjd": Time(MJD, format="mjd", scale="tai"), "band": BANDS,
                            "flux": FLUX_NJY * u.nJy, "flux_err": FLUX_ERR_NJY * u.nJy})),
        model.score(Table({"mjd": MJD, "band": BANDS, "flux": FLUX_NJY / 1e3 * u.uJy,
                           "flux_err": FLUX_ERR_NJY / 1e3 * u.uJy})),  # a Table's columns with units
    ]
    for result in results:
        np.testing.assert_allclose(probabilities(result), reference, atol=PROB_TOLERANCE)


def test_a_pandas_frame_scores_the_same(model):
    pandas = pytest.importorskip("pandas")  # not a dependency of alertformer
    reference = probabilities(model.score(**columns(flux=FLUX_NJY, flux_err=FLUX_ERR_NJY), flux_unit="nJy"))
    frame = pandas.DataFrame({"mjd": MJD, "band": BANDS, "mag": MAG_AB, "mag_err": MAG_ERR,
                              "is_detection": True, "source_id": np.arange(100, 108)})
    np.testing.assert_allclose(probabilities(model.score_magnitudes(frame)), reference, atol=PROB_TOLERANCE)


@pytest.mark.parametrize("scale, stated, intended", [
    (1e-3, "nJy", "uJy"),  # µJy values passed as nJy: the 0.83 -> 0.08 top-1
    (1e-6, "nJy", "mJy"),
    (1e3, "uJy", "nJy"),  # nJy values passed as µJy
])
def test_a_flux_scale_implausible_for_the_survey_warns_naming_the_likely_unit(model, scale, stated, intended):
    flux_unit = {"nJy": 1.0, "uJy": 1e3}[stated]
    with pytest.warns(FluxScaleWarning, match=rf"passed as .*\(flux_unit='{intended}'\)") as record:
        model.score(**columns(flux=FLUX_NJY * scale / flux_unit, flux_err=FLUX_ERR_NJY * scale / flux_unit),
                    flux_unit=stated)
    assert record[0].filename == __file__  # points at the caller's line


def test_magnitudes_passed_as_flux_warn(model):
    with pytest.warns(FluxScaleWarning, match="magnitudes passed as flux"):
        model.score(**columns(flux=MAG_AB, flux_err=MAG_ERR), flux_unit="nJy")


def test_faint_lsst_detections_do_not_warn(model):
    """Detections at the LSST 5-sigma depth (AB 24.4 in r: 631 nJy) are plausible."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FluxScaleWarning)
        model.score(mjd=MJD, band=["lsst-r"] * 8, flux=np.full(8, 631.0), flux_err=np.full(8, 126.0),
                    flux_unit="nJy")


def test_repeated_source_ids_are_an_error(model):
    with pytest.raises(ValueError, match=r"source_id: 1 id\(s\) repeated \(e.g. 0 8 times\)"):
        model.score(**columns(flux=FLUX_NJY, flux_err=FLUX_ERR_NJY, source_id=np.zeros(8, int)), flux_unit="nJy")
    unique = model.score(**columns(flux=FLUX_NJY, flux_err=FLUX_ERR_NJY, source_id=[f"s{i}" for i in range(8)]),
                         flux_unit="nJy")
    assert unique.n_visits == 8


# (columns, options, words the error must contain)
BAD_INPUT = [
    (columns(flux=FLUX_NJY, flux_err=FLUX_ERR_NJY), {}, "flux_unit: needed for plain numbers"),
    (columns(flux=FLUX_NJY, flux_err=FLUX_ERR_NJY), {"flux_unit": "furlong"}, "flux_unit 'furlong'"),
    (columns(flux=FLUX_NJY, flux_err=FLUX_ERR_NJY), {"flux_unit": "m"}, "not a spectral flux density"),
    (columns(flux=FLUX_NJY * u.nJy, flux_err=FLUX_ERR_NJY), {}, "flux_err: plain numbers beside flux in nJy"),
    (columns(flux=MAG_AB * u.ABmag, flux_err=MAG_ERR * u.mag), {}, "score_magnitudes"),
    (columns(flux=FLUX_NJY[:5], flux_err=FLUX_ERR_NJY), {"flux_unit": "nJy"}, "flux: shape (5,), expected (8,)"),
    (columns(flux=np.where(np.arange(8) == 3, np.nan, FLUX_NJY), flux_err=FLUX_ERR_NJY), {"flux_unit": "nJy"},
     "flux: 1 of 8 value(s) not finite"),
    (columns(flux=FLUX_NJY, flux_err=-FLUX_ERR_NJY), {"flux_unit": "nJy"}, "flux_err: 8 of 8 error(s) not positive"),
    (columns(mjd=MJD + 2400000.5, flux=FLUX_NJY, flux_err=FLUX_ERR_NJY), {"flux_unit": "nJy"},
     "mjd: values like 2460009.7 are Julian dates"),
    (columns(band=["g"] * 8, flux=FLUX_NJY, flux_err=FLUX_ERR_NJY), {"flux_unit": "nJy"},
     "band 'g': a bare letter needs survey="),
    (columns(band=["hst-g"] * 8, flux=FLUX_NJY, flux_err=FLUX_ERR_NJY), {"flux_unit": "nJy"}, "band 'hst-g'"),
    ({"mjd": MJD, "band": BANDS, "flux": FLUX_NJY}, {"flux_unit": "nJy"}, "flux_err: missing"),
    (columns(flux=FLUX_NJY, flux_err=FLUX_ERR_NJY), {"flux_unit": "nJy", "host_z": 0.1},
     "host_z: not a light-curve column"),
    (columns(mag=MAG_AB, mag_err=MAG_ERR), {}, "mag, mag_err: magnitudes are scored by score_magnitudes"),
]


@pytest.mark.parametrize("given, options, words", BAD_INPUT)
def test_bad_input_names_the_field(model, given, options, words):
    with pytest.raises(ValueError) as err:
        model.score(**given, **options)
    assert words in str(err.value)


def test_bad_magnitudes_name_the_field(model):
    with pytest.raises(ValueError, match=r"mag: 8 value\(s\) outside -5..40 .* are not AB magnitudes"):
        model.score_magnitudes(**columns(mag=FLUX_NJY, mag_err=MAG_ERR))
    with pytest.raises(ValueError, match="mjd: given both as a column of data and as a keyword"):
        model.score_magnitudes(columns(mag=MAG_AB, mag_err=MAG_ERR), mjd=MJD)


def test_the_readme_example_runs():
    failures, tried = doctest.testfile(str(REPO / "README.md"), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert tried >= 3 and failures == 0  # the example: import, score, the result


def test_importing_alertformer_stays_light():
    """``import alertformer`` loads no numpy; the API loads torch only when a model is loaded."""
    code = ("import sys, alertformer; light = 'numpy' not in sys.modules; "
            "from alertformer import score, Model; print(light, 'torch' not in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.stdout.split() == ["True", "True"], result.stderr
