"""The webhook sink against a real HTTP server on 127.0.0.1: delivery, retries, no retry on 4xx, timeouts."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stream.webhook import WebhookSink

RECORD = {"objectId": "ZTF21abcdefg", "alertId": 123, "rule": "young_sn", "snLikelihood": 0.93,
          "latestMagAb": None, "modelVersion": "v1"}


class Endpoint:
    """An HTTP server answering POSTs with the scripted statuses (then 200), after `delay_s`."""

    def __init__(self, statuses=(), delay_s: float = 0.0):
        self.statuses, self.delay_s = list(statuses), delay_s
        self.bodies: list[bytes] = []
        self.attempts = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                endpoint.attempts += 1
                time.sleep(endpoint.delay_s)
                status = endpoint.statuses.pop(0) if endpoint.statuses else 200
                if status == 200:
                    endpoint.bodies.append(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint_factory():
    made = []

    def make(**kwargs) -> Endpoint:
        made.append(Endpoint(**kwargs))
        return made[-1]

    yield make
    for endpoint in made:
        endpoint.close()


def test_delivered_bodies_equal_the_records(endpoint_factory):
    endpoint = endpoint_factory()
    sink = WebhookSink(endpoint.url, timeout_s=2.0, retries=0)
    records = [RECORD | {"alertId": i} for i in range(5)]
    assert all(sink.submit(r) for r in records)
    sink.close()
    assert [json.loads(b) for b in endpoint.bodies] == records
    assert (sink.stats.delivered, sink.stats.failed, sink.stats.dropped) == (5, 0, 0)


def test_server_error_is_retried(endpoint_factory):
    endpoint = endpoint_factory(statuses=[500, 503])
    sink = WebhookSink(endpoint.url, timeout_s=2.0, retries=3, backoff_s=0.01)
    sink.submit(RECORD)
    sink.close()
    assert endpoint.attempts == 3
    assert [json.loads(b) for b in endpoint.bodies] == [RECORD]
    assert sink.stats.delivered == 1


def test_server_errors_beyond_retries_give_up(endpoint_factory):
    endpoint = endpoint_factory(statuses=[500, 500, 500])
    sink = WebhookSink(endpoint.url, timeout_s=2.0, retries=1, backoff_s=0.01)
    sink.submit(RECORD)
    sink.close()
    assert endpoint.attempts == 2 and endpoint.bodies == []
    assert (sink.stats.delivered, sink.stats.failed) == (0, 1)


def test_client_error_is_not_retried(endpoint_factory):
    endpoint = endpoint_factory(statuses=[400])
    sink = WebhookSink(endpoint.url, timeout_s=2.0, retries=3, backoff_s=0.01)
    sink.submit(RECORD)
    sink.submit(RECORD | {"alertId": 2})  # the next record still goes out
    sink.close()
    assert endpoint.attempts == 2
    assert [json.loads(b)["alertId"] for b in endpoint.bodies] == [2]
    assert (sink.stats.delivered, sink.stats.failed) == (1, 1)


def test_timeout_is_honoured(endpoint_factory):
    endpoint = endpoint_factory(delay_s=2.0)
    sink = WebhookSink(endpoint.url, timeout_s=0.2, retries=1, backoff_s=0.01)
    sink.submit(RECORD)
    sink.close(timeout_s=5.0)
    # Without the 0.2 s timeout the 2 s answer (a 200) would count as delivered.
    assert endpoint.attempts == 2  # timed out, retried, timed out again
    assert (sink.stats.delivered, sink.stats.failed) == (0, 1)


def test_connection_refused_is_retried_then_counted():
    sink = WebhookSink("http://127.0.0.1:9/hook", timeout_s=0.5, retries=2, backoff_s=0.01)  # discard port: closed
    sink.submit(RECORD)
    sink.close()
    assert sink.stats.failed == 1


def test_full_queue_drops_without_blocking(endpoint_factory):
    endpoint = endpoint_factory(delay_s=0.5)
    sink = WebhookSink(endpoint.url, timeout_s=2.0, retries=0, queue_size=2)
    accepted = [sink.submit(RECORD | {"alertId": i}) for i in range(10)]
    # submit() never waits for room: a blocking queue would have accepted all ten. The thread holds at most one record in flight, the queue two more; the rest are dropped.
    assert sum(accepted) <= 3 and sink.stats.dropped == 10 - sum(accepted)
    sink.close()
    assert sink.stats.delivered == sum(accepted)
