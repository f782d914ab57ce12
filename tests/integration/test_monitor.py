"""The monitor reads the state the scorers write (key names from stream.keys) from a real Redis and shows it:
live consumers only, the last minute beside the totals, top lists of recently updated objects by their latest
score without solar-system objects, fitted to 80x24 and wider terminals (in a real terminal: tmux)."""
import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from stream.keys import Keys, top_bucket
from stream.monitor import read_state
from stream.monitor_view import render

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
STALE_AFTER_S = 30.0


@pytest.fixture
def client_and_keys(stack):
    client = redis.Redis.from_url(stack["redis_url"], decode_responses=True)
    keys = Keys(prefix=f"test-{uuid.uuid4().hex[:10]}")
    yield client, keys
    client.delete(*client.keys(f"{keys.prefix}:*") or ["none"])
    client.close()


def _object(client, keys, oid: str, sn: float, flare: float, updated_ms: int, **fields) -> None:
    """An object's latest scores, and its entry in the top sets of the bucket of `updated_ms` (unless it is a
    solar-system object, which the scorer keeps out of them)."""
    client.hset(keys.object_scores(oid), mapping={"snLikelihood": sn, "flareLikelihood": flare,
                                                  "updatedMs": updated_ms, "solarSystem": 0} | fields)
    if fields.get("solarSystem") != 1:
        client.zadd(keys.top("sn", top_bucket(updated_ms)), {oid: sn})
        client.zadd(keys.top("flare", top_bucket(updated_ms)), {oid: flare})


def write_state(client: redis.Redis, keys: Keys, live_id: str = "host-a-101") -> int:
    now_ms = int(time.time() * 1000)
    stale_ms = now_ms - int((STALE_AFTER_S + 60) * 1000)
    client.set(keys.champion, "v7")
    client.zadd(keys.consumers, {live_id: now_ms, "host-b-202": stale_ms})
    client.hset(keys.consumer(live_id), mapping={
        "alerts": 12345, "deadLetters": 3, "batches": 40, "aborts": 2, "redisOutages": 1, "alertsPerS": 850.25,
        "alertsPerSTotal": 612.5, "latencyP50Ms": 121.4, "latencyP95Ms": 345.6, "latencyP99Ms": 812.0,
        "latencyP50MsTotal": 140.0, "latencyP95MsTotal": 2999.0, "latencyP99MsTotal": 276838.0, "lag": 77,
        "modelVersion": "v7", "heartbeatMs": now_ms, "host": "host-a", "pid": 101})
    client.hset(keys.consumer("host-b-202"), mapping={"alerts": 5, "alertsPerS": 39.5, "modelVersion": "v6",
                                                      "heartbeatMs": stale_ms})
    _object(client, keys, "obj-young-sn", 0.93, 0.01, now_ms, topClassId=2222, nVisits=6, ageDays=4.25,
            latestMjdTai=60123.45678, raDeg=150.12345, decDeg=-2.5, alertId=555001, modelVersion="v7")
    _object(client, keys, "obj-sn-2", 0.91, 0.02, now_ms - 60_000, topClassId=2223, nVisits=3, ageDays=1.5)
    _object(client, keys, "obj-old-sn", 0.99, 0.0, now_ms - 3 * 3600_000, nVisits=60, ageDays=170.0)  # not recent
    _object(client, keys, "obj-asteroid", 0.2, 0.995, now_ms, topClassId=2233, solarSystem=1)
    _object(client, keys, "obj-flare-1", 0.0, 0.99, now_ms, topClassId=2233, nVisits=2, ageDays=0.0)
    # Scored 0.98 twenty minutes ago (still in that bucket's set), 0.30 now: ranked by the latest score.
    _object(client, keys, "obj-faded", 0.98, 0.0, now_ms - 20 * 60_000)
    client.hset(keys.object_scores("obj-faded"), mapping={"snLikelihood": 0.30, "updatedMs": now_ms})
    return now_ms


def test_read_state_keeps_recent_non_asteroid_objects_by_their_latest_score(client_and_keys):
    client, keys = client_and_keys
    write_state(client, keys)
    state = read_state(client, keys, top_n=10, stale_after_s=STALE_AFTER_S, recent_s=3600)
    assert state["champion"] == "v7" and state["prefix"] == keys.prefix
    assert {c["id"] for c in state["consumers"]} == {"host-a-101", "host-b-202"}  # render leaves out the stale one
    sn = [(o["objectId"], o["score"]) for o in state["top"]["sn"]]
    assert sn == [("obj-young-sn", 0.93), ("obj-sn-2", 0.91), ("obj-faded", 0.30), ("obj-flare-1", 0.0)]
    assert [o["objectId"] for o in state["top"]["flare"]][:1] == ["obj-flare-1"]  # the asteroid's 0.995: out
    assert read_state(client, keys, top_n=2, recent_s=3600)["top"]["sn"][1]["objectId"] == "obj-sn-2"
    assert "obj-old-sn" in [o["objectId"] for o in read_state(client, keys, 10, recent_s=4 * 3600)["top"]["sn"]]


@pytest.mark.parametrize("width, height", [(80, 24), (200, 50)])
def test_render_fits_the_terminal_and_shows_more_when_wider(client_and_keys, width, height):
    client, keys = client_and_keys
    write_state(client, keys)
    frame = render(read_state(client, keys, top_n=10, stale_after_s=STALE_AFTER_S), width, height)
    print(frame)
    lines = frame.splitlines()
    assert len(lines) <= height and max(len(line) for line in lines) <= width
    assert lines[0].startswith("alertformer monitor") and "champion=v7" in lines[0]
    assert "consumers: 1 live, 1 gone (silent > 30 s); 850.2 alerts/s last minute" in frame
    assert "host-b-202" not in frame and "39.5" not in frame  # the stale consumer dropped out
    live_line = next(line for line in lines if line.startswith("host-a-101")).split()
    assert {"850.2", "121", "812", "v7"} <= set(live_line)  # the last minute
    sn_row = next(line for line in lines if "obj-young-sn" in line).split()
    assert {"0.930", "Ia", "4.2"} <= set(sn_row)  # latest score, class, age in days since first detection
    assert "obj-asteroid" not in frame and "obj-old-sn" not in frame
    wide_only = {"276838", "150.1234", "555001"}  # p99 since the start, ra, alertId: room for them at 200 only
    assert (wide_only <= set(frame.split())) == (width >= 200)


class Terminal:
    """`alertformer monitor` running in a tmux pane of a given size (a real terminal emulator)."""

    def __init__(self, folder: Path):
        self.socket = f"af-{uuid.uuid4().hex[:8]}"
        self.conf = folder / "tmux.conf"
        self.conf.write_text("set -g status off\n")  # the whole window is the pane

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True).stdout

    def open(self, width: int, height: int, redis_url: str, prefix: str, *args: str) -> None:
        env = {"PYTHONPATH": str(REPO), "ALERTFORMER_REDIS__URL": redis_url, "ALERTFORMER_REDIS__PREFIX": prefix,
               "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"), "TERM": "xterm"}
        command = shlex.join(["env", "-i", *(f"{k}={v}" for k, v in env.items()), sys.executable, "-m",
                              "alertformer.cli", "monitor", "--interval-s", "0.5", *args])
        self._tmux("-f", str(self.conf), "new-session", "-d", "-s", "monitor", "-x", str(width), "-y", str(height),
                   command)
        assert self._tmux("display", "-p", "-t", "monitor", "#{pane_width}x#{pane_height}").strip() \
            == f"{width}x{height}"

    def screen(self) -> list[str]:
        """The pane as shown, wrapped lines joined (a line longer than the pane shows as longer)."""
        return [line.rstrip() for line in self._tmux("capture-pane", "-p", "-J", "-t", "monitor").splitlines()]

    def wait(self, predicate, timeout_s: float = 60.0) -> list[str]:
        """The screen once `predicate(screen)` holds; fails showing the last screen if it never does (a guard,
        not a speed figure)."""
        deadline = time.monotonic() + timeout_s
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                pytest.fail("the monitor never showed what was expected:\n" + "\n".join(screen))
            time.sleep(0.2)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def terminal(tmp_path):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    term = Terminal(tmp_path)
    yield term
    term.close()


@pytest.mark.parametrize("width, height", [(80, 24), (200, 50)])
def test_monitor_in_a_real_terminal_fits_and_drops_a_stale_consumer(stack, client_and_keys, terminal, width, height):
    client, keys = client_and_keys
    write_state(client, keys, live_id="host-c-303")
    terminal.open(width, height, stack["redis_url"], keys.prefix, "--stale-after-s", "4")

    def beating_and_shown(lines: list[str]) -> bool:  # host-c-303 beats (as a live scorer does) until shown
        client.zadd(keys.consumers, {"host-c-303": int(time.time() * 1000)})
        return any(line.startswith("host-c-303") for line in lines)

    screen = terminal.wait(beating_and_shown)
    assert screen[0].startswith("alertformer monitor")  # the header did not scroll away
    assert max(len(line) for line in screen) <= width and len(screen) <= height
    assert "obj-young-sn" in "\n".join(screen) and "host-b-202" not in "\n".join(screen)
    # No heartbeat from host-c-303 from now on: gone once its last one is 4 s old, the header still on top.
    screen = terminal.wait(lambda lines: not any(line.startswith("host-c-303") for line in lines))
    assert any(line.startswith("consumers: none live, 2 gone") for line in screen)
    assert screen[0].startswith("alertformer monitor") and max(len(line) for line in screen) <= width
