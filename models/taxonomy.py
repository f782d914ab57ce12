"""The ELAsTiCC2 classes the model covers, their names, and the scores read from them.

Class ids and names come from ELAsTiCC2's ``taxonomy_classIds.csv``
(SCIENCE.md section 2); the subset is embedded here so nothing reads the
shared file at run time. The model's output index ``i`` is class
``CLASS_IDS[i]``; a checkpoint records ``CLASS_IDS`` and loading one made for
another list is an error (`models.checkpoint`).

One class is alertformer's own, not ELAsTiCC2's: ``Solar System`` (`SOLAR_SYSTEM_ID`,
9000), the asteroids that fill a real stream's first detections. Its probability is
published under ELAsTiCC2's Residual (200) in brokerClassification records
(`ELASTICC_OUTPUT_IDS`), and under its own id in alertformer's scored records.

SN-like, for ``sn_likelihood``, means "a supernova": Ia, Ib/c, II and SLSN.
ELAsTiCC files SLSN under Non-Recurring/Long rather than SN-like, but a
superluminous supernova is a young supernova worth follow-up, which is the
question this score answers. TDE and KN are not supernovae and stay out.

The ELAsTiCC2 name is each class's one canonical spelling (`ID_TO_NAME`, in every output);
`class_id` accepts it and the usual other spellings (``SN Ia``, ``kilonova``, ``flare``, ...).
"""
import re

import numpy as np

# (ELAsTiCC2 class id, ELAsTiCC2 name), in model output order.
_CLASSES: tuple[tuple[int, str], ...] = (
    (2222, "Ia"),
    (2223, "Ib/c"),
    (2224, "II"),
    (2232, "KN"),
    (2233, "M-dwarf Flare"),
    (2234, "Dwarf Novae"),
    (2242, "SLSN"),
    (2243, "TDE"),
    (2323, "RR Lyrae"),
    (2325, "EB"),
    (2332, "AGN"),
    (9000, "Solar System"),
)
CLASS_IDS: tuple[int, ...] = tuple(cid for cid, _ in _CLASSES)
CLASS_NAMES: tuple[str, ...] = tuple(name for _, name in _CLASSES)
N_CLASSES = len(CLASS_IDS)
ID_TO_INDEX: dict[int, int] = {cid: i for i, cid in enumerate(CLASS_IDS)}
ID_TO_NAME: dict[int, str] = dict(_CLASSES)

# Other spellings of each class, accepted wherever a class is named (`class_id`): compared after
# `_squash` (lower case, letters and digits only), and also without a leading "sn".
_ALIASES: dict[int, tuple[str, ...]] = {
    2222: ("SN Ia", "type Ia"),
    2223: ("SN Ib/c", "Ibc", "Ib", "Ic", "stripped envelope"),
    2224: ("SN II", "IIP", "IIL", "IIn"),
    2232: ("kilonova",),
    2233: ("flare", "M-dwarf", "stellar flare", "M dwarf flare"),
    2234: ("dwarf nova", "DN", "cataclysmic variable", "CV"),
    2242: ("superluminous supernova", "SLSN-I", "SLSN-II"),
    2243: ("tidal disruption event",),
    2323: ("RRL", "RR Lyr"),
    2325: ("eclipsing binary",),
    2332: ("active galactic nucleus", "QSO"),
    9000: ("asteroid", "solar system object", "SSO", "minor planet"),
}


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _names_to_ids() -> dict[str, int]:
    table = {}
    for cid, name in (*_CLASSES, *((cid, alias) for cid, aliases in _ALIASES.items() for alias in aliases)):
        table[_squash(name)] = cid
        table.setdefault(_squash(name).removeprefix("sn"), cid)
    return table


_NAME_TO_ID = _names_to_ids()


def class_id(name_or_id) -> int:
    """The ELAsTiCC2 class id of a class id or name, in any usual spelling.

    Names are compared in lower case with letters and digits only, and "SN" in front
    may be left out: ``SN Ia``, ``SNIa``, ``ia``; ``KN``, ``kilonova``; ``M-dwarf Flare``,
    ``flare``. Ids may be ints or digit strings.

    Parameters
    ----------
    name_or_id : int or str

    Returns
    -------
    int
        One of `CLASS_IDS`.

    Raises
    ------
    ValueError
        Naming the input and the model's classes.

    >>> class_id("SN Ia"), class_id("kilonova"), class_id("m-dwarf flare"), class_id("2243"), class_id(2323)
    (2222, 2232, 2233, 2243, 2323)
    """
    if isinstance(name_or_id, (int, np.integer)) or str(name_or_id).strip().isdigit():
        cid = int(name_or_id)
    else:
        key = _squash(str(name_or_id))
        cid = _NAME_TO_ID.get(key, _NAME_TO_ID.get(key.removeprefix("sn")))
    if cid not in ID_TO_NAME:
        known = ", ".join(f"{c} {n}" for c, n in _CLASSES)
        raise ValueError(f"{name_or_id!r} is not one of the model's classes ({known})")
    return cid


def class_name(name_or_id) -> str:
    """The canonical (ELAsTiCC2) name of a class given by id or any spelling `class_id` accepts.

    >>> class_name(2222), class_name("flare"), class_name("SN II")
    ('Ia', 'M-dwarf Flare', 'II')
    """
    return ID_TO_NAME[class_id(name_or_id)]


# Meta classes of the brokerClassification schema, never model outputs.
RESIDUAL_ID = 200  # the probability a partial classifier leaves unassigned
NOT_CLASSIFIED_ID = 300  # declined, e.g. too few points
SOLAR_SYSTEM_ID = 9000  # alertformer's own class: a (known or unknown) asteroid
# Class ids in brokerClassification records: ELAsTiCC2's, with alertformer's own classes under Residual.
ELASTICC_OUTPUT_IDS: tuple[int, ...] = tuple(RESIDUAL_ID if cid == SOLAR_SYSTEM_ID else cid for cid in CLASS_IDS)

SN_LIKE_IDS: tuple[int, ...] = (2222, 2223, 2224, 2242)
FLARE_ID = 2233
IA_ID = 2222
SN_LIKE_INDICES: tuple[int, ...] = tuple(ID_TO_INDEX[cid] for cid in SN_LIKE_IDS)
FLARE_INDEX = ID_TO_INDEX[FLARE_ID]
IA_INDEX = ID_TO_INDEX[IA_ID]


def class_indices(class_ids) -> np.ndarray:
    """Map ELAsTiCC2 class ids to model output indices.

    Parameters
    ----------
    class_ids : (N,) array-like of int
        ELAsTiCC2 class ids, each one of `CLASS_IDS`.

    Returns
    -------
    (N,) int64 ndarray
        Index of each id in `CLASS_IDS`.

    Raises
    ------
    ValueError
        Naming the first id the model does not cover.

    >>> class_indices([2222, 2233]).tolist()
    [0, 4]
    """
    try:
        return np.fromiter((ID_TO_INDEX[int(c)] for c in class_ids), dtype=np.int64)
    except KeyError as err:
        raise ValueError(f"class id {err.args[0]} is not one of the model's classes {CLASS_IDS}") from None


def _check_probs(probs) -> None:
    if probs.ndim != 2 or probs.shape[-1] != N_CLASSES:
        raise ValueError(f"probs: shape {tuple(probs.shape)}, expected (B, {N_CLASSES})")


def sn_likelihood(probs):
    """Probability that each object is a supernova: the sum over `SN_LIKE_IDS`.

    Parameters
    ----------
    probs : (B, C) ndarray or torch.Tensor
        Class probabilities in `CLASS_IDS` order, C = `N_CLASSES`.

    Returns
    -------
    (B,) ndarray or torch.Tensor, same type as ``probs``

    >>> p = np.full((1, N_CLASSES), 1 / N_CLASSES)
    >>> round(float(sn_likelihood(p)[0]), 4)
    0.3333
    """
    _check_probs(probs)
    return probs[:, list(SN_LIKE_INDICES)].sum(-1)  # (B,)


def flare_likelihood(probs):
    """Probability that each object is an M-dwarf flare (`FLARE_ID`).

    Parameters
    ----------
    probs : (B, C) ndarray or torch.Tensor
        Class probabilities in `CLASS_IDS` order, C = `N_CLASSES`.

    Returns
    -------
    (B,) ndarray or torch.Tensor, same type as ``probs``

    >>> p = np.eye(N_CLASSES)[[FLARE_INDEX]]
    >>> flare_likelihood(p).tolist()
    [1.0]
    """
    _check_probs(probs)
    return probs[:, FLARE_INDEX]  # (B,)
