"""Replay: packet loading and keys, and the send schedule (no broker needed)."""
import pytest

from stream.decode import decode_auto
from stream.replay import Packet, ReplayError, load_packets, schedule_s


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


@pytest.mark.parametrize("content", [b"object_id,class_id\n1,2222\n", b"", b"# notes\n", b"PAR1\x15\x04"])
def test_a_file_that_is_not_an_alert_is_refused_naming_it(tmp_path, content):
    (tmp_path / "alerts").mkdir()
    (tmp_path / "alerts" / "ok.bin").write_bytes(b"\x00\x00\x00\x03\xe8junk")  # a malformed alert: sent
    (tmp_path / "alerts" / "notes.txt").write_bytes(content)
    with pytest.raises(ReplayError, match=r"notes\.txt: not an alert packet"):
        load_packets([tmp_path / "alerts"])


def test_an_elasticc_packet_file_is_replayed_with_its_key(tmp_path):
    from stream.decode import encode_elasticc

    source = {"diaSourceId": 103, "diaObjectId": 1234, "midPointTai": 60010.5, "filterName": "r", "ra": 150.25,
              "decl": 2.5, "psFlux": 950.0, "psFluxErr": 40.0, "snr": 10.0}
    value = encode_elasticc({"alertId": 77, "diaSource": source, "prvDiaSources": [], "prvDiaForcedSources": [],
                             "diaObject": {"diaObjectId": 1234, "simVersion": "t", "ra": 150.25, "decl": 2.5}},
                            fill_defaults=True)
    (tmp_path / "alert.avro").write_bytes(value)
    assert load_packets([tmp_path / "alert.avro"]) == [Packet(b"1234", value)]


@pytest.mark.parametrize("n,rate,visit,interval,expected", [
    (4, 0, 0, 0, [0.0, 0.0, 0.0, 0.0]),
    (4, 4.0, 0, 0, [0.0, 0.25, 0.5, 0.75]),
    (5, 0, 2, 40.0, [0.0, 0.0, 40.0, 40.0, 80.0]),
])
def test_schedule(n, rate, visit, interval, expected):
    assert list(schedule_s(n, rate, visit, interval)) == expected
