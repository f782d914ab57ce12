"""The trainer against real Kafka and Redis: helpful labels promote, corrupted ones don't, crashes are safe."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import redis
import torch
from conftest import config_env
from label_messages import label_message

from models.checkpoint import load_checkpoint, save_checkpoint
from models.context import context_vector
from models.model import AlertTransformer, ModelConfig
from models.registry import ModelRegistry
from stream.history import HistoryStore
from stream.kafka_io import make_producer
from stream.keys import Keys
from stream.service import ScoringService
from stream.state import pack_context
from training.datasets import simulated
from training.finetune import EvalSet, FinetuneSettings, finetune
from training.labels import SnapshotStore
from training.refit import refit
from training.refit_service import TrainerService

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FLARE = 2233
LABEL_TIME_MS = 4_102_444_800_000  # 2100-01-01: every simulated point is known by then


@pytest.fixture(scope="module")
def flare_blind_champion(tmp_path_factory):
    """A small model trained on simulated data without flares: it cannot recognise them."""
    torch.manual_seed(0)
    model = AlertTransformer(ModelConfig(d_model=32, n_heads=2, n_layers=2, dropout=0.0))
    train = simulated("train", 660, seed=5)
    train = train.subset(train.class_ids != FLARE)
    val = EvalSet.from_labeled("val", simulated("val", 220, seed=5).subset(np.arange(220)), 5, 64)
    finetune(model, train, [val], FinetuneSettings(
        iters=150, batch_size=64, learning_rate=3e-3, min_lr=3e-4, warmup_iters=10, weight_decay=0.1, grad_clip=1.0,
        eval_interval=50, scheme="log", drop_nondetections_prob=0.2, seed=0, progress=False),
        device=torch.device("cpu"))
    return save_checkpoint(tmp_path_factory.mktemp("champion") / "champion.pt", model)


@pytest.fixture
def trainer_config(stream_config, flare_blind_champion, tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    registry.register(flare_blind_champion, note="flare-blind champion")
    registry.promote("v0001", "initial")
    return stream_config.model_copy(update={
        "scoring": stream_config.scoring.model_copy(update={"checkpoint": None}),
        "registry": stream_config.registry.model_copy(update={"path": str(registry.root), "poll_interval_s": 30.0}),
        "trainer": stream_config.trainer.model_copy(update={
            # every label of a test before it trains, so what it learns does not depend on how the polls split them
            "work_dir": str(tmp_path / "trainer"), "retrain_every_labels": 165, "mode": "full", "iters": 120,
            "batch_size": 64, "learning_rate": 2e-3, "replay_size": 0, "holdout_size": 220, "margin": 0.01,
            # the real part is reported but does not decide here: a flare-blind toy model has no skill on it
            "real_tolerance": 1.0})})


def send_labels(config, labels, class_ids):
    """Store the labeled objects' light curves as the scorer would, then produce their labels."""
    HistoryStore(redis.Redis.from_url(config.redis.url), Keys(config.redis.prefix), 3600, 10_000).put(
        dict(zip(labels.object_ids, labels.curves)))
    producer = make_producer(config.kafka)
    for object_id, class_id in zip(labels.object_ids, class_ids):
        producer.produce(config.topics.labels, label_message(object_id, int(class_id), labeled_ms=LABEL_TIME_MS),
                         object_id.encode())
    producer.produce(config.topics.labels, label_message("never-seen", 2222, labeled_ms=LABEL_TIME_MS), b"x")
    producer.produce(config.topics.labels, b"garbage", b"y")
    assert producer.flush(30) == 0


def test_helpful_labels_promote_and_scorers_switch(trainer_config, read_committed):
    # Half flares, which the champion never saw; the rest every class, so nothing is forgotten.
    pool = simulated("train", 720, seed=77)  # 60 of each of the 12 classes
    flares = np.flatnonzero(pool.class_ids == FLARE)
    labels = pool.subset(np.concatenate([flares, np.flatnonzero(pool.class_ids != FLARE)[:165 - len(flares)]]))
    assert len(labels) == 165 and len(flares) == 60
    send_labels(trainer_config, labels, labels.class_ids)
    client, keys = redis.Redis.from_url(trainer_config.redis.url), Keys(trainer_config.redis.prefix)
    scored_context = context_vector(real_bogus=0.93, n_detections_history=4, ss_distance_arcsec=np.inf)
    client.hset(keys.object_scores(labels.object_ids[0]), "context", pack_context(scored_context))
    scorer = ScoringService(trainer_config)
    assert scorer.scorer.version == "v0001"
    try:
        [decision] = TrainerService(trainer_config).run(max_rounds=1, timeout_s=300)
        assert decision["promoted"], {k: decision[k] for k in ("holdout_champion", "holdout_challenger")}
        # both models were also judged on the held-out real packets, and the record says so
        assert decision["real_holdout_champion"]["n"] == decision["real_holdout_challenger"]["n"] > 100
        assert decision["real_gain"] is not None and "real holdout" in decision["reason"]
        snapshots, _ = SnapshotStore(os.path.join(trainer_config.trainer.work_dir, "snapshots")).load()
        np.testing.assert_array_equal(snapshots.contexts[snapshots.object_ids.index(labels.object_ids[0])],
                                      scored_context)
        assert np.isnan(snapshots.contexts[snapshots.object_ids.index(labels.object_ids[1])]).all()
        assert decision["holdout_challenger"]["macro_f1"] > decision["holdout_champion"]["macro_f1"] + 0.01
        assert decision["holdout_challenger"]["flare_vs_rest_ap"] > decision["holdout_champion"]["flare_vs_rest_ap"]
        registry = ModelRegistry(trainer_config.registry.path)
        assert registry.champion() == "v0002"
        assert registry.get("v0002").meta["lineage"]["labels"] == 165
        assert registry.get("v0002").meta["parent"] == "v0001"
        deadline = time.monotonic() + 30
        swapped = None
        while swapped is None and time.monotonic() < deadline:
            swapped = scorer.watcher.take()
            time.sleep(0.1)
        assert swapped is not None and swapped.version == "v0002"  # announced, not polled (poll is 30 s)
    finally:
        scorer.watcher.stop()
        scorer.loop.consumer.close()
    dead = read_committed(trainer_config.topics.deadletter, 2)
    assert len(dead) == 2


def test_corrupted_labels_are_rejected(trainer_config):
    labels = simulated("train", 165, seed=78)
    shuffled = np.random.default_rng(0).permutation(labels.class_ids)
    send_labels(trainer_config, labels, shuffled)
    service = TrainerService(trainer_config)
    [decision] = service.run(max_rounds=1, timeout_s=300)
    assert not decision["promoted"], decision
    registry = ModelRegistry(trainer_config.registry.path)
    assert registry.champion() == "v0001"
    assert registry.get("v0002").meta["note"] == "rejected"
    sample = service.metrics.registry.get_sample_value  # what its /metrics shows
    assert [sample(f"alertformer_trainer_{name}_total") for name in ("finetunes", "rejections", "promotions")] \
        == [1, 1, 0]
    assert sample("alertformer_trainer_labels_pending") == 0


def test_killed_mid_training_leaves_champion_and_resumes(trainer_config):
    labels = simulated("train", 165, seed=79)
    send_labels(trainer_config, labels, labels.class_ids)
    config = trainer_config.model_copy(update={"trainer": trainer_config.trainer.model_copy(update={"iters": 3000})})
    env = os.environ | config_env(config)
    work_dir = config.trainer.work_dir
    proc = subprocess.Popen([sys.executable, "-m", "alertformer.cli", "trainer"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((os.path.join(work_dir, "snapshots") and
                    __import__("pathlib").Path(work_dir, "snapshots").glob("*.npz"))) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(5)  # labels stored; now training (3000 iterations take minutes)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    registry = ModelRegistry(config.registry.path)
    assert registry.champion() == "v0001" and [v.version for v in registry.versions()] == ["v0001"]
    assert not os.path.exists(os.path.join(work_dir, "state.json"))

    [decision] = TrainerService(trainer_config).run(max_rounds=1, timeout_s=300)  # resumes with the same labels
    assert decision["lineage"]["labels"] == 165
    assert json.loads(open(os.path.join(work_dir, "state.json")).read())["trained_through"] >= 1


def test_a_challenger_that_gains_on_simulations_but_loses_on_the_real_part_is_not_promoted(trainer_config,
                                                                                           flare_blind_champion):
    """The flare labels teach the challenger flares (a simulated gain). The stand-in real part holds flare
    curves labelled as whatever the champion calls them, so learning flares can only lose there."""
    champion, _ = load_checkpoint(flare_blind_champion)
    pool = simulated("train", 720, seed=77)
    labels = pool.subset(np.flatnonzero(pool.class_ids == FLARE)[:40])
    labels = type(labels).concatenate([labels, pool.subset(np.flatnonzero(pool.class_ids != FLARE)[:120])])
    flares = simulated("test", 480, seed=79)
    flares = flares.subset(np.flatnonzero(flares.class_ids == FLARE))
    probe = EvalSet.from_labeled("probe", flares, 1, 64)
    with torch.no_grad():
        called = torch.cat([champion(b)[0] for b in probe.batches]).argmax(-1)
    real = EvalSet("real_holdout", probe.batches, called)
    holdout = EvalSet.from_labeled("holdout", simulated("test", 220, seed=80), 2, 64)
    settings = trainer_config.trainer.model_copy(update={"real_tolerance": 0.0})
    _, decision, _ = refit(champion, labels, None, holdout, holdout, settings, torch.device("cpu"),
                           real_holdout=real)
    assert decision.gain > decision.margin, decision.reason  # it did gain on the simulated part
    assert decision.real_gain < 0 and not decision.promote, decision.reason
    _, without_real, _ = refit(champion, labels, None, holdout, holdout, settings, torch.device("cpu"))
    assert without_real.promote, without_real.reason
