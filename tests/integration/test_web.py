"""``alertformer web`` against the real stack after the demo's replay (real ZTF and Rubin sample alerts, a
simulated Rubin stream, scored with the shipped model): the JSON against Redis, then the pages in headless
Debian Chromium driven by Selenium (skipped, saying why, where /usr/bin/chromium or chromedriver is absent;
.ci/run installs both). Screenshots go to $ALERTFORMER_TEST_ARTIFACTS/web (default .test-artifacts/web)."""
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import pytest
import redis
from conftest import config_env, rubin_alerts, wait_for
from starlette.testclient import TestClient

from models.bands import BAND_NAMES
from stream.config import StreamConfig
from stream.health import create_topics
from stream.history import unpack
from stream.kafka_io import make_producer
from stream.keys import Keys
from stream.service import ScoringService
from stream.web.app import create_app

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("ALERTFORMER_TEST_ARTIFACTS", REPO / ".test-artifacts")) / "web"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,1000")
COMMAND_TIMEOUT_S = 240
PAGE_TIMEOUT_S = 30.0
REFRESH_S = 1.0  # the candidates page polls this often here
SIMULATED_OBJECTS = 15
MALFORMED = b"\x00\x00\x00\x03\xe8truncated"  # the demo's malformed packet


def alertformer(*args: str, env: dict) -> str:
    result = subprocess.run([sys.executable, "-m", "alertformer.cli", *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=COMMAND_TIMEOUT_S)
    assert result.returncode == 0, f"alertformer {' '.join(args)}: {result.stderr[-3000:]}"
    return result.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def night(stack):
    """The demo's replay on fresh topics, scored; returns (config, environment, Redis client)."""
    run = uuid.uuid4().hex[:8]
    topics = {name: f"test.web-{name}.{run}" for name in ("alerts", "scored", "classifications", "followup",
                                                          "deadletter", "labels")}
    config = StreamConfig(kafka={"bootstrap_servers": stack["bootstrap"]},
                          redis={"url": stack["redis_url"], "prefix": f"test-web-{run}"},
                          topics={"inputs": {topics["alerts"]: "auto"}}
                          | {k: v for k, v in topics.items() if k != "alerts"},
                          scoring={"group_id": f"web-{run}", "instance_id": f"web-{run}", "batch_timeout_ms": 100})
    create_topics(config.kafka.client_config(), list(topics.values()), 4)
    env = os.environ | config_env(config)
    env.pop("ALERTFORMER_CONFIG", None)
    alertformer("replay", "data/ztf/alerts", "data/rubin", "--quiet", env=env)
    alertformer("simulate", "--n", str(SIMULATED_OBJECTS), "--seed", "1764900000", "--topic", topics["alerts"],
                "--quiet", env=env)
    alertformer("run", "--idle-timeout-s", "5", env=env)
    return config, env, redis.Redis.from_url(stack["redis_url"])


@pytest.fixture(scope="module")
def web(night):
    """The app on uvicorn (a thread, a free port); yields its base URL."""
    import uvicorn

    config, _, client = night
    app = create_app(client, Keys(config.redis.prefix), [r.name for r in config.followup.rules], refresh_s=REFRESH_S)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert until(lambda: server.started), "the web app did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def candidates_in_redis(client, keys: Keys) -> set[str]:
    """Objects of every top-candidate set (the sn list holds the same objects as the flare list)."""
    found = set()
    for key in client.scan_iter(f"{keys.prefix}:top:sn:*"):
        found |= {m.decode() for m in client.zrange(key, 0, -1)}
    return found


def points_per_band(client, keys: Keys, object_id: str) -> dict[str, int]:
    curve = unpack(client.get(keys.light_curve(object_id)))
    return {BAND_NAMES[code]: n for code, n in Counter(curve.band.tolist()).items()}


def test_the_json_matches_redis(night):
    config, _, client = night
    keys = Keys(config.redis.prefix)
    api = TestClient(create_app(client, keys, [r.name for r in config.followup.rules]))
    expected = candidates_in_redis(client, keys)
    assert 20 <= len(expected) <= 200
    rows = api.get("/api/candidates?limit=500").json()["rows"]
    assert {r["objectId"] for r in rows} == expected
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    many = [r for r in rows if r["nVisits"] >= 5]
    assert {r["objectId"] for r in api.get("/api/candidates?limit=500&min_visits=5").json()["rows"]} == \
        {r["objectId"] for r in many}
    centre = rows[0]
    cone = api.get(f"/api/candidates?limit=500&ra={centre['raDeg']}&dec={centre['decDeg']}&radius=0.001").json()
    assert centre["objectId"] in {r["objectId"] for r in cone["rows"]} and len(cone["rows"]) < len(rows)
    for row in rows[:5]:
        page = api.get(f"/api/object/{row['objectId']}").json()
        assert {band: len(p["mjdTai"]) for band, p in page["bands"].items()} == \
            points_per_band(client, keys, row["objectId"])
        stored = [json.loads(e) for e in client.lrange(keys.score_history(row["objectId"]), 0, -1)]
        # as strings: 64-bit alert ids are past what a JavaScript number holds exactly
        assert sorted(e["alertId"] for e in page["history"]) == sorted({str(e["alertId"]) for e in stored})
        assert set(page["followups"].values()) <= {e["alertId"] for e in page["history"]}
        times = [e["mjdTai"] for e in page["history"]]
        assert times == sorted(times)
        assert page["history"][-1]["model"] == page["scores"]["modelVersion"]
        assert abs(sum(page["history"][-1]["probs"].values()) - 1) < 1e-3
    ztf_ids = sorted(o for o in expected if o.startswith("ZTF"))
    assert ztf_ids, "the replay holds ZTF packets"
    links = api.get(f"/api/object/{ztf_ids[0]}").json()["links"]
    assert links == {"Fink": f"https://fink-portal.org/{ztf_ids[0]}",
                     "ALeRCE": f"https://alerce.online/object/{ztf_ids[0]}"}
    assert api.get("/api/object/ZTF00aaaaaaa").status_code == 404
    assert api.get("/object/123456789").status_code == 404
    status = api.get("/api/status").json()
    assert status["consumers"] == []  # the scorer stopped cleanly: it left the live consumers
    assert status["champion"] is None and status["promotions"] is None

@pytest.mark.parametrize("params", [{}, {"score": "flare", "min_score": "0.3"}, {"class": "SNIa", "min_visits": "50"},
                                    {"ra": "150", "dec": "2", "radius": "30", "limit": "20"}, {"limit": "500"}])
def test_chunked_reads_give_the_exact_top_of_the_pool(stack, params):
    """read_candidates stops reading early; a brute force over every stored row must agree."""
    import numpy as np

    from bench.web import fill
    from stream.state import ROW_DTYPE
    from stream.web.query import candidate_query
    from stream.web.read import angular_distance_deg, read_candidates

    client = redis.Redis.from_url(stack["redis_url"])
    keys = Keys(f"test-chunks-{uuid.uuid4().hex[:8]}")
    fill(client, keys, 3000, top_n=1000, rng=np.random.default_rng(7))
    query = candidate_query(params)
    got = read_candidates(client, keys, query)
    pool = set()
    for key in client.scan_iter(f"{keys.prefix}:top:{query.score}:*"):
        pool |= {m.decode() for m in client.zrange(key, 0, -1)}
    expected = []
    for oid in pool:
        r = np.frombuffer(client.get(keys.candidate_row(oid)), dtype=ROW_DTYPE)[0]
        score = float(r["sn_likelihood"] if query.score == "sn" else r["flare_likelihood"])
        if (score < query.min_score or r["n_visits"] < query.min_visits or r["solar_system"]
                or (query.class_id is not None and r["top_class_id"] != query.class_id)
                or (query.cone and angular_distance_deg(query.ra_deg, query.dec_deg, r["ra_deg"], r["dec_deg"])
                    > query.radius_deg)):
            continue
        expected.append((-score, oid))
    assert [r["objectId"] for r in got["rows"]] == [oid for _, oid in sorted(expected)[:query.limit]]
    if not params:
        assert got["considered"] < len(pool)  # loose filters: stopped early


def test_the_benchmark_reports_and_cleans_up(night):
    from bench.web import QUERIES, bench_web

    _, _, client = night
    report = bench_web(client, n_objects=1500, repeats=2, top_n=1000)
    assert set(report["queries"]) == set(QUERIES)
    for q in report["queries"].values():
        assert 0 < q["objects_read"] <= 1500 and q["http"]["median_ms"] > 0 and q["read_only"]["median_ms"] > 0
    assert report["queries"]["default (top 50 by sn)"]["rows"] == 50
    assert not list(client.scan_iter("bench-web-*", count=10_000))


@pytest.fixture(scope="module")
def browser():
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip(f"no {CHROMIUM} or {CHROMEDRIVER}: apt-get install -y chromium chromium-driver (.ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def until(predicate) -> bool:
    """`conftest.wait_for` over `PAGE_TIMEOUT_S`."""
    return wait_for(predicate, polls=int(PAGE_TIMEOUT_S / 0.05))


def status_without_token(url: str) -> int | None:
    """The HTTP status of a GET of `url` without credentials; None while nothing answers."""
    try:
        return urllib.request.urlopen(url, timeout=5).status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return None


def wait_for_page(driver, condition, what: str, timeout_s: float = PAGE_TIMEOUT_S):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s).until(condition, message=what)


def listed(driver) -> list[str]:
    """The object ids in the candidates table, read in one script (the table is redrawn at each poll)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#candidates tbody td.id a'), a => a.textContent);")


def text_of(driver, element_id: str) -> str:
    return driver.execute_script(f"return document.getElementById('{element_id}').textContent;")


def test_pages_in_a_real_browser(night, web, browser):
    from selenium.webdriver.common.by import By

    config, _, client = night
    keys = Keys(config.redis.prefix)
    expected = candidates_in_redis(client, keys)
    browser.get(web + "/")
    wait_for_page(browser, lambda d: len(listed(d)) >= min(len(expected), 50), "the candidates list fills")
    shown = listed(browser)
    assert set(shown) <= expected and len(shown) == min(len(expected), 50)
    browser.save_screenshot(str(ARTIFACTS / "candidates.png"))

    first = browser.find_element(By.CSS_SELECTOR, "#candidates tbody td.id a")
    object_id = first.text
    first.click()
    wait_for_page(browser, lambda d: d.execute_script("return document.body.dataset.ready") == "1", "the object page draws")
    assert browser.current_url == f"{web}/object/{object_id}"
    plotted = browser.execute_script(
        "const n = {}; for (const t of document.getElementById('lc').data) "
        "{ n[t.meta.band] = (n[t.meta.band] || 0) + t.x.length; } return n;")
    assert plotted == points_per_band(client, keys, object_id)
    undetected = browser.execute_script(
        "return document.getElementById('lc').data.filter(t => !t.meta.detection).map(t => t.marker.symbol);")
    assert set(undetected) <= {"triangle-down-open"}
    n_alerts = len({json.loads(e)["alertId"] for e in client.lrange(keys.score_history(object_id), 0, -1)})
    assert browser.execute_script("return document.getElementById('likelihoods').data[0].x.length") == n_alerts
    assert len(browser.find_elements(By.CSS_SELECTOR, "#history tbody tr")) == n_alerts
    browser.set_window_size(1280, 2000)  # the whole page: light curve, probabilities, likelihoods, scores
    browser.save_screenshot(str(ARTIFACTS / "object.png"))
    browser.set_window_size(1280, 1000)



def test_the_list_shows_a_newly_scored_object_without_a_reload(night, web, browser):
    config, _, client = night
    browser.get(web + "/?")
    wait_for_page(browser, lambda d: len(listed(d)) > 0, "the candidates list fills")
    browser.execute_script("window.notReloaded = true;")
    # 'recent_min' narrows the list to objects updated from now on: only the new object will be in it.
    box = browser.find_element("name", "recent_min")
    box.send_keys("1")
    browser.find_element("css selector", "#filters button").click()
    alerts = rubin_alerts(n_objects=1, alerts_per_object=3, seed=int(time.time()))
    new_id = alerts[0].object_id
    assert new_id not in listed(browser)
    producer = make_producer(config.kafka)
    for a in alerts:
        producer.produce(next(iter(config.topics.inputs)), a.value, a.key)
    producer.produce(next(iter(config.topics.inputs)), MALFORMED, b"bad")  # a dead letter for the status page
    assert producer.flush(30) == 0
    service = ScoringService(config)
    scorer = threading.Thread(target=service.run, kwargs={"idle_timeout_s": 20.0, "timeout_s": 120.0})
    scorer.start()
    try:
        wait_for_page(browser, lambda d: new_id in listed(d), "the new object appears")
        assert browser.execute_script("return window.notReloaded === true")
        browser.save_screenshot(str(ARTIFACTS / "candidates-live.png"))

        browser.get(web + "/status")  # the scorer is still up (idle): the status page shows it
        wait_for_page(browser, lambda d: config.scoring.instance_id in text_of(d, "consumers"), "the live scorer is listed")
        wait_for_page(browser, lambda d: "BadPacket" in text_of(d, "dead"), "the dead letter is counted by its reason")
        time.sleep(3 * REFRESH_S)  # a few polls: points in the throughput plot
        assert "yes" in text_of(browser, "consumers")
        assert browser.execute_script("return document.getElementById('rate').data[0].x.length") >= 3
        browser.save_screenshot(str(ARTIFACTS / "status.png"))
    finally:
        service.loop.stop()
        scorer.join(150)


def test_the_command_serves_the_configured_redis_with_its_token(night):
    """``alertformer web`` as a user starts it: address printed, [web] token from the environment enforced."""

    config, env, _ = night
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "alertformer.cli", "web", "--port", str(port)], cwd=REPO,
                              env=env | {"ALERTFORMER_WEB__TOKEN": "t0ken"}, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == f"alertformer web: http://127.0.0.1:{port}/"
        url = f"http://127.0.0.1:{port}/api/candidates?limit=500"
        assert until(lambda: status_without_token(url) is not None), "alertformer web did not answer"
        assert status_without_token(url) == 401
        request = urllib.request.Request(url, headers={"Authorization": "Bearer t0ken"})
        rows = json.loads(urllib.request.urlopen(request, timeout=10).read())["rows"]
        assert {r["objectId"] for r in rows} == candidates_in_redis(redis.Redis.from_url(config.redis.url),
                                                                    Keys(config.redis.prefix))
    finally:
        server.terminate()
        server.wait(10)
