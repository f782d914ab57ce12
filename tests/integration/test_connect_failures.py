"""Connection failures of every command that talks to Kafka: a closed port, a wrong SASL password, a topic
that does not exist or is not authorised. Each ends within the connect timeout with one line naming the
cluster and the cause, exit code 2, no traceback, no librdkafka flood, no password."""
import os
import subprocess
import sys
import uuid

import pytest
from conftest import (ADMIN, ADMIN_PASSWORD, REPO, SCORER, SCORER_PASSWORD, _free_port, client_config, config_env,
                      sasl)

pytestmark = pytest.mark.integration
CONNECT_TIMEOUT_S = 3
WRONG_PASSWORD = "Not-the-0ne"
ZTF_PACKET = next((REPO / "data" / "ztf" / "alerts").glob("*.avro"))
ARGS = {
    "run": ["run", "--max-messages", "1", "--idle-timeout-s", "5"],
    "decode": ["decode", "--max-messages", "1", "--idle-timeout-s", "30"],
    "replay": ["replay", str(ZTF_PACKET), "--quiet"],
    "subscribe": ["subscribe", "--from-beginning", "--idle-timeout-s", "5"],
}


def _with(config, **sections):
    """`config` with these sections replaced (``input``/``output`` dicts, or ``topics`` updates)."""
    dumped = config.model_dump()
    dumped["kafka"] = config.kafka
    for name, value in sections.items():
        dumped[name] = dumped[name] | value if name == "topics" else value
    return type(config)(**dumped)


def _cluster(stream_config, sasl_source, failure: str) -> dict:
    """A cluster section that fails with `failure`, and the start of the message expected, by its section."""
    if failure == "closed port":
        return {"bootstrap_servers": f"127.0.0.1:{_free_port()}", "connect_timeout_s": CONNECT_TIMEOUT_S}
    if failure == "wrong password":
        return sasl(sasl_source, SCORER, WRONG_PASSWORD) | {"connect_timeout_s": CONNECT_TIMEOUT_S}
    raise ValueError(failure)


EXPECTED = {
    "closed port": r"{section}\.bootstrap_servers: {role} cluster: no broker of 127\.0\.0\.1:\d+ answered within 3 s",
    "wrong password": r"{section}\.sasl_mechanism/sasl_username/sasl_password: {role} cluster: no broker of .* "
                      r"answered within 3 s .*[Aa]uthentication",
    "unknown topic": r"{section}\.topics: {role} cluster: topic test\.no-such-alerts on .*: does not exist",
    "unauthorised topic": r"{section}\.topics: {role} cluster: topic alerts\.secret\.\w+ on .*: not authorised to "
                          r"user scorer \(TOPIC_AUTHORIZATION_FAILED\)",
    "unauthorised group": r"{role} cluster, group alertformer-decode-\w+: consumer group: not authorised "
                          r"\(GROUP_AUTHORIZATION_FAILED\)",
}


def _readable_topic(sasl_source) -> str:
    """A topic on the source that the scorer may read, with no group ACL."""
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, NewTopic,
                                       ResourcePatternType, ResourceType)

    admin = AdminClient(client_config(sasl(sasl_source, ADMIN, ADMIN_PASSWORD)))
    name = f"alerts.readable.{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)
    for future in admin.create_acls([AclBinding(ResourceType.TOPIC, name, ResourcePatternType.LITERAL,
                                                f"User:{SCORER}", "*", op, AclPermissionType.ALLOW)
                                     for op in (AclOperation.READ, AclOperation.DESCRIBE)]).values():
        future.result(30)
    return name


def _failing_config(stream_config, sasl_source, command: str, failure: str):
    """The configuration that makes `command` meet `failure`, and the message expected."""
    own = {"bootstrap_servers": stream_config.kafka.bootstrap_servers}
    if command == "subscribe":  # reads the output cluster
        if failure == "unknown topic":
            config = _with(stream_config, topics={"scored": "test.no-such-scored"})
            return config, r"topics\.scored: topic test\.no-such-scored on .*: does not exist"
        config = _with(stream_config, input={"kafka": own},
                       output={"kafka": _cluster(stream_config, sasl_source, failure)})
        return config, EXPECTED[failure].format(section="output\\.kafka", role="output")
    if failure == "unknown topic":
        source = own | {"topics": ["test.no-such-alerts"]}
    elif failure == "unauthorised group":  # refused only once the consumer joins: the outputs must be there
        from stream.health import create_topics

        source = sasl(sasl_source, SCORER, SCORER_PASSWORD) | {"topics": [_readable_topic(sasl_source)]}
        positions = f"test.input-offsets.{uuid.uuid4().hex[:8]}"
        create_topics(stream_config.kafka.client_config(), [positions], 1, topic_config={"cleanup.policy": "compact"})
        stream_config = _with(stream_config, topics={"input_offsets": positions})
    elif failure == "unauthorised topic":
        source = sasl(sasl_source, SCORER, SCORER_PASSWORD) | {"topics": [f"alerts.secret.{uuid.uuid4().hex[:8]}"]}
    else:
        source = _cluster(stream_config, sasl_source, failure) | {"topics": list(stream_config.topics.inputs)}
    config = _with(stream_config, input={"kafka": source})
    return config, EXPECTED[failure].format(section="input\\.kafka", role="input")


CASES = [(command, failure) for command in ARGS for failure in ("closed port", "wrong password", "unknown topic")]
CASES += [("run", "unauthorised topic"), ("decode", "unauthorised group")]


@pytest.mark.timeout(180)  # a hang fails the test; the commands stop within their connect timeout
@pytest.mark.parametrize("command, failure", CASES)
def test_connection_failure_is_one_line_exit_2(stream_config, sasl_source, command, failure):
    import re

    config, expected = _failing_config(stream_config, sasl_source, command, failure)
    run = subprocess.run([sys.executable, "-m", "alertformer.cli", *ARGS[command]],
                         env=os.environ | config_env(config), capture_output=True, text=True, timeout=150)
    output = run.stdout + run.stderr
    last = (run.stderr.strip().splitlines() or [""])[-1]
    assert run.returncode == 2, output[-3000:]
    assert re.match(rf"alertformer {command}: {expected}", last), last
    assert "Traceback" not in output and "%3|" not in output and "%4|" not in output, output[-3000:]
    assert WRONG_PASSWORD not in output and SCORER_PASSWORD not in output
    assert len(run.stderr.strip().splitlines()) <= 12, run.stderr[-3000:]
