"""stream.web without Redis: bad input is refused with a 4xx and a message before any Redis call (the client
here points at a closed port, so a call would be a 503), the token is enforced, pages load nothing from
the internet."""
import re

import pytest
import redis
from starlette.testclient import TestClient

from stream.keys import Keys
from stream.web.app import create_app
from stream.web.query import CandidateQuery, candidate_query

TOKEN = "s3cret-token"


def closed_port_redis() -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, socket_timeout=0.5)


@pytest.fixture
def client():
    return TestClient(create_app(closed_port_redis(), Keys("t"), ["young_sn"]), raise_server_exceptions=False)


@pytest.mark.parametrize("query, field", [
    ("min_score=abc", "min_score"), ("min_score=1.5", "min_score"), ("min_score=nan", "min_score"),
    ("score=ia", "score"), ("class=Unicorn", "class"), ("min_visits=2.5", "min_visits"), ("min_visits=0", "min_visits"),
    ("ra=10&dec=5", "ra"), ("ra=400&dec=5&radius=1", "ra"), ("dec=-91&ra=1&radius=1", "dec"),
    ("min_age_days=5&max_age_days=1", "min_age_days"), ("limit=100000", "limit"), ("recent_min=0", "recent_min"),
    ("colour=red", "colour"), ("min_score=" + "9" * 65, "min_score"),
])
def test_a_malformed_filter_is_a_422_naming_it(client, query, field):
    response = client.get(f"/api/candidates?{query}")
    assert response.status_code == 422, response.text
    assert response.json()["error"].startswith(f"{field}: ")


@pytest.mark.parametrize("path", [
    "/api/object/" + "1" * 65,  # over-long
    "/api/object/ZTF18abc:lc:x",  # a key separator
    "/api/object/%3Cscript%3Ealert(1)%3B",
    "/api/object/%2E%2E",
    "/api/object/*",
])
def test_a_malformed_object_id_is_a_422(client, path):
    response = client.get(path)
    assert response.status_code == 422 and response.json()["error"].startswith("object_id: ")


@pytest.mark.parametrize("path", ["/object/..%2F..%2Fetc%2Fpasswd", "/api/object/..", "/api/object/%2e%2e%2fx", "/api/object/../../etc/passwd",
                                  "/static/../app.py", "/static/..%2Fapp.py", "/static/%2e%2e/query.py"])
def test_path_traversal_is_refused(client, path):
    response = client.get(path)
    assert 400 <= response.status_code < 500, (path, response.status_code)
    assert "import" not in response.text and "root:" not in response.text


def test_script_in_a_parameter_is_not_echoed_as_markup(client):
    attack = "<script>alert(1)</script>"
    for path in (f"/object/{attack}", f"/?class={attack}", f"/nowhere/{attack}"):
        response = client.get(path)
        assert response.status_code in (200, 404, 422) and attack not in response.text, path
    assert client.get(f"/api/candidates?class={attack}").status_code == 422
    assert client.get(f"/api/candidates?{attack}=1").status_code == 422


def test_redis_down_is_a_503_with_a_message_not_a_500(client):
    response = client.get("/api/candidates")
    assert response.status_code == 503 and "redis" in response.json()["error"]
    assert client.get("/api/object/ZTF18abcdefg").status_code == 503


def test_read_only_and_headers(client):
    assert client.post("/api/candidates").status_code == 405
    response = client.get("/")
    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]


def test_pages_load_nothing_from_the_internet(client):
    for path in ("/", "/status", "/static/plotly.min.js"):
        assert client.get(path).status_code == 200
    for path in ("/", "/status"):
        sources = re.findall(r'(?:src|href)="([^"]+)"', client.get(path).text)
        assert sources and all(s.startswith("/") for s in sources), sources
    plotly_js = client.get("/static/plotly.min.js")
    assert plotly_js.headers["content-type"].startswith("text/javascript") and len(plotly_js.content) > 1_000_000


def test_the_token_protects_every_route():
    app = create_app(closed_port_redis(), Keys("t"), [], token=TOKEN)
    client = TestClient(app, raise_server_exceptions=False)
    for path in ("/", "/status", "/object/ZTF18abcdefg", "/api/candidates", "/api/status", "/static/plotly.min.js"):
        assert client.get(path).status_code == 401, path
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401, path
    assert client.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.get("/api/candidates?min_score=x", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 422
    assert client.get("/login?token=wrong", follow_redirects=False).status_code == 401
    login = client.get(f"/login?token={TOKEN}", follow_redirects=False)
    assert login.status_code == 303 and "httponly" in login.headers["set-cookie"].lower()
    assert client.get("/status").status_code == 200  # the cookie /login set


def test_query_defaults_and_class_names():
    assert candidate_query({}) == CandidateQuery()
    q = candidate_query({"score": "flare", "class": "kilonova", "ra": "10", "dec": "-30", "radius": "0.5",
                         "min_visits": "3", "max_age_days": "20"})
    assert (q.score, q.class_id, q.cone, q.min_visits, q.max_age_days) == ("flare", 2232, True, 3, 20.0)


def test_promotions_newest_first_and_none_without_a_registry(tmp_path):
    import torch

    from models.checkpoint import save_checkpoint
    from models.model import AlertTransformer, ModelConfig
    from models.registry import ModelRegistry
    from stream.web.read import read_promotions

    assert read_promotions(None) is None
    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "m.pt", AlertTransformer(ModelConfig(d_model=16, n_heads=2, n_layers=1)))
    registry = ModelRegistry(tmp_path / "reg")
    for reason in ("shipped", "better macro_f1"):
        registry.promote(registry.register(checkpoint).version, reason)
    promotions = read_promotions(str(tmp_path / "reg"))
    assert promotions.champion == "v0002"
    assert [(p["version"], p["reason"]) for p in promotions.recent] == [("v0002", "better macro_f1"),
                                                                        ("v0001", "shipped")]
