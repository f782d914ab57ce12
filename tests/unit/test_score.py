"""stream.score: chunked scoring matches one forward pass, int8 stays close to fp32, precision and threads settings."""
import numpy as np
import pytest
import torch

from models.checkpoint import save_checkpoint
from models.encode import encode
from models.lightcurve import LightCurve
from models.model import AlertTransformer, ModelConfig
from models.quantize import quantize_int8
from stream.config import ScoringSettings
from stream.errors import ConfigError
from stream.score import CPU_CHUNK_CURVES, Scorer, pick_precision, set_torch_threads

MJD0 = 60512.25
MAX_VISITS = 16


def make_curve(n: int, rng: np.random.Generator) -> LightCurve:
    t = MJD0 + np.sort(rng.uniform(0.0, 40.0, n))
    return LightCurve.from_arrays(np.arange(n), t, rng.integers(0, 9, n), rng.normal(0.0, 800.0, n),
                                  rng.uniform(50.0, 200.0, n), rng.random(n) < 0.6)


@pytest.fixture(scope="module")
def tiny_model() -> AlertTransformer:
    """A small model whose probabilities are far from uniform (a sharpened head), so differences show."""
    torch.manual_seed(0)
    model = AlertTransformer(ModelConfig(d_model=32, n_heads=2, n_layers=2, max_visits=MAX_VISITS)).eval()
    with torch.no_grad():
        model.head.weight.mul_(30.0)
    return model


@pytest.fixture(scope="module")
def curves() -> list[LightCurve]:
    rng = np.random.default_rng(3)
    return [make_curve(int(n), rng) for n in rng.integers(1, 3 * MAX_VISITS, 50)]


def test_chunked_scores_equal_one_forward_pass_in_input_order(tiny_model, curves):
    batch = encode(curves, max_visits=MAX_VISITS)
    expected = tiny_model.predict_proba(batch).numpy()
    assert expected.max(axis=1).mean() > 0.3  # far from uniform (1/11): a reordering would show
    whole = Scorer(tiny_model, "v", torch.device("cpu"), MAX_VISITS).score(curves)
    chunked = Scorer(tiny_model, "v", torch.device("cpu"), MAX_VISITS, chunk_curves=7).score(curves)
    for scores in (whole, chunked):
        np.testing.assert_allclose(scores.probs, expected, atol=1e-5)
        assert scores.n_visits.tolist() == [min(len(c), MAX_VISITS) for c in curves]
        assert scores.n_detections.tolist() == batch.mask.logical_and(batch.features[..., 2] > 0.5).sum(1).tolist()
    np.testing.assert_allclose(chunked.sn_likelihood, whole.sn_likelihood, atol=1e-5)


def test_score_rejects_an_empty_batch(tiny_model):
    with pytest.raises(ValueError, match="no light curves"):
        Scorer(tiny_model, "v", torch.device("cpu"), MAX_VISITS).score([])


def test_int8_quantisation_replaces_linear_layers_and_stays_close_to_fp32(tiny_model, curves):
    quantized = quantize_int8(tiny_model)
    assert not any(type(m) is torch.nn.Linear for m in quantized.modules())
    assert any(type(m) is torch.nn.Linear for m in tiny_model.modules())  # the original is left alone
    fp32 = Scorer(tiny_model, "v", torch.device("cpu"), MAX_VISITS).score(curves).probs
    int8 = Scorer(tiny_model, "v", torch.device("cpu"), MAX_VISITS, precision="int8").score(curves).probs
    assert not np.array_equal(int8, fp32)  # it is another computation
    np.testing.assert_allclose(int8.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(int8 - fp32).max() < 0.05 and np.abs(int8 - fp32).mean() < 0.01
    assert (int8.argmax(axis=1) == fp32.argmax(axis=1)).mean() >= 0.9


def test_precision_follows_the_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert pick_precision("auto", cpu) == "fp32" and pick_precision("int8", cpu) == "int8"
    with pytest.raises(ConfigError, match=r"scoring\.precision: bf16"):
        pick_precision("bf16", cpu)
    with pytest.raises(ConfigError, match=r"scoring\.precision: int8"):
        pick_precision("int8", cuda)
    assert pick_precision("fp32", cuda) == "fp32"


def test_from_file_applies_precision_and_default_chunks(tiny_model, tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", tiny_model)
    plain = Scorer.from_file(path, "v1", ScoringSettings(device="cpu", max_visits=MAX_VISITS))
    assert (plain.precision, plain.chunk_curves, plain.max_visits) == ("fp32", CPU_CHUNK_CURVES, MAX_VISITS)
    int8 = Scorer.from_file(path, "v1", ScoringSettings(device="cpu", precision="int8", forward_chunk_curves=5))
    assert (int8.precision, int8.chunk_curves, int8.n_params) == ("int8", 5, tiny_model.get_num_params())
    assert not any(type(m) is torch.nn.Linear for m in int8.model.modules())


def test_set_torch_threads_zero_keeps_the_default():
    before = torch.get_num_threads()
    try:
        set_torch_threads(0)
        assert torch.get_num_threads() == before
        set_torch_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
