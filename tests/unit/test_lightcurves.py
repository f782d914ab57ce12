"""models.lightcurves.LightCurves: many curves as columns; encode of the columns equals encode of the list."""
import numpy as np
import pytest
import torch

from models.context import context_vector
from models.encode import encode, encode_curves
from models.lightcurve import LightCurve
from models.lightcurves import LightCurves


def random_curve(rng, n: int, first_id: int) -> LightCurve:
    return LightCurve.from_arrays(first_id + np.arange(n), 60000.0 + np.sort(rng.uniform(0, 50, n)),
                                  rng.integers(0, 6, n), rng.normal(0, 500, n), rng.uniform(5, 50, n),
                                  rng.random(n) < 0.5)


def same(a: LightCurve, b: LightCurve) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in LightCurve.FIELDS)


@pytest.fixture
def curves():
    rng = np.random.default_rng(3)
    return [random_curve(rng, n, 100 * k) for k, n in enumerate([5, 0, 90, 1, 12])]


def test_list_round_trip_keeps_each_curve_and_its_id(curves):
    lcs = LightCurves.from_list(curves, ids=np.arange(10, 15))
    assert len(lcs) == 5 and lcs.n_points == sum(map(len, curves))
    assert lcs.lengths.tolist() == [len(c) for c in curves]
    assert all(same(a, b) for a, b in zip(lcs.to_list(), curves)) and same(lcs[2], curves[2])
    assert lcs.owner().tolist() == np.repeat(np.arange(5), [len(c) for c in curves]).tolist()


def test_take_and_concatenate_move_whole_curves_with_their_ids(curves):
    lcs = LightCurves.from_list(curves, ids=np.array(["a", "b", "c", "d", "e"], dtype=object))
    taken = lcs.take([4, 0, 2, 0])
    assert taken.ids.tolist() == ["e", "a", "c", "a"]
    assert all(same(taken[j], curves[i]) for j, i in enumerate([4, 0, 2, 0]))
    assert lcs.take(np.array([True, False, False, True, False])).ids.tolist() == ["a", "d"]
    both = LightCurves.concatenate([taken, lcs])
    assert len(both) == 9 and both.ids.tolist()[4:] == list("abcde") and same(both[8], curves[4])
    assert LightCurves.concatenate([taken, LightCurves.from_list(curves)]).ids is None  # not every part has ids


def test_inconsistent_columns_are_refused_naming_the_field(curves):
    lcs = LightCurves.from_list(curves)
    with pytest.raises(ValueError, match="flux_njy"):
        LightCurves(offsets=lcs.offsets, source_id=lcs.source_id, mjd_tai=lcs.mjd_tai, band=lcs.band,
                    flux_njy=lcs.flux_njy[:-1], flux_err_njy=lcs.flux_err_njy, is_detection=lcs.is_detection)
    with pytest.raises(ValueError, match="ids"):
        LightCurves.from_list(curves, ids=np.arange(4))
    with pytest.raises(ValueError, match="offsets"):
        LightCurves.from_points(np.array([1]), [np.zeros(1)] * 6).__class__(
            offsets=np.array([1, 2]), **{f: np.zeros(1) for f in LightCurves.FIELDS})


@pytest.mark.parametrize("max_visits", [1, 8, 64])
def test_encode_of_the_columns_is_encode_of_the_list(curves, max_visits):
    nonempty = [c for c in curves if len(c)]
    contexts = np.stack([context_vector(real_bogus=0.1 * k, first_detection_mjd_tai=59990.0) for k in range(4)])
    now = np.array([60030.0, 60060.0, 60060.0, 60060.0])
    for kwargs in ({}, {"now_mjd_tai": now}, {"contexts": contexts}):
        listed = encode(nonempty, max_visits=max_visits, **kwargs)
        columns = encode_curves(LightCurves.from_list(nonempty), max_visits=max_visits, **kwargs)
        for a, b in zip(listed.as_tuple(), columns.as_tuple()):
            assert torch.equal(a, b)


def test_encode_of_an_empty_curve_or_no_curve_names_it(curves):
    with pytest.raises(ValueError, match="light curve 1 of the batch is empty"):
        encode_curves(LightCurves.from_list(curves))
    with pytest.raises(ValueError, match="no light curves"):
        encode_curves(LightCurves.empty())
