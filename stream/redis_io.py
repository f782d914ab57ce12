"""Redis clients configured from `RedisSettings`, the start-up credential check, and the outage accounting.

An unreachable Redis is an outage: scoring goes on and the outage is counted (`RedisHealth`).
Refused credentials are a configuration error (exit 2): waiting would not fix them, and a
scorer that runs without ever writing its state only looks healthy.
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


def check_access(client: redis.Redis, settings: RedisSettings) -> None:
    """ConfigError if Redis refuses the credentials or, for an ACL user, scripts (the scorer writes its state
    with a script, `stream.state.WRITE_SCORES_LUA`); `redis.RedisError` if it does not answer."""
    try:
        client.ping()
    except (redis.AuthenticationError, redis.exceptions.NoPermissionError) as err:
        raise ConfigError(f"redis.password: Redis at {mask_url(settings.url)} refused the credentials: {err}") from None
    try:
        client.eval("return 1", 0)
    except redis.exceptions.NoPermissionError as err:
        raise ConfigError(f"redis.username: Redis at {mask_url(settings.url)} does not let this user run scripts "
                          f"(EVAL), which the scores are written with: grant it +eval or +@scripting ({err})") from None


def check_credentials(client: redis.Redis, settings: RedisSettings) -> None:
    """`check_access` once at start: refused credentials or scripts are a ConfigError; an outage is only logged."""
    try:
        check_access(client, settings)
    except redis.RedisError as err:
        log.warning("redis unreachable at start url=%s error=%s", mask_url(settings.url), err)


class RedisHealth:
    """The Redis outages of one process, shared by its Redis users (history store, state writer, follow-up
    journal, the trainer's reads).

    After a call times out, `usable` says no for the rest of the batch (until `new_batch`), so a
    frozen Redis costs one timeout per batch, not one per call.
    """

    def __init__(self):
        self.outages = 0
        self.skipped_calls = 0  # Redis calls skipped because an earlier one of the same batch timed out
        self._timed_out = False

    def new_batch(self) -> None:
        """A new batch begins: let Redis calls through again."""
        self._timed_out = False

    def usable(self) -> bool:
        """Whether to call Redis now: False (counted in `skipped_calls`) once a call of this batch timed out."""
        if self._timed_out:
            self.skipped_calls += 1
        return not self._timed_out

    def outage(self, what: str, err: Exception) -> None:
        """Count and log a failed Redis call `what`; a timeout skips Redis for the rest of the batch."""
        self.outages += 1
        self._timed_out = self._timed_out or isinstance(err, redis.TimeoutError)
        log.warning("redis outage op=%s outages=%d error=%s", what, self.outages, err)
