"""``alertformer web``: the candidates, object and status pages over the Redis state."""
from alertformer.cli.options import add_config_argument, positive


def add_parser(subparsers) -> None:
    """Register ``alertformer web``."""
    p = subparsers.add_parser(
        "web", help="serve the candidates, object and status pages from the Redis state",
        description="Serve read-only web pages over the state the scorers keep in Redis: the top SN and flare "
                    "candidates (filters: class, score, age, visits, sky region; refreshed live), each object's "
                    "light curve, scores over time and follow-up requests, and the scorers' status. Listens on "
                    "[web] host and port (default 127.0.0.1:8080); with [web] token set every request needs "
                    "'Authorization: Bearer TOKEN' (a browser opens /login?token=TOKEN once).")
    add_config_argument(p)
    p.add_argument("--host", help="address to listen on (default: [web] host, 127.0.0.1)")
    p.add_argument("--port", type=positive(int), help="port (default: [web] port, 8080)")
    p.set_defaults(func=run)


def run(args) -> int:
    from stream.web.serve import cmd_web

    return cmd_web(args)
