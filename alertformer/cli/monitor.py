"""``alertformer monitor``: the live state in Redis, in the terminal."""
from alertformer.cli.options import add_config_argument, positive
from stream.keys import TOP_KEEP_S
from stream.monitor import RECENT_MIN, STALE_AFTER_S


def add_parser(subparsers) -> None:
    """Register ``alertformer monitor``."""
    p = subparsers.add_parser(
        "monitor", help="show the live state from Redis in the terminal, refreshed in place",
        description="Show the live state the scorers keep in Redis, redrawn in place every --interval-s and "
                    "fitted to the terminal (80x24 when it is not one; a wider terminal shows more columns): per "
                    "live consumer the alerts/s and latency p50/p95/p99 (ms, Kafka timestamp to publish) over the "
                    "last minute and since its start, lag, dead letters, aborted transactions, Redis outages, "
                    "model version and heartbeat age; consumers without a heartbeat for --stale-after-s are left "
                    "out; the champion model version; the top candidates by sn_likelihood and by "
                    "flare_likelihood among objects updated in the last --recent-min, by their latest score, with "
                    "their age in days since the first detection (known solar-system objects left out). "
                    "Ctrl-C quits.")
    add_config_argument(p)
    p.add_argument("--interval-s", type=positive(float), default=2.0, help="seconds between refreshes (default 2)")
    p.add_argument("--once", action="store_true",
                   help="print one frame without terminal codes and exit (1 if Redis cannot be reached)")
    p.add_argument("--top", type=positive(int), default=10, metavar="N",
                   help="candidates shown per score at most (default 10; fewer if the terminal is short)")
    p.add_argument("--stale-after-s", type=positive(float), default=STALE_AFTER_S, metavar="S",
                   help=f"leave out consumers without a heartbeat for S seconds (default {STALE_AFTER_S:g})")
    p.add_argument("--recent-min", type=positive(float), default=RECENT_MIN, metavar="M",
                   help=f"rank objects updated in the last M minutes (default {RECENT_MIN:g}, at most "
                        f"{TOP_KEEP_S // 60})")
    p.set_defaults(func=run)


def run(args) -> int:
    from stream.monitor import cmd_monitor

    return cmd_monitor(args)
