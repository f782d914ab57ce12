"""The supervisor of ``alertformer run --processes N``, on child processes that play a scorer's exits."""
import sys
import threading
import time
from pathlib import Path

import pytest

from stream.supervisor import Supervisor, SupervisorPolicy

FAST = SupervisorPolicy(restart_backoff_s=0.0, max_restarts=3, restart_window_s=60.0, stop_grace_s=10.0)


def child(tmp_path: Path, name: str, body: str) -> list[str]:
    """A child that appends a line to ``<name>.starts`` at each start, then runs `body` (``n`` = its start number)."""
    script = tmp_path / f"{name}.py"
    script.write_text(
        "import json, signal, sys, time\n"
        f"starts = {str(tmp_path / (name + '.starts'))!r}\n"
        "with open(starts, 'a') as f:\n    f.write('x\\n')\n"
        "n = len(open(starts).read().splitlines())\n" + body)
    return [sys.executable, str(script)]


def summary_line(scored: int, classes: dict) -> str:
    return f"print(json.dumps({{'alerts_scored': {scored}, 'dead_letters': 1, 'followup_requests': 0, " \
           f"'top_classes': {classes!r}}}))\n"


def starts(tmp_path: Path, name: str) -> int:
    path = tmp_path / f"{name}.starts"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_children_that_stop_by_themselves_end_it_with_their_summaries_added(tmp_path):
    supervisor = Supervisor([child(tmp_path, "a", summary_line(5, {"SN Ia": 5})),
                             child(tmp_path, "b", summary_line(7, {"SN Ia": 2, "AGN": 5}))], FAST)
    assert supervisor.run() == 0
    assert supervisor.summary() == {"alerts_scored": 12, "dead_letters": 2, "followup_requests": 0,
                                    "top_classes": {"SN Ia": 7, "AGN": 5}, "processes": 2, "restarts": 0}


def test_a_crashed_child_is_restarted_until_it_stops_by_itself(tmp_path):
    body = "if n < 3:\n    sys.exit(3)\n" + summary_line(4, {"AGN": 4})
    supervisor = Supervisor([child(tmp_path, "a", body)], FAST)
    assert supervisor.run() == 0
    assert starts(tmp_path, "a") == 3
    assert supervisor.summary()["restarts"] == 2
    assert supervisor.summary()["alerts_scored"] == 4


def test_a_child_killed_by_a_signal_is_restarted(tmp_path):
    body = "import os\nif n == 1:\n    os.kill(os.getpid(), signal.SIGKILL)\n" + summary_line(1, {})
    supervisor = Supervisor([child(tmp_path, "a", body)], FAST)
    assert supervisor.run() == 0
    assert starts(tmp_path, "a") == 2


WAIT_FOR_SIGTERM = (
    "signal.signal(signal.SIGTERM, lambda *_: (print(json.dumps({'alerts_scored': 3})), sys.exit(0)))\n"
    "open(starts + '.ready', 'w').close()\n"
    "while True:\n    time.sleep(0.05)\n")


def test_exit_2_at_start_up_stops_every_child_and_exits_2(tmp_path):
    supervisor = Supervisor([child(tmp_path, "bad", "sys.exit(2)\n"),
                             child(tmp_path, "good", WAIT_FOR_SIGTERM)], FAST)
    assert supervisor.run() == 2
    assert starts(tmp_path, "bad") == 1  # not restarted
    assert supervisor.summary()["alerts_scored"] in (0, 3)  # "good" stopped, by SIGTERM, before or after starting


def test_exit_2_of_a_restarted_child_is_a_crash(tmp_path):
    # After a broker crash (exit 3) the restarted scorer exits 2 while the broker is still down.
    body = "if n == 1:\n    sys.exit(3)\nif n == 2:\n    sys.exit(2)\n" + summary_line(2, {})
    supervisor = Supervisor([child(tmp_path, "a", body)], FAST)
    assert supervisor.run() == 0
    assert starts(tmp_path, "a") == 3


def test_it_gives_up_on_a_child_that_keeps_crashing(tmp_path):
    supervisor = Supervisor([child(tmp_path, "a", "sys.exit(3)\n"), child(tmp_path, "b", WAIT_FOR_SIGTERM)], FAST)
    assert supervisor.run() == 3
    assert starts(tmp_path, "a") == FAST.max_restarts + 1
    assert supervisor.summary()["restarts"] == FAST.max_restarts


def wait_ready(tmp_path: Path, names: list[str], polls: int = 600) -> None:
    """Wait until every child named has started (each checks in with a file), polling 0.05 s apart."""
    for _ in range(polls):
        if all((tmp_path / f"{n}.starts.ready").exists() for n in names):
            return
        time.sleep(0.05)
    pytest.fail(f"children {names} did not start")


def test_stop_sends_sigterm_to_every_child_and_collects_their_summaries(tmp_path):
    supervisor = Supervisor([child(tmp_path, n, WAIT_FOR_SIGTERM) for n in ("a", "b", "c")], FAST)
    stopper = threading.Thread(target=lambda: (wait_ready(tmp_path, ["a", "b", "c"]), supervisor.request_stop()))
    stopper.start()
    assert supervisor.run() == 0
    stopper.join()
    assert supervisor.summary()["alerts_scored"] == 9
    assert supervisor.summary()["processes"] == 3


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace(tmp_path):
    body = "signal.signal(signal.SIGTERM, signal.SIG_IGN)\nopen(starts + '.ready', 'w').close()\n" \
           "while True:\n    time.sleep(0.05)\n"
    policy = SupervisorPolicy(restart_backoff_s=0.0, stop_grace_s=0.5)
    supervisor = Supervisor([child(tmp_path, "a", body)], policy)
    stopper = threading.Thread(target=lambda: (wait_ready(tmp_path, ["a"]), supervisor.request_stop()))
    stopper.start()
    assert supervisor.run() == 3
    stopper.join()


def test_an_unreadable_summary_is_left_out(tmp_path):
    supervisor = Supervisor([child(tmp_path, "a", "print('{not json')\n")], FAST)
    assert supervisor.run() == 0
    assert supervisor.summary()["alerts_scored"] == 0


@pytest.mark.parametrize("argv, message", [(["--processes", "0"], "must be > 0"),
                                           (["--processes", "two"], "invalid")])
def test_processes_must_be_a_positive_integer(argv, message, capsys):
    from alertformer.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["run", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_the_children_get_distinct_instance_ids_and_the_forwarded_options():
    from stream.supervisor import child_commands

    commands = child_commands(3, "gpu7", ["--config", "c.toml"])
    assert [c[c.index("--instance-id") + 1] for c in commands] == ["gpu7-0", "gpu7-1", "gpu7-2"]
    assert all(c[c.index("--config") + 1] == "c.toml" for c in commands)
