"""``alertformer monitor``: the live state in Redis, redrawn in place in the terminal.

Shows every consumer that ever sent a heartbeat (``{p}:consumers``) with its
counters from ``{p}:consumer:{id}``, marking it STALE when its heartbeat is older
than `STALE_AFTER_S`; the champion model version; the top candidates by
sn_likelihood and by flare_likelihood with their latest scores
(``{p}:obj:{objectId}``). It reads the metrics the scorers write, never logs.

`read_state` does the Redis reads (two round trips), `render` turns their
result into text and is pure, so either can be tested alone. Redrawing uses
ANSI cursor-home and erase codes, which every terminal emulator understands.
"""
import argparse
import math
import sys
import time
from datetime import datetime, timezone

import redis

from models.taxonomy import ID_TO_NAME
from stream.config import add_config_argument, load_config
from stream.keys import Keys
from stream.redis_io import make_redis

STALE_AFTER_S = 30.0  # a consumer whose last heartbeat is older than this is marked STALE
REDIS_TIMEOUT_S = 5.0  # one Redis call
SCORES = ("sn", "flare")
HOME, CLEAR_LINE, CLEAR_BELOW, CLEAR_SCREEN = "\x1b[H", "\x1b[K", "\x1b[J", "\x1b[2J"


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def _decoded_hash(fields: dict) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in fields.items()}


def read_state(client: redis.Redis, keys: Keys, top_n: int) -> dict:
    """Read what the monitor shows from Redis.

    Parameters
    ----------
    client : redis.Redis
        Connection to the state store (``decode_responses`` either way).
    keys : Keys
        Key names with the configured prefix.
    top_n : int
        Candidates to show per score.

    Returns
    -------
    dict
        ``now_ms`` (local clock, ms since the Unix epoch), ``prefix``, ``champion``
        (str or None), ``consumers``: list of the consumer hash's fields (str) plus
        ``id`` and ``heartbeat_ms`` (int) from ``{p}:consumers``, sorted by id, ``top``: for
        ``"sn"`` and ``"flare"`` a list, best first, of the object's hash fields
        (str, empty when the hash expired) plus ``objectId`` and ``score`` (float).
    """
    pipe = client.pipeline(transaction=False)
    pipe.zrange(keys.consumers, 0, -1, withscores=True)
    pipe.get(keys.champion)
    for score in SCORES:
        pipe.zrevrange(keys.top(score), 0, top_n - 1, withscores=True)
    consumers, champion, *tops = pipe.execute()

    consumers = sorted((_text(member), hb_ms) for member, hb_ms in consumers)
    consumer_ids = [cid for cid, _ in consumers]
    top_ids = [[_text(member) for member, _ in top] for top in tops]
    object_ids = sorted({oid for ids in top_ids for oid in ids})
    pipe = client.pipeline(transaction=False)
    for cid in consumer_ids:
        pipe.hgetall(keys.consumer(cid))
    for oid in object_ids:
        pipe.hgetall(keys.object_scores(oid))
    hashes = [_decoded_hash(h) for h in pipe.execute()]
    consumer_hashes, object_hashes = hashes[:len(consumer_ids)], dict(zip(object_ids, hashes[len(consumer_ids):]))

    return {
        "now_ms": int(time.time() * 1000),
        "prefix": keys.prefix,
        "champion": _text(champion),
        "consumers": [h | {"id": cid, "heartbeat_ms": int(hb_ms)}
                      for cid, (_, hb_ms), h in zip(consumer_ids, consumers, consumer_hashes)],
        "top": {score: [object_hashes[oid] | {"objectId": oid, "score": float(s)}
                        for oid, (_, s) in zip(ids, top)]
                for score, ids, top in zip(SCORES, top_ids, tops)},
    }


def _float(value) -> float:
    """`value` (str or number) as a float; NaN when absent or not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _number(value, fmt: str) -> str:
    """`value` (str or number) formatted with `fmt`, or "-" when absent or not a number."""
    number = _float(value)
    return "-" if math.isnan(number) else format(number, fmt)


def _table(headers: list[str], rows: list[list[str]], n_left: int = 1) -> list[str]:
    """Columns padded to their widest cell: the first `n_left` left-aligned (names), the others right-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows)]
    return ["  ".join(cell.ljust(w) if i < n_left else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
            .rstrip() for line in [headers, *rows]]


def _age_s(now_ms: int, then_ms) -> float:
    """Seconds from `then_ms` (ms since the epoch, str or number) to `now_ms`; NaN when absent."""
    return (now_ms - _float(then_ms)) / 1000


def _is_stale(state: dict, consumer: dict) -> bool:
    return _age_s(state["now_ms"], consumer["heartbeat_ms"]) > STALE_AFTER_S


def _consumer_rows(state: dict) -> list[list[str]]:
    return [[
        c["id"], _number(c.get("alerts"), ".0f"), _number(c.get("alertsPerS"), ".1f"),
        _number(c.get("latencyP50Ms"), ".0f"), _number(c.get("latencyP95Ms"), ".0f"),
        _number(c.get("latencyP99Ms"), ".0f"), _number(c.get("lag"), ".0f"), _number(c.get("deadLetters"), ".0f"),
        _number(c.get("aborts"), ".0f"), _number(c.get("redisOutages"), ".0f"), c.get("modelVersion", "-"),
        _number(_age_s(state["now_ms"], c["heartbeat_ms"]), ".1f") + " s" + (" STALE" if _is_stale(state, c) else ""),
    ] for c in state["consumers"]]


def _class_name(class_id) -> str:
    try:
        return ID_TO_NAME[int(class_id)]
    except (TypeError, ValueError, KeyError):
        return class_id or "-"


def _candidate_rows(state: dict, score: str) -> list[list[str]]:
    """One row per top candidate: the ranked score from the sorted set, the other from the object's hash."""
    other = "flareLikelihood" if score == "sn" else "snLikelihood"
    return [[
        str(rank), o["objectId"], _number(o["score"], ".3f"), _number(o.get(other), ".3f"),
        _class_name(o.get("topClassId")), _number(o.get("nVisits"), ".0f"), _number(o.get("latestMjdTai"), ".5f"),
        _number(o.get("raDeg"), ".5f"), _number(o.get("decDeg"), ".5f"), o.get("alertId", "-"),
        o.get("modelVersion", "-"), _number(_age_s(state["now_ms"], o.get("updatedMs")), ".1f"),
    ] for rank, o in enumerate(state["top"][score], start=1)]


def render(state: dict) -> str:
    """One frame of the monitor as text (no terminal codes).

    Parameters
    ----------
    state : dict
        As returned by `read_state`.

    Returns
    -------
    str
        A header line (time UTC, key prefix, champion model), the consumer table
        (heartbeat age in seconds, STALE past `STALE_AFTER_S`) and one table of
        top candidates per score. Fields a hash lacks show as "-".

    >>> print(render({"now_ms": 0, "prefix": "af", "champion": None, "consumers": [],
    ...               "top": {"sn": [], "flare": []}}))
    alertformer monitor  1970-01-01 00:00:00 UTC  prefix=af  champion=-
    <BLANKLINE>
    consumers: none
    <BLANKLINE>
    top sn: none
    <BLANKLINE>
    top flare: none
    """
    when = datetime.fromtimestamp(state["now_ms"] / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [f"alertformer monitor  {when}  prefix={state['prefix']}  champion={state['champion'] or '-'}", ""]
    consumer_rows = _consumer_rows(state)
    if consumer_rows:
        live = [c for c in state["consumers"] if not _is_stale(state, c)]
        rate_per_s = sum(r for c in live if not math.isnan(r := _float(c.get("alertsPerS"))))
        lines.append(f"consumers: {len(consumer_rows)} ({len(live)} live), {rate_per_s:.1f} alerts/s live")
        lines += _table(["consumer", "alerts", "alerts/s", "p50 ms", "p95 ms", "p99 ms", "lag", "dead", "aborts",
                         "redis outages", "model", "heartbeat age"], consumer_rows)
    else:
        lines.append("consumers: none")
    for score in SCORES:
        rows = _candidate_rows(state, score)
        lines.append("")
        if rows:
            lines.append(f"top {score}:")
            headers = ["#", "objectId", score, "flare" if score == "sn" else "sn", "top class", "visits",
                       "latest MJD TAI", "ra deg", "dec deg", "alertId", "model", "updated s ago"]
            lines += _table(headers, rows, n_left=2)
        else:
            lines.append(f"top {score}: none")
    return "\n".join(lines)


def cmd_monitor(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    client = make_redis(config.redis, decode_responses=True, socket_timeout=REDIS_TIMEOUT_S,
                                  socket_connect_timeout=REDIS_TIMEOUT_S)
    keys = Keys(config.redis.prefix)
    if args.once:
        try:
            print(render(read_state(client, keys, args.top)))
        except redis.RedisError as err:
            print(f"alertformer monitor: redis unreachable: {err}", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(CLEAR_SCREEN)
    try:
        while True:
            try:
                frame = render(read_state(client, keys, args.top))
            except redis.RedisError as err:  # keep watching: Redis may come back
                frame = f"alertformer monitor  prefix={keys.prefix}  redis unreachable: {err}"
            sys.stdout.write(HOME + "".join(line + CLEAR_LINE + "\n" for line in frame.splitlines()) + CLEAR_BELOW)
            sys.stdout.flush()
            time.sleep(args.interval_s)
    except KeyboardInterrupt:
        return 0


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def add_parser(subparsers) -> None:
    """Register ``alertformer monitor``."""
    p = subparsers.add_parser(
        "monitor", help="show the live state from Redis in the terminal, refreshed in place",
        description="Show the live state the scorers keep in Redis, redrawn in place every --interval-s: per "
                    "consumer the alerts scored, alerts/s, latency p50/p95/p99 (ms, Kafka timestamp to publish), "
                    "lag, dead letters, aborted transactions, Redis outages, model version and heartbeat age "
                    f"(STALE after {STALE_AFTER_S:.0f} s); the champion model version; the top candidates by "
                    "sn_likelihood and by flare_likelihood with their latest scores. Ctrl-C quits.")
    add_config_argument(p)
    p.add_argument("--interval-s", type=_positive(float), default=2.0, help="seconds between refreshes (default 2)")
    p.add_argument("--once", action="store_true",
                   help="print one frame without terminal codes and exit (1 if Redis cannot be reached)")
    p.add_argument("--top", type=_positive(int), default=10, metavar="N",
                   help="candidates shown per score (default 10)")
    p.set_defaults(func=cmd_monitor)
