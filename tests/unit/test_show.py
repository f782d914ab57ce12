"""``alertformer show``: the table, the figure, and the errors for an unknown object or a Redis outage."""
import pytest
import redis

from models.lightcurve import LightCurve
from stream.errors import ConfigError
from stream.history import pack
from stream.keys import Keys
from stream.show import ObjectView, plot, read_object, render

KEYS = Keys("p")
CURVE = LightCurve.from_arrays([1, 2, 3], [60000.25, 60001.5, 60003.0], [6, 7, 6], [-20.0, 1000.0, 2500.0],
                               [30.0, 50.0, 60.0], [False, True, True])
SCORES = {b"topClassId": b"2232", b"snLikelihood": b"0.12", b"flareLikelihood": b"0.01", b"nVisits": b"3",
          b"raDeg": b"150.5", b"decDeg": b"2.25", b"modelVersion": b"v7"}


class FakeRedis:
    """The two reads `read_object` makes, from dicts."""

    def __init__(self, strings: dict, hashes: dict, down: bool = False):
        self.strings, self.hashes, self.down, self.calls = strings, hashes, down, []

    def pipeline(self, transaction=True):
        return self

    def get(self, key):
        self.calls.append(("get", key))
        return self

    def hgetall(self, key):
        self.calls.append(("hgetall", key))
        return self

    def execute(self):
        if self.down:
            raise redis.ConnectionError("Connection refused")
        (_, lc_key), (_, obj_key) = self.calls
        return [self.strings.get(lc_key), self.hashes.get(obj_key, {})]


def test_the_table_names_the_top_class_and_lists_every_point():
    client = FakeRedis({KEYS.light_curve("o1"): pack(CURVE)}, {KEYS.object_scores("o1"): SCORES})
    lines = render(read_object(client, KEYS, "o1")).splitlines()
    assert lines[0].startswith("o1  ra=150.50000 dec=2.25000 deg  top class: KN  sn_likelihood=0.120")
    assert lines[1].split() == ["mjd_tai", "band", "flux_njy", "flux_err_njy", "mag_ab", "det"]
    assert [line.split() for line in lines[2:]] == [
        ["60000.2500", "ztf-g", "-20.0", "30.0", "-", "no"],
        ["60001.5000", "ztf-r", "1000.0", "50.0", "23.900", "yes"],
        ["60003.0000", "ztf-g", "2500.0", "60.0", "22.905", "yes"],
    ]


def test_the_figure_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "o1.png"
    plot(ObjectView("o1", CURVE, {k.decode(): v.decode() for k, v in SCORES.items()}), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ConfigError, match="--png"):
        plot(ObjectView("o1", CURVE, {}), tmp_path / "missing-dir" / "o1.png")


@pytest.mark.parametrize("client, message", [
    (FakeRedis({}, {}), "object 'o1': no light curve under the prefix 'p'"),
    (FakeRedis({}, {}, down=True), "redis.url: cannot read the state"),
])
def test_an_unknown_object_or_a_redis_outage_is_one_clear_error(client, message):
    with pytest.raises(ConfigError, match=message):
        read_object(client, KEYS, "o1")
