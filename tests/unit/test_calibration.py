"""Temperature fitting (models.calibration) and the expected calibration error it is judged by (training.metrics)."""
import math

import numpy as np
import pytest
import torch

from models.calibration import MAX_TEMPERATURE, MIN_TEMPERATURE, fit_temperature, temperature_nll
from models.encode import encode
from models.lightcurve import LightCurve
from models.model import AlertTransformer, ModelConfig
from training.metrics import expected_calibration_error


def _calibrated_logits(n: int, n_classes: int, scale: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and labels drawn from softmax(logits): a perfectly calibrated model."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, n_classes, generator=g, dtype=torch.float64) * scale  # (N, C)
    labels = torch.multinomial(logits.softmax(-1), 1, generator=g).squeeze(1)  # (N,)
    return logits, labels


@pytest.mark.parametrize("true_temperature", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_a_known_temperature(true_temperature):
    logits, labels = _calibrated_logits(20000, 11, 2.0, seed=1)
    fitted = fit_temperature(logits * true_temperature, labels)  # over- or under-confident by T
    assert fitted == pytest.approx(true_temperature, rel=0.05)


def test_fitted_temperature_minimises_the_nll():
    logits, labels = _calibrated_logits(5000, 5, 3.0, seed=2)
    t = fit_temperature(logits * 1.7, labels)
    best = temperature_nll(logits * 1.7, labels, t)
    for other in (t * 0.9, t * 1.1):
        assert temperature_nll(logits * 1.7, labels, other) > best


def test_fit_temperature_stays_in_bounds_and_validates():
    logits = torch.tensor([[5.0, 0.0], [0.0, 5.0]])
    assert MIN_TEMPERATURE <= fit_temperature(logits, torch.tensor([0, 1])) <= MIN_TEMPERATURE * 1.01  # separable
    assert fit_temperature(logits, torch.tensor([1, 0])) == pytest.approx(MAX_TEMPERATURE, rel=0.01)  # all wrong
    with pytest.raises(ValueError):
        fit_temperature(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long))
    assert fit_temperature(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), [0, 1, 1]) > 0  # array-likes too


def test_ece_on_a_hand_example():
    # Bin (0.8, 0.9]: confidences 0.9, 0.9, one right -> |0.5 - 0.9| = 0.4, weight 2/5.
    # Bin (0.6, 0.7]: confidences 0.7, 0.7, 0.7, all right -> |1.0 - 0.7| = 0.3, weight 3/5.
    probs = [[0.9, 0.1], [0.1, 0.9], [0.7, 0.3], [0.3, 0.7], [0.7, 0.3]]
    labels = [0, 0, 0, 1, 0]
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(0.4 * 2 / 5 + 0.3 * 3 / 5)
    assert expected_calibration_error([[1.0, 0.0]], [0]) == 0.0  # confidence 1 falls in the last bin


def test_ece_small_for_a_calibrated_model_and_large_when_overconfident():
    logits, labels = _calibrated_logits(20000, 11, 2.0, seed=3)
    assert expected_calibration_error(logits.softmax(-1), labels) < 0.02
    assert expected_calibration_error((logits * 3).softmax(-1), labels) > 0.1


def test_model_temperature_round_trip():
    """The fitted T, set in the model, is what predict_proba divides by."""
    model = AlertTransformer(ModelConfig(d_model=16, n_heads=2, n_layers=1)).eval()
    lc = LightCurve.from_arrays([1, 2], [60000.0, 60001.0], [2, 1], [500.0, 800.0], [100.0, 100.0], [True, True])
    batch = encode([lc])
    with torch.no_grad():
        logits, _ = model(batch)
    model.set_temperature(2.0)
    torch.testing.assert_close(model.predict_proba(batch), (logits / 2.0).softmax(-1))
    assert math.isclose(float(model.temperature), 2.0)
