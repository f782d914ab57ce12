"""``alertformer run --processes N``: N scorer processes on one host under one supervisor.

Why processes: on a GPU host one scorer's host thread (decoding, windows, Kafka, Redis) is the
wall and the GPU idles, and Python's GIL keeps threads from sharing that work out. N processes
join the same consumer group and Kafka splits the input partitions among them, so the topics'
partitions cap how many are busy (README, Scaling out). They share the device.

Each child runs ``alertformer run`` with the parent's options and its own instance id,
``<instance_id>-<i>`` (i = 0 .. N-1): the children's transactional ids differ, and a restarted
child keeps its id, so its new producer fences its crashed predecessor's open transaction.

What the supervisor does when a child exits:

- 0, it stopped by itself (``--max-messages``, ``--idle-timeout-s``): not restarted;
- 2 at its first start, a configuration error or a broker it cannot reach (`alertformer.cli.main`):
  every child is stopped and the supervisor exits 2, as one scorer would;
- anything else, including 2 from a restarted child (the broker that made it exit 3 is still
  down after ``kafka.connect_timeout_s``) (3 for a fatal Kafka error or the watchdog, a signal, a crash): restarted after
  `SupervisorPolicy.restart_backoff_s`, unless it already restarted ``max_restarts`` times within
  ``restart_window_s``; then every child is stopped and the supervisor exits 3.

SIGTERM or SIGINT sends SIGTERM to every child (each finishes its batch, commits and leaves the
group); a child still running `SupervisorPolicy.stop_grace_s` later is killed. The supervisor then
prints one JSON line, the children's run summaries added up, with ``processes`` and ``restarts``.
"""
import json
import logging
import signal
import socket
import subprocess
import sys
import tempfile
import time
import typing
from collections import Counter
from dataclasses import dataclass, field

log = logging.getLogger(__name__)
EXIT_CONFIG = 2  # `alertformer` exits 2 for an AlertformerError (bad config, no broker at start-up)
EXIT_GAVE_UP = 3  # a child kept crashing, or did not stop cleanly
POLL_S = 0.2


@dataclass(frozen=True)
class SupervisorPolicy:
    """When the supervisor restarts a child, and how long children get to stop."""

    restart_backoff_s: float = 1.0  # wait before a restart (a broker that just died needs a moment)
    max_restarts: int = 5  # restarts of one child within restart_window_s before giving up
    restart_window_s: float = 300.0
    stop_grace_s: float = 60.0  # SIGTERM to SIGKILL: a child finishes and commits its batch first


@dataclass
class _Child:
    index: int
    command: list[str]
    process: subprocess.Popen | None = None
    stdout: typing.IO | None = None  # a temporary file: a pipe read only at exit could fill and block the child
    restarts: list[float] = field(default_factory=list)  # monotonic times
    due_s: float | None = None  # monotonic time of a pending restart


class Supervisor:
    """Runs `commands` (one per child), restarting per `policy`; `run` returns the exit code.

    Parameters
    ----------
    commands : list of list of str
        The argv of each child.
    policy : SupervisorPolicy
    env : dict, optional
        The children's environment (default: this process's).
    """

    def __init__(self, commands: list[list[str]], policy: SupervisorPolicy = SupervisorPolicy(),
                 env: dict | None = None):
        self.children = [_Child(i, list(c)) for i, c in enumerate(commands)]
        self.policy, self.env = policy, env
        self.summaries: list[dict] = []
        self._stop_requested = False

    def request_stop(self, *_signal) -> None:
        """Stop every child (a signal handler)."""
        self._stop_requested = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    @property
    def n_restarts(self) -> int:
        return sum(len(c.restarts) for c in self.children)

    def _start(self, child: _Child) -> None:
        child.stdout = tempfile.TemporaryFile("w+")
        child.process = subprocess.Popen(child.command, env=self.env, stdout=child.stdout, text=True)
        child.due_s = None
        log.info("scorer %d started pid=%d", child.index, child.process.pid)

    def _collect(self, child: _Child) -> int:
        """The exit code of a child that ended; its summary line (stdout's last JSON line) is kept."""
        code = child.process.returncode
        child.stdout.seek(0)
        lines = [line for line in child.stdout.read().splitlines() if line.startswith("{")]
        child.stdout.close()
        if lines:
            try:
                self.summaries.append(json.loads(lines[-1]))
            except json.JSONDecodeError:
                log.warning("scorer %d printed an unreadable summary: %.200s", child.index, lines[-1])
        child.process = None
        return code

    def run(self) -> int:
        for child in self.children:
            self._start(child)
        code = 0
        while not self._stop_requested:
            now = time.monotonic()
            for child in self.children:
                if child.due_s is not None and now >= child.due_s:
                    self._start(child)
                if child.process is None or child.process.poll() is None:
                    continue
                exit_code = self._collect(child)
                if exit_code == 0:
                    log.info("scorer %d stopped by itself", child.index)
                elif exit_code == EXIT_CONFIG and not child.restarts:
                    log.error("scorer %d exited %d at start-up (configuration or connection error): stopping all",
                              child.index, exit_code)
                    code = EXIT_CONFIG
                elif self._gave_up(child, now):
                    log.error("scorer %d exited %d and restarted %d times within %.0f s: stopping all",
                              child.index, exit_code, self.policy.max_restarts, self.policy.restart_window_s)
                    code = EXIT_GAVE_UP
                else:
                    child.restarts.append(now)
                    child.due_s = now + self.policy.restart_backoff_s
                    log.warning("scorer %d exited %d: restarting in %.1f s", child.index, exit_code,
                                self.policy.restart_backoff_s)
            if code or all(c.process is None and c.due_s is None for c in self.children):
                break
            time.sleep(POLL_S)
        return max(code, self._stop_all())

    def _gave_up(self, child: _Child, now: float) -> bool:
        recent = [t for t in child.restarts if now - t <= self.policy.restart_window_s]
        return len(recent) >= self.policy.max_restarts

    def _stop_all(self) -> int:
        """SIGTERM every running child, SIGKILL those alive after the grace; 3 if one did not stop cleanly.

        A child ended by the SIGTERM itself had not installed its handlers yet (it was still
        starting), so it had nothing to commit: that is a clean stop too.
        """
        running = [c for c in self.children if c.process is not None]
        for child in self.children:
            child.due_s = None
        for child in running:
            child.process.terminate()
        deadline = time.monotonic() + self.policy.stop_grace_s
        code = 0
        for child in running:
            try:
                child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("scorer %d still running %.0f s after SIGTERM: killed", child.index,
                          self.policy.stop_grace_s)
                child.process.kill()
                child.process.wait()
            if self._collect(child) not in (0, -signal.SIGTERM):
                code = EXIT_GAVE_UP
        return code

    def summary(self) -> dict:
        """The children's run summaries added up, with ``processes`` and ``restarts``."""
        total = {"alerts_scored": 0, "dead_letters": 0, "followup_requests": 0}
        classes: Counter = Counter()
        for s in self.summaries:
            for key in total:
                total[key] += int(s.get(key, 0))
            classes.update(s.get("top_classes", {}))
        return total | {"top_classes": dict(classes.most_common()), "processes": len(self.children),
                        "restarts": self.n_restarts}


def child_commands(n: int, instance_id: str, args: list[str]) -> list[list[str]]:
    """The argv of each of `n` children: ``alertformer run`` with `args` and ``--instance-id <instance_id>-<i>``.

    >>> child_commands(2, "host", ["--idle-timeout-s", "5"])[1][-4:]
    ['--idle-timeout-s', '5', '--instance-id', 'host-1']
    """
    return [[sys.executable, "-m", "alertformer.cli", "run", *args, "--instance-id", f"{instance_id}-{i}"]
            for i in range(n)]


def cmd_supervise(args) -> int:
    """``alertformer run --processes N`` (N > 1): the supervisor of N scorers (module docstring)."""
    from stream.config import load_config

    config = load_config(args.config)  # validated here, once, so a bad file fails before any child starts
    instance_id = args.instance_id or config.scoring.instance_id or socket.gethostname()
    forwarded = []
    for option, value in (("--config", args.config), ("--checkpoint", args.checkpoint),
                          ("--max-messages", args.max_messages), ("--idle-timeout-s", args.idle_timeout_s)):
        if value is not None:
            forwarded += [option, str(value)]
    supervisor = Supervisor(child_commands(args.processes, instance_id, forwarded))
    supervisor.install_signal_handlers()
    code = supervisor.run()
    print(json.dumps(supervisor.summary()))
    return code
