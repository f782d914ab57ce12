"""Dead letters always fit the dead-letter topic: payload cut, with its length, SHA-256 and the reason."""
import hashlib

from fakes import FakeMessage

from stream import avro_io
from stream.deadletter import OVERHEAD_BYTES, dead_letter
from stream.errors import BadPacket
from stream.ingest import Ingest


def test_a_large_payload_is_cut_and_keeps_its_length_and_sha256():
    payload = bytes(range(256)) * 3906  # 999,936 bytes of garbage
    msg = FakeMessage(payload, _key=b"k" * 5000)
    key, value = dead_letter(msg, BadPacket("garbage " * 1000), max_payload_bytes=4096)
    assert len(value) <= 4096 + OVERHEAD_BYTES
    name, record = avro_io.decode(value)
    assert name == "alertformer.deadletter"
    assert record["payload"] == payload[:4096] and record["payloadTruncated"]
    assert record["payloadBytes"] == len(payload)
    assert record["payloadSha256"] == hashlib.sha256(payload).hexdigest()
    assert record["reason"].startswith("garbage") and len(record["reason"]) <= 2000
    assert key == b"k" * 1024 and record["key"] == key


def test_a_small_payload_is_kept_whole():
    msg = FakeMessage(b"not an alert")
    _, value = dead_letter(msg, BadPacket("bad"))
    record = avro_io.decode(value)[1]
    assert record["payload"] == b"not an alert" and not record["payloadTruncated"]
    assert record["payloadBytes"] == 12


def test_oversized_inputs_are_dead_lettered_without_decoding():
    ingest = Ingest({"alerts": "auto"}, "dlq", max_input_bytes=100, max_payload_bytes=10)
    good, dead = ingest([FakeMessage(b"\x00" + b"x" * 200), FakeMessage(b"short garbage", _offset=1)])
    assert not good and len(dead) == 2
    oversized, garbage = (avro_io.decode(d.value)[1] for d in dead)
    assert oversized["reason"].startswith("oversized: message of 201 bytes")
    assert oversized["payloadBytes"] == 201 and len(oversized["payload"]) == 10
    assert not garbage["reason"].startswith("oversized")
    assert dead[0].topic == "dlq" and dead[0].source.offset() == 0
