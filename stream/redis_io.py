"""Redis clients configured from `RedisSettings`, and the start-up credential check.

An unreachable Redis is an outage: scoring goes on and the outage is counted. Refused
credentials are a configuration error (exit 2): waiting would not fix them, and a scorer
that runs without ever writing its state only looks healthy.
"""
import logging

import redis

from stream.config import RedisSettings
from stream.errors import ConfigError
from stream.secrets import mask_url

log = logging.getLogger(__name__)


def make_redis(settings: RedisSettings, **options) -> redis.Redis:
    """A client of `settings.url` with the configured credentials; `options` go to ``redis.Redis``."""
    return redis.Redis.from_url(settings.url, **settings.client_options(), **options)


def check_credentials(client: redis.Redis, settings: RedisSettings) -> None:
    """Ping Redis once: ConfigError if it refuses the credentials; an outage is only logged."""
    try:
        client.ping()
    except (redis.AuthenticationError, redis.exceptions.NoPermissionError) as err:
        raise ConfigError(f"redis.password: Redis at {mask_url(settings.url)} refused the credentials: {err}") from None
    except redis.RedisError as err:
        log.warning("redis unreachable at start url=%s error=%s", mask_url(settings.url), err)
