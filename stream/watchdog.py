"""A watchdog thread that ends the process when a call into librdkafka overruns its deadline.

librdkafka can block a transactional call forever after a broker crash (seen: in
``send_offsets_to_transaction``, a ``pthread_cond_wait`` without a deadline, although a
timeout was passed). The thread calling it cannot be interrupted, and Python runs signal
handlers only on the main thread between bytecodes, so SIGTERM did nothing either. This
thread does not depend on the stuck one: past the deadline it writes one line and calls
``os._exit(3)`` (no clean-up can run while the call is stuck; the open transaction is aborted
by the next process with the same transactional id, or by the broker after its timeout).

It also bounds SIGTERM/SIGINT: it watches Python's signal wakeup fd, which the C-level
handler writes even while the main thread is stuck, and exits 3 if the process is still
running `STOP_GRACE_S` after the signal.
"""
import os
import select
import signal
import socket
import sys
import threading
import time
from contextlib import contextmanager

EXIT_FATAL = 3  # as `alertformer` exits for a Fatal error: a supervisor restarts the process
MARGIN_S = 5.0  # a call's deadline is its own timeout plus this (librdkafka returns at its timeout when it can)
STOP_GRACE_S = 45.0  # after SIGTERM: the batch in hand to finish and commit (a few transactional timeouts) and close
TICK_S = 0.2  # how often the thread looks at the clock


class Watchdog:
    """Deadlines for blocking calls, enforced from a daemon thread.

    Parameters
    ----------
    exit : callable
        Ends the process with the given code (``os._exit``; tests may pass another).
    stop_grace_s : float
        How long the process may run on after SIGTERM or SIGINT.
    """

    def __init__(self, exit=os._exit, stop_grace_s: float = STOP_GRACE_S):
        self._exit, self.stop_grace_s = exit, stop_grace_s
        self._lock = threading.Lock()
        self._calls: list[tuple[str, float, float]] = []  # (what, deadline, timeout_s) of calls in progress
        self._stop_deadline: float | None = None
        self._closed = threading.Event()
        self._wakeup: socket.socket | None = None
        self._thread = threading.Thread(target=self._watch, name="watchdog", daemon=True)
        self._thread.start()

    @contextmanager
    def deadline(self, what: str, timeout_s: float):
        """Run the block under a deadline of `timeout_s` + `MARGIN_S` seconds; past it, exit 3."""
        call = (what, time.monotonic() + timeout_s + MARGIN_S, timeout_s)
        with self._lock:
            self._calls.append(call)  # nested: a rebalance callback runs inside consume or close
        try:
            yield
        finally:
            with self._lock:
                self._calls.remove(call)

    def watch_signals(self) -> None:
        """Bound SIGTERM/SIGINT even while the main thread is stuck (call from the main thread)."""
        receiver, sender = socket.socketpair()
        sender.setblocking(False)
        signal.set_wakeup_fd(sender.fileno(), warn_on_full_buffer=False)
        self._wakeup, self._wakeup_sender = receiver, sender

    def close(self) -> None:
        """Stop watching (the guarded work is over)."""
        self._closed.set()
        if self._wakeup is not None:
            signal.set_wakeup_fd(-1)
        self._thread.join(timeout=2 * TICK_S)

    def _watch(self) -> None:
        while not self._closed.is_set():
            if self._wakeup is not None:
                self._read_signals()  # waits up to TICK_S for a signal
            else:
                self._closed.wait(TICK_S)
            reason = self._overrun(time.monotonic())
            if reason:
                self._fire(reason)

    def _overrun(self, now: float) -> str | None:
        with self._lock:
            call = next((c for c in self._calls if now > c[1]), None)
        if call is not None:
            return (f"{call[0]} did not return within {call[2]:g} s + {MARGIN_S:g} s (blocked inside librdkafka); "
                    f"exiting {EXIT_FATAL} so that a supervisor restarts it with a fresh producer")
        if self._stop_deadline is not None and now > self._stop_deadline:
            return (f"still running {self.stop_grace_s:g} s after SIGTERM (blocked inside librdkafka); "
                    f"exiting {EXIT_FATAL}")
        return None

    def _read_signals(self) -> None:
        ready, _, _ = select.select([self._wakeup], [], [], TICK_S)
        if not ready:
            return
        signals = self._wakeup.recv(64)
        if self._stop_deadline is None and {signal.SIGTERM, signal.SIGINT} & set(signals):
            self._stop_deadline = time.monotonic() + self.stop_grace_s

    def _fire(self, reason: str) -> None:
        """One line on stderr, then exit: logging may not be configured, and nothing else may run."""
        print(f"alertformer: fatal: watchdog: {reason}", file=sys.stderr, flush=True)
        self._exit(EXIT_FATAL)
        self._closed.set()  # reached only with a test's `exit`
