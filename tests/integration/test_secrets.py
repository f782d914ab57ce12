"""Redis credentials: refused credentials end the scorer with one line and exit 2; the password never
appears in its output; a separate redis.password setting works."""
import os
import socket
import subprocess
import sys
import time

import pytest
import redis
from conftest import config_env

from stream.errors import ConfigError
from stream.service import ScoringService

pytestmark = pytest.mark.integration
PASSWORD = "Corr3ct-horse"


@pytest.fixture(scope="module")
def auth_redis_port(tmp_path_factory):
    """A Redis that requires PASSWORD, on a free port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tmp_path_factory.mktemp("auth-redis")
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--requirepass", PASSWORD,
                             "--save", "", "--appendonly", "no", "--dir", str(folder)], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port, password=PASSWORD)
    for _ in range(200):  # up to ~20 s
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.1)
    else:
        pytest.fail("auth redis did not start")
    yield port
    proc.terminate()
    proc.wait(10)


def _with_redis(config, **redis_settings):
    return config.model_copy(update={"redis": config.redis.updated(**redis_settings)})


def test_wrong_redis_password_is_a_config_error(stream_config, auth_redis_port):
    config = _with_redis(stream_config, url=f"redis://:wrong-Pass@127.0.0.1:{auth_redis_port}/0")
    with pytest.raises(ConfigError, match=r"^redis\.password: Redis at redis://:\*+@127\.0\.0\.1:\d+/0 refused") as err:
        ScoringService(config)
    assert "wrong-Pass" not in str(err.value)


def test_an_acl_user_that_may_not_run_scripts_is_a_config_error(stream_config, auth_redis_port):
    admin = redis.Redis(port=auth_redis_port, password=PASSWORD)
    admin.acl_setuser("noscript", enabled=True, passwords=[f"+{PASSWORD}"], keys=["*"],
                      commands=["+@all", "-@scripting"])
    config = _with_redis(stream_config, url=f"redis://127.0.0.1:{auth_redis_port}/0", username="noscript",
                         password=PASSWORD)
    with pytest.raises(ConfigError, match=r"^redis\.username: .* does not let this user run scripts") as err:
        ScoringService(config)
    assert PASSWORD not in str(err.value)
    health = subprocess.run([sys.executable, "-m", "alertformer.cli", "health", "--timeout-s", "5"],
                            env=os.environ | config_env(config), capture_output=True, text=True, timeout=60)
    assert health.returncode == 2 and "does not let this user run scripts" in health.stderr, health.stderr
    assert PASSWORD not in health.stderr + health.stdout


def test_cli_exits_2_with_one_line_and_never_prints_the_password(stream_config, auth_redis_port):
    config = _with_redis(stream_config, url=f"redis://:wrong-Pass@127.0.0.1:{auth_redis_port}/0")
    run = subprocess.run([sys.executable, "-m", "alertformer.cli", "run", "--max-messages", "1"],
                         env=os.environ | config_env(config), capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "wrong-Pass" not in run.stderr + run.stdout
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("alertformer run: redis.password: Redis at") and "Traceback" not in run.stderr
    health = subprocess.run([sys.executable, "-m", "alertformer.cli", "health", "--timeout-s", "5"],
                            env=os.environ | config_env(config), capture_output=True, text=True, timeout=60)
    assert health.returncode == 2 and "refused the credentials" in health.stderr
    assert "wrong-Pass" not in health.stderr + health.stdout


def test_separate_password_setting_and_masked_start_up_line(stream_config, auth_redis_port, caplog):
    import logging

    config = _with_redis(stream_config, url=f"redis://127.0.0.1:{auth_redis_port}/0", password=PASSWORD)
    with caplog.at_level(logging.INFO):
        service = ScoringService(config)
        service.run(max_messages=0, timeout_s=5)
    assert service.redis.ping()
    assert "scorer ready" in caplog.text and PASSWORD not in caplog.text
    in_url = _with_redis(stream_config, url=f"redis://:{PASSWORD}@127.0.0.1:{auth_redis_port}/0")
    with caplog.at_level(logging.INFO):
        ScoringService(in_url).run(max_messages=0, timeout_s=5)
    assert PASSWORD not in caplog.text and ":**********@127.0.0.1" in caplog.text
