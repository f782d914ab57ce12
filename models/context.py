"""Alert context: what a packet says about a source beyond its photometry.

A context is a float64 vector in `CONTEXT_FIELDS` order, one per alert, in physical
units and survey-neutral names; NaN means the packet does not say. Each decoder
fills what its survey carries (`stream.decode`), the follow-up rules test it, and
`valid_context` decides which values are usable: an absurd value (a negative
distance, a real/bogus score outside [0, 1]) is treated as missing and counted,
never passed on.

==============================  =====================================================================
field                           meaning (ZTF source; Rubin source)
==============================  =====================================================================
``real_bogus``                  probability the detection is real, 0..1 (``drb``, else ``rb``;
                                ``diaSource.reliability``)
``star_score``                  star-likeness of the nearest catalogued source, 0..1 (``sgscore1``)
``star_distance_arcsec``        distance to that source (``distpsnr1``); inf: none catalogued nearby
``first_detection_mjd_tai``     first detection of the source at this position, ever (``jdstarthist``;
                                ``diaObject.firstDiaSourceMjdTai``)
``n_detections_history``        detections at this position, ever (``ndethist``; ``diaObject.nDiaSources``)
``ss_distance_arcsec``          distance to the nearest known solar-system object (``ssdistnr``);
                                inf: none known; 0 for a Rubin source associated with an ``ssObjectId``
``gaia_distance_arcsec``        distance to the nearest Gaia source (``neargaia``); inf: none
``ref_distance_arcsec``         distance to the nearest source in the reference image (``distnr``)
``ref_mag_ab``                  that source's magnitude (``magnr``, AB)
``host_separation_arcsec``      distance to the likeliest host galaxy (ELAsTiCC ``hostgal_snsep``)
``host_redshift``               that galaxy's spectroscopic redshift, else its photometric one
                                (ELAsTiCC ``hostgal_zspec``, else ``hostgal_zphot``)
``host_mag_r_ab``               that galaxy's r magnitude (ELAsTiCC ``hostgal_mag_r``, AB)
==============================  =====================================================================

Fields are only ever appended to `CONTEXT_FIELDS`, so a context stored under an earlier,
shorter list (a Redis hash, a trainer snapshot) reads as the same fields plus NaN
(`pad_context`). The model is shown the fields of `models.encode.CONTEXT_FEATURES`; the host
fields are not among them (no training set carries hosts yet), but the rules and the live
state use them.

Which fields a model is shown, per survey, is the model's own: its checkpoint's
``ModelConfig.context_fields_by_survey`` (survey -> fields shown; a survey not listed is
shown every field), the fields its training gave that survey's curves, so that training and
serving agree. `model_context` applies such a table. A checkpoint written before checkpoints
carried one is shown, of a Rubin alert, only the solar-system association
(`LEGACY_CONTEXT_FIELDS_BY_SURVEY`), as is the shipped model; the recipe's ``rubin_context_fields``
(`training.recipe.TrainConfig`) can show a model Rubin's reliability and history too.
"""
import numpy as np

CONTEXT_FIELDS: tuple[str, ...] = (
    "real_bogus", "star_score", "star_distance_arcsec", "first_detection_mjd_tai", "n_detections_history",
    "ss_distance_arcsec", "gaia_distance_arcsec", "ref_distance_arcsec", "ref_mag_ab",
    "host_separation_arcsec", "host_redshift", "host_mag_r_ab",
)
N_CONTEXT = len(CONTEXT_FIELDS)
CONTEXT_INDEX: dict[str, int] = {name: i for i, name in enumerate(CONTEXT_FIELDS)}

# Usable ranges, inclusive; anything else (NaN included) is missing. Distances may be inf (none nearby).
_VALID_RANGE: dict[str, tuple[float, float]] = {
    "real_bogus": (0.0, 1.0),
    "star_score": (0.0, 1.0),
    "star_distance_arcsec": (0.0, np.inf),
    "first_detection_mjd_tai": (40000.0, 80000.0),  # 1968-2078
    "n_detections_history": (0.0, 1e7),
    "ss_distance_arcsec": (0.0, np.inf),
    "gaia_distance_arcsec": (0.0, np.inf),
    "ref_distance_arcsec": (0.0, np.inf),
    "ref_mag_ab": (0.0, 40.0),
    "host_separation_arcsec": (0.0, np.inf),
    "host_redshift": (0.0, 10.0),
    "host_mag_r_ab": (0.0, 40.0),
}
_LOW, _HIGH = (np.array([_VALID_RANGE[f][k] for f in CONTEXT_FIELDS]) for k in (0, 1))

# The table of a checkpoint written before checkpoints carried one (`models.model.ModelConfig`): its
# simulated Rubin curves were trained with the solar-system association alone.
LEGACY_CONTEXT_FIELDS_BY_SURVEY: dict[str, tuple[str, ...]] = {"rubin": ("ss_distance_arcsec",)}


def missing_context() -> np.ndarray:
    """(N_CONTEXT,) float64, all NaN: a packet that says nothing beyond its photometry."""
    return np.full(N_CONTEXT, np.nan)


def pad_context(contexts: np.ndarray) -> np.ndarray:
    """(B, N_CONTEXT) float64 of (B, K) `contexts` stored under the first K <= N_CONTEXT fields, NaN after them.

    >>> pad_context(np.zeros((1, N_CONTEXT - 3))).shape, int(np.isnan(pad_context(np.zeros((1, N_CONTEXT - 3)))).sum())
    ((1, 12), 3)
    """
    contexts = np.asarray(contexts, dtype=np.float64)
    if contexts.ndim != 2 or contexts.shape[1] > N_CONTEXT:
        raise ValueError(f"contexts of shape {contexts.shape}: expected (B, K) with K <= {N_CONTEXT}")
    out = np.full((len(contexts), N_CONTEXT), np.nan)
    out[:, :contexts.shape[1]] = contexts
    return out


def context_vector(**values) -> np.ndarray:
    """(N_CONTEXT,) float64 from keyword values by field name (None or absent = NaN).

    >>> v = context_vector(real_bogus=0.9, ss_distance_arcsec=None)
    >>> float(v[CONTEXT_INDEX["real_bogus"]]), bool(np.isnan(v[CONTEXT_INDEX["ss_distance_arcsec"]]))
    (0.9, True)
    """
    unknown = set(values) - set(CONTEXT_FIELDS)
    if unknown:
        raise ValueError(f"unknown context field(s) {sorted(unknown)}; known: {', '.join(CONTEXT_FIELDS)}")
    vector = missing_context()
    for name, value in values.items():
        if value is not None:
            vector[CONTEXT_INDEX[name]] = float(value)
    return vector


def context_fields(fields, where: str) -> tuple[str, ...]:
    """`fields` (names of `CONTEXT_FIELDS`) as a tuple; ValueError naming `where` and any unknown name.

    >>> context_fields(["real_bogus"], "x")
    ('real_bogus',)
    >>> context_fields(("reliability",), "rubin")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: rubin: unknown context field(s) ['reliability']; known: real_bogus, star_score, ...
    """
    if isinstance(fields, str):
        raise ValueError(f"{where}: {fields!r} is one string; expected a sequence of context field names")
    fields = tuple(fields)
    unknown = [f for f in fields if f not in CONTEXT_INDEX]
    if unknown:
        raise ValueError(f"{where}: unknown context field(s) {unknown}; known: {', '.join(CONTEXT_FIELDS)}")
    return fields


def model_context(contexts: np.ndarray, surveys, fields_by_survey: dict[str, tuple[str, ...]]) -> np.ndarray:
    """A copy of (B, N_CONTEXT) `contexts` as a model of table `fields_by_survey` is shown them: by each alert's
    survey ((B,) str: "rubin", "ztf", ...), the fields its survey's entry lacks set to NaN (missing); a survey
    without an entry keeps every field.

    >>> c = model_context(np.zeros((2, N_CONTEXT)), ["rubin", "ztf"], LEGACY_CONTEXT_FIELDS_BY_SURVEY)
    >>> int(np.isnan(c[0]).sum()), int(np.isnan(c[1]).sum())
    (11, 0)
    """
    out = np.array(contexts, dtype=np.float64, copy=True)
    surveys = np.asarray(surveys)
    for survey, shown in fields_by_survey.items():
        hidden = [CONTEXT_INDEX[f] for f in CONTEXT_FIELDS if f not in shown]
        out[np.ix_(surveys == survey, hidden)] = np.nan
    return out


def valid_context(context: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which values of a (B, N_CONTEXT) context array are usable, and which were absurd.

    Returns
    -------
    usable : (B, N_CONTEXT) bool
        Not NaN and within the field's range.
    absurd : (B, N_CONTEXT) bool
        Present (not NaN) but out of range: to be masked and counted.

    >>> usable, absurd = valid_context(np.array([[0.5, 2.0] + [np.nan] * (N_CONTEXT - 2)]))
    >>> usable[0, :2].tolist(), absurd[0, :2].tolist()
    ([True, False], [False, True])
    """
    context = np.asarray(context, dtype=np.float64)
    present = ~np.isnan(context)
    with np.errstate(invalid="ignore"):
        usable = present & (context >= _LOW) & (context <= _HIGH)
    return usable, present & ~usable
