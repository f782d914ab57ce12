"""Parts of the chaos tests: a private Kafka + Redis (deploy/stack.sh) that a test may kill, a supervisor
that restarts the scorer as systemd's Restart=on-failure would, a stream producer and a reader.

Counts are reduced by default; ``CHAOS_SCALE=full`` (``make chaos``) runs the issue's counts.
"""
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer

from stream import avro_io
from stream.kafka_io import make_producer

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "deploy" / "stack.sh"
FULL = os.environ.get("CHAOS_SCALE") == "full"
RATE_PER_S = 20  # alerts/s, as in the fault run that found the hang
RESTART_BACKOFF_S = 1.0  # the supervisor waits this long before restarting a scorer that exited non-zero

_spec = importlib.util.spec_from_file_location("integration_fixtures", REPO / "tests" / "integration" / "conftest.py")
integration_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(integration_fixtures)
rubin_alerts, config_env = integration_fixtures.rubin_alerts, integration_fixtures.config_env


def scaled(reduced: int, full: int) -> int:
    return full if FULL else reduced


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateStack:
    """A Kafka broker and Redis of this test alone, so that it may kill them."""

    def __init__(self, folder: Path):
        self.env = os.environ | {"ALERTFORMER_STACK_DIR": str(folder), "KAFKA_PORT": str(free_port()),
                                 "KAFKA_CONTROLLER_PORT": str(free_port()), "REDIS_PORT": str(free_port())}
        self.folder = folder
        self.bootstrap = f"127.0.0.1:{self.env['KAFKA_PORT']}"
        self.redis_url = f"redis://127.0.0.1:{self.env['REDIS_PORT']}/0"

    def up(self) -> float:
        """Start what is not running; wait until ready (transactions included). Returns when it was ready."""
        subprocess.run([STACK, "up"], env=self.env, check=True, capture_output=True)
        return time.monotonic()

    def down(self) -> None:
        subprocess.run([STACK, "down"], env=self.env, check=False, capture_output=True)

    def pid(self, name: str) -> int:
        return int((self.folder / f"{name}.pid").read_text())

    def kill_broker(self) -> None:
        os.kill(self.pid("kafka"), signal.SIGKILL)
        while _alive(self.pid("kafka")):
            time.sleep(0.05)

    def signal_redis(self, sig: int) -> None:
        os.kill(self.pid("redis"), sig)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of another process stays a zombie until reaped: not running.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@dataclass
class Supervisor:
    """Runs ``alertformer run`` until it exits 0 (idle: all consumed), restarting it on any other exit code
    (with `restart`; without, the first exit ends it). The scorer imports this checkout's packages."""

    env: dict
    idle_timeout_s: float = 20.0
    restart: bool = True
    exits: list[tuple[float, int, str]] = field(default_factory=list)  # (when, exit code, last stderr line)
    _thread: threading.Thread | None = None
    _proc: subprocess.Popen | None = None
    _stop: bool = False

    def start(self) -> "Supervisor":
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        env = self.env | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), self.env.get("PYTHONPATH")]))}
        while not self._stop:
            self._proc = subprocess.Popen([sys.executable, "-m", "alertformer.cli", "run", "--idle-timeout-s",
                                           str(self.idle_timeout_s)], env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, text=True)
            _, err = self._proc.communicate()
            last = (err.strip().splitlines() or [""])[-1]
            self.exits.append((time.monotonic(), self._proc.returncode, last))
            if self._proc.returncode == 0 or not self.restart:
                return
            time.sleep(RESTART_BACKOFF_S)

    def signal(self, sig: int) -> float:
        """Send `sig` to the running scorer; returns when (monotonic)."""
        self._proc.send_signal(sig)
        return time.monotonic()

    def codes(self) -> list[int]:
        return [code for _, code, _ in self.exits]

    def join(self, timeout_s: float) -> bool:
        """Wait for the scorer to finish; False (and the scorer killed) after `timeout_s`."""
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._stop = True
            self._proc.kill()
            self._thread.join(30)
            return False
        return True


class Tail:
    """Reads a topic read_committed in the background, noting when each record arrived."""

    def __init__(self, bootstrap: str, topic: str):
        self.arrivals: list[tuple[float, bytes]] = []
        self._records: list[dict] = []  # decoded arrivals, by first_scored_after
        self._stop = threading.Event()
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"tail-{uuid.uuid4()}",
                                   "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                                   "enable.auto.commit": False, "log_level": 0})
        self._consumer.subscribe([topic])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for msg in self._consumer.consume(500, 0.2):
                if not msg.error():
                    self.arrivals.append((time.monotonic(), msg.value()))
        self._consumer.close()

    def first_after(self, t: float) -> float | None:
        return next((a for a, _ in self.arrivals if a > t), None)

    def first_scored_after(self, wall_ms: int, where=lambda record: True) -> float | None:
        """When the first record scored after `wall_ms` (epoch ms, ``scoredMs``) and matching `where` arrived:
        a record of a process started later, not one committed before and read late."""
        while len(self._records) < len(self.arrivals):  # decoded once each
            self._records.append(avro_io.decode(self.arrivals[len(self._records)][1])[1])
        return next((a for (a, _), r in zip(self.arrivals, self._records) if r["scoredMs"] > wall_ms and where(r)),
                    None)

    def stop(self) -> list[bytes]:
        time.sleep(2.0)  # anything committed late, or a duplicate, shows up too
        self._stop.set()
        self._thread.join(30)
        return [v for _, v in self.arrivals]


def report(name: str, figures: dict) -> None:
    """Print one JSON line per fault (and append it to $CHAOS_REPORT if set): time to recover and what happened."""
    line = json.dumps({"fault": name, **figures})
    print(line)
    if os.environ.get("CHAOS_REPORT"):
        with open(os.environ["CHAOS_REPORT"], "a") as f:
            f.write(line + "\n")


class Stream:
    """Produces `messages` into the first input topic at `rate_per_s`, in a thread, until they run out or
    `stop()`; `sent` are those produced (a stream as long as the faults need)."""

    def __init__(self, config, messages, rate_per_s: float = RATE_PER_S):
        self.sent: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(config, messages, rate_per_s), daemon=True)
        self._thread.start()

    def _run(self, config, messages, rate_per_s: float) -> None:
        producer = make_producer(config.kafka)
        topic = next(iter(config.topics.inputs))
        for m in messages:
            if self._stop.is_set():
                break
            producer.produce(topic, m.value, m.key)
            self.sent.append(m)
            producer.poll(0)
            time.sleep(1 / rate_per_s)
        assert producer.flush(120) == 0

    def join(self, timeout_s: float) -> list:
        """Wait until every message is produced; returns those sent."""
        self._thread.join(timeout_s)
        return self.sent

    def stop(self, timeout_s: float) -> list:
        """Produce no more; returns those sent."""
        self._stop.set()
        return self.join(timeout_s)


def wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.1)
    return bool(predicate())
