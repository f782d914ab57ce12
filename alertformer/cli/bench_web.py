"""``alertformer bench-web``: the web view's candidates endpoint with many objects in Redis."""
from alertformer.cli.options import add_config_argument, positive


def add_parser(subparsers) -> None:
    """Register ``alertformer bench-web`` (`bench.web`)."""
    p = subparsers.add_parser(
        "bench-web", help="measurement: the web candidates endpoint with N objects in Redis, JSON report",
        description="Write --objects scored objects into Redis (a fresh key prefix, through the scorer's state "
                    "writer), serve the web app on a local port, and time /api/candidates over HTTP with a few "
                    "filter sets (median and p95 ms, objects read), beside the Redis reads alone; the prefix is "
                    "deleted afterwards. Prints one JSON report.")
    add_config_argument(p)
    p.add_argument("--objects", type=positive(int), default=100_000, help="objects in Redis (default 100,000)")
    p.add_argument("--repeats", type=positive(int), default=30, help="requests per query (default 30)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    from bench.web import cmd_bench_web

    return cmd_bench_web(args)
