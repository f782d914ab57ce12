"""Smoke tests of the training recipe: config handling, a tiny end-to-end run, learning beats chance."""
import argparse
import json

import numpy as np
import pytest
import torch

from alertformer.cli.train import add_parser
from alertformer.cli.train import run as cmd_train
from models.checkpoint import load_checkpoint, save_checkpoint
from models.model import AlertTransformer, ModelConfig
from models.taxonomy import CLASS_IDS
from training.datasets import LabeledSet, simulated
from training.finetune import EvalSet, FinetuneSettings, finetune, source_class_weights, weighted_cross_entropy
from training.metrics import macro_f1
from training.recipe import DEFAULTS, ConfigError
from training.recipe import load_recipe as load_config
from training.train import run

EASY_CLASSES = (2233, 2323, 2332, 2224)  # M-dwarf flare, RR Lyrae, AGN, SN II: chance macro-F1 ~ 0.25


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """`run` sets torch's thread count from the config; give other tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# --- config ---------------------------------------------------------------------------
def test_default_config_file_restates_the_defaults():
    assert load_config("training/config/default.py") == DEFAULTS
    assert load_config("default") == DEFAULTS


def test_config_overrides_are_type_checked_and_unknown_keys_rejected(tmp_path):
    c = load_config("smoke", argv_overrides=["--seed=7", "--finetune_lr=1", "--use_bts=True", "--device=cpu"])
    assert (c["seed"], c["finetune_lr"], c["use_bts"], c["device"]) == (7, 1.0, True, "cpu")
    assert c["n_sim_train"] == 660  # from smoke.py
    with pytest.raises(ConfigError, match="unknown config key"):
        load_config(argv_overrides=["--learning_rat=1e-3"])
    with pytest.raises(ConfigError, match="not a int"):
        load_config(argv_overrides=["--seed=1.5"])
    with pytest.raises(ConfigError, match="not a bool"):
        load_config(argv_overrides=["--progress=maybe"])
    with pytest.raises(ConfigError, match="is str"):
        load_config(overrides={"seed": "1"})
    bad = tmp_path / "bad.py"
    bad.write_text("import math\n_private = 3\nd_modle = 32\n")
    with pytest.raises(ConfigError, match="d_modle"):
        load_config(bad)


def test_cli_parser_registers_train_with_every_key():
    parser = argparse.ArgumentParser(prog="alertformer")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "--config", "smoke", "--seed=3", "--progress=false"])
    assert args.func is cmd_train and args.config == "smoke"
    assert (args.override_seed, args.override_progress) == ("3", "false")
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--no_such_key=1"])
    assert cmd_train(argparse.Namespace(config="smoke", override_seed="x")) == 2


# --- end to end -------------------------------------------------------------------------
def test_smoke_recipe_trains_calibrates_and_saves(tmp_path):
    config = load_config("smoke", overrides={"out_path": str(tmp_path / "m.pt"), "work_dir": str(tmp_path)})
    result = run(config)
    metrics = result.metrics
    pre = metrics["pretrain"]["history"]
    assert pre[-1]["val_loss"] < pre[0]["val_loss"]
    fine = metrics["finetune_sim"]["history"]
    assert fine[-1]["train_loss"] < fine[0]["train_loss"]
    assert fine[-1]["sim_val"]["nll"] < np.log(11)  # better than the uniform guess
    assert metrics["calibration_sim"]["temperature"] > 0
    for survey in ("lsst", "ztf"):
        assert set(metrics["val"][f"sim_{survey}_val"]) >= {"random_prefixes", "ndet1", "ndet3"}
    model, meta = load_checkpoint(tmp_path / "m.pt")
    assert meta["train_config"] == config and meta["data"]["test_splits_used"] is False
    assert meta["data"]["sim"]["train_lsst"]["n"] == config["n_sim_train"]
    assert float(model.temperature) == pytest.approx(metrics["temperature"])
    assert json.loads((tmp_path / "config.json").read_text()) == config
    assert (tmp_path / "pretrain.pt").is_file()


@pytest.mark.parametrize("both_forms", [False, True])
def test_bts_stage_runs_with_replay(tmp_path, shared_data, both_forms):
    config = load_config("smoke", overrides={
        "out_path": str(tmp_path / "m.pt"), "work_dir": str(tmp_path), "data_dir": str(shared_data),
        "n_sim_train": 120, "n_sim_val": 120, "use_bts": True, "pretrain_iters": 0, "finetune_iters": 0,
        "bts_iters": 6, "bts_batch_size": 32, "bts_eval_interval": 3, "bts_val_draws": 1,
        "bts_both_forms": both_forms})
    result = run(config)
    metrics = result.metrics
    assert metrics["finetune_bts"]["iters"] == 6 and len(metrics["finetune_bts"]["history"]) == 2
    weights = metrics["finetune_bts"]["class_weights"]
    np.testing.assert_allclose(weights["replay"], 1.0)  # the balanced simulations keep unit weights
    ia, ibc = CLASS_IDS.index(2222), CLASS_IDS.index(2223)
    assert weights["train"][ia] < 1.0 < weights["train"][ibc]  # BTS is mostly SN Ia
    assert set(metrics["val"]["bts_val"]["random_prefixes"]) >= {"macro_f1", "sn_vs_rest_ap", "ece"}
    published = {"bts_val_published"} if both_forms else set()
    assert set(metrics["calibration_final"]["ece_after"]) == {"bts_val", "packets_val", "sim_val"} | published
    assert metrics["val"]["packets_val"]["random_prefixes"]["n"] > 0  # the real packets' val part, service form
    if both_forms:  # each BTS train curve twice: with simulated limits and context, and as published
        bts = result.data["bts"]
        assert bts["train_published"]["n"] == bts["train"]["n"] and "bts_val_published" in metrics["val"]


def test_init_from_starts_from_a_checkpoint_of_the_same_architecture(tmp_path):
    config = load_config("smoke", overrides={"out_path": str(tmp_path / "m.pt"), "work_dir": str(tmp_path),
                                             "n_sim_train": 110, "n_sim_val": 110, "pretrain_iters": 0,
                                             "finetune_iters": 0, "calibrate": False})
    torch.manual_seed(5)
    start = AlertTransformer(ModelConfig(d_model=config["d_model"], n_heads=config["n_heads"],
                                         n_layers=config["n_layers"], dropout=config["dropout"]))
    save_checkpoint(tmp_path / "start.pt", start)
    run({**config, "init_from": str(tmp_path / "start.pt")})
    trained, _ = load_checkpoint(tmp_path / "m.pt")
    for name, value in start.state_dict().items():  # no stage ran: the starting weights come out
        torch.testing.assert_close(trained.state_dict()[name], value)
    save_checkpoint(tmp_path / "other.pt", AlertTransformer(ModelConfig(d_model=16, n_heads=2, n_layers=1)))
    with pytest.raises(ConfigError, match="init_from"):
        run({**config, "init_from": str(tmp_path / "other.pt")})


def test_fine_tuning_beats_chance_on_easy_classes():
    """Flares, RR Lyrae, AGN and SN II apart after a few seconds of training, on held-out objects."""
    torch.manual_seed(0)
    torch.set_num_threads(1)

    def easy(split: str, n: int) -> LabeledSet:
        s = simulated(split, n, seed=3, survey="lsst")
        return s.subset(np.isin(s.class_ids, EASY_CLASSES))

    train, test = easy("train", 1100), easy("test", 440)
    model = AlertTransformer(ModelConfig(d_model=32, n_heads=2, n_layers=2, dropout=0.0))
    evals = [EvalSet.from_labeled("test", test, 1, 64, scheme="uniform")]
    result = finetune(model, train, evals, FinetuneSettings(
        iters=200, batch_size=64, learning_rate=3e-3, min_lr=3e-4, warmup_iters=10, weight_decay=0.1,
        grad_clip=1.0, eval_interval=100, scheme="uniform", drop_nondetections_prob=0.0, seed=0, n_chunks=2,
        log_interval=10, progress=False), device=torch.device("cpu"))
    history = result.history
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    final = result.best_metrics["test"]
    assert final["macro_f1"] > 0.65, final  # chance: 0.25; 0.82-0.87 over torch seeds 0-2
    assert macro_f1(evals[0].targets.numpy(), evals[0].targets.numpy()) == 1.0


def test_each_source_is_balanced_on_its_own():
    """A real set that is mostly SN Ia must not down-weight the simulated SNe Ia of the replay."""
    ia, ibc = CLASS_IDS.index(2222), CLASS_IDS.index(2223)
    skewed = LabeledSet([None] * 10, np.array([2222] * 8 + [2223] * 2), [str(i) for i in range(10)], "skewed")
    even = LabeledSet([None] * 4, np.array([2222, 2222, 2223, 2223]), [str(i) for i in range(4)], "even")
    weights = source_class_weights(skewed, even, None)
    assert weights.shape == (2, len(CLASS_IDS))
    np.testing.assert_allclose(weights[0, [ia, ibc]], [10 / 16, 10 / 4])
    np.testing.assert_allclose(weights[1, [ia, ibc]], [1.0, 1.0])

    logits = torch.randn(6, len(CLASS_IDS))
    targets = np.array([ia, ia, ibc, ia, ibc, ibc])
    by_class = torch.nn.functional.cross_entropy(logits, torch.from_numpy(targets),
                                                 weight=torch.from_numpy(weights[0]))
    per_sample = weighted_cross_entropy(logits, targets, weights[0][targets], torch.device("cpu"))
    assert torch.allclose(by_class, per_sample)


def _disagreement(student: AlertTransformer, teacher: AlertTransformer, evals: EvalSet) -> float:
    """Mean KL(teacher || student) of the two models' class distributions on `evals`' fixed prefixes."""
    student.eval()
    with torch.no_grad():
        p_teacher = torch.cat([torch.log_softmax(teacher(b)[0], -1) for b in evals.batches])
        p_student = torch.cat([torch.log_softmax(student(b)[0], -1) for b in evals.batches])
    return float(torch.nn.functional.kl_div(p_student, p_teacher, log_target=True, reduction="batchmean"))


def test_distillation_alone_pulls_the_student_to_the_teacher():
    """With distill_weight = 1 the labels play no part: the student learns the teacher's distribution, here
    a randomly initialised teacher's, which no label could teach."""
    torch.manual_seed(1)
    torch.set_num_threads(1)
    train = simulated("train", 330, seed=4, survey="lsst")
    evals = EvalSet.from_labeled("val", simulated("val", 110, seed=5, survey="lsst"), 2, 64, scheme="uniform")
    teacher = AlertTransformer(ModelConfig(d_model=32, n_heads=2, n_layers=2, dropout=0.0)).eval()
    student = AlertTransformer(ModelConfig(d_model=16, n_heads=2, n_layers=1, dropout=0.0))
    before = _disagreement(student, teacher, evals)
    settings = FinetuneSettings(iters=150, batch_size=32, learning_rate=3e-3, min_lr=3e-4, warmup_iters=10,
                                weight_decay=0.0, grad_clip=1.0, eval_interval=150, scheme="uniform",
                                drop_nondetections_prob=0.0, seed=0, distill_weight=1.0, distill_temperature=1.0,
                                progress=False)
    finetune(student, train, [evals], settings, device=torch.device("cpu"), teacher=teacher)
    assert _disagreement(student, teacher, evals) < 0.5 * before
    with pytest.raises(ValueError, match="max_visits"):
        finetune(student, train, [evals], settings, device=torch.device("cpu"),
                 teacher=AlertTransformer(ModelConfig(d_model=16, n_heads=2, n_layers=1, max_visits=32)))
    with pytest.raises(ValueError, match="distill_weight"):
        FinetuneSettings(**{**settings.__dict__, "distill_weight": 1.5})


def test_a_missing_teacher_is_a_config_error(tmp_path):
    config = load_config("smoke", overrides={"out_path": str(tmp_path / "m.pt"), "work_dir": str(tmp_path),
                                             "teacher": str(tmp_path / "absent.pt")})
    with pytest.raises(ConfigError, match="teacher"):
        run(config)
