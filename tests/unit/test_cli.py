"""The command line: every subcommand has --help; bad input ends in one line and exit code 2."""
import subprocess
import sys

import pytest

from alertformer.cli import build_parser

SUBCOMMANDS = sorted(build_parser()._subparsers._group_actions[0].choices)


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "alertformer.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_expected_subcommands():
    assert {"run", "replay", "simulate", "subscribe", "monitor", "models", "trainer", "train", "evaluate"} \
        <= set(SUBCOMMANDS)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0 and f"alertformer {command}" in capsys.readouterr().out


def test_bad_config_is_one_line_naming_the_field(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[scoring]\nbatch_size = -3\n")
    result = run("run", "--config", str(config))
    assert result.returncode == 2
    assert "scoring.batch_size" in result.stderr and "Traceback" not in result.stderr


def test_missing_replay_source_is_named(tmp_path):
    result = run("replay", str(tmp_path / "nothing.avro"))
    assert result.returncode == 2 and "nothing.avro" in result.stderr and "Traceback" not in result.stderr


def test_replaying_a_file_that_is_not_an_alert_exits_2(tmp_path):
    labels = tmp_path / "night_labels.csv"
    labels.write_text("object_id,class_id,class_name\n1000000000000,2222,SN Ia\n")
    result = run("replay", str(labels))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"alertformer replay: {labels}: not an alert packet (starts with "
                                                  "b'obje': neither the Confluent wire format b'\\x00', an Avro "
                                                  "container file b'Obj\\x01', Parquet of Rubin alerts, nor an "
                                                  "ELAsTiCC alert)"]


def test_registry_errors_are_one_line(tmp_path):
    import os

    env = os.environ | {"ALERTFORMER_REGISTRY__PATH": str(tmp_path / "reg")}
    result = run("models", "promote", "v0042", env=env)
    assert result.returncode == 2 and "v0042" in result.stderr and "Traceback" not in result.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_line_exit_2(result, field: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("alertformer run: ") and field in last, last
    assert len(result.stderr.strip().splitlines()) <= 6  # a few start-up lines, then the reason: no librdkafka flood


@pytest.mark.parametrize("setting, field", [
    ({"ALERTFORMER_KAFKA__EXTRA": '{"no.such.property": "1"}'}, 'kafka.extra: No such configuration property: "no.such.property"'),
    ({"ALERTFORMER_KAFKA__EXTRA": '{"linger.ms": "soon"}'}, "kafka: Invalid value for configuration property"),
    ({"ALERTFORMER_REDIS__URL": "cache-host:6379"}, "redis.url: "),
    ({"ALERTFORMER_SCORING__CHECKPOINT": "GARBAGE"}, "scoring.checkpoint: "),
    ({"ALERTFORMER_REGISTRY__PATH": "FILE"}, "registry.path: "),
    ({"ALERTFORMER_BOGUS__X": "1"}, "ALERTFORMER_BOGUS__X: unknown section 'bogus'"),
    ({"ALERTFORMER_TOPICS__INPUTS": "{alerts: auto}"}, "ALERTFORMER_TOPICS__INPUTS: invalid JSON"),
    ({"ALERTFORMER_KAFKA__CONNECT_TIMEOUT_S": "2"}, "kafka.bootstrap_servers: no broker of 127.0.0.1:"),
])
def test_bad_settings_are_one_line_and_exit_2(tmp_path, setting, field):
    """No broker listens on the bootstrap port: a setting checked before the broker fails first."""
    import os

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    values = {k: v.replace("GARBAGE", str(garbage)).replace("FILE", str(garbage)) for k, v in setting.items()}
    env = os.environ | {"ALERTFORMER_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{_free_port()}",
                        "ALERTFORMER_KAFKA__CONNECT_TIMEOUT_S": "2",
                        "ALERTFORMER_REDIS__URL": f"redis://127.0.0.1:{_free_port()}/0"} | values
    _one_line_exit_2(run("run", env=env), field)


def test_unknown_section_in_a_file_is_named(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[bogus]\nx = 1\n")
    result = run("run", "--config", str(config))
    assert result.returncode == 2 and "bogus" in result.stderr and "Traceback" not in result.stderr


def test_version():
    from alertformer import __version__

    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"alertformer {__version__}"


def test_the_scoring_service_loads_no_training_code():
    """``alertformer run`` builds only its own parser, and the service imports nothing of `training`."""
    code = ("import sys; from alertformer.cli import build_parser; import stream.service; "
            "build_parser('run').parse_args(['run']); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'training'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


def test_the_run_command_loads_no_training_or_bench_code():
    """``alertformer run``'s whole import path: the command package, the run command's module and parser, and
    the library function its lazy import resolves (replaced by a stub, so nothing connects)."""
    code = ("import sys; import stream.service; stream.service.cmd_run = lambda args: 0; "
            "from alertformer.cli import build_parser; args = build_parser('run').parse_args(['run']); "
            "assert args.func(args) == 0 and 'alertformer.cli.run' in sys.modules; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('training', 'bench')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


def test_decode_prints_each_message_and_dead_letters_only_when_asked(shared_data):
    """``alertformer run`` dead-letters undecodable input already: decode does not send them again by default."""
    import json

    from confluent_kafka import Message

    from stream.diagnose import decode_batch
    from stream.ingest import Ingest

    alert = (shared_data / "ztf" / "alerts" / "472263571115115000.avro").read_bytes()
    messages = [Message(topic="alerts", partition=0, offset=0, value=alert, key=b"k"),
                Message(topic="alerts", partition=0, offset=1, value=b"\x00\x00\x00\x03\xe8truncated", key=None)]
    ingest = Ingest({"alerts": "auto"}, "alertformer.deadletter")
    for send in (False, True):
        lines = []
        outputs = decode_batch(ingest, messages, send, lines.append)
        records = [json.loads(line) for line in lines]
        assert [r["offset"] for r in records] == [0, 1] and records[0]["objectId"] == "ZTF17aaajnnn"
        assert records[1]["undecodable"] and records[1]["dead_lettered"] is send
        assert [o.topic for o in outputs] == (["alertformer.deadletter"] if send else [])


def test_the_run_command_loads_no_web_code():
    """The scorer's process never imports the web pages or their server (`stream.web`, starlette, uvicorn)."""
    code = ("import sys; import stream.service; stream.service.cmd_run = lambda args: 0; "
            "from alertformer.cli import build_parser; args = build_parser('run').parse_args(['run']); "
            "assert args.func(args) == 0; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', 'plotly') "
            "or m == 'stream.web' or m.startswith('stream.web.')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr
