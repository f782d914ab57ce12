"""stream.score: chunked scoring matches one forward pass, precision and threads settings."""
import numpy as np
import pytest
import torch

from models.checkpoint import save_checkpoint
from models.encode import encode
from models.taxonomy import CLASS_NAMES
from stream.config import ScoringSettings
from stream import score as score_module
from stream.errors import ConfigError
from stream.score import CPU_CHUNK_CURVES, Scorer, pick_precision, set_torch_threads

MAX_VISITS = 16  # the window of the tiny_model fixture (tests/unit/conftest.py)


def test_chunked_scores_equal_one_forward_pass_in_input_order(tiny_model, random_curves):
    curves = random_curves
    batch = encode(curves, max_visits=MAX_VISITS)
    expected = tiny_model.predict_proba(batch).numpy()
    assert expected.max(axis=1).mean() > 0.3  # far from uniform (1/11): a reordering would show
    scorer = Scorer(tiny_model, "v", torch.device("cpu"), MAX_VISITS)
    assert scorer.traced is not None  # the CPU forward pass runs the TorchScript trace
    whole = scorer.score(curves)
    chunked = Scorer(tiny_model, "v", torch.device("cpu"), MAX_VISITS, chunk_curves=7).score(curves)
    for scores in (whole, chunked):
        np.testing.assert_allclose(scores.probs, expected, atol=1e-5)
        assert scores.n_visits.tolist() == [min(len(c), MAX_VISITS) for c in curves]
        assert scores.n_detections.tolist() == batch.mask.logical_and(batch.features[..., 2] > 0.5).sum(1).tolist()
    np.testing.assert_allclose(chunked.sn_likelihood, whole.sn_likelihood, atol=1e-5)


def test_the_compiled_forward_pass_gives_the_models_probabilities(tiny_model, random_curves, monkeypatch):
    # AOTAutograd without code generation: the graph capture that Inductor would compile (a
    # minute of C++ compilation on a small CPU), so the wrapper's tracing is tested, not the compiler.
    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda module, **kw: compile_(module, **kw | {"backend": "aot_eager"}))
    expected = tiny_model.predict_proba(encode(random_curves, max_visits=MAX_VISITS)).numpy()
    scorer = Scorer(tiny_model, "v", torch.device("cpu"), MAX_VISITS, compile=True)
    assert scorer.compiled is not None and scorer.traced is None
    np.testing.assert_allclose(scorer.score(random_curves).probs, expected, atol=1e-5)


def test_cpu_chunks_a_few_tokens_short_of_16_are_padded_without_changing_scores(tiny_model, random_curves):
    short = [c for c in random_curves if 10 <= len(c) <= 12]  # 11-13 tokens with the context token: padded to 16
    long = [c for c in random_curves if len(c) >= MAX_VISITS]  # 17 tokens: 15 short of 32, left as they are
    assert short and long
    scorer = Scorer(tiny_model, "v", torch.device("cpu"), MAX_VISITS)
    assert [c.mask.shape[1] for c in scorer.encode_batch(short).chunks] == [15]
    assert [c.mask.shape[1] for c in scorer.encode_batch(long).chunks] == [MAX_VISITS]
    for curves in (short, long):
        expected = tiny_model.predict_proba(encode(curves, max_visits=MAX_VISITS)).numpy()
        np.testing.assert_allclose(scorer.score(curves).probs, expected, atol=1e-5)
        assert scorer.score(curves).n_visits.tolist() == [min(len(c), MAX_VISITS) for c in curves]


def test_a_batch_pads_with_masked_tokens_only(random_curves):
    batch = encode(random_curves[:3], max_visits=MAX_VISITS)
    padded = batch.padded(batch.mask.shape[1] + 4)
    assert padded.features.shape[1] == padded.dt_days.shape[1] == padded.mask.shape[1] == batch.mask.shape[1] + 4
    assert not padded.mask[:, -4:].any() and padded.features[:, -4:].abs().sum() == 0
    assert padded.n_visits.tolist() == batch.n_visits.tolist() and padded.context is batch.context
    assert batch.padded(batch.mask.shape[1]) is batch
    with pytest.raises(ValueError, match="shorter"):
        batch.padded(batch.mask.shape[1] - 1)


def test_score_rejects_an_empty_batch(tiny_model):
    with pytest.raises(ValueError, match="no light curves"):
        Scorer(tiny_model, "v", torch.device("cpu"), MAX_VISITS).score([])


def test_a_trace_that_differs_from_the_model_is_not_used(tiny_model, random_curves, monkeypatch, caplog):
    monkeypatch.setattr(score_module, "TRACE_TOLERANCE", -1.0)
    scorer = Scorer(tiny_model, "v", torch.device("cpu"), MAX_VISITS)
    assert scorer.traced is None and "runs eagerly" in caplog.text
    expected = tiny_model.predict_proba(encode(random_curves, max_visits=MAX_VISITS)).numpy()
    np.testing.assert_allclose(scorer.score(random_curves).probs, expected, atol=1e-6)


def test_precision_follows_the_device(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert pick_precision("fp32", cpu) == "fp32"
    monkeypatch.setattr(score_module, "cpu_has_bf16", lambda: False)
    with pytest.raises(ConfigError, match=r"scoring\.precision: bf16 on the CPU needs AMX"):
        pick_precision("bf16", cpu)
    monkeypatch.setattr(score_module, "cpu_has_bf16", lambda: True)
    assert pick_precision("bf16", cpu) == "bf16"
    assert pick_precision("fp32", cuda) == "fp32"


def test_cpu_bf16_trace_is_the_bf16_model_and_near_fp32(tiny_model, random_curves):
    """CPU bf16 runs on any CPU (emulated without AMX, only slower), so this checks the numbers anywhere."""
    fp32 = Scorer(tiny_model, "v", torch.device("cpu"), MAX_VISITS).score(random_curves).probs
    scorer = Scorer(tiny_model, "v", torch.device("cpu"), MAX_VISITS, precision="bf16")
    assert scorer.traced is not None  # matched the eager model under bf16 autocast within TRACE_TOLERANCE
    bf16 = scorer.score(random_curves).probs
    assert bf16.dtype == np.float32
    np.testing.assert_allclose(bf16.sum(axis=1), 1.0, atol=1e-5)
    difference = np.abs(bf16 - fp32).max()
    assert 0 < difference < 0.05  # rounded (bf16 keeps 8 bits), not another model
    assert (bf16.argmax(axis=1) == fp32.argmax(axis=1)).mean() > 0.9


def test_cpu_bf16_keeps_attention_in_fp32(tiny_model):
    """At 16-wide heads the fused attention kernel is slower in bf16 than in fp32 on the CPU."""
    attention = tiny_model.blocks[0].attn
    x = torch.randn(3, 5, tiny_model.config.d_model)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] + [False] * 4])
    seen = []
    real = torch.nn.functional.scaled_dot_product_attention
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        torch.nn.functional.scaled_dot_product_attention = lambda q, *a, **k: seen.append(q.dtype) or real(q, *a, **k)
        try:
            out = attention(x, mask)
        finally:
            torch.nn.functional.scaled_dot_product_attention = real
    assert seen == [torch.float32] and out.dtype == torch.bfloat16  # the projections stay in bf16


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_int8_is_not_a_serving_precision(tiny_model, device):
    """int8 moved the evaluation metrics by more than 0.5 points (README, Performance): not served."""
    with pytest.raises(ConfigError, match=r"scoring\.precision: 'int8'"):
        pick_precision("int8", torch.device(device))  # settings that skipped validation (model_copy)
    with pytest.raises(ValueError, match="int8"):
        Scorer(tiny_model, "v", torch.device("cpu"), MAX_VISITS, precision="int8")


def test_from_file_applies_precision_and_default_chunks(tiny_model, tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", tiny_model)
    plain = Scorer.from_file(path, "v1", ScoringSettings(device="cpu", max_visits=MAX_VISITS))
    assert (plain.precision, plain.chunk_curves, plain.max_visits) == ("fp32", CPU_CHUNK_CURVES, MAX_VISITS)
    fp32 = Scorer.from_file(path, "v1", ScoringSettings(device="cpu", precision="fp32", forward_chunk_curves=5))
    assert (fp32.precision, fp32.chunk_curves, fp32.n_params) == ("fp32", 5, tiny_model.get_num_params())
    assert any(type(m) is torch.nn.Linear for m in fp32.model.modules())  # served as trained, never quantised


def test_set_torch_threads_zero_keeps_the_default():
    before = torch.get_num_threads()
    try:
        set_torch_threads(0)
        assert torch.get_num_threads() == before
        set_torch_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_class_prior_reweights_the_balanced_probabilities(tiny_model, random_curves, tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, tiny_model)
    balanced = Scorer.from_file(path, "v", ScoringSettings(device="cpu", max_visits=MAX_VISITS)).score(random_curves)
    table = {name: 1.0 for name in CLASS_NAMES} | {"Ia": 9.0}  # SN Ia nine times as common as each other class
    prior = Scorer.from_file(path, "v", ScoringSettings(device="cpu", max_visits=MAX_VISITS, class_prior="rates",
                                                      class_prior_rates=table))
    scores = prior.score(random_curves)
    np.testing.assert_allclose(scores.probs.sum(axis=1), 1.0, atol=1e-5)
    odds = scores.probs / balanced.probs  # each row: Ia gains 9x against every other class
    np.testing.assert_allclose(odds[:, 0] / odds[:, 1:].mean(axis=1), 9.0, rtol=1e-3)
    assert np.all(scores.sn_likelihood >= balanced.sn_likelihood - 1e-6)


@pytest.mark.parametrize("prior, message", [
    ({"Ia": 1.0}, "missing class id"), ({name: 1.0 for name in CLASS_NAMES} | {"Ia": 0.0}, "> 0"),
    ("plasticc", "class_prior"), ({"SN Iax": 1.0}, "is not one of the model's classes"),
])
def test_a_bad_class_prior_is_a_config_error(prior, message):
    with pytest.raises(ValueError, match=message):
        if isinstance(prior, dict):
            ScoringSettings(class_prior="rates", class_prior_rates=prior)
        else:
            ScoringSettings(class_prior=prior)
    with pytest.raises(ValueError, match="class_prior_rates is set but class_prior is 'balanced'"):
        ScoringSettings(class_prior_rates={"Ia": 1.0})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_asking_for_cuda_without_one_is_a_config_error_naming_the_setting():
    from stream.score import pick_device

    with pytest.raises(ConfigError, match="scoring.device: cuda requested but no CUDA device"):
        pick_device("cuda")
    with pytest.raises(ConfigError, match="scoring.device: unknown device 'gpu0'"):
        pick_device("gpu0")


def test_timed_probabilities_of_named_sets_match_score_without_the_prior(tiny_model, random_curves):
    """The evaluation's path: each set's probabilities as `score` gives them, in input order, with their
    contexts, under no class prior even where the scorer publishes one; an empty set gives (0, C)."""
    from models.context import N_CONTEXT

    rng = np.random.default_rng(3)
    contexts = np.where(rng.random((len(random_curves), N_CONTEXT)) < 0.5, rng.normal(size=(len(random_curves),
                                                                                            N_CONTEXT)), np.nan)
    plain = Scorer(tiny_model, "v", torch.device("cpu"), MAX_VISITS, chunk_curves=7)
    prior = Scorer(tiny_model, "v", torch.device("cpu"), MAX_VISITS, chunk_curves=7,
                   prior_weights=np.linspace(1.0, 2.0, len(CLASS_NAMES)))
    sets = {"all": random_curves, "head": random_curves[:5], "none": []}
    out = prior.timed_probabilities(sets, {"all": contexts, "head": contexts[:5], "none": contexts[:0]})
    np.testing.assert_allclose(out["all"][0], plain.score(random_curves, contexts).probs, atol=1e-6)
    np.testing.assert_allclose(out["head"][0], out["all"][0][:5], atol=1e-6)
    assert not np.allclose(out["all"][0], plain.score(random_curves).probs, atol=1e-4)  # the contexts were used
    assert out["none"][0].shape == (0, len(CLASS_NAMES)) and out["none"][1] == 0.0
    assert out["all"][1] > 0 and out["head"][1] > 0
