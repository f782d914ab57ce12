"""models.taxonomy: class ids, index maps and the two scores."""
import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from models.taxonomy import (CLASS_IDS, CLASS_NAMES, ELASTICC_OUTPUT_IDS, FLARE_ID, ID_TO_INDEX, N_CLASSES,
                             NOT_CLASSIFIED_ID, RESIDUAL_ID, SN_LIKE_IDS, SOLAR_SYSTEM_ID, class_id, class_indices,
                             class_name, flare_likelihood, sn_likelihood)

ELASTICC_CSV = Path(__file__).resolve().parents[2] / "data" / "elasticc" / "taxonomy_classIds.csv"


@pytest.mark.skipif(not ELASTICC_CSV.exists(), reason="ELAsTiCC2 taxonomy file not present")
def test_ids_and_names_match_elasticc2():
    with ELASTICC_CSV.open() as f:
        names = {int(row["classId"]): row["name"] for row in csv.DictReader(f)}
    elasticc = [c for c in CLASS_IDS if c != SOLAR_SYSTEM_ID]
    assert [names[c] for c in elasticc] == [CLASS_NAMES[ID_TO_INDEX[c]] for c in elasticc]
    assert SOLAR_SYSTEM_ID not in names  # alertformer's own class, published as Residual
    assert names[RESIDUAL_ID] == "Residual" and names[NOT_CLASSIFIED_ID] == "NotClassified"
    assert [c for c in ELASTICC_OUTPUT_IDS if c not in names] == []
    assert ELASTICC_OUTPUT_IDS[ID_TO_INDEX[SOLAR_SYSTEM_ID]] == RESIDUAL_ID


def test_index_maps():
    assert N_CLASSES == 12 == len(set(CLASS_IDS))  # 11 ELAsTiCC2 classes and the Solar System
    assert all(CLASS_IDS[ID_TO_INDEX[c]] == c for c in CLASS_IDS)
    assert class_indices([2332, 2222, FLARE_ID]).tolist() == [10, 0, 4]
    with pytest.raises(ValueError, match="2225"):
        class_indices([2222, 2225])


def test_scores_on_numpy_and_torch():
    probs = np.random.default_rng(0).dirichlet(np.ones(N_CLASSES), size=5)  # (5, C)
    sn = sn_likelihood(probs)
    expected = sum(probs[:, ID_TO_INDEX[c]] for c in SN_LIKE_IDS)
    np.testing.assert_allclose(sn, expected)
    np.testing.assert_allclose(flare_likelihood(probs), probs[:, ID_TO_INDEX[FLARE_ID]])
    t = torch.from_numpy(probs)
    assert isinstance(sn_likelihood(t), torch.Tensor)
    np.testing.assert_allclose(sn_likelihood(t).numpy(), sn)
    assert np.all((sn >= 0) & (sn + flare_likelihood(probs) <= 1 + 1e-12))
    with pytest.raises(ValueError, match="shape"):
        sn_likelihood(probs[:, :-1])


# (spelling, class id): the canonical ELAsTiCC2 names, ids, and the usual other spellings.
SPELLINGS = [
    ("Ia", 2222), ("SN Ia", 2222), ("SNIa", 2222), ("sn-ia", 2222), ("ia", 2222), ("2222", 2222), (2222, 2222),
    ("Ib/c", 2223), ("SN Ibc", 2223), ("Ic", 2223), ("II", 2224), ("SN II", 2224), ("SN IIP", 2224),
    ("KN", 2232), ("kilonova", 2232), ("Kilonova", 2232),
    ("M-dwarf Flare", 2233), ("M-dwarf flare", 2233), ("flare", 2233), ("M dwarf flare", 2233),
    ("Dwarf Novae", 2234), ("dwarf nova", 2234), ("SLSN", 2242), ("SLSN-I", 2242), ("TDE", 2243),
    ("RR Lyrae", 2323), ("RRL", 2323), ("EB", 2325), ("eclipsing binary", 2325), ("AGN", 2332),
    (np.int64(2243), 2243),
]


@pytest.mark.parametrize("spelling, expected", SPELLINGS)
def test_class_id_accepts_the_usual_spellings(spelling, expected):
    assert class_id(spelling) == expected
    assert class_name(spelling) == CLASS_NAMES[CLASS_IDS.index(expected)]


def test_every_canonical_name_maps_to_its_own_id():
    assert [class_id(name) for name in CLASS_NAMES] == list(CLASS_IDS)


def test_the_simulators_class_names_are_accepted():
    from training.simulate import CLASS_IDS as SIMULATOR_IDS  # the names its label files carry

    assert {name: class_id(name) for name in SIMULATOR_IDS} == SIMULATOR_IDS


@pytest.mark.parametrize("bad", ["Iax", "SN", "", "9999", 200, "supernova"])
def test_unknown_classes_are_named_in_the_error(bad):
    with pytest.raises(ValueError, match=f"{bad!r} is not one of the model's classes .*2222 Ia"):
        class_id(bad)
