"""``alertformer web``: the app of `stream.web.app` on uvicorn, configured from ``[web]`` and ``[redis]``."""
import ipaddress
import logging

from stream.config import load_config
from stream.keys import Keys
from stream.redis_io import make_redis

log = logging.getLogger(__name__)
REDIS_TIMEOUT_S = 5.0  # one Redis call of a page


def is_loopback(host: str) -> bool:
    """Whether `host` only listens on this machine ("localhost", 127.x, ::1).

    >>> is_loopback("127.0.0.1"), is_loopback("0.0.0.0"), is_loopback("localhost")
    (True, False, True)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_web(args) -> int:
    import uvicorn

    from stream.web.app import create_app

    config = load_config(args.config)
    web = config.web.updated(**{k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None})
    token = web.token.get_secret_value() if web.token else None
    if token is None and not is_loopback(web.host):
        log.warning("web listening on %s without web.token: anyone who reaches it can read the state", web.host)
    client = make_redis(config.redis, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
    app = create_app(client, Keys(config.redis.prefix), [rule.name for rule in config.followup.rules], token,
                     web.refresh_s, config.registry.path)
    print(f"alertformer web: http://{web.host}:{web.port}/", flush=True)
    uvicorn.run(app, host=web.host, port=web.port, log_level="warning")
    return 0
