"""librdkafka's own log goes through Python logging at WARNING and above, one line per facility per period."""
import logging
import time

from stream.kafka_io import LibrdkafkaLog


def test_warnings_pass_rate_limited_per_facility_with_the_count_held_back(caplog, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("stream.kafka_io.time.monotonic", lambda: clock[0])
    log = LibrdkafkaLog(every_s=30.0)
    with caplog.at_level(logging.DEBUG, logger="librdkafka"):
        log.log(logging.INFO, "%s [%s] %s", "CONNECT", "rdkafka#consumer-1", "connecting")  # below WARNING
        for _ in range(100):  # a dead broker: the same failure every second
            log.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", "Connection refused")
        log.log(3, "%s [%s] %s", "AUTH", "rdkafka#consumer-1", "SASL authentication failed")  # a syslog level
        clock[0] += 31.0
        log.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", "Connection refused")
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert lines == [(logging.ERROR, "FAIL [rdkafka#consumer-1] Connection refused"),
                     (logging.ERROR, "AUTH [rdkafka#consumer-1] SASL authentication failed"),
                     (logging.ERROR, "FAIL [rdkafka#consumer-1] Connection refused (99 similar lines held back)")]


def test_clients_log_through_python_logging(caplog, capfd):
    import socket

    from stream.config import KafkaSettings
    from stream.kafka_io import make_producer

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def refused() -> bool:
        return any("Connection refused" in r.getMessage() for r in caplog.records if r.name == "librdkafka")

    with caplog.at_level(logging.WARNING, logger="librdkafka"):
        producer = make_producer(KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}"))
        deadline = time.monotonic() + 30  # a loaded machine may take seconds to try the port and log it
        while not refused() and time.monotonic() < deadline:
            producer.poll(0.2)
    assert refused()
    assert "%3|" not in capfd.readouterr().err  # not librdkafka's own stderr lines
