"""One frame of ``alertformer monitor`` as text that fits a terminal of a given width and height.

Each table has more columns than 80 characters hold, each with a priority: the least important
are left out until the table fits, so a wider terminal shows more. Rows are shared out so the
frame fits the height: a few consumers (the others counted in one line), then the two top lists.
Pure: `render` takes the state `stream.monitor.read_state` returns.
"""
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from models.taxonomy import ID_TO_NAME

GAP = "  "
FIXED_LINES = 10  # header, blank, summary, consumer header, blank, and title + header of both top lists
MAX_ID_CHARS = 24  # a consumer or object id longer than this is cut (with "~") to leave room for numbers


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[dict], str]
    priority: int = 0  # 0: always shown; the highest is left out first when the table is too wide
    left: bool = False


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


def _cut(text: str, n: int = MAX_ID_CHARS) -> str:
    return text if len(text) <= n else text[:n - 1] + "~"


def _age_s(now_ms: int, then_ms) -> float:
    """Seconds from `then_ms` (ms since the epoch, str or number) to `now_ms`; NaN when absent."""
    return (now_ms - _float(then_ms)) / 1000


def _class_name(class_id) -> str:
    try:
        return ID_TO_NAME[int(class_id)]
    except (TypeError, ValueError, KeyError):
        return class_id or "-"


def table(columns: list[Column], items: list[dict], width: int) -> list[str]:
    """A header and one line per item, with the columns that fit `width` (by priority); lines cut to `width`."""
    cells = [[c.header, *(c.cell(item) for item in items)] for c in columns]
    widths = [max(len(cell) for cell in column) for column in cells]
    kept = list(range(len(columns)))
    while sum(widths[i] for i in kept) + len(GAP) * (len(kept) - 1) > width:
        droppable = [i for i in kept if columns[i].priority > 0]
        if not droppable:
            break
        kept.remove(max(reversed(droppable), key=lambda i: columns[i].priority))
    lines = []
    for row in range(len(items) + 1):
        line = GAP.join(cells[i][row].ljust(widths[i]) if columns[i].left else cells[i][row].rjust(widths[i])
                        for i in kept)
        lines.append(line.rstrip()[:width])
    return lines


def consumer_columns(now_ms: int) -> list[Column]:
    """Per consumer: the last minute first (throughput, latency percentiles), then totals since its start."""
    return [
        Column("consumer", lambda c: _cut(c["id"]), left=True),
        Column("alerts/s", lambda c: _number(c.get("alertsPerS"), ".1f")),
        Column("p50 ms", lambda c: _number(c.get("latencyP50Ms"), ".0f")),
        Column("p95 ms", lambda c: _number(c.get("latencyP95Ms"), ".0f"), 2),
        Column("p99 ms", lambda c: _number(c.get("latencyP99Ms"), ".0f")),
        Column("lag", lambda c: _number(c.get("lag"), ".0f"), 1),
        Column("dead", lambda c: _number(c.get("deadLetters"), ".0f"), 3),
        Column("model", lambda c: c.get("modelVersion", "-"), 1),
        Column("seen", lambda c: _number(_age_s(now_ms, c["heartbeat_ms"]), ".0f") + " s"),
        Column("alerts", lambda c: _number(c.get("alerts"), ".0f"), 3),
        Column("avg/s", lambda c: _number(c.get("alertsPerSTotal"), ".1f"), 4),
        Column("p50 all", lambda c: _number(c.get("latencyP50MsTotal"), ".0f"), 5),
        Column("p95 all", lambda c: _number(c.get("latencyP95MsTotal"), ".0f"), 6),
        Column("p99 all", lambda c: _number(c.get("latencyP99MsTotal"), ".0f"), 4),
        Column("aborts", lambda c: _number(c.get("aborts"), ".0f"), 5),
        Column("redis outages", lambda c: _number(c.get("redisOutages"), ".0f"), 6),
        Column("host", lambda c: c.get("host", "-"), 7, left=True),
    ]


def candidate_columns(now_ms: int, score: str) -> list[Column]:
    """Per candidate: rank, id, the ranked score, class, age (days since its first detection), then details."""
    other, other_field = ("flare", "flareLikelihood") if score == "sn" else ("sn", "snLikelihood")
    return [
        Column("#", lambda o: str(o["rank"])),
        Column("objectId", lambda o: _cut(o["objectId"]), left=True),
        Column(score, lambda o: _number(o["score"], ".3f")),
        Column(other, lambda o: _number(o.get(other_field), ".3f"), 3),
        Column("class", lambda o: _class_name(o.get("topClassId")), 1, left=True),
        Column("age d", lambda o: _number(o.get("ageDays"), ".1f")),
        Column("visits", lambda o: _number(o.get("nVisits"), ".0f"), 2),
        Column("updated", lambda o: _number(_age_s(now_ms, o.get("updatedMs")), ".0f") + " s", 2),
        Column("latest MJD", lambda o: _number(o.get("latestMjdTai"), ".4f"), 4),
        Column("ra deg", lambda o: _number(o.get("raDeg"), ".4f"), 5),
        Column("dec deg", lambda o: _number(o.get("decDeg"), ".4f"), 5),
        Column("alertId", lambda o: o.get("alertId", "-"), 6),
        Column("model", lambda o: o.get("modelVersion", "-"), 6),
    ]


def is_live(state: dict, consumer: dict) -> bool:
    """Whether `consumer` sent a heartbeat within the state's ``stale_after_s``."""
    return _age_s(state["now_ms"], consumer["heartbeat_ms"]) <= state["stale_after_s"]


def render(state: dict, width: int = 80, height: int = 24) -> str:
    """One frame of the monitor, at most `width` characters wide and `height` lines high (no terminal codes).

    A header (time UTC, key prefix, champion model); the consumers that sent a heartbeat within
    ``stale_after_s`` (those that did not are left out, and counted), their throughput and
    latency over the last minute and since their start; the top candidates by sn_likelihood
    and by flare_likelihood among objects updated within ``recent_s``, by their latest score,
    with their age in days since the first detection.

    >>> print(render({"now_ms": 0, "prefix": "af", "champion": None, "consumers": [], "stale_after_s": 30,
    ...               "recent_s": 3600, "top": {"sn": [], "flare": []}}))
    alertformer monitor  1970-01-01 00:00:00 UTC  champion=-  prefix=af
    <BLANKLINE>
    consumers: none live
    <BLANKLINE>
    top sn (updated in the last 60 min): none
    <BLANKLINE>
    top flare (updated in the last 60 min): none
    """
    now_ms = state["now_ms"]
    when = datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [f"alertformer monitor  {when}  champion={state['champion'] or '-'}  prefix={state['prefix']}", ""]
    live = [c for c in state["consumers"] if is_live(state, c)]
    gone = len(state["consumers"]) - len(live)
    gone_note = f", {gone} gone (silent > {state['stale_after_s']:g} s)" if gone else ""
    spare = max(height - FIXED_LINES, 3)
    n_consumers = min(len(live), max(1, spare // 3))
    if live:
        rate_per_s = sum(r for c in live if not math.isnan(r := _float(c.get("alertsPerS"))))
        lines.append(f"consumers: {len(live)} live{gone_note}; {rate_per_s:.1f} alerts/s last minute")
        shown = live if len(live) <= n_consumers else live[:n_consumers - 1]
        lines += table(consumer_columns(now_ms), shown, width)
        if len(shown) < len(live):
            lines.append(f"... and {len(live) - len(shown)} more")
    else:
        lines.append(f"consumers: none live{gone_note}")
    n_top = max(1, (spare - (n_consumers if live else -1)) // 2)
    for score in ("sn", "flare"):
        title = f"top {score} (updated in the last {state['recent_s'] / 60:g} min)"
        candidates = [o | {"rank": rank} for rank, o in enumerate(state["top"][score][:n_top], start=1)]
        lines.append("")
        if candidates:
            lines.append(title + ":")
            lines += table(candidate_columns(now_ms, score), candidates, width)
        else:
            lines.append(title + ": none")
    return "\n".join(line[:width] for line in lines[:height])
