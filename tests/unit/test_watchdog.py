"""The watchdog: a transactional call that never returns ends the process with exit code 3; SIGTERM is
honoured within a bound even while the main thread is stuck; a timed-out call retires the producer."""
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from confluent_kafka import KafkaError
from fakes import FakeConsumer, FakeMessage, FakeProducer, kafka_exception

from stream.errors import Fatal
from stream.loop import TXN_TIMEOUT_S, Output, TransactionalLoop, sequential

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

# A loop over one message whose producer blocks in `blocking_call` (as librdkafka did in
# send_offsets_to_transaction after a broker crash), run in a child process.
CHILD = textwrap.dedent("""
    import sys, threading
    sys.path[:0] = [{repo!r}, {here!r}]
    from fakes import FakeConsumer, FakeMessage, FakeProducer
    from stream.loop import Output, TransactionalLoop, sequential
    from stream.watchdog import Watchdog

    class Blocking(FakeProducer):
        def {blocking_call}(self, *args):
            print("blocked", flush=True)
            threading.Event().wait()  # never returns

    loop = TransactionalLoop(FakeConsumer([[FakeMessage(b"x")]]), Blocking(), ["alerts"],
                             sequential(lambda messages: [Output("out", b"v")]),
                             txn_timeout_s={txn_timeout_s}, watchdog=Watchdog(stop_grace_s=1.0))
    loop.install_signal_handlers()
    loop.run(max_messages=1)
    print("returned", flush=True)
""")


def _child(blocking_call: str, txn_timeout_s: float) -> subprocess.Popen:
    code = CHILD.format(repo=str(REPO), here=str(HERE), blocking_call=blocking_call, txn_timeout_s=txn_timeout_s)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("call", ["send_offsets_to_transaction", "commit_transaction"])
def test_a_call_that_never_returns_ends_the_process_with_exit_3(call):
    child = _child(call, txn_timeout_s=0.5)
    out, err = child.communicate(timeout=120)  # the bound is 0.5 s + the margin; 120 s only stops a broken test
    assert child.returncode == 3, err
    assert out.splitlines() == ["blocked"]
    assert f"alertformer: fatal: watchdog: {call} did not return within 0.5 s" in err


def test_sigterm_is_honoured_while_the_main_thread_is_stuck():
    child = _child("commit_transaction", txn_timeout_s=3600)  # the call's own deadline is far away
    assert child.stdout.readline() == "blocked\n"
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 3, err
    assert "still running 1 s after SIGTERM" in err and "returned" not in out


def test_a_timed_out_transactional_call_retires_the_producer():
    class TimingOut(FakeProducer):
        def commit_transaction(self, timeout_s=None):
            self.calls.append("commit")
            raise kafka_exception(KafkaError._TIMED_OUT)

    producer = TimingOut()
    loop = TransactionalLoop(FakeConsumer([[FakeMessage(b"x")]]), producer, ["alerts"],
                             sequential(lambda messages: [Output("out", b"v")]))
    with pytest.raises(Fatal, match=f"commit_transaction timed out after {TXN_TIMEOUT_S:g} s: the transaction's "
                                    "outcome is unknown"):
        loop.run(max_messages=1)
    assert producer.calls == ["init", "begin", "send_offsets", "commit"]  # no retry, no abort on it
