"""Keeping secrets out of output: masked URLs, and log records scrubbed of every configured secret.

`mask_url` hides the password of a URL's user part and the values of query parameters that
look secret (``password``, ``token``, ...), and, for webhooks (whose path often is the token,
e.g. Slack's ``/services/T…/B…/X…``), the path and query whole. `mask_in_logs` makes every
log record created afterwards, by any logger, show ``**********`` in place of the secrets given.

>>> mask_url("redis://:hunter2@cache:6379/0")
'redis://:**********@cache:6379/0'
>>> mask_url("https://hooks.example.org/services/T1/B2/xyz?token=abc", keep_path=False)
'https://hooks.example.org/**********'
"""
import logging
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "**********"
SECRET_WORDS = ("password", "secret", "key", "token", "auth", "credential", "sig")

_secrets: set[str] = set()
_plain_factory = None


def is_secret_name(name: str) -> bool:
    return any(word in name.lower() for word in SECRET_WORDS)


def mask_url(url: str, keep_path: bool = True) -> str:
    """`url` with its password (and secret query values; with `keep_path` False, path and query) masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:  # user:password; a user part alone is a user name (redis-py reads it so)
            netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{host}"
    if not keep_path:
        path = f"/{MASK}" if parts.path.strip("/") or parts.query else parts.path
        return urlunsplit((parts.scheme, netloc, path, "", ""))
    query = urlencode([(k, MASK if is_secret_name(k) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)],
                      safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def url_secrets(url: str | None, keep_path: bool = True) -> list[str]:
    """The parts of `url` that `mask_url` hides, to scrub from logs."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found = [parts.password] if parts.password else []
    found += [v for k, v in parse_qsl(parts.query) if is_secret_name(k)]
    if not keep_path:
        found += [p for p in (parts.path.strip("/"), parts.query) if p]
    return [s for s in found if s]


def mask_in_logs(secrets: Iterable[str]) -> None:
    """From now on, replace each of `secrets` with ``**********`` in every log record's message."""
    global _plain_factory
    _secrets.update(s for s in secrets if s)
    if _secrets and _plain_factory is None:
        _plain_factory = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_scrubbing_factory)


def scrub(text: str) -> str:
    """`text` with every secret given to `mask_in_logs` masked (longest first)."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def _scrubbing_factory(*args, **kwargs) -> logging.LogRecord:
    record = _plain_factory(*args, **kwargs)
    try:
        message = record.getMessage()
    except Exception:  # a malformed call: leave it to logging to report
        return record
    if any(secret in message for secret in _secrets):
        record.msg, record.args = scrub(message), ()
    return record
