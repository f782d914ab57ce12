"""``alertformer models list | show | promote | rollback | import``: the registry from the terminal.

Promotion and rollback also announce the new champion to running scorers (Redis pub/sub).
"""
import json


from models.registry import ModelRegistry
from stream.config import load_config
from stream.errors import ConfigError
from stream.hotswap import announce
from stream.keys import Keys
from stream.redis_io import make_redis

MAX_LISTED_METRICS_CHARS = 200  # longer metrics are listed by name only


def _registry(config) -> ModelRegistry:
    if not config.registry.path:
        raise ConfigError("registry.path is not set (config file or ALERTFORMER_REGISTRY__PATH)")
    return ModelRegistry(config.registry.path)


def _announce(config, version: str) -> None:
    announce(make_redis(config.redis, socket_timeout=2.0), Keys(config.redis.prefix), version)


def _metrics_headline(metrics: dict, version: str | None = None) -> str:
    """`metrics` as JSON if short, else their names (``models show VERSION`` prints them whole)."""
    text = json.dumps(metrics, sort_keys=True)
    if len(text) <= MAX_LISTED_METRICS_CHARS:
        return text
    return f"{{{', '.join(metrics)}}}" + (f" (alertformer models show {version})" if version else "")


def served_line(config, registry: ModelRegistry | None) -> str:
    """What a scorer started now would serve, and why: one line for ``models list``."""
    from models.checkpoint import load_checkpoint
    from stream.score import checkpoint_version, served_checkpoint

    served = served_checkpoint(config.scoring, registry)
    if served.version is not None:
        return f"served: {served.version} ({served.source})"
    why = {"scoring.checkpoint": "scoring.checkpoint is set: the registry's champion is not served",
           "shipped model": "no registry champion" if registry is not None else "registry.path not set"}[served.source]
    if not served.path.is_file():
        raise ConfigError(f"scoring.checkpoint: {served.path} does not exist")
    _, meta = load_checkpoint(served.path)
    return (f"served: {checkpoint_version(served.path, meta)} ({served.source} {served.path}; {why})  "
            f"created={meta.get('created_utc')}  metrics={_metrics_headline(meta.get('metrics', {}))}")


def cmd_models(args) -> int:
    config = load_config(args.config)
    if args.action == "list" and not config.registry.path:
        print(served_line(config, None))
        return 0
    registry = _registry(config)
    champion = registry.champion()
    if args.action == "list":
        for info in registry.versions():
            mark = "*" if info.version == champion else " "
            metrics = info.meta.get("metrics", {})
            print(f"{mark} {info.version}  parent={info.meta.get('parent')}  created={info.meta['created_utc']}  "
                  f"metrics={_metrics_headline(metrics, info.version)}  {info.meta.get('note', '')}")
        print(served_line(config, registry))
    elif args.action == "show":
        info = registry.get(args.version or champion or "")
        print(json.dumps(info.meta | {"champion": info.version == champion, "checkpoint": str(info.checkpoint)},
                         indent=2, sort_keys=True))
    elif args.action == "promote":
        registry.promote(args.version, reason=args.reason)
        _announce(config, args.version)
        print(f"champion: {args.version}")
    elif args.action == "rollback":
        version = registry.rollback(reason=args.reason)
        _announce(config, version)
        print(f"champion: {version}")
    elif args.action == "import":
        if args.unless_champion and champion is not None:
            print(f"champion: {champion} (kept; nothing imported)")
            return 0
        info = registry.register(args.checkpoint, note=args.reason)
        if args.promote:
            registry.promote(info.version, reason=args.reason)
            _announce(config, info.version)
        print(info.version)
    return 0
