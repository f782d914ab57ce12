"""Optional follow-up sink: POST each follow-up request as JSON to a URL (a TOM, a chat hook).

The scoring loop never waits for it. `WebhookSink.submit` puts the record on a
bounded in-memory queue and returns at once; one background thread posts the
records in order. When the queue is full (the endpoint is down or slower than
the triggers arrive) the record is dropped and a warning with the running drop
count is logged: the webhook is a convenience notification, not the system of
record. Every request also sits in the follow-up Kafka topic, from which a
missed one can be recovered.

Delivery: a connection error, a timeout or a 5xx answer is retried up to
``retries`` times, waiting ``backoff_s``, then twice that, and so on; a 4xx
answer means the request itself is wrong and is not retried. Records still
queued when the process exits without `close` are lost.
"""
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

log = logging.getLogger(__name__)

BACKOFF_S = 0.5  # wait before the first retry; doubles per retry
MAX_BACKOFF_S = 30.0
QUEUE_SIZE = 1000  # records waiting for delivery before new ones are dropped
CLOSE_TIMEOUT_S = 10.0  # how long `close` waits for queued records to go out
_STOP = object()


@dataclass
class WebhookStats:
    """Counters of the sink (records): posted with a 2xx answer, given up on, dropped at a full queue."""

    delivered: int = 0
    failed: int = 0
    dropped: int = 0


class WebhookSink:
    """Posts follow-up records to `url` from a background thread.

    Parameters
    ----------
    url : str
        Endpoint; each record is one ``POST`` with ``Content-Type: application/json``.
    timeout_s : float
        Limit for connecting and for each read of one attempt (seconds).
    retries : int
        Further attempts after the first on connection errors, timeouts and 5xx.
    backoff_s : float
        Wait before the first retry (seconds), doubled per retry up to `MAX_BACKOFF_S`.
    queue_size : int
        Records waiting for delivery; beyond it `submit` drops.

    Examples
    --------
    From the scoring loop, with the configured ``[followup]`` settings::

        sink = WebhookSink(settings.webhook_url, settings.webhook_timeout_s, settings.webhook_retries)
        for trigger in claimed:
            sink.submit(followup_record(batch, trigger.index, trigger.rule, created_ms))
        ...
        sink.close()  # at shutdown: post what is queued
    """

    def __init__(self, url: str, timeout_s: float = 5.0, retries: int = 3, backoff_s: float = BACKOFF_S,
                 queue_size: int = QUEUE_SIZE):
        self.url, self.timeout_s, self.retries, self.backoff_s = url, timeout_s, retries, backoff_s
        self.stats = WebhookStats()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="alertformer-webhook", daemon=True)
        self._thread.start()

    def submit(self, record: dict) -> bool:
        """Queue `record` (JSON-serialisable) for posting; never blocks.

        Returns
        -------
        bool
            False if the queue was full and the record dropped.
        """
        try:
            self._queue.put_nowait(record)
            return True
        except queue.Full:
            self.stats.dropped += 1
            log.warning("webhook queue full, follow-up request dropped url=%s dropped_total=%d object=%s rule=%s",
                        self.url, self.stats.dropped, record.get("objectId"), record.get("rule"))
            return False

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Post what is queued, then stop the thread; give up waiting after `timeout_s` seconds."""
        deadline = time.monotonic() + timeout_s
        try:
            self._queue.put(_STOP, timeout=timeout_s)
        except queue.Full:
            log.warning("webhook close timed out with a full queue url=%s queued=%d", self.url, self._queue.qsize())
            return
        self._thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        while (record := self._queue.get()) is not _STOP:
            if self._post_with_retries(record):
                self.stats.delivered += 1
            else:
                self.stats.failed += 1

    def _post_with_retries(self, record: dict) -> bool:
        body = json.dumps(record).encode()
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(self.backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S))
            try:
                self._post(body)
                return True
            except urllib.error.HTTPError as err:
                if err.code < 500:
                    log.error("webhook rejected request, not retried url=%s status=%d object=%s rule=%s",
                              self.url, err.code, record.get("objectId"), record.get("rule"))
                    return False
                reason = f"HTTP {err.code}"
            except OSError as err:  # URLError, connection refused or reset, timeouts
                reason = f"{type(err).__name__}: {getattr(err, 'reason', err)}"
            log.warning("webhook attempt failed url=%s attempt=%d of=%d reason=%r",
                        self.url, attempt + 1, self.retries + 1, reason)
        log.error("webhook gave up url=%s attempts=%d object=%s rule=%s",
                  self.url, self.retries + 1, record.get("objectId"), record.get("rule"))
        return False

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            response.read()
