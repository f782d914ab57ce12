"""The demo's commands on a real Kafka and Redis: run's closing summary, and the README's subscribe examples.

The steps of ``deploy/demo.sh`` (replay the sample alerts and a malformed packet, simulate a
Rubin stream, score with the shipped model), on the test's own topics, through the command line.
Then every ``alertformer subscribe`` line of the README's "Subscribing" section must print
records and stop by itself.
"""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import config_env

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT_S = 240  # the slowest step, scoring ~700 alerts on a shared 2-core machine, takes ~30 s


def alertformer(*args: str, env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "alertformer.cli", *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=COMMAND_TIMEOUT_S)
    assert result.returncode == 0, f"alertformer {' '.join(args)}: {result.stderr[-3000:]}"
    return result


def readme_subscribe_examples() -> list[list[str]]:
    """The ``alertformer subscribe`` command lines of the README's Subscribing section."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("### Subscribing"):]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    return [shlex.split(line, comments=True)[1:] for line in block.splitlines()  # without "alertformer"
            if line.startswith("alertformer subscribe")]


@pytest.fixture(scope="module")
def demo_env(stack, tmp_path_factory):
    """The demo's steps on fresh topics; returns (environment, run's summary, alerts in, topics)."""
    import uuid

    from stream.config import StreamConfig
    from stream.health import create_topics

    run = uuid.uuid4().hex[:8]
    topics = {name: f"test.demo-{name}.{run}" for name in ("alerts", "scored", "classifications", "followup",
                                                          "deadletter", "labels")}
    config = StreamConfig(kafka={"bootstrap_servers": stack["bootstrap"]},
                          redis={"url": stack["redis_url"], "prefix": f"test-demo-{run}"},
                          topics={"inputs": {topics["alerts"]: "auto"}} | {k: v for k, v in topics.items() if k != "alerts"},
                          scoring={"group_id": f"demo-{run}", "instance_id": f"demo-{run}"})  # the shipped model
    create_topics(config.kafka.client_config(), list(topics.values()), 4)
    env = os.environ | config_env(config)
    env.pop("ALERTFORMER_CONFIG", None)
    malformed = tmp_path_factory.mktemp("demo") / "malformed.bin"
    malformed.write_bytes(b"\x00\x00\x00\x03\xe8truncated")
    replayed = json.loads(alertformer("replay", "data/ztf/alerts", "data/rubin", str(malformed), "--quiet",
                                      env=env).stdout)
    simulated = json.loads(alertformer("simulate", "--n", "40", "--seed", "1764800000", "--topic",
                                       topics["alerts"], "--quiet", env=env).stdout)
    n_in = replayed["sent"] + simulated["alerts"]
    summary = json.loads(alertformer("run", "--idle-timeout-s", "5", env=env).stdout.strip().splitlines()[-1])
    return env, summary, n_in, topics


def test_run_closes_with_what_it_committed(demo_env):
    _, summary, n_in, _ = demo_env
    assert summary["dead_letters"] == 1 and summary["alerts_scored"] == n_in - 1
    assert sum(summary["top_classes"].values()) == summary["alerts_scored"]
    assert summary["followup_requests"] >= 1


@pytest.mark.parametrize("args", readme_subscribe_examples(), ids=" ".join)
def test_the_readmes_subscribe_examples_print_records(demo_env, args):
    env, _, _, _ = demo_env
    lines = alertformer(*args, env=env).stdout.splitlines()
    assert lines, f"alertformer {' '.join(args)} printed nothing"
    records = [json.loads(line) for line in lines]
    classes = [c for r in records for c in r.get("classProbabilities", r.get("classifications", []))]
    assert all(c["className"] for c in classes)  # named beside their ids


def test_scored_records_carry_their_top_class(demo_env, read_committed):
    from models.taxonomy import ID_TO_NAME
    from stream import avro_io

    _, summary, _, topics = demo_env
    records = [avro_io.decode(m.value())[1] for m in read_committed(topics["scored"], summary["alerts_scored"])]
    assert len(records) == summary["alerts_scored"]
    for record in records:
        top = max(record["classProbabilities"], key=lambda c: c["probability"])["classId"]
        assert (record["topClassId"], record["topClass"]) == (top, ID_TO_NAME[top])


def test_show_prints_a_scored_objects_curve_and_draws_it(demo_env, tmp_path):
    pytest.importorskip("matplotlib")
    env, _, _, _ = demo_env
    figure = tmp_path / "ztf.png"
    lines = alertformer("show", "ZTF17aaajnnn", "--png", str(figure), env=env).stdout.splitlines()
    assert lines[0].startswith("ZTF17aaajnnn  ra=") and "top class: " in lines[0]
    assert lines[1].split()[:3] == ["mjd_tai", "band", "flux_njy"] and len(lines) > 4  # the real curve's points
    assert all(line.split()[1] in ("ztf-g", "ztf-r", "ztf-i") for line in lines[2:-1])
    assert lines[-1] == f"figure: {figure}" and figure.read_bytes()[:4] == b"\x89PNG"
