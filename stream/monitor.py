"""``alertformer monitor``: the live state in Redis, redrawn in place in the terminal.

Shows the consumers whose heartbeat (``{p}:consumers``) is younger than ``--stale-after-s``,
with their counters from ``{p}:consumer:{id}``; the champion model version; the top
candidates by sn_likelihood and by flare_likelihood among the objects updated in the last
``--recent-min`` (the top-candidate buckets of that time, `stream.keys.top_bucket`), ranked
by their latest score (``{p}:obj:{objectId}``), solar-system objects left out. It reads the
metrics the scorers write, never logs.

`read_state` does the Redis reads (two round trips); `stream.monitor_view.render` turns their
result into text that fits the terminal and is pure, so either can be tested alone. Redrawing
uses ANSI cursor-home and erase codes, which every terminal emulator understands.
"""
import math
import shutil
import sys
import time

import redis

from stream.config import load_config
from stream.keys import TOP_KEEP_S, Keys, top_bucket
from stream.monitor_view import render
from stream.redis_io import make_redis

STALE_AFTER_S = 30.0  # a consumer without a heartbeat for this long is left out (stopped, or hung)
RECENT_MIN = 60.0  # the top lists rank objects updated within this many minutes
REDIS_TIMEOUT_S = 5.0  # one Redis call
DEFAULT_SIZE = (80, 24)  # when the output is not a terminal
SCORES = {"sn": "snLikelihood", "flare": "flareLikelihood"}
HOME, CLEAR_LINE, CLEAR_BELOW, CLEAR_SCREEN = "\x1b[H", "\x1b[K", "\x1b[J", "\x1b[2J"


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _decoded_hash(fields: dict) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in fields.items()}


def _latest(fields: dict, name: str) -> float:
    try:
        return float(fields[name])
    except (KeyError, ValueError):
        return math.nan


def read_state(client: redis.Redis, keys: Keys, top_n: int, stale_after_s: float = STALE_AFTER_S,
               recent_s: float = RECENT_MIN * 60) -> dict:
    """Read what the monitor shows from Redis.

    Parameters
    ----------
    client : redis.Redis
        Connection to the state store (``decode_responses`` either way).
    keys : Keys
        Key names with the configured prefix.
    top_n : int
        Candidates to show per score.
    stale_after_s : float
        Passed on to `render`: consumers silent for longer are left out.
    recent_s : float
        Candidates are objects updated within this many seconds (at most a day: the buckets' lifetime).

    Returns
    -------
    dict
        ``now_ms`` (local clock, ms since the Unix epoch), ``prefix``, ``champion`` (str or None),
        ``stale_after_s``, ``recent_s``, ``consumers``: list of the consumer hash's fields (str) plus
        ``id`` and ``heartbeat_ms`` (int) from ``{p}:consumers``, sorted by id, ``top``: for ``"sn"`` and
        ``"flare"`` a list, best first, of the object's hash fields (str) plus ``objectId`` and ``score``
        (its latest, float): objects updated within `recent_s`, no solar-system object.
    """
    now_ms = int(time.time() * 1000)
    recent_s = min(recent_s, TOP_KEEP_S)
    buckets = range(top_bucket(now_ms - int(recent_s * 1000)), top_bucket(now_ms) + 1)
    pipe = client.pipeline(transaction=False)
    pipe.zrange(keys.consumers, 0, -1, withscores=True)
    pipe.get(keys.champion)
    for score in SCORES:
        for bucket in buckets:
            pipe.zrevrange(keys.top(score, bucket), 0, top_n - 1)
    consumers, champion, *tops = pipe.execute()

    consumers = sorted((_text(member), hb_ms) for member, hb_ms in consumers)
    object_ids = sorted({_text(member) for top in tops for member in top})
    pipe = client.pipeline(transaction=False)
    for cid, _ in consumers:
        pipe.hgetall(keys.consumer(cid))
    for oid in object_ids:
        pipe.hgetall(keys.object_scores(oid))
    hashes = [_decoded_hash(h) for h in pipe.execute()]
    consumer_hashes, objects = hashes[:len(consumers)], dict(zip(object_ids, hashes[len(consumers):]))
    recent = {oid: h for oid, h in objects.items()
              if _latest(h, "updatedMs") >= now_ms - recent_s * 1000 and h.get("solarSystem") != "1"}
    top = {}
    for score, field in SCORES.items():
        ranked = sorted(((s, oid) for oid, h in recent.items() if not math.isnan(s := _latest(h, field))),
                        key=lambda pair: (-pair[0], pair[1]))
        top[score] = [recent[oid] | {"objectId": oid, "score": s} for s, oid in ranked[:top_n]]
    return {
        "now_ms": now_ms, "prefix": keys.prefix, "champion": _text(champion),
        "stale_after_s": stale_after_s, "recent_s": recent_s,
        "consumers": [h | {"id": cid, "heartbeat_ms": int(hb_ms)}
                      for (cid, hb_ms), h in zip(consumers, consumer_hashes)],
        "top": top,
    }


def cmd_monitor(args) -> int:
    config = load_config(args.config)
    client = make_redis(config.redis, decode_responses=True, socket_timeout=REDIS_TIMEOUT_S,
                        socket_connect_timeout=REDIS_TIMEOUT_S)
    keys = Keys(config.redis.prefix)
    read = lambda: read_state(client, keys, args.top, args.stale_after_s, args.recent_min * 60)  # noqa: E731
    if args.once:
        try:
            width, height = shutil.get_terminal_size(DEFAULT_SIZE)
            print(render(read(), width, height - 1))
        except redis.RedisError as err:
            print(f"alertformer monitor: redis unreachable: {err}", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(CLEAR_SCREEN)
    try:
        while True:
            width, height = shutil.get_terminal_size(DEFAULT_SIZE)  # each frame: the terminal may be resized
            try:
                frame = render(read(), width, height - 1)  # the last row keeps the cursor: nothing scrolls
            except redis.RedisError as err:  # keep watching: Redis may come back
                frame = f"alertformer monitor  prefix={keys.prefix}  redis unreachable: {err}"[:width]
            # each line erased before it is written: a line as wide as the terminal leaves the cursor past its end
            sys.stdout.write(HOME + "".join(CLEAR_LINE + line + "\n" for line in frame.splitlines()) + CLEAR_BELOW)
            sys.stdout.flush()
            time.sleep(args.interval_s)
    except KeyboardInterrupt:
        return 0
