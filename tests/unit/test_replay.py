"""Replay: packet loading and keys, and the send schedule (no broker needed)."""
import pytest

from stream.decode import decode_auto
from stream.replay import ReplayError, load_packets, schedule_s


def test_sample_packets_are_keyed_by_object_id(shared_data):
    packets = load_packets([shared_data / "ztf" / "alerts", shared_data / "rubin"])
    assert len(packets) == 27
    for packet in packets:
        assert packet.key == decode_auto(packet.value).object_id.encode()
    assert {p.key for p in packets} >= {b"ZTF17aaajnnn", b"ZTF17aaacxxf"}


def test_undecodable_packet_is_sent_without_key(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x00\x00\x00\x03\xe8junk")
    [packet] = load_packets([bad])
    assert packet.key is None and packet.value == bad.read_bytes()


def test_missing_source_is_named(tmp_path):
    with pytest.raises(ReplayError, match="missing.avro"):
        load_packets([tmp_path / "missing.avro"])


@pytest.mark.parametrize("n,rate,visit,interval,expected", [
    (4, 0, 0, 0, [0.0, 0.0, 0.0, 0.0]),
    (4, 4.0, 0, 0, [0.0, 0.25, 0.5, 0.75]),
    (5, 0, 2, 40.0, [0.0, 0.0, 40.0, 40.0, 80.0]),
])
def test_schedule(n, rate, visit, interval, expected):
    assert list(schedule_s(n, rate, visit, interval)) == expected
